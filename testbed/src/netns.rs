//! [`Netns`]: a network namespace guard, and running commands and Rust
//! code inside it.

use std::fs::File;
use std::process::{Command, Output};

use anyhow::{Context, Result};

use crate::command::run_cmd;
use crate::names::unique_name;
use crate::process::Proc;

/// A network namespace (`ip netns add`), deleted on Drop together with any
/// process still running in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a uniquely named namespace with `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        let name = unique_name(tag);
        run_cmd(Command::new("ip").args(["netns", "add", &name]), None)?;
        let ns = Netns { name };
        ns.ip("link set lo up")?;
        Ok(ns)
    }

    /// The name as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `prog args` inside the namespace
    /// (`ip netns exec`); add env/cwd, then `output()` or [`Proc::start`].
    pub fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, prog]).args(args);
        cmd
    }

    /// Runs `prog args` inside the namespace; non-zero exit is an error
    /// with the stderr text.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<Output> {
        run_cmd(&mut self.command(prog, args), None)
    }

    /// Runs `sh -c script` inside the namespace and returns its stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec("sh", &["-c", script])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `ip -n <ns> <words>`, e.g. `ns.ip("link set eth0 up")`; the
    /// words are split on whitespace (iproute2 enters the namespace itself).
    pub fn ip(&self, words: &str) -> Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(words.split_whitespace());
        run_cmd(&mut cmd, None)
    }

    /// Starts `prog args` in the background inside the namespace.
    pub fn spawn(&self, prog: &str, args: &[&str]) -> Result<Proc> {
        Proc::start(self.command(prog, args))
    }

    /// Writes a sysctl of this namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))
            .with_context(|| format!("sysctl {key}={value} in {}", self.name))
    }

    /// Runs `f` on a fresh thread that first joins this namespace and returns
    /// its result, so Rust code can open sockets inside the namespace.
    /// Sockets keep their namespace afterwards and may be used from any thread.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        run_in(&self.name, f)
    }
}

/// [`Netns::run`] for a namespace this process does not own (the lab's,
/// found by name): `f` on a fresh thread inside `/run/netns/<name>`.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(name: &str, f: F) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill leftovers (e.g. agents a test forgot), else they would keep
        // the namespace's links and sockets alive after the name is gone.
        if let Ok(out) = run_cmd(Command::new("ip").args(["netns", "pids", &self.name]), None) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                }
            }
        }
        if let Err(e) = run_cmd(Command::new("ip").args(["netns", "del", &self.name]), None) {
            eprintln!("testbed: cannot delete netns {}: {e:#}", self.name);
        }
    }
}
