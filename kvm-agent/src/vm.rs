//! VM lifecycle (reference 4.2, 4.3) over the `Hypervisor` trait.
//!
//! Everything here blocks (libvirt calls, polling with sleeps); the API layer
//! runs it on `spawn_blocking` so the async runtime never waits on libvirt.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::paths::HostDirs;
use crate::plan::domain::{self, DomainError, DomainPlan, HostRoom};
use crate::sys::hypervisor::{Hypervisor, HypervisorError, VmState};

pub mod access;
pub mod nic;
pub mod volumes;

const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Plan(#[from] DomainError),
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error("vm {name}: {explained} (libvirt: {libvirt})")]
    Unreadable {
        name: String,
        explained: String,
        libvirt: String,
    },
    #[error("vm {name} did not reach Running within {secs} s (state {state:?})")]
    StartTimeout {
        name: String,
        secs: u64,
        state: Option<VmState>,
    },
    #[error("unable to find vm[uuid:{0}]")]
    NotFound(String),
    #[error("vm {name} is still {state:?} after stop; {detail}")]
    StillRunning {
        name: String,
        state: VmState,
        detail: String,
    },
    #[error("nic {mac} does not show in vm {name} after attach")]
    NicNotShown { name: String, mac: String },
    #[error(
        "nic {mac} is still attached to vm {name} after {secs} s (does the guest handle PCI hot-unplug? stop the VM and detach again)"
    )]
    NicStillAttached {
        name: String,
        mac: String,
        secs: u64,
    },
    #[error(transparent)]
    Guard(#[from] crate::sys::antispoof::GuardError),
    #[error(transparent)]
    Path(#[from] crate::paths::PathError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// ACPI shutdown, then destroy; undefine.
    Grace,
    /// Destroy, undefine.
    Cold,
    /// Destroy and kill qemu; the definition stays.
    Force,
}

impl std::str::FromStr for StopKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "grace" => Ok(StopKind::Grace),
            "cold" => Ok(StopKind::Cold),
            "force" => Ok(StopKind::Force),
            o => Err(format!(
                "field type: {} is not grace, cold or force",
                common::text::quoted(o)
            )),
        }
    }
}

fn wait_state(
    hv: &dyn Hypervisor,
    name: &str,
    within: Duration,
    done: impl Fn(Option<VmState>) -> bool,
) -> Result<(bool, Option<VmState>), HypervisorError> {
    let deadline = Instant::now() + within;
    loop {
        let st = hv.lookup(name)?.map(|d| d.state);
        if done(st) {
            return Ok((true, st));
        }
        if Instant::now() >= deadline {
            return Ok((false, st));
        }
        std::thread::sleep(POLL);
    }
}

/// Memory reserved by running domains other than `except`.
pub fn reserved_kib(hv: &dyn Hypervisor, except: &str) -> Result<u64, HypervisorError> {
    Ok(hv
        .list()?
        .iter()
        .filter(|d| d.state.is_active() && d.name != except)
        .map(|d| d.memory_kib)
        .sum())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It was running already (ZSTAC-26937): success, nothing changed.
    AlreadyRunning,
    Started,
}

/// Start semantics of reference 4.2: running -> success; defined but not
/// running -> replace the definition; check capacity; define; start; wait.
pub fn start(
    hv: &dyn Hypervisor,
    plan: &DomainPlan,
    dirs: &HostDirs,
    room: impl FnOnce(u64) -> HostRoom,
    paused: bool,
    timeout: Duration,
) -> Result<Started, VmError> {
    if let Some(d) = hv.lookup(&plan.name)? {
        if matches!(d.state, VmState::Running | VmState::Paused) {
            tracing::info!(vm = %plan.name, state = ?d.state, "already running; start is a no-op");
            return Ok(Started::AlreadyRunning);
        }
        tracing::info!(vm = %plan.name, state = ?d.state, "replacing the stopped definition");
        hv.destroy(&plan.name)?;
        hv.undefine(&plan.name)?;
    }
    let reserved = reserved_kib(hv, &plan.name)?;
    domain::check_fit(&plan.name, plan.memory_kib, plan.vcpus, room(reserved))?;
    prepare_paths(plan, dirs)?;
    hv.define(&plan.xml)?;
    if let Err(e) = hv.start(&plan.name, paused) {
        // Leave nothing half-created behind a failed start.
        let _ = hv.undefine(&plan.name);
        let libvirt = e.to_string();
        if let Some(explained) = access::explain(&libvirt) {
            return Err(VmError::Unreadable {
                name: plan.name.clone(),
                explained,
                libvirt,
            });
        }
        return Err(e.into());
    }
    let (ok, state) = wait_state(hv, &plan.name, timeout, |s| {
        matches!(s, Some(VmState::Running | VmState::Paused))
    })?;
    if !ok {
        return Err(VmError::StartTimeout {
            name: plan.name.clone(),
            secs: timeout.as_secs(),
            state,
        });
    }
    tracing::info!(vm = %plan.name, "started");
    Ok(Started::Started)
}

/// The channel socket's directory must exist and be writable by qemu, which
/// libvirt runs as an unprivileged user; ZStack makes it 0777 for the same
/// reason, but only a directory the agent creates is chmodded. The socket
/// must be a file directly in `--socket-dir`. The console log directory
/// belongs to virtlogd (root).
fn prepare_paths(plan: &DomainPlan, dirs: &HostDirs) -> Result<(), VmError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| VmError::Io { path, source }
    };
    if let Some(sock) = &plan.channel_socket {
        let sock = dirs.socket(
            "addons.channel.socketPath",
            sock.to_str().unwrap_or_default(),
        )?;
        crate::paths::prepare_socket_dir(&sock.dir).map_err(io(&sock.dir))?;
        // A stale socket from a previous run makes qemu's bind fail.
        sock.remove().map_err(io(&sock.path()))?;
    }
    if let Some(dir) = plan.console_log.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Stop per reference 4.3. A missing VM is success.
pub fn stop(
    hv: &dyn Hypervisor,
    name: &str,
    kind: StopKind,
    timeout: Duration,
    dirs: &HostDirs,
) -> Result<(), VmError> {
    let Some(d) = hv.lookup(name)? else {
        tracing::info!(vm = name, "stop: no such domain, nothing to do");
        return Ok(());
    };
    // Unix channel sockets to remove once stopped (qemu leaves them).
    let sockets = hv
        .xml(name, true)
        .map(|x| domain::channel_sockets(&x))
        .unwrap_or_default();
    if kind == StopKind::Grace && d.state.is_active() {
        // ZStack loops shutdown for up to 60 s; the MN's timeout bounds it.
        let grace = timeout.min(Duration::from_secs(60));
        hv.shutdown(name)?;
        let (ok, _) = wait_state(hv, name, grace, |s| s.is_none_or(|s| !s.is_active()))?;
        if !ok {
            tracing::warn!(
                vm = name,
                secs = grace.as_secs(),
                "guest ignored ACPI shutdown; destroying"
            );
        }
    }
    hv.destroy(name)?;
    let (ok, st) = wait_state(hv, name, Duration::from_secs(60), |s| {
        s.is_none_or(|s| !s.is_active())
    })?;
    let killed = hv.kill_leftovers(name);
    if !ok && killed == 0 {
        return Err(VmError::StillRunning {
            name: name.into(),
            state: st.unwrap_or(VmState::NoState),
            detail: "destroy did not take effect and no qemu process was found to kill".into(),
        });
    }
    if kind != StopKind::Force {
        hv.undefine(name)?;
        // Only sockets in the socket directory: the XML may come from a
        // domain someone else defined.
        for s in sockets {
            match dirs.socket("channel", s.to_str().unwrap_or_default()) {
                Ok(sock) => {
                    let _ = sock.remove();
                }
                Err(e) => tracing::warn!(vm = name, error = %e, "channel socket left in place"),
            }
        }
    }
    tracing::info!(vm = name, ?kind, "stopped");
    Ok(())
}

/// Destroy = cold stop; a missing domain is success.
pub fn destroy(hv: &dyn Hypervisor, name: &str, dirs: &HostDirs) -> Result<(), VmError> {
    stop(hv, name, StopKind::Cold, Duration::from_secs(60), dirs)
}

/// Reboot as ZStack does it: a graceful stop (which undefines), then define
/// and start again from the same XML with the new boot order. The result is
/// a new qemu process; the MN then resends the bootstrap info.
pub fn reboot(
    hv: &dyn Hypervisor,
    name: &str,
    boot_dev: &[String],
    timeout: Duration,
    dirs: &HostDirs,
) -> Result<(), VmError> {
    if hv.lookup(name)?.is_none() {
        return Err(VmError::NotFound(name.into()));
    }
    let xml = domain::with_boot_devs(&hv.xml(name, true)?, boot_dev);
    stop(hv, name, StopKind::Grace, timeout, dirs)?;
    hv.define(&xml)?;
    hv.start(name, false)?;
    let (ok, state) = wait_state(hv, name, timeout, |s| {
        matches!(s, Some(VmState::Running | VmState::Paused))
    })?;
    if !ok {
        return Err(VmError::StartTimeout {
            name: name.into(),
            secs: timeout.as_secs(),
            state,
        });
    }
    tracing::info!(vm = name, "rebooted");
    Ok(())
}

/// vmsync: the real state of every domain (reference 4.3). Shut-off
/// definitions are left out as ZStack does (it lists active domains only);
/// domains that are not ours by name are skipped.
pub fn sync(hv: &dyn Hypervisor) -> Result<(BTreeMap<String, String>, Vec<String>), VmError> {
    let mut states = BTreeMap::new();
    let mut shutting = Vec::new();
    for d in hv.list()? {
        if d.name.starts_with("guestfs-") || d.name == "ZStack Management Node VM" {
            continue;
        }
        if !d.state.is_active() && d.state != VmState::Crashed {
            continue;
        }
        if d.state == VmState::ShuttingDown {
            shutting.push(d.name.clone());
        }
        states.insert(d.name, d.state.zstack().to_string());
    }
    Ok((states, shutting))
}

/// vCPUs and memory (bytes, currentMemory) of the running domains, as
/// ZStack's kvmagent reports them in `/host/capacity`
/// (`get_cpu_memory_used_by_running_vms`).
pub fn used_capacity(hv: &dyn Hypervisor) -> Result<(u64, u64), HypervisorError> {
    let running: Vec<_> = hv
        .list()?
        .into_iter()
        .filter(|d| d.state.is_active())
        .collect();
    let cpu = running.iter().map(|d| u64::from(d.vcpus)).sum();
    let mem = running.iter().map(|d| d.memory_kib * 1024).sum();
    Ok((cpu, mem))
}

/// `/vm/checkstate`: the state of each asked VM in ZStack's words; a VM
/// this host does not have is `Shutdown`, as kvmagent answers.
pub fn check_states(
    hv: &dyn Hypervisor,
    uuids: &[String],
) -> Result<BTreeMap<String, String>, VmError> {
    let mut out = BTreeMap::new();
    for u in uuids {
        let name = domain::parse_vm_uuid(u).map_or_else(|_| u.clone(), |(n, _)| n);
        let st = hv.lookup(&name)?.map_or("Shutdown", |d| d.state.zstack());
        out.insert(u.clone(), st.to_string());
    }
    Ok(out)
}

/// The time a guest gets to release a hot-unplugged NIC (kvmagent: 10 s).
pub const DETACH_WAIT: Duration = Duration::from_secs(10);
