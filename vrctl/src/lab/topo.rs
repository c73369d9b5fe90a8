//! The lab's plumbing: namespaces, veth pairs, long-lived processes that
//! outlive `vrctl lab up` (they are found again by namespace), the private
//! libvirtd, and removal of all of it.
//!
//! Every process the lab starts runs in one of the lab's namespaces, so
//! `ip netns pids` finds them all for `down`; every mount it makes is in a
//! mount namespace of `ip netns exec`, which disappears with its processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum TopoError {
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Libvirt(#[from] testbed::libvirt::LibvirtError),
}

type Result<T> = std::result::Result<T, TopoError>;

/// Runs a shell script (as root); its stdout, or an error with its stderr.
pub fn sh(script: &str) -> Result<String> {
    let out = Command::new("bash")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TopoError::Command {
            cmd: script.into(),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(TopoError::Command {
            cmd: script.lines().next().unwrap_or("").trim().into(),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A shell script inside namespace `ns`.
pub fn nsh(ns: &str, script: &str) -> Result<String> {
    sh(&format!(
        "ip netns exec {ns} bash -c {}",
        shell_quote(script)
    ))
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Starts a process in `ns` that outlives vrctl: own session, no terminal,
/// output appended to `log`.
pub fn spawn(ns: &str, prog: &str, args: &[&str], log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| TopoError::Failed(format!("{}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| TopoError::Failed(e.to_string()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns, prog])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| TopoError::Command {
            cmd: format!("{prog} in {ns}"),
            msg: e.to_string(),
        })?;
    Ok(child.id())
}

/// The lab's namespaces (`<name>-*`) that exist now.
pub fn namespaces(name: &str) -> Vec<String> {
    sh("ip netns list")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{name}-")))
        .map(str::to_string)
        .collect()
}

/// SIGKILLs every process in namespace `ns` until none is left (a process
/// may fork while the first are killed); how many the first pass found.
pub fn kill_in(ns: &str) -> usize {
    let mut first = None;
    for _ in 0..10 {
        let pids = sh(&format!("ip netns pids {ns}")).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        first.get_or_insert(pids.len());
        if pids.is_empty() {
            break;
        }
        let _ = sh(&format!("kill -9 {} 2>/dev/null; true", pids.join(" ")));
        std::thread::sleep(Duration::from_millis(100));
    }
    first.unwrap_or(0)
}

/// Kills every process in the lab's namespaces, deletes the namespaces
/// (and with them the bridges, veths and taps) and the state directory.
/// Returns what it removed.
pub fn remove_all(name: &str, state: &Path) -> Vec<String> {
    let mut removed = vec![];
    for _ in 0..3 {
        let mut pids = vec![];
        for ns in namespaces(name) {
            pids.extend(
                sh(&format!("ip netns pids {ns}"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string),
            );
        }
        if pids.is_empty() {
            break;
        }
        removed.push(format!("{} processes", pids.len()));
        let _ = sh(&format!("kill -9 {} 2>/dev/null; true", pids.join(" ")));
        std::thread::sleep(Duration::from_millis(300));
    }
    for ns in namespaces(name) {
        if sh(&format!("ip netns del {ns}")).is_ok() {
            removed.push(format!("namespace {ns}"));
        }
    }
    if state.exists() {
        let _ = std::fs::remove_dir_all(state);
        removed.push(format!("{}", state.display()));
    }
    removed
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A veth pair between two namespaces.
pub fn veth(a: &str, name_a: &str, b: &str, name_b: &str) -> Result<()> {
    sh(&format!(
        "ip link add {name_a} netns {a} type veth peer name {name_b} netns {b} &&
         ip -n {a} link set {name_a} up && ip -n {b} link set {name_b} up"
    ))
    .map(drop)
}

/// libvirtd and virtlogd of the lab inside the host namespace: the test
/// bed's private libvirtd (`testbed::libvirt`), which the VM tests run too.
/// Returns the URI.
pub fn private_libvirt(host_ns: &str, hide_kvm: bool, state: &Path) -> Result<String> {
    Ok(testbed::libvirt::private_libvirt(host_ns, hide_kvm, state)?)
}

pub fn virsh(uri: &str, args: &[&str]) -> Result<String> {
    Ok(testbed::libvirt::virsh(uri, args)?)
}

pub fn have(prog: &str) -> bool {
    sh(&format!("command -v {prog}")).is_ok()
}

/// The directory holding this vrctl binary (the agents are built beside it).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// Whether KVM can run our guests here. PLATFORM.md: a /dev/kvm that
/// opens is not enough inside a VM (nested KVM does not boot a 64-bit
/// guest on these machines), so a `hypervisor` CPU flag means TCG.
pub fn kvm_usable() -> bool {
    let nested = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| {
            c.lines()
                .any(|l| l.starts_with("flags") && l.contains(" hypervisor"))
        })
        .unwrap_or(true);
    !nested
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
}
