//! Bridge commands: observe, plan (pure, `plan::bridge`), apply step by step,
//! roll back on any failure, verify the gateway still answers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::netstate::Op;
use crate::plan::bridge::{self as planner, BridgeSpec, Plan, PlanError, Step};
use crate::sys::netlink::{EOPNOTSUPP, Netlink, NetlinkError};
use crate::sys::sysctl::{self, Sysctl};

#[derive(Debug, Clone)]
pub struct Options {
    /// How long the default gateway gets to answer ARP/ND on the bridge.
    pub gateway_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            gateway_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Number of kernel changes made (0: already in place).
    pub changed: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot read the network state: {0}")]
    Observe(NetlinkError),
    #[error("{op} failed: {source}; {}", rollback_note(.rollback))]
    Step {
        op: String,
        source: NetlinkError,
        rollback: Vec<String>,
    },
    #[error("default gateway {gateway} did not answer on {bridge} within {waited_ms} ms after the migration{}; {}", .error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(), rollback_note(.rollback))]
    Gateway {
        gateway: IpAddr,
        bridge: String,
        waited_ms: u128,
        error: Option<NetlinkError>,
        rollback: Vec<String>,
    },
    #[error("kernel has no 802.1Q support: creating {name} failed: {source}")]
    NoVlanSupport { name: String, source: NetlinkError },
    #[error("cannot find ethernet device {0}")]
    NoParent(String),
    #[error("vlan interface name {0} is longer than 15 characters")]
    VlanNameTooLong(String),
    #[error("can not find bridge[{0}]")]
    NoBridge(String),
    #[error("can not find vlan bridge[{0}]")]
    NoVlanBridge(String),
    #[error("network device[{0}] is not existing")]
    NoNic(String),
    #[error("device[{port}] is not a port of bridge[{bridge}]")]
    NotAPort { port: String, bridge: String },
    #[error("cannot record the isolation of bridge[{bridge}]: {error}")]
    Record { bridge: String, error: String },
    #[error("cannot find network device[{nic}], the uplink of bridge[{bridge}]")]
    UplinkMissing { bridge: String, nic: String },
    #[error("bridge[{bridge}] has no uplink: {nic} is not one of its ports{elsewhere}")]
    NoUplink {
        bridge: String,
        nic: String,
        elsewhere: String,
    },
}

fn rollback_note(errors: &[String]) -> String {
    if errors.is_empty() {
        "rolled back to the previous state".into()
    } else {
        format!("ROLLBACK INCOMPLETE: {}", errors.join("; "))
    }
}

async fn observe(nl: &dyn Netlink) -> Result<crate::netstate::Observed, BridgeError> {
    nl.dump().await.map_err(BridgeError::Observe)
}

/// The plan `create` would run now (tests use it to count the steps).
pub async fn plan_create(nl: &dyn Netlink, spec: &BridgeSpec) -> Result<Plan, BridgeError> {
    Ok(planner::create(spec, &observe(nl).await?)?)
}

/// Undo the executed steps, newest first; returns what could not be undone.
async fn undo(nl: &dyn Netlink, done: &[Step]) -> Vec<String> {
    let mut errors = Vec::new();
    for op in planner::rollback(done) {
        if let Err(e) = nl.apply(&op).await {
            tracing::error!(%op, error = %e, "rollback step failed");
            errors.push(format!("{op}: {e}"));
        }
    }
    errors
}

async fn execute(nl: &dyn Netlink, sysctl: &dyn Sysctl, steps: &[Step]) -> Result<(), BridgeError> {
    for (i, s) in steps.iter().enumerate() {
        tracing::debug!(op = %s.op, "apply");
        if let Err(e) = nl.apply(&s.op).await {
            tracing::warn!(op = %s.op, error = %e, "step failed, rolling back");
            let rollback = undo(nl, &steps[..i]).await;
            return Err(BridgeError::Step {
                op: s.op.to_string(),
                source: e,
                rollback,
            });
        }
        if let Op::CreateBridge { name, .. } = &s.op {
            // The host already owns the addresses it moves: duplicate address
            // detection on the bridge would only keep IPv6 tentative (unusable)
            // for a second.
            let key = format!("net/ipv6/conf/{name}/accept_dad");
            if let Err(e) = sysctl.write(&key, "0") {
                tracing::warn!(%key, error = %e, "cannot turn off DAD on the new bridge");
            }
        }
    }
    Ok(())
}

/// The runtime sysctls ZStack sets with every bridge (reference 3.1 step 5).
/// A missing key (no br_netfilter, no IPv6) is a warning, not a failure.
fn bridge_sysctls(s: &dyn Sysctl, disable_iptables: bool) {
    let call = if disable_iptables { "0" } else { "1" };
    for (key, value) in [
        ("net/bridge/bridge-nf-call-iptables", call),
        ("net/bridge/bridge-nf-call-ip6tables", call),
        ("net/bridge/bridge-nf-filter-vlan-tagged", "1"),
        ("net/ipv4/conf/default/forwarding", "1"),
        ("net/ipv6/conf/default/forwarding", "1"),
    ] {
        match sysctl::ensure(s, key, value) {
            Ok(true) => tracing::info!(key, value, "sysctl set"),
            Ok(false) => {}
            Err(e) => tracing::warn!(key, error = %e, "sysctl not set"),
        }
    }
}

/// `createbridge`: migrate the NIC's addresses and routes onto the bridge,
/// make-before-break; roll back everything on any failure.
pub async fn create(
    nl: &dyn Netlink,
    sysctl: &dyn Sysctl,
    spec: &BridgeSpec,
    disable_iptables: bool,
    opts: &Options,
) -> Result<Outcome, BridgeError> {
    let start = Instant::now();
    let plan = plan_create(nl, spec).await?;
    execute(nl, sysctl, &plan.steps).await?;
    if let Some(gw) = plan.verify_gateway {
        let answered = nl
            .neighbour_answers(&spec.bridge, gw, opts.gateway_timeout)
            .await;
        if !matches!(answered, Ok(true)) {
            tracing::warn!(%gw, bridge = %spec.bridge, "gateway silent after migration, rolling back");
            let rollback = undo(nl, &plan.steps).await;
            return Err(BridgeError::Gateway {
                gateway: gw,
                bridge: spec.bridge.clone(),
                waited_ms: opts.gateway_timeout.as_millis(),
                error: answered.err(),
                rollback,
            });
        }
    }
    bridge_sysctls(sysctl, disable_iptables);
    let out = Outcome {
        changed: plan.steps.len(),
        elapsed: start.elapsed(),
    };
    tracing::info!(
        bridge = %spec.bridge,
        nic = %spec.nic,
        changes = out.changed,
        gateway = ?plan.verify_gateway,
        elapsed_ms = out.elapsed.as_secs_f64() * 1000.0,
        "createbridge done"
    );
    Ok(out)
}

pub fn vlan_ifname(nic: &str, vlan: u16) -> Result<String, BridgeError> {
    let name = format!("{nic}.{vlan}");
    if name.len() > 15 {
        return Err(BridgeError::VlanNameTooLong(name));
    }
    Ok(name)
}

/// `l2vlan/createbridge`: `nic.VID` (created if missing) under the bridge.
pub async fn create_vlan(
    nl: &dyn Netlink,
    sysctl: &dyn Sysctl,
    spec: &BridgeSpec,
    vlan: u16,
    disable_iptables: bool,
    opts: &Options,
) -> Result<Outcome, BridgeError> {
    let vif = vlan_ifname(&spec.nic, vlan)?;
    let obs = observe(nl).await?;
    let Some(parent) = obs.link(&spec.nic) else {
        return Err(BridgeError::NoParent(spec.nic.clone()));
    };
    // Refused before the VLAN interface exists, as the bridge of a plain
    // uplink refuses them: neither carries traffic off the host.
    if planner::is_loopback(parent) {
        return Err(PlanError::Loopback(spec.nic.clone()).into());
    }
    if parent.is_bridge() {
        return Err(PlanError::NicIsBridge(spec.nic.clone()).into());
    }
    let mut created = None;
    match obs.link(&vif) {
        None => {
            let op = Op::AddVlan {
                name: vif.clone(),
                parent: spec.nic.clone(),
                id: vlan,
            };
            nl.apply(&op).await.map_err(|e| match e.errno() {
                Some(EOPNOTSUPP) => BridgeError::NoVlanSupport {
                    name: vif.clone(),
                    source: e,
                },
                _ => BridgeError::Step {
                    op: op.to_string(),
                    source: e,
                    rollback: vec![],
                },
            })?;
            created = Some(Step {
                op,
                undo: Some(Op::DeleteLink { name: vif.clone() }),
            });
        }
        Some(l) if !l.up => {
            let op = Op::SetUp {
                name: vif.clone(),
                up: true,
            };
            nl.apply(&op).await.map_err(|e| BridgeError::Step {
                op: op.to_string(),
                source: e,
                rollback: vec![],
            })?;
        }
        Some(_) => {}
    }
    let inner = BridgeSpec {
        nic: vif,
        ..spec.clone()
    };
    match create(nl, sysctl, &inner, disable_iptables, opts).await {
        Err(e) => {
            if let Some(step) = created {
                let errors = undo(nl, &[step]).await;
                if !errors.is_empty() {
                    tracing::error!(?errors, "could not remove the vlan interface");
                }
            }
            Err(e)
        }
        ok => ok,
    }
}

/// `deletebridge`: addresses and routes back to the NIC, bridge removed.
pub async fn delete(
    nl: &dyn Netlink,
    sysctl: &dyn Sysctl,
    spec: &BridgeSpec,
) -> Result<Outcome, BridgeError> {
    let start = Instant::now();
    let plan = planner::delete(spec, &observe(nl).await?)?;
    execute(nl, sysctl, &plan.steps).await?;
    let out = Outcome {
        changed: plan.steps.len(),
        elapsed: start.elapsed(),
    };
    tracing::info!(bridge = %spec.bridge, changes = out.changed, elapsed_ms = out.elapsed.as_secs_f64() * 1000.0, "deletebridge done");
    Ok(out)
}

/// `l2vlan/deletebridge`: the bridge, then the `nic.VID` interface.
pub async fn delete_vlan(
    nl: &dyn Netlink,
    sysctl: &dyn Sysctl,
    spec: &BridgeSpec,
    vlan: u16,
) -> Result<Outcome, BridgeError> {
    let vif = vlan_ifname(&spec.nic, vlan)?;
    let inner = BridgeSpec {
        nic: vif.clone(),
        ..spec.clone()
    };
    let mut out = delete(nl, sysctl, &inner).await?;
    let obs = observe(nl).await?;
    if obs.link(&vif).is_some_and(|l| l.master.is_none()) {
        let op = Op::DeleteLink { name: vif };
        nl.apply(&op).await.map_err(|e| BridgeError::Step {
            op: op.to_string(),
            source: e,
            rollback: vec![],
        })?;
        out.changed += 1;
    }
    Ok(out)
}

/// `checkbridge`: the bridge exists; the NIC is brought up.
pub async fn check(
    nl: &dyn Netlink,
    bridge: &str,
    nic: &str,
    vlan: bool,
) -> Result<(), BridgeError> {
    let obs = observe(nl).await?;
    let Some(br) = obs.link(bridge).filter(|l| l.is_bridge()) else {
        return Err(if vlan {
            BridgeError::NoVlanBridge(bridge.into())
        } else {
            BridgeError::NoBridge(bridge.into())
        });
    };
    // kvmagent's check_bridge brings the uplink up and fails when it does
    // not exist (network_plugin.py _ifup_device_if_down: "cannot find
    // /sys/class/net/<nic>/operstate").
    if obs.link(nic).is_none() {
        return Err(BridgeError::UplinkMissing {
            bridge: bridge.into(),
            nic: nic.into(),
        });
    }
    // A bridge without its NIC carries nothing off the host: say so here
    // rather than let a VM on it be unreachable.
    if let Some(l) = obs.link(nic).filter(|l| l.master != Some(br.index)) {
        return Err(BridgeError::NoUplink {
            bridge: bridge.into(),
            nic: nic.into(),
            elsewhere: match l.master.and_then(|m| obs.link_by_index(m)) {
                Some(other) => format!(" (it is a port of {})", other.name),
                None => String::new(),
            },
        });
    }
    if let Some(l) = obs.link(nic).filter(|l| !l.up) {
        let op = Op::SetUp {
            name: l.name.clone(),
            up: true,
        };
        nl.apply(&op).await.map_err(|e| BridgeError::Step {
            op: op.to_string(),
            source: e,
            rollback: vec![],
        })?;
    }
    Ok(())
}

/// `bridge/addif`: make `nic` a port of `bridge`, moving it from another
/// bridge if needed. No address migration (these are VM-side ports).
pub async fn add_if(nl: &dyn Netlink, bridge: &str, nic: &str) -> Result<Outcome, BridgeError> {
    let obs = observe(nl).await?;
    let br = obs
        .link(bridge)
        .ok_or_else(|| BridgeError::NoBridge(bridge.into()))?;
    if !br.is_bridge() {
        return Err(PlanError::NotABridge(bridge.into()).into());
    }
    let dev = obs
        .link(nic)
        .ok_or_else(|| BridgeError::NoNic(nic.into()))?;
    // What the kernel would refuse with a bare EINVAL/ELOOP.
    if crate::plan::bridge::is_loopback(dev) {
        return Err(PlanError::Loopback(nic.into()).into());
    }
    if dev.is_bridge() {
        return Err(PlanError::NicIsBridge(nic.into()).into());
    }
    if dev.master == Some(br.index) {
        return Ok(Outcome {
            changed: 0,
            elapsed: Duration::ZERO,
        });
    }
    let op = Op::SetMaster {
        name: nic.into(),
        master: Some(bridge.into()),
    };
    nl.apply(&op).await.map_err(|e| BridgeError::Step {
        op: op.to_string(),
        source: e,
        rollback: vec![],
    })?;
    Ok(Outcome {
        changed: 1,
        elapsed: Duration::ZERO,
    })
}

/// Where `createbridge` records that a bridge is isolated, so that ports
/// added later (the taps of `/vm/start`) are isolated too: the kernel has no
/// bridge-wide flag, only per-port ones.
fn isolation_marker(state_dir: &Path, bridge: &str) -> PathBuf {
    state_dir.join("isolated-bridges").join(bridge)
}

/// Was `bridge` created for an isolated L2 network?
pub fn is_isolated(state_dir: &Path, bridge: &str) -> bool {
    isolation_marker(state_dir, bridge).exists()
}

/// Record (or forget) that `bridge` is isolated.
pub fn record_isolation(state_dir: &Path, bridge: &str, isolated: bool) -> Result<(), BridgeError> {
    let path = isolation_marker(state_dir, bridge);
    let r = if isolated {
        crate::sys::store::write_atomic(&path, b"isolated\n")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    };
    r.map_err(|e| BridgeError::Record {
        bridge: bridge.into(),
        error: e.to_string(),
    })
}

/// Give every port of `bridge` but the uplink `nic` isolation `want`; all or
/// nothing (rolled back on a failure). Returns the number of ports changed.
pub async fn set_isolation(
    nl: &dyn Netlink,
    sysctl: &dyn Sysctl,
    bridge: &str,
    nic: &str,
    want: bool,
) -> Result<usize, BridgeError> {
    let steps = planner::port_isolation(bridge, nic, want, &observe(nl).await?);
    execute(nl, sysctl, &steps).await?;
    if !steps.is_empty() {
        tracing::info!(
            bridge,
            isolated = want,
            ports = steps.len(),
            "port isolation set"
        );
    }
    Ok(steps.len())
}

/// For the VM side: call once a guest's tap `port` is a port of `bridge`.
/// Isolates it when the NIC asks (`NicTO.isolated`) or the bridge was
/// created isolated; never removes isolation. Returns whether the port is
/// isolated now.
pub async fn isolate_guest_port(
    nl: &dyn Netlink,
    state_dir: &Path,
    bridge: &str,
    port: &str,
    nic_isolated: bool,
) -> Result<bool, BridgeError> {
    if !nic_isolated && !is_isolated(state_dir, bridge) {
        return Ok(false);
    }
    let obs = observe(nl).await?;
    let br = obs
        .link(bridge)
        .filter(|l| l.is_bridge())
        .ok_or_else(|| BridgeError::NoBridge(bridge.into()))?;
    let p = obs
        .link(port)
        .filter(|l| l.master == Some(br.index))
        .ok_or_else(|| BridgeError::NotAPort {
            port: port.into(),
            bridge: bridge.into(),
        })?;
    if !p.isolated {
        let op = Op::SetPortIsolated {
            name: port.into(),
            isolated: true,
        };
        nl.apply(&op).await.map_err(|e| BridgeError::Step {
            op: op.to_string(),
            source: e,
            rollback: vec![],
        })?;
    }
    Ok(true)
}
