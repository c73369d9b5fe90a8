//! [`Proc`]: a background process guard with its output logged.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

use crate::tempdir::TempDir;

/// A background process, killed with its whole process group on Drop.
/// Stdout and stderr go to one log file, readable with [`Proc::log`].
#[derive(Debug)]
pub struct Proc {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Proc {
    /// Starts `cmd` (from [`Netns::command`](crate::Netns::command) or a
    /// plain `Command` for the root namespace) in its own process group with
    /// output logged.
    pub fn start(mut cmd: Command) -> Result<Proc> {
        let dir = TempDir::new("proc")?;
        let log = dir.path().join("output.log");
        let file = File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Proc {
            child,
            log,
            _dir: dir,
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `true` while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process group and reaps the process.
    pub fn kill(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
