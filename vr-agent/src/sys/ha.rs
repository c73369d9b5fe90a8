//! keepalived and conntrackd for the HA pair (issue 17), each kept running
//! in the foreground by a [`Supervised`] like dnsmasq and haproxy, and the
//! FIFO keepalived reports its transitions on. Their files live in one
//! directory the agent owns (`<state-dir>/ha`, 0700).

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::supervisor::{Supervised, kill_strays};

#[derive(Debug, thiserror::Error)]
pub enum HaSysError {
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {name}: {source}")]
    Start {
        name: &'static str,
        source: std::io::Error,
    },
}

/// The paths of the HA files.
#[derive(Debug, Clone)]
pub struct HaPaths {
    pub dir: PathBuf,
}

impl HaPaths {
    pub fn keepalived_conf(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }
    pub fn conntrackd_conf(&self) -> PathBuf {
        self.dir.join("conntrackd.conf")
    }
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("keepalived.fifo")
    }
    pub fn conntrackd_socket(&self) -> PathBuf {
        self.dir.join("conntrackd.ctl")
    }
    pub fn conntrackd_lock(&self) -> PathBuf {
        self.dir.join("conntrackd.lock")
    }
    /// The last `/enableVyosha` body, to start again after a restart.
    pub fn enabled(&self) -> PathBuf {
        self.dir.join("enable.json")
    }
    fn pid(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}.pid"))
    }
}

pub struct HaDaemons {
    pub paths: HaPaths,
    keepalived: Supervised,
    conntrackd: Supervised,
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> HaSysError + '_ {
    move |source| HaSysError::File {
        path: path.to_path_buf(),
        source,
    }
}

impl HaDaemons {
    pub fn new(dir: PathBuf) -> Result<HaDaemons, HaSysError> {
        std::fs::create_dir_all(&dir).map_err(file_err(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(file_err(&dir))?;
        Ok(HaDaemons {
            paths: HaPaths { dir },
            keepalived: Supervised::new("keepalived"),
            conntrackd: Supervised::new("conntrackd"),
        })
    }

    /// Write a config whole (fsync, rename): a crash leaves the old one.
    pub fn write(&self, path: &Path, text: &str) -> Result<(), HaSysError> {
        common::files::write_private(path, text.as_bytes()).map_err(file_err(path))
    }

    /// Make the FIFO (again if something else sits at its path).
    pub fn make_fifo(&self) -> Result<PathBuf, HaSysError> {
        let path = self.paths.fifo();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()) => return Ok(path),
            Ok(_) => std::fs::remove_file(&path).map_err(file_err(&path))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(&path)(e)),
        }
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| file_err(&path)(e.into()))?;
        Ok(path)
    }

    /// Every line keepalived writes to the FIFO, in order. Opened for
    /// reading and writing so a keepalived restart (the writer closing) is
    /// no end of file.
    pub fn fifo_lines(&self) -> Result<tokio::sync::mpsc::Receiver<String>, HaSysError> {
        let path = self.make_fifo()?;
        let rx = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path)
            .map_err(file_err(&path))?;
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut lines = BufReader::new(rx).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        });
        Ok(out)
    }

    /// (Re)start keepalived on its config: VRRP only, in the foreground.
    pub async fn start_keepalived(&self) -> Result<(), HaSysError> {
        let conf = self.paths.keepalived_conf();
        let conf_s = conf.display().to_string();
        // One left by a killed agent would fight the new one for the role.
        kill_strays("keepalived", |a| a.contains(&conf_s.as_bytes()));
        let (p1, p2) = (self.paths.pid("keepalived"), self.paths.pid("vrrp"));
        for p in [&p1, &p2] {
            let _ = std::fs::remove_file(p);
        }
        self.keepalived
            .start(move || {
                let mut c = Command::new("keepalived");
                c.args(["--dont-fork", "--log-console", "--vrrp", "-f"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(&p1)
                    .arg("-r")
                    .arg(&p2);
                c
            })
            .await
            .map(drop)
            .map_err(|source| HaSysError::Start {
                name: "keepalived",
                source,
            })
    }

    /// (Re)start conntrackd (FTFW sync) on its config, in the foreground.
    pub async fn start_conntrackd(&self) -> Result<(), HaSysError> {
        if !protocols_resolve() {
            // Found in the VR image (no netbase): conntrackd only warns,
            // syncs nothing, and every session through SNAT is lost on
            // failover.
            tracing::error!(
                "/etc/protocols does not name tcp, udp and icmp (package netbase): conntrackd cannot sync sessions, a failover will reset them"
            );
        }
        let conf = self.paths.conntrackd_conf();
        let conf_s = conf.display().to_string();
        kill_strays("conntrackd", |a| a.contains(&conf_s.as_bytes()));
        // conntrackd refuses to start while its lock file exists, and a
        // killed one leaves it behind.
        let lock = self.paths.conntrackd_lock();
        let socket = self.paths.conntrackd_socket();
        self.conntrackd
            .start(move || {
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&socket);
                let mut c = Command::new("conntrackd");
                c.arg("-C").arg(&conf);
                c
            })
            .await
            .map(drop)
            .map_err(|source| HaSysError::Start {
                name: "conntrackd",
                source,
            })
    }

    /// A changed config into the running keepalived: SIGHUP keeps the
    /// instance's state (no election, no flap).
    pub fn reload_keepalived(&self) {
        if let Some(pid) = self.keepalived.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
    }

    pub async fn stop(&self) {
        self.keepalived.stop().await;
        self.conntrackd.stop().await;
    }

    /// Changes whenever keepalived dies on its own.
    pub fn keepalived_exits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.keepalived.exits()
    }

    pub fn keepalived_pid(&self) -> Option<u32> {
        self.keepalived.pid()
    }

    pub fn restarts(&self) -> (u64, u64) {
        (self.keepalived.restarts(), self.conntrackd.restarts())
    }
}

/// Whether conntrackd's `Protocol Accept { TCP UDP ICMP }` can resolve:
/// it looks the names up in /etc/protocols.
fn protocols_resolve() -> bool {
    let text = std::fs::read_to_string("/etc/protocols").unwrap_or_default();
    ["tcp", "udp", "icmp"]
        .iter()
        .all(|p| text.lines().any(|l| l.split_whitespace().next() == Some(p)))
}
