//! The make-before-break bridge migration (DESIGN.md section 5) as a pure
//! function: observed NIC/bridge state in, an ordered list of steps out, each
//! step with the op that undoes it.
//!
//! Order for create: bridge (NIC's MAC, STP off, delay 0, up) -> NIC up / MTU
//! raised -> every address added to the bridge -> NIC enslaved -> every route
//! through the NIC replaced onto the bridge -> addresses removed from the NIC.
//! While the NIC is enslaved but routes still name it, transmit through the
//! NIC still works and replies arrive on the bridge, which already owns the
//! addresses and the same MAC: no gap.

use std::net::IpAddr;

use crate::netstate::{Addr, BridgeOpts, Link, Observed, Op, PROTO_KERNEL, Route, TABLE_LOCAL};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub bridge: String,
    pub nic: String,
    /// The L2 MTU asked for; the NIC's MTU is raised to it, never lowered.
    pub mtu: Option<u32>,
    /// Written as the NIC alias `uuid: <l2NetworkUuid>` when given.
    pub l2_uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: Op,
    /// None when the op cannot be undone (only the final bridge delete).
    pub undo: Option<Op>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// After a create that moved the default route: the gateway that must
    /// still answer on the bridge.
    pub verify_gateway: Option<IpAddr>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("network device[{0}] is not existing")]
    NicMissing(String),
    #[error("interface {0} is bridge")]
    NicIsBridge(String),
    #[error("device[{0}] is the loopback device, which cannot be a bridge port")]
    Loopback(String),
    #[error("link {0} exists and is not a bridge")]
    NotABridge(String),
    #[error(
        "failed to create bridge[{bridge}], physical interface[{nic}] has been occupied by bridge[{other}]"
    )]
    Occupied {
        bridge: String,
        nic: String,
        other: String,
    },
    #[error("device[{nic}] is not a port of bridge[{bridge}] (its ports: {ports:?})")]
    NotAPort {
        bridge: String,
        nic: String,
        ports: Vec<String>,
    },
    #[error("bridge[{bridge}] has VMs attached (ports {ports:?}); detach them first")]
    VmsAttached { bridge: String, ports: Vec<String> },
    #[error("route {0} through {1} has several next hops; moving it is not supported")]
    Multipath(String, String),
    #[error("bridge[{0}] carries addresses but device[{1}] to put them back on is missing")]
    NowhereToRestore(String, String),
}

fn step(op: Op, undo: Op) -> Step {
    Step {
        op,
        undo: Some(undo),
    }
}

/// Addresses that move with the NIC: all but IPv6 link-local ones, which the
/// kernel derives per link (the bridge gets the same one from the same MAC).
fn movable_addrs<'a>(obs: &'a Observed, link: &'a str) -> Vec<&'a Addr> {
    obs.addrs_on(link)
        .filter(|a| !a.is_ipv6_link_local())
        .collect()
}

/// Routes that move: every route through the link except those the kernel
/// owns (local table, `proto kernel` prefix routes, which follow addresses).
fn movable_routes<'a>(obs: &'a Observed, link: &'a str) -> Result<Vec<&'a Route>, PlanError> {
    let mut out = Vec::new();
    for r in &obs.routes {
        if r.oif.as_deref() != Some(link) || r.table == TABLE_LOCAL || r.protocol == PROTO_KERNEL {
            continue;
        }
        if r.multipath {
            return Err(PlanError::Multipath(r.to_string(), link.to_string()));
        }
        out.push(r);
    }
    Ok(out)
}

/// The gateway of the lowest-metric default route among `routes` (IPv4 first).
fn default_gateway(routes: &[&Route]) -> Option<IpAddr> {
    let best = |v6: bool| {
        routes
            .iter()
            .filter(|r| r.is_default() && r.v6 == v6 && r.table == crate::netstate::TABLE_MAIN)
            .filter(|r| r.gateway.is_some())
            .min_by_key(|r| r.metric.unwrap_or(0))
            .and_then(|r| r.gateway)
    };
    best(false).or_else(|| best(true))
}

/// The kernel refuses to enslave the loopback device (EINVAL), and a
/// bridge over it would carry nothing: `lo`, or a plain device with the
/// all-zero MAC only loopback has.
pub fn is_loopback(link: &Link) -> bool {
    link.name == "lo" || (link.kind.is_none() && link.mac.is_some_and(|m| m.0 == [0; 6]))
}

fn check_nic<'a>(
    spec: &BridgeSpec,
    obs: &'a Observed,
) -> Result<(&'a Link, Option<&'a Link>), PlanError> {
    let nic = obs
        .link(&spec.nic)
        .ok_or_else(|| PlanError::NicMissing(spec.nic.clone()))?;
    if nic.is_bridge() {
        return Err(PlanError::NicIsBridge(spec.nic.clone()));
    }
    if is_loopback(nic) {
        return Err(PlanError::Loopback(spec.nic.clone()));
    }
    let br = obs.link(&spec.bridge);
    if let Some(b) = br
        && !b.is_bridge()
    {
        return Err(PlanError::NotABridge(spec.bridge.clone()));
    }
    if let Some(m) = nic.master {
        let other = obs
            .link_by_index(m)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("ifindex {m}"));
        if other != spec.bridge {
            return Err(PlanError::Occupied {
                bridge: spec.bridge.clone(),
                nic: spec.nic.clone(),
                other,
            });
        }
    }
    Ok((nic, br))
}

const STP_OFF: BridgeOpts = BridgeOpts {
    stp: 0,
    forward_delay: 0,
};

/// Plan `createbridge`: empty when everything is already in place.
pub fn create(spec: &BridgeSpec, obs: &Observed) -> Result<Plan, PlanError> {
    let (nic, br) = check_nic(spec, obs)?;
    let (b, n) = (spec.bridge.clone(), spec.nic.clone());
    let mut steps = Vec::new();
    match br {
        None => steps.push(step(
            Op::CreateBridge {
                name: b.clone(),
                mac: nic.mac,
            },
            Op::DeleteLink { name: b.clone() },
        )),
        Some(br) => {
            let opts = br.bridge.unwrap_or(STP_OFF);
            if opts != STP_OFF {
                steps.push(step(
                    Op::SetBridgeOpts {
                        name: b.clone(),
                        opts: STP_OFF,
                    },
                    Op::SetBridgeOpts {
                        name: b.clone(),
                        opts,
                    },
                ));
            }
            if let (Some(want), Some(have)) = (nic.mac, br.mac)
                && want != have
            {
                steps.push(step(
                    Op::SetMac {
                        name: b.clone(),
                        mac: want,
                    },
                    Op::SetMac {
                        name: b.clone(),
                        mac: have,
                    },
                ));
            }
            if !br.up {
                steps.push(step(
                    Op::SetUp {
                        name: b.clone(),
                        up: true,
                    },
                    Op::SetUp {
                        name: b.clone(),
                        up: false,
                    },
                ));
            }
        }
    }
    if !nic.up {
        steps.push(step(
            Op::SetUp {
                name: n.clone(),
                up: true,
            },
            Op::SetUp {
                name: n.clone(),
                up: false,
            },
        ));
    }
    if let Some(mtu) = spec.mtu
        && mtu > nic.mtu
    {
        steps.push(step(
            Op::SetMtu {
                name: n.clone(),
                mtu,
            },
            Op::SetMtu {
                name: n.clone(),
                mtu: nic.mtu,
            },
        ));
    }
    let addrs = movable_addrs(obs, &n);
    let on_bridge: Vec<&Addr> = obs.addrs_on(&b).collect();
    for a in &addrs {
        if !on_bridge.iter().any(|x| x.same_ip(a)) {
            let moved = a.on(&b);
            steps.push(step(Op::AddAddr(moved.clone()), Op::DelAddr(moved)));
        }
    }
    if nic.master.is_none() {
        steps.push(step(
            Op::SetMaster {
                name: n.clone(),
                master: Some(b.clone()),
            },
            Op::SetMaster {
                name: n.clone(),
                master: None,
            },
        ));
    }
    let routes = movable_routes(obs, &n)?;
    for r in &routes {
        steps.push(step(
            Op::ReplaceRoute(r.on(&b)),
            Op::ReplaceRoute((*r).clone()),
        ));
    }
    // Secondaries before primaries: deleting a primary IPv4 address would
    // take its secondaries with it.
    for a in addrs.iter().rev() {
        steps.push(step(Op::DelAddr((*a).clone()), Op::AddAddr((*a).clone())));
    }
    if let Some(uuid) = &spec.l2_uuid {
        let want = format!("uuid: {uuid}");
        if nic.alias.as_deref() != Some(want.as_str()) {
            steps.push(step(
                Op::SetAlias {
                    name: n.clone(),
                    alias: want,
                },
                Op::SetAlias {
                    name: n.clone(),
                    alias: nic.alias.clone().unwrap_or_default(),
                },
            ));
        }
    }
    let want = format!("phy_nic: {n}");
    let have = br.and_then(|l| l.alias.clone());
    if have.as_deref() != Some(want.as_str()) {
        steps.push(step(
            Op::SetAlias {
                name: b.clone(),
                alias: want,
            },
            Op::SetAlias {
                name: b.clone(),
                alias: have.unwrap_or_default(),
            },
        ));
    }
    Ok(Plan {
        steps,
        verify_gateway: default_gateway(&routes),
    })
}

/// Plan `deletebridge`: addresses and routes back onto the NIC (while it is
/// still a port, so nothing is unreachable), release it, delete the bridge.
/// Refuses while other ports (VM taps) are attached; empty if no bridge.
pub fn delete(spec: &BridgeSpec, obs: &Observed) -> Result<Plan, PlanError> {
    let Some(br) = obs.link(&spec.bridge) else {
        return Ok(Plan::default());
    };
    if !br.is_bridge() {
        return Err(PlanError::NotABridge(spec.bridge.clone()));
    }
    let (b, n) = (spec.bridge.clone(), spec.nic.clone());
    if obs.link(&n).is_some_and(is_loopback) {
        return Err(PlanError::Loopback(n));
    }
    let ports: Vec<String> = obs.ports_of(br).iter().map(|l| l.name.clone()).collect();
    // A NIC that is not the bridge's uplink would get its addresses and
    // routes, and the uplink would count as a VM: say which is wrong.
    if !ports.is_empty() && !ports.contains(&n) {
        return Err(PlanError::NotAPort {
            bridge: b,
            nic: n,
            ports,
        });
    }
    let others: Vec<String> = ports.into_iter().filter(|p| *p != n).collect();
    if !others.is_empty() {
        return Err(PlanError::VmsAttached {
            bridge: b,
            ports: others,
        });
    }
    let addrs = movable_addrs(obs, &b);
    let routes = movable_routes(obs, &b)?;
    let nic = obs.link(&n);
    let mut steps = Vec::new();
    match nic {
        None if !addrs.is_empty() || !routes.is_empty() => {
            return Err(PlanError::NowhereToRestore(b, n));
        }
        None => {}
        Some(nic) => {
            let on_nic: Vec<&Addr> = obs.addrs_on(&n).collect();
            for a in &addrs {
                if !on_nic.iter().any(|x| x.same_ip(a)) {
                    let back = a.on(&n);
                    steps.push(step(Op::AddAddr(back.clone()), Op::DelAddr(back)));
                }
            }
            for r in &routes {
                steps.push(step(
                    Op::ReplaceRoute(r.on(&n)),
                    Op::ReplaceRoute((*r).clone()),
                ));
            }
            if nic.master == Some(br.index) {
                steps.push(step(
                    Op::SetMaster {
                        name: n.clone(),
                        master: None,
                    },
                    Op::SetMaster {
                        name: n.clone(),
                        master: Some(b.clone()),
                    },
                ));
            }
            if let Some(alias) = nic.alias.as_ref().filter(|a| a.starts_with("uuid: ")) {
                steps.push(step(
                    Op::SetAlias {
                        name: n.clone(),
                        alias: String::new(),
                    },
                    Op::SetAlias {
                        name: n.clone(),
                        alias: alias.clone(),
                    },
                ));
            }
        }
    }
    for a in addrs.iter().rev() {
        steps.push(step(Op::DelAddr((*a).clone()), Op::AddAddr((*a).clone())));
    }
    steps.push(Step {
        op: Op::DeleteLink { name: b },
        undo: None,
    });
    Ok(Plan {
        steps,
        verify_gateway: None,
    })
}

/// Plan port isolation on `bridge`: every port but the uplink `nic` gets
/// `isolated` = `want`, so on an isolated L2 network guests reach the uplink
/// (and the host) but not each other (kvmagent: `brport/isolated` on the
/// guest taps, vm_plugin's `config_link_isolated`).
pub fn port_isolation(bridge: &str, nic: &str, want: bool, obs: &Observed) -> Vec<Step> {
    let Some(br) = obs.link(bridge).filter(|l| l.is_bridge()) else {
        return Vec::new();
    };
    obs.ports_of(br)
        .into_iter()
        .filter(|p| p.name != nic && p.isolated != want)
        .map(|p| {
            step(
                Op::SetPortIsolated {
                    name: p.name.clone(),
                    isolated: want,
                },
                Op::SetPortIsolated {
                    name: p.name.clone(),
                    isolated: !want,
                },
            )
        })
        .collect()
}

/// The ops that undo the first `done` steps, newest first.
pub fn rollback(steps: &[Step]) -> Vec<Op> {
    steps.iter().rev().filter_map(|s| s.undo.clone()).collect()
}

#[cfg(test)]
mod tests;
