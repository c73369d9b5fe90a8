//! `HaproxyProcess`: the real haproxy, a supervised master-worker child.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use super::files::{DIR_MODE, FILE_MODE, set_mode, stage_certs, write_atomic, write_files};
use super::runtime_api::{Procs, api, parse_show_proc};
use super::{Haproxy, HaproxyError};
use crate::plan::haproxy::{Files, Paths};
use crate::sys::health;
use crate::sys::runner;
use crate::sys::supervisor::{Supervised, kill_strays};

const READY: Duration = Duration::from_secs(15);

/// Supervises one `haproxy -W -db -f <dir>/haproxy.cfg`.
pub struct HaproxyProcess {
    paths: Paths,
    check: Paths,
    binary: String,
    child: Supervised,
    /// Serialises starts and reloads.
    op: tokio::sync::Mutex<()>,
}

impl HaproxyProcess {
    /// Files in `dir`, certificates in `certs` (both created if missing).
    pub fn new(dir: impl Into<PathBuf>, certs: impl Into<PathBuf>) -> std::io::Result<Self> {
        let (dir, certs) = (dir.into(), certs.into());
        let paths = Paths::new(&dir, &certs);
        let check = Paths::new(dir.join("check"), dir.join("check").join("certs"));
        std::fs::create_dir_all(paths.acl_dir())?;
        std::fs::create_dir_all(check.acl_dir())?;
        std::fs::create_dir_all(&check.certs)?;
        std::fs::create_dir_all(&certs)?;
        for d in [
            &dir,
            &paths.acl_dir(),
            &check.dir,
            &check.acl_dir(),
            &check.certs,
            &certs,
        ] {
            set_mode(d, DIR_MODE)?;
            // What an older agent left readable (server state, PEMs, ACLs).
            for e in std::fs::read_dir(d)?.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    set_mode(&e.path(), FILE_MODE)?;
                }
            }
        }
        Ok(HaproxyProcess {
            paths,
            check,
            binary: "haproxy".to_string(),
            child: Supervised::new("haproxy"),
            op: tokio::sync::Mutex::new(()),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    async fn procs(&self) -> Result<Procs, HaproxyError> {
        api(&self.paths.master_sock(), "show proc")
            .await
            .map(|t| parse_show_proc(&t))
    }

    /// Waits until a worker not in `old` answers and the master counted
    /// more than `reloads` reloads (start: `old` empty, `reloads` 0).
    async fn wait_ready(
        &self,
        old: &[u32],
        reloads: Option<(u64, u64)>,
    ) -> Result<(), HaproxyError> {
        let t = Instant::now();
        let mut last = String::new();
        while t.elapsed() < READY {
            if self.pid().is_none() {
                return Err(HaproxyError::NotReady("haproxy exited".into()));
            }
            match self.procs().await {
                Ok(p) => {
                    if let Some((r, f)) = reloads {
                        if p.failed > f {
                            return Err(HaproxyError::NotReady(
                                "the master could not load the new config (see the haproxy log)"
                                    .into(),
                            ));
                        }
                        if p.reloads <= r {
                            last = format!("reload count still {}", p.reloads);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    }
                    if let Some(w) = p.workers.iter().find(|w| !old.contains(w)) {
                        let probe =
                            api(&self.paths.master_sock(), &format!("@!{w} show info")).await;
                        match probe {
                            Ok(s) if s.contains("Pid:") => return Ok(()),
                            Ok(s) => last = format!("worker {w}: {}", s.trim()),
                            Err(e) => last = e.to_string(),
                        }
                    } else {
                        last = "no new worker yet".into();
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(HaproxyError::NotReady(last))
    }

    /// (Re)start haproxy; the caller holds `op`.
    async fn start(&self) -> Result<(), HaproxyError> {
        self.child.stop().await;
        kill_strays_on(&self.paths.conf());
        let _ = std::fs::remove_file(self.paths.master_sock());
        let (binary, paths) = (self.binary.clone(), self.paths.clone());
        self.child
            .start(move || {
                kill_strays_on(&paths.conf());
                command(&binary, &paths)
            })
            .await
            .map_err(HaproxyError::Start)?;
        self.wait_ready(&[], None).await?;
        // The master writes its pid file 0644.
        if let Err(e) = set_mode(&self.paths.pid(), FILE_MODE) {
            tracing::warn!(error = %e, "cannot make haproxy's pid file private");
        }
        Ok(())
    }
}

fn command(binary: &str, paths: &Paths) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("-W")
        .arg("-db")
        .arg("-f")
        .arg(paths.conf())
        .arg("-p")
        .arg(paths.pid())
        .arg("-S")
        .arg(format!("{},mode,600", paths.master_sock().display()));
    cmd
}

/// A haproxy (master or worker) left on our config by an agent that was
/// killed holds the listeners' ports; end it first.
fn kill_strays_on(conf: &Path) {
    let arg = conf.as_os_str().as_encoded_bytes();
    kill_strays("haproxy", |args| {
        args.windows(2).any(|w| w[0] == b"-f" && w[1] == arg)
            && args.first().is_some_and(|a| a.ends_with(b"haproxy"))
    });
}

#[async_trait]
impl Haproxy for HaproxyProcess {
    fn paths(&self) -> &Paths {
        &self.paths
    }

    fn check_paths(&self) -> &Paths {
        &self.check
    }

    async fn check(
        &self,
        files: &Files,
        new_certs: &BTreeMap<String, String>,
    ) -> Result<(), HaproxyError> {
        stage_certs(&self.paths.certs, &self.check.certs, new_certs).await?;
        write_files(&self.check, files).await?;
        let conf = self.check.conf();
        runner::run(
            &self.binary,
            &["-c", "-q", "-f", conf.to_str().unwrap_or("")],
            None,
        )
        .await
        .map(drop)
        .map_err(HaproxyError::Check)
    }

    async fn write(&self, files: &Files) -> Result<(), HaproxyError> {
        write_files(&self.paths, files).await
    }

    async fn reload(&self) -> Result<(), HaproxyError> {
        let _op = self.op.lock().await;
        let (Some(pid), Ok(procs)) = (self.pid(), self.procs().await) else {
            return self.start().await;
        };
        // Keep health and weights across the reload.
        match api(&self.paths.stats_sock(), "show servers state").await {
            Ok(state) => {
                write_atomic(&self.paths.server_state(), state.as_bytes(), FILE_MODE).await?
            }
            Err(e) => tracing::warn!(error = %e, "cannot save server state before reload"),
        }
        kill(Pid::from_raw(pid as i32), Signal::SIGUSR2)
            .map_err(|source| HaproxyError::Signal { pid, source })?;
        self.wait_ready(&procs.workers, Some((procs.reloads, procs.failed)))
            .await
    }

    async fn stop(&self) -> Result<(), HaproxyError> {
        let _op = self.op.lock().await;
        self.child.stop().await;
        Ok(())
    }

    async fn write_cert(&self, uuid: &str, pem: &str) -> Result<(), HaproxyError> {
        write_atomic(&self.paths.cert(uuid), pem.as_bytes(), FILE_MODE).await
    }

    async fn remove_certs_except(&self, keep: &BTreeSet<String>) -> Result<usize, HaproxyError> {
        let mut n = 0;
        let Ok(mut dir) = tokio::fs::read_dir(&self.paths.certs).await else {
            return Ok(0);
        };
        while let Ok(Some(e)) = dir.next_entry().await {
            let path = e.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if path.extension().is_some_and(|x| x == "pem") && !keep.contains(stem) {
                tokio::fs::remove_file(&path)
                    .await
                    .map_err(|source| HaproxyError::Write {
                        path: path.clone(),
                        source,
                    })?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn stats(&self) -> Result<Option<String>, HaproxyError> {
        if self.pid().is_none() {
            return Ok(None);
        }
        api(&self.paths.stats_sock(), "show stat").await.map(Some)
    }

    async fn healthy(&self) -> bool {
        if self.pid().is_none() {
            return true;
        }
        // Both halves: a stopped master still lets its worker serve but can
        // no longer reload; a stopped worker leaves the master answering
        // while the kernel queues every connection to the listeners unserved.
        // The worker is asked on the stats socket, which it serves itself.
        let answers = |sock: PathBuf, cmd: &'static str, want: &'static str| async move {
            let probe = api(&sock, cmd);
            match tokio::time::timeout(health::TIMEOUT, probe).await {
                Ok(Ok(s)) => s.contains(want),
                _ => false,
            }
        };
        let (master, worker) = tokio::join!(
            answers(self.paths.master_sock(), "show proc", "master"),
            answers(self.paths.stats_sock(), "show info", "Pid:"),
        );
        if !master || !worker {
            tracing::warn!(master, worker, "haproxy probe: no answer");
        }
        master && worker
    }

    fn restarts(&self) -> u64 {
        self.child.restarts()
    }
}
