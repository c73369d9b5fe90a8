//! Whether privileged tests can run here, and `require_privileged!` to skip
//! (or, under `REQUIRE_PRIVILEGED=1`, fail) those that cannot.

use std::process::Command;
use std::sync::OnceLock;

use crate::command::run_cmd;
use crate::names::unique_name;

/// Why privileged tests cannot run here, or `None` when they can.
/// Checked once per process: effective uid 0 and a working `ip netns add`.
pub fn unprivileged_reason() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return Some("not running as root".to_string());
            }
            let probe = unique_name("probe");
            if let Err(e) = run_cmd(Command::new("ip").args(["netns", "add", &probe]), None) {
                return Some(format!("`ip netns add` does not work: {e:#}"));
            }
            let _ = run_cmd(Command::new("ip").args(["netns", "del", &probe]), None);
            None
        })
        .clone()
}

/// `true` when privileged tests can run. Otherwise panics when
/// `REQUIRE_PRIVILEGED=1` (CI must not skip silently), else prints
/// `skipped: <reason>` and returns `false`.
pub fn privileged() -> bool {
    let Some(reason) = unprivileged_reason() else {
        return true;
    };
    if std::env::var("REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("REQUIRE_PRIVILEGED=1 but privileged tests cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Returns from the calling test unless it can run privileged (see
/// [`privileged`]). `require_privileged!()` for `()` tests,
/// `require_privileged!(Ok(()))` for tests returning a `Result`.
#[macro_export]
macro_rules! require_privileged {
    () => {
        if !$crate::privileged() {
            return;
        }
    };
    ($ret:expr) => {
        if !$crate::privileged() {
            return $ret;
        }
    };
}
