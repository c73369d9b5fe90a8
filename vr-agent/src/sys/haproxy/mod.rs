//! The one haproxy of the router, in master-worker mode: `haproxy -W -db -f
//! <cfg> -p <pid> -S <master socket>`, a foreground child of the agent,
//! restarted with backoff when it dies (like dnsmasq; P11: zvr needed a pid
//! monitor for the same reason).
//!
//! A reload is hitless: the server state is saved (`show servers state` into
//! the `server-state-file`), SIGUSR2 makes the master re-read the config and
//! fork a new worker, which takes the listening sockets from the old one
//! (`expose-fd listeners`) and loads the saved state; the old worker
//! finishes its connections and exits. `reload` returns once the new worker
//! answers on the master CLI, so traffic right after a refresh sees the new
//! config. Configs are checked with `haproxy -c` (rendered for a separate
//! check directory) before the live files are touched.
//!
//! The master stays root (it binds, reads the config, ACL files, server
//! state and certificates, and re-executes itself on SIGUSR2); the workers
//! it forks drop to haproxy's user (`uid`/`gid` in the config, see
//! `plan::haproxy::RunAs`) and open no file. So every file here is root's,
//! 0600, in 0700 dirs; the unix sockets are 0600 too.

#[cfg(any(test, feature = "fakes"))]
mod fake;
mod files;
mod host;
mod process;
mod runtime_api;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use async_trait::async_trait;

use super::runner::RunError;
use crate::plan::haproxy::{Files, Paths};

#[cfg(any(test, feature = "fakes"))]
pub use fake::{Call, FakeHaproxy};
pub use host::{host, run_as};
pub use process::HaproxyProcess;
pub use runtime_api::{Procs, StatKind, StatRow, api, parse_show_proc, stat_rows};

#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("haproxy refused the new config: {0}")]
    Check(RunError),
    #[error("cannot start haproxy: {0}")]
    Start(std::io::Error),
    #[error("haproxy did not come up: {0}")]
    NotReady(String),
    #[error("cannot signal haproxy (pid {pid}): {source}")]
    Signal { pid: u32, source: nix::Error },
    #[error("haproxy runtime API ({path}): {reason}")]
    Api { path: PathBuf, reason: String },
}

#[async_trait]
pub trait Haproxy: Send + Sync {
    /// Where the live files are.
    fn paths(&self) -> &Paths;
    /// Where a candidate config is rendered for [`Haproxy::check`].
    fn check_paths(&self) -> &Paths;
    /// `haproxy -c` on files rendered for [`Haproxy::check_paths`], with
    /// the live certificates, `new_certs` (uuid -> PEM) replacing or added
    /// to them, staged apart: nothing live is touched.
    async fn check(
        &self,
        files: &Files,
        new_certs: &BTreeMap<String, String>,
    ) -> Result<(), HaproxyError>;
    /// Writes the live files atomically (ACL files first, config last) and
    /// removes ACL files no listener uses.
    async fn write(&self, files: &Files) -> Result<(), HaproxyError>;
    /// Hitless reload of the config on disk; starts haproxy if it is not
    /// running. Returns when the new worker serves.
    async fn reload(&self) -> Result<(), HaproxyError>;
    /// Stops haproxy (and its supervision).
    async fn stop(&self) -> Result<(), HaproxyError>;
    /// Stores an uploaded PEM bundle (mode 0600).
    async fn write_cert(&self, uuid: &str, pem: &str) -> Result<(), HaproxyError>;
    /// Deletes certificate files not in `keep`; returns how many.
    async fn remove_certs_except(&self, keep: &BTreeSet<String>) -> Result<usize, HaproxyError>;
    /// `show stat` (CSV) of the running worker; None when not running.
    async fn stats(&self) -> Result<Option<String>, HaproxyError>;
    /// How often haproxy died and was restarted by supervision.
    fn restarts(&self) -> u64 {
        0
    }
    /// Whether the running master answers on its socket and its worker on
    /// the stats socket (true when none runs: an exit is supervision's
    /// business).
    async fn healthy(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn workers_drop_to_an_unprivileged_user() {
        let r = run_as();
        assert_ne!(r.uid, 0);
        assert_ne!(r.gid, 0);
        assert_eq!(host().run_as, r);
        assert!(host().fd_limit > 0);
    }

    use super::*;

    #[test]
    fn stat_lines_become_rows_of_their_listener() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
web,FRONTEND,,,2,5,100,42,1000,2000,0,0,0,,,,,OPEN,\n\
web,s-192.168.100.11,0,0,1,3,,20,500,900,,0,,0,0,0,0,UP,1\n\
web-g1,s-192.168.100.12,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
web,BACKEND,0,0,1,3,,20,500,900,0,0,,0,0,0,0,UP,3\n\
stats,FRONTEND,,,0,0,0,0,0,0,0,0,0,,,,,OPEN,\n";
        let rows = stat_rows(csv, &["web"]);
        let kinds: Vec<_> = rows
            .iter()
            .map(|r| (r.kind, r.proxy.as_str(), r.up))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (StatKind::Listener, "web", true),
                (StatKind::Server, "web", true),
                (StatKind::Server, "web-g1", false),
                (StatKind::Backend, "web", true),
            ]
        );
        assert_eq!(rows[0].sessions_total, 42);
        assert_eq!(rows[1].server, "s-192.168.100.11");
        assert_eq!((rows[1].bytes_in, rows[1].bytes_out), (500, 900));
        assert!(rows.iter().all(|r| r.listener == "web"));
    }

    #[test]
    fn show_proc_is_parsed() {
        let text = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
10921           master          3 [failed: 1]   0d00h00m04s     2.6.12-1+deb12u4\n\
# workers\n\
11134           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n\
# old workers\n\
10926           worker          1               0d00h00m01s     2.6.12-1+deb12u4\n\
# programs\n\n";
        assert_eq!(
            parse_show_proc(text),
            Procs {
                reloads: 3,
                failed: 1,
                workers: vec![11134]
            }
        );
    }
}
