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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::Command;

use super::supervisor::{Supervised, kill_strays};

use super::runner::{self, RunError};
use crate::plan::haproxy::{Files, Host, NOBODY, Paths, RunAs, USERS};

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

/// Every file the agent writes for haproxy, certificates included.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Temp file + rename; the mode is set also on a file that already has the
/// contents (written 0644 by an older agent).
async fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), HaproxyError> {
    let err = |source| HaproxyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if tokio::fs::read(path).await.ok().as_deref() == Some(contents) {
        return set_mode(path, mode).map_err(err);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let data = contents.to_vec();
    let t = tmp.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&t)?;
        // A temp file left by a crash keeps its old mode on open.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(&data)?;
        f.sync_all()
    })
    .await
    .map_err(|e| err(std::io::Error::other(e)))?
    .map_err(err)?;
    tokio::fs::rename(&tmp, path).await.map_err(err)
}

/// The check's certificate directory: exactly the live PEMs, with
/// `new_certs` written over them.
async fn stage_certs(
    live: &Path,
    staged: &Path,
    new_certs: &BTreeMap<String, String>,
) -> Result<(), HaproxyError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HaproxyError::Write { path, source }
    };
    let pems = |dir: PathBuf| async move {
        let mut out = vec![];
        if let Ok(mut d) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(e)) = d.next_entry().await {
                if e.path().extension().is_some_and(|x| x == "pem") {
                    out.push(e.path());
                }
            }
        }
        out
    };
    for p in pems(staged.to_path_buf()).await {
        tokio::fs::remove_file(&p).await.map_err(werr(&p))?;
    }
    for p in pems(live.to_path_buf()).await {
        let to = staged.join(p.file_name().unwrap_or_default());
        let body = tokio::fs::read(&p).await.map_err(werr(&p))?;
        write_atomic(&to, &body, FILE_MODE).await?;
    }
    for (uuid, pem) in new_certs {
        let to = staged.join(format!("{uuid}.pem"));
        write_atomic(&to, pem.as_bytes(), FILE_MODE).await?;
    }
    Ok(())
}

async fn write_files(paths: &Paths, files: &Files) -> Result<(), HaproxyError> {
    let acl_dir = paths.acl_dir();
    tokio::fs::create_dir_all(&acl_dir)
        .await
        .map_err(|source| HaproxyError::Write {
            path: acl_dir.clone(),
            source,
        })?;
    for (uuid, text) in &files.acls {
        write_atomic(&paths.acl(uuid), text.as_bytes(), FILE_MODE).await?;
    }
    write_atomic(&paths.conf(), files.conf.as_bytes(), FILE_MODE).await?;
    if let Ok(mut dir) = tokio::fs::read_dir(&acl_dir).await {
        while let Ok(Some(e)) = dir.next_entry().await {
            let name = e.file_name();
            let uuid = name.to_str().and_then(|n| n.strip_suffix(".txt"));
            if uuid.is_none_or(|u| !files.acls.contains_key(u)) {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
    Ok(())
}

/// One runtime API command over a unix socket (one command per
/// connection: the answer ends when haproxy closes it).
pub async fn api(path: &Path, cmd: &str) -> Result<String, HaproxyError> {
    let err = |reason: String| HaproxyError::Api {
        path: path.to_path_buf(),
        reason,
    };
    let io = async {
        let mut s = UnixStream::connect(path).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        // The master CLI answers only once our side is closed.
        s.shutdown().await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(Duration::from_secs(5), io).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(err(format!("{cmd}: {e}"))),
        Err(_) => Err(err(format!("{cmd}: no answer within 5 s"))),
    }
}

/// What `show proc` on the master CLI says: the master's reload and failed
/// reload counts and the current workers' pids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Procs {
    pub reloads: u64,
    pub failed: u64,
    pub workers: Vec<u32>,
}

pub fn parse_show_proc(text: &str) -> Procs {
    let mut p = Procs::default();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("# ") {
            section = s;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.get(1).copied() {
            Some("master") => {
                p.reloads = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
                if let Some(i) = line.find("failed:") {
                    p.failed = line[i + 7..]
                        .trim()
                        .trim_end_matches(|c: char| !c.is_ascii_digit())
                        .split(']')
                        .next()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                }
            }
            Some("worker") if section == "workers" => {
                if let Ok(pid) = f[0].parse() {
                    p.workers.push(pid);
                }
            }
            _ => {}
        }
    }
    p
}

/// What one `show stat` line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    Listener,
    Backend,
    Server,
}

/// One line of `show stat` that belongs to a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub kind: StatKind,
    pub listener: String,
    /// haproxy's proxy name (the backend's, for backends and servers).
    pub proxy: String,
    /// Server name (`s-<ip>`), empty for listeners and backends.
    pub server: String,
    pub up: bool,
    pub sessions_current: u64,
    pub sessions_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The rows of `show stat` CSV that belong to `listeners` (uuids; haproxy
/// proxy names are the uuid or start with `<uuid>-`).
pub fn stat_rows(csv: &str, listeners: &[&str]) -> Vec<StatRow> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return vec![];
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(scur), Some(stot), Some(bin), Some(bout), Some(status)) = (
        col("pxname"),
        col("svname"),
        col("scur"),
        col("stot"),
        col("bin"),
        col("bout"),
        col("status"),
    ) else {
        return vec![];
    };
    let mut out = vec![];
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() <= status {
            continue;
        }
        let name = f[px];
        let Some(listener) = listeners
            .iter()
            .find(|l| name == **l || name.strip_prefix(**l).is_some_and(|r| r.starts_with('-')))
        else {
            continue;
        };
        let num = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        let (kind, server) = match f[sv] {
            "FRONTEND" => (StatKind::Listener, ""),
            "BACKEND" => (StatKind::Backend, ""),
            server => (StatKind::Server, server),
        };
        out.push(StatRow {
            kind,
            listener: listener.to_string(),
            proxy: name.to_string(),
            server: server.to_string(),
            up: f[status].starts_with("UP") || f[status] == "OPEN",
            sessions_current: num(scur),
            sessions_total: num(stot),
            bytes_in: num(bin),
            bytes_out: num(bout),
        });
    }
    out
}

// ---------------------------------------------------------------- real

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
            match tokio::time::timeout(super::health::TIMEOUT, probe).await {
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

// ---------------------------------------------------------------- fake

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Check(String),
    Write(Files),
    Reload,
    Stop,
    Cert(String),
    RemoveCertsExcept(BTreeSet<String>),
}

/// Records calls; `check` fails for a config containing `fail_check_on`.
pub struct FakeHaproxy {
    paths: Paths,
    check: Paths,
    pub calls: Mutex<Vec<Call>>,
    pub fail_check_on: Mutex<Option<String>>,
    pub stat_csv: Mutex<Option<String>>,
}

impl FakeHaproxy {
    pub fn new() -> FakeHaproxy {
        FakeHaproxy {
            paths: Paths::new("/fake/haproxy", "/fake/certificates"),
            check: Paths::new("/fake/haproxy/check", "/fake/certificates"),
            calls: Mutex::default(),
            fail_check_on: Mutex::default(),
            stat_csv: Mutex::default(),
        }
    }
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Default for FakeHaproxy {
    fn default() -> Self {
        FakeHaproxy::new()
    }
}

#[async_trait]
impl Haproxy for FakeHaproxy {
    fn paths(&self) -> &Paths {
        &self.paths
    }
    fn check_paths(&self) -> &Paths {
        &self.check
    }
    async fn check(
        &self,
        files: &Files,
        _new_certs: &BTreeMap<String, String>,
    ) -> Result<(), HaproxyError> {
        self.record(Call::Check(files.conf.clone()));
        match &*self.fail_check_on.lock().unwrap() {
            Some(s) if files.conf.contains(s.as_str()) => {
                Err(HaproxyError::Check(RunError::Failed {
                    program: "haproxy".into(),
                    status: "exit status: 1".into(),
                    stderr: format!("[ALERT] bad config near {s}"),
                }))
            }
            _ => Ok(()),
        }
    }
    async fn write(&self, files: &Files) -> Result<(), HaproxyError> {
        self.record(Call::Write(files.clone()));
        Ok(())
    }
    async fn reload(&self) -> Result<(), HaproxyError> {
        self.record(Call::Reload);
        Ok(())
    }
    async fn stop(&self) -> Result<(), HaproxyError> {
        self.record(Call::Stop);
        Ok(())
    }
    async fn write_cert(&self, uuid: &str, _pem: &str) -> Result<(), HaproxyError> {
        self.record(Call::Cert(uuid.to_string()));
        Ok(())
    }
    async fn remove_certs_except(&self, keep: &BTreeSet<String>) -> Result<usize, HaproxyError> {
        self.record(Call::RemoveCertsExcept(keep.clone()));
        Ok(0)
    }
    async fn stats(&self) -> Result<Option<String>, HaproxyError> {
        Ok(self.stat_csv.lock().unwrap().clone())
    }
}

// ---------------------------------------------------------------- the box

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
