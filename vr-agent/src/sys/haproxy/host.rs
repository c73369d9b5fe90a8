//! What this box offers haproxy: CPUs, the open-files limit, the user its
//! workers run as.

use crate::plan::haproxy::{Host, NOBODY, RunAs, USERS};

/// This process's CPUs and hard open-files limit, haproxy's user.
pub fn host() -> Host {
    let fd_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_string))
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    Host {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fd_limit,
        run_as: run_as(),
    }
}

/// The first of [`USERS`] this box has, with its primary group (looked
/// up once).
pub fn run_as() -> RunAs {
    static ONCE: std::sync::OnceLock<RunAs> = std::sync::OnceLock::new();
    *ONCE.get_or_init(look_up_run_as)
}

fn look_up_run_as() -> RunAs {
    let found = USERS.iter().find_map(|name| {
        let u = nix::unistd::User::from_name(name).ok().flatten()?;
        Some((
            *name,
            RunAs {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            },
        ))
    });
    match found {
        Some((name, r)) => {
            if name != USERS[0] {
                tracing::warn!(
                    user = name,
                    "no user {}: haproxy's workers run as {name}",
                    USERS[0]
                );
            }
            r
        }
        None => {
            tracing::warn!(
                uid = NOBODY.uid,
                "none of the users {USERS:?}: haproxy's workers run as uid/gid {}",
                NOBODY.uid
            );
            NOBODY
        }
    }
}
