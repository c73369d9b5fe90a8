//! A private libvirtd (with its virtlogd) inside a namespace, and `virsh`
//! against it: the VM tests run their guests under it, and so does
//! `vrctl lab` (vrctl's `lab::topo` calls these).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("{cmd}: {msg}")]
    Command { cmd: String, msg: String },
    #[error("{0}")]
    Failed(String),
}

/// libvirtd and virtlogd inside namespace `host_ns`, with private tmpfs
/// over their runtime, config and state directories: they do not see, stop
/// or disturb a libvirtd of the machine. Returns the URI; the daemon logs
/// to `state/libvirtd.log`.
///
/// With `hide_kvm`, /dev/kvm is hidden from it: where /dev/kvm exists but
/// cannot be used (nested KVM that does not boot 64-bit guests, or a
/// root-only node), libvirt would otherwise re-probe qemu at every define.
pub fn private_libvirt(
    host_ns: &str,
    hide_kvm: bool,
    state: &Path,
) -> Result<String, LibvirtError> {
    let hide = if hide_kvm {
        "if [ -e /dev/kvm ]; then touch /run/libvirt/no-kvm; mount --bind /run/libvirt/no-kvm /dev/kvm; fi"
    } else {
        ""
    };
    let log = state.join("libvirtd.log");
    let out = nsh(
        host_ns,
        &format!(
            "set -e
             for d in /run/libvirt /etc/libvirt/qemu /var/lib/libvirt /var/cache/libvirt; do
                 mkdir -p $d; mount -t tmpfs -o mode=0755 tmpfs $d
             done
             {hide}
             cp /etc/libvirt/qemu.conf /run/libvirt/qemu.conf
             echo 'namespaces = [ ]' >>/run/libvirt/qemu.conf
             mount --bind /run/libvirt/qemu.conf /etc/libvirt/qemu.conf
             virtlogd -d -p /run/libvirt/virtlogd.pid
             LIBVIRT_LOG_OUTPUTS='3:file:{log}' libvirtd -d -p /run/libvirt/libvirtd.pid
             i=0; while [ ! -s /run/libvirt/libvirtd.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
             cat /run/libvirt/libvirtd.pid",
            log = log.display()
        ),
    )?;
    let pid = out.trim();
    if pid.is_empty() {
        return Err(LibvirtError::Failed(
            "the lab's libvirtd did not start".into(),
        ));
    }
    let uri = format!("qemu:///system?socket=/proc/{pid}/root/run/libvirt/libvirt-sock");
    if !answers_within(Duration::from_secs(20), &uri) {
        return Err(LibvirtError::Failed(format!(
            "the lab's libvirtd does not answer on {uri}"
        )));
    }
    // The first domain operation of a fresh libvirtd probes qemu; do it now.
    virsh(
        &uri,
        &[
            "domcapabilities",
            "--virttype",
            if hide_kvm { "qemu" } else { "kvm" },
        ],
    )?;
    Ok(uri)
}

/// `virsh -c uri args...`: its stdout, or an error with its stderr.
pub fn virsh(uri: &str, args: &[&str]) -> Result<String, LibvirtError> {
    let out = Command::new("virsh")
        .args(["-c", uri])
        .args(args)
        .output()
        .map_err(|e| LibvirtError::Failed(format!("virsh: {e}")))?;
    if !out.status.success() {
        return Err(LibvirtError::Command {
            cmd: format!("virsh {}", args.join(" ")),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `virsh version` succeeds on `uri` within `timeout`.
fn answers_within(timeout: Duration, uri: &str) -> bool {
    let t0 = Instant::now();
    loop {
        if virsh(uri, &["version"]).is_ok() {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A bash script inside namespace `ns` (as root): its stdout, or an error
/// with its stderr.
fn nsh(ns: &str, script: &str) -> Result<String, LibvirtError> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", script])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LibvirtError::Command {
            cmd: format!("ip netns exec {ns} bash"),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LibvirtError::Command {
            cmd: format!(
                "ip netns exec {ns} bash -c '{}",
                script.lines().next().unwrap_or("").trim()
            ),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
