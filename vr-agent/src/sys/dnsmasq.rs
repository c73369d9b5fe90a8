//! The one dnsmasq of the router: a foreground child of the agent, restarted
//! with backoff when it dies, reloaded with SIGHUP when only per-host files
//! change (leases stay in memory and in the lease file of the state dir).
//!
//! dnsmasq binds as root and then serves as an unprivileged user (`dnsmasq`,
//! which Debian's dnsmasq-base creates; `nobody` when the box has none; no
//! start at all when it has neither). What it opens after that, the files
//! re-read on SIGHUP and the lease file, belong to that user, mode 0600;
//! the main config, read as root, stays root's 0600, so a compromised
//! dnsmasq cannot rewrite what it runs with. Its dir is 0711 root: it opens
//! its files by name and creates none.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use async_trait::async_trait;
use common::net::{IfName, Mac};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use super::runner::{self, RunError};
use super::supervisor::{Supervised, kill_strays};
use crate::plan::dnsmasq::{Files, Paths, RunAs};

#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dnsmasq refused the new config: {0}")]
    Check(RunError),
    #[error("cannot start dnsmasq: {0}")]
    Start(std::io::Error),
    #[error("cannot signal dnsmasq (pid {pid}): {source}")]
    Signal { pid: u32, source: nix::Error },
    #[error("dhcp_release: {0}")]
    Release(RunError),
    #[error(
        "refusing to run dnsmasq as root: this box has neither of the users {} (install dnsmasq-base, which creates `dnsmasq`)",
        USERS.join(", ")
    )]
    NoUser,
}

/// The users dnsmasq may run as, best first.
pub const USERS: [&str; 2] = ["dnsmasq", "nobody"];

/// Who dnsmasq runs as: its name and group for the config, its ids for the
/// files it must read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub run_as: RunAs,
    pub uid: u32,
    pub gid: u32,
}

/// The first of [`USERS`] this box has, with its primary group.
pub fn identity() -> Option<Identity> {
    identity_among(&USERS)
}

fn identity_among(users: &[&str]) -> Option<Identity> {
    use nix::unistd::{Group, User};
    users.iter().find_map(|name| {
        let u = User::from_name(name).ok().flatten()?;
        let group = Group::from_gid(u.gid)
            .ok()
            .flatten()
            .map_or_else(|| u.gid.to_string(), |g| g.name);
        Some(Identity {
            run_as: RunAs {
                user: u.name,
                group,
            },
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
    })
}

#[async_trait]
pub trait Dnsmasq: Send + Sync {
    /// The directory the files are rendered for.
    fn paths(&self) -> &Paths;
    /// `dnsmasq --test` on a main config, before it is used.
    async fn check(&self, conf: &str) -> Result<(), DnsmasqError>;
    /// Writes every file atomically (temp file + rename), main config last.
    async fn write(&self, files: &Files) -> Result<(), DnsmasqError>;
    /// SIGHUP: re-read hosts, opts, addn-hosts and servers files. Starts
    /// dnsmasq if it is not running.
    async fn reload(&self) -> Result<(), DnsmasqError>;
    /// (Re)start with the main config on disk.
    async fn restart(&self) -> Result<(), DnsmasqError>;
    /// Stops dnsmasq (and its supervision) until the next restart.
    async fn stop(&self) -> Result<(), DnsmasqError>;
    /// Drops a lease at once: `dhcp_release <ifname> <ip> <mac>`.
    async fn release(&self, ifname: &IfName, ip: Ipv4Addr, mac: Mac) -> Result<(), DnsmasqError>;
    /// How often dnsmasq died and was restarted by supervision.
    /// Whether the running dnsmasq answers (true when none runs: an exit
    /// is supervision's business).
    async fn healthy(&self) -> bool {
        true
    }
    fn restarts(&self) -> u64 {
        0
    }
    /// The leases dnsmasq holds now: (guest MAC, IP).
    fn leases(&self) -> Vec<(Mac, Ipv4Addr)> {
        let text = super::blocking::run(|| std::fs::read_to_string(self.paths().leases()))
            .unwrap_or_default();
        crate::plan::dnsmasq::parse_leases(&text)
            .into_iter()
            .map(|(m, ip, _)| (m, ip))
            .collect()
    }
}

// ---------------------------------------------------------------- real

/// Supervises one `dnsmasq --keep-in-foreground --conf-file=<dir>/dnsmasq.conf`.
pub struct DnsmasqProcess {
    paths: Paths,
    /// None: no unprivileged user, so no start ([`DnsmasqError::NoUser`]).
    owner: Option<(u32, u32)>,
    binary: String,
    child: Supervised,
}

/// dnsmasq's dir: searchable (its files are opened by name), not listable.
const DIR_MODE: u32 = 0o711;
const FILE_MODE: u32 = 0o600;

impl DnsmasqProcess {
    /// Files live in `dir` (created if missing); nothing starts until
    /// [`Dnsmasq::restart`] or [`Dnsmasq::reload`].
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<DnsmasqProcess> {
        let mut paths = Paths::new(dir);
        std::fs::create_dir_all(&paths.dir)?;
        std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        let id = identity();
        match &id {
            Some(id) if id.run_as.user != USERS[0] => tracing::warn!(
                user = %id.run_as.user,
                "no user {}: dnsmasq runs as {}", USERS[0], id.run_as.user
            ),
            Some(_) => {}
            None => tracing::error!("{}", DnsmasqError::NoUser),
        }
        if let Some(id) = &id {
            paths.run_as = id.run_as.clone();
        }
        Ok(DnsmasqProcess {
            paths,
            owner: id.map(|i| (i.uid, i.gid)),
            binary: "dnsmasq".to_string(),
            child: Supervised::new("dnsmasq"),
        })
    }

    /// Who owns `path`: dnsmasq's user for what it opens after dropping
    /// root, root for the rest.
    fn owner_of(&self, path: &Path) -> Option<(u32, u32)> {
        let p = &self.paths;
        let dnsmasq_reads = [p.hosts(), p.addn_hosts(), p.servers(), p.leases()];
        if dnsmasq_reads.iter().any(|r| r == path) {
            self.owner
        } else {
            None
        }
    }

    /// The lease file, which dnsmasq rewrites in place as its user.
    fn prepare_leases(&self) -> Result<(), DnsmasqError> {
        let path = self.paths.leases();
        let err = |source| DnsmasqError::Write {
            path: path.clone(),
            source,
        };
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        secure(&path, self.owner_of(&path)).map_err(err)
    }

    /// Pid of the running dnsmasq, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// How often dnsmasq died and was restarted by the supervisor.
    pub fn restarts(&self) -> u64 {
        self.child.restarts()
    }
}

fn conf_arg(conf: &Path) -> String {
    format!("--conf-file={}", conf.display())
}

/// Mode 0600 and, when we may give files away (we are root), `owner`
/// (uid, gid) or root.
fn secure(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = owner.unwrap_or((0, 0));
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// Temp file + rename; owner and mode are set also when the contents are
/// already there (files an older agent wrote 0644 as root).
async fn write_atomic(
    path: &Path,
    contents: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), DnsmasqError> {
    let err = |source| DnsmasqError::Write {
        path: path.to_path_buf(),
        source,
    };
    if tokio::fs::read_to_string(path).await.ok().as_deref() == Some(contents) {
        return secure(path, owner).map_err(err);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = tokio::fs::remove_file(&tmp).await;
    tokio::fs::write(&tmp, contents).await.map_err(err)?;
    secure(&tmp, owner).map_err(err)?;
    tokio::fs::rename(&tmp, path).await.map_err(err)
}

#[async_trait]
impl Dnsmasq for DnsmasqProcess {
    fn paths(&self) -> &Paths {
        &self.paths
    }

    async fn check(&self, conf: &str) -> Result<(), DnsmasqError> {
        let path = self.paths.dir.join("dnsmasq.conf.check");
        write_atomic(&path, conf, None).await?;
        let arg = format!("--conf-file={}", path.display());
        let res = runner::run(&self.binary, &["--test", &arg], None).await;
        let _ = tokio::fs::remove_file(&path).await;
        res.map(drop).map_err(DnsmasqError::Check)
    }

    async fn write(&self, files: &Files) -> Result<(), DnsmasqError> {
        for (path, contents) in files.by_path(&self.paths) {
            write_atomic(&path, contents, self.owner_of(&path)).await?;
        }
        Ok(())
    }

    async fn reload(&self) -> Result<(), DnsmasqError> {
        match self.pid() {
            Some(pid) => kill(Pid::from_raw(pid as i32), Signal::SIGHUP)
                .map_err(|source| DnsmasqError::Signal { pid, source }),
            None => self.restart().await,
        }
    }

    async fn restart(&self) -> Result<(), DnsmasqError> {
        self.child.stop().await;
        if self.owner.is_none() {
            return Err(DnsmasqError::NoUser);
        }
        self.prepare_leases()?;
        // A dnsmasq left on our config by a killed agent holds the DHCP and DNS ports.
        let arg = conf_arg(&self.paths.conf());
        kill_strays("dnsmasq", |args| args.contains(&arg.as_bytes()));
        let (binary, arg) = (self.binary.clone(), arg.clone());
        self.child
            .start(move || {
                let mut cmd = Command::new(&binary);
                cmd.arg("--keep-in-foreground").arg(&arg);
                cmd
            })
            .await
            .map(drop)
            .map_err(DnsmasqError::Start)
    }

    async fn stop(&self) -> Result<(), DnsmasqError> {
        self.child.stop().await;
        Ok(())
    }

    fn restarts(&self) -> u64 {
        DnsmasqProcess::restarts(self)
    }

    /// A DNS query on loopback (dnsmasq always listens there): any answer,
    /// even NXDOMAIN, is alive; a hung or stopped dnsmasq answers none.
    async fn healthy(&self) -> bool {
        self.pid().is_none() || super::health::dns_answers("127.0.0.1:53".parse().unwrap()).await
    }

    async fn release(&self, ifname: &IfName, ip: Ipv4Addr, mac: Mac) -> Result<(), DnsmasqError> {
        let (ip, mac) = (ip.to_string(), mac.to_string());
        runner::run("dhcp_release", &[ifname.as_str(), &ip, &mac], None)
            .await
            .map(drop)
            .map_err(DnsmasqError::Release)
    }
}

// ---------------------------------------------------------------- fake

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Check(String),
    Write(Files),
    Reload,
    Restart,
    Stop,
    Release(IfName, Ipv4Addr, Mac),
}

#[cfg(any(test, feature = "fakes"))]
/// Records calls; `check` fails for a config containing `fail_check_on`.
pub struct FakeDnsmasq {
    paths: Paths,
    pub calls: Mutex<Vec<Call>>,
    pub fail_check_on: Mutex<Option<String>>,
}

#[cfg(any(test, feature = "fakes"))]
impl FakeDnsmasq {
    pub fn new() -> FakeDnsmasq {
        FakeDnsmasq {
            paths: Paths::new("/fake/dnsmasq"),
            calls: Mutex::default(),
            fail_check_on: Mutex::default(),
        }
    }
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Default for FakeDnsmasq {
    fn default() -> Self {
        FakeDnsmasq::new()
    }
}

#[cfg(any(test, feature = "fakes"))]
#[async_trait]
impl Dnsmasq for FakeDnsmasq {
    fn paths(&self) -> &Paths {
        &self.paths
    }
    async fn check(&self, conf: &str) -> Result<(), DnsmasqError> {
        self.record(Call::Check(conf.to_string()));
        match &*self.fail_check_on.lock().unwrap() {
            Some(s) if conf.contains(s.as_str()) => Err(DnsmasqError::Check(RunError::Failed {
                program: "dnsmasq".into(),
                status: "exit status: 1".into(),
                stderr: format!("bad option {s}"),
            })),
            _ => Ok(()),
        }
    }
    async fn write(&self, files: &Files) -> Result<(), DnsmasqError> {
        self.record(Call::Write(files.clone()));
        Ok(())
    }
    async fn reload(&self) -> Result<(), DnsmasqError> {
        self.record(Call::Reload);
        Ok(())
    }
    async fn restart(&self) -> Result<(), DnsmasqError> {
        self.record(Call::Restart);
        Ok(())
    }
    async fn stop(&self) -> Result<(), DnsmasqError> {
        self.record(Call::Stop);
        Ok(())
    }
    async fn release(&self, ifname: &IfName, ip: Ipv4Addr, mac: Mac) -> Result<(), DnsmasqError> {
        self.record(Call::Release(ifname.clone(), ip, mac));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_as_the_first_user_the_box_has_and_never_root() {
        let id = identity().expect("this box has dnsmasq or nobody");
        assert_ne!(id.uid, 0);
        assert_ne!(id.gid, 0);
        let nobody = identity_among(&["no-such-user-vr", "nobody"]).unwrap();
        assert_eq!(nobody.run_as.user, "nobody");
        assert_eq!(identity_among(&["no-such-user-vr"]), None);
    }

    /// The files dnsmasq opens after dropping root are its own, the main
    /// config root's; all 0600 in a 0711 dir.
    #[tokio::test]
    async fn files_dnsmasq_rereads_belong_to_its_user() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("vr-dnsmasq-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = DnsmasqProcess::new(&dir).unwrap();
        // An older agent's world-readable hosts file with the same contents.
        std::fs::write(d.paths.hosts(), "h").unwrap();
        std::fs::set_permissions(d.paths.hosts(), std::fs::Permissions::from_mode(0o644)).unwrap();
        d.write(&Files::conf_and_hosts("c", "h")).await.unwrap();
        d.prepare_leases().unwrap();
        let meta = |p: PathBuf| std::fs::metadata(p).unwrap();
        assert_eq!(meta(dir.clone()).mode() & 0o7777, DIR_MODE);
        let (uid, _) = d.owner.unwrap();
        let p = &d.paths;
        for (path, owner) in [
            (p.conf(), 0),
            (p.hosts(), uid),
            (p.addn_hosts(), uid),
            (p.servers(), uid),
            (p.leases(), uid),
        ] {
            let m = meta(path.clone());
            assert_eq!(m.mode() & 0o7777, FILE_MODE, "{}", path.display());
            if nix::unistd::geteuid().is_root() {
                assert_eq!(m.uid(), owner, "{}", path.display());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
