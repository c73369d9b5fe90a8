//! The NAT and filter ruleset of the router as one nftables table.
//!
//! Per-entry data (EIPs, port forwards, SNAT networks) lives in maps and sets,
//! so a packet's lookup cost does not grow with the number of rules and one
//! added rule is one element added. The table's skeleton (maps, sets, chains)
//! only changes when NICs change; then the whole table is replaced in one
//! transaction. Everything is rendered in nft's text syntax because nft 1.0.6
//! cannot declare concatenated-data maps in JSON (PLATFORM.md).

mod elements;
mod skeleton;
#[cfg(test)]
mod tests;
mod transaction;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::net::{IfName, Ipv4Net, Mac, PortRange, Proto};

pub use skeleton::SETS;
use skeleton::skeleton;
use vr_model::{DefaultAction, Model, NicCategory};

pub use elements::{Element, eip_elements, pf_elements, snat_counter};
pub use transaction::{Change, change, delete_table, delta, full};

pub const FAMILY: &str = "ip";
pub const TABLE: &str = "vragent";

/// Which flows a changed element may have left stale in conntrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowMatch {
    /// Original destination address.
    Dst(Ipv4Addr),
    /// Original source address.
    Src(Ipv4Addr),
    /// Original destination address, protocol and port range.
    DstPorts(Ipv4Addr, Proto, PortRange),
    /// Original source inside a network.
    SrcNet(Ipv4Net),
}

/// The whole desired table: a skeleton plus the elements of each set/map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub skeleton: String,
    /// set name -> element text -> flows it affects.
    pub elements: BTreeMap<&'static str, BTreeMap<String, Option<FlowMatch>>>,
    /// chain name -> number of rules, for drift checks.
    pub chain_rules: BTreeMap<&'static str, usize>,
}

pub use crate::plan::PlanError;

/// Facts the plan needs from the box.
pub struct Observed<'a> {
    /// NIC MAC -> interface name.
    pub links: &'a BTreeMap<Mac, IfName>,
    /// The agent's TCP port, opened on the management NIC only.
    pub agent_port: u16,
}

/// The packet mark bit of a connection to a port forward with
/// snatInboundTraffic (no other user of marks on the router).
pub const PF_INBOUND_MARK: u32 = 0x0001_0000;

/// Offset-shifted port ranges (vip 8000-8010 -> private 9000-9010) become one
/// exact element per port; beyond this many ports the rule is refused.
pub const MAX_SHIFTED_PORTS: u32 = 4096;

pub fn render(model: &Model, obs: &Observed) -> Result<Ruleset, PlanError> {
    let ifname = |mac: &Mac, what: &dyn Fn() -> String| {
        obs.links
            .get(mac)
            .cloned()
            .ok_or_else(|| PlanError::NoSuchNic {
                what: what(),
                mac: *mac,
            })
    };
    let mut el: BTreeMap<&'static str, BTreeMap<String, Option<FlowMatch>>> =
        SETS.iter().map(|(n, _)| (*n, BTreeMap::new())).collect();
    let mut add = |set: &'static str, e: String, f: Option<FlowMatch>| {
        el.get_mut(set).expect("declared set").insert(e, f);
    };

    // NICs: hairpin networks, default actions, the management interface.
    let mut mgmt = None;
    for nic in model.nics.values() {
        let name = ifname(&nic.mac, &|| format!("nic {}: mac", nic.mac))?;
        if nic.category == NicCategory::Management && mgmt.is_none() {
            mgmt = Some(name.clone());
        }
        if nic.category == NicCategory::Private {
            if let Some(net) = nic.network() {
                add("hairpin_nets", format!("\"{name}\" . {net}"), None);
            }
            if nic.default_action == Some(DefaultAction::Reject) {
                add("reject_into", format!("\"{name}\""), None);
            }
        }
    }

    if model.snat_enabled {
        for s in model.snats.values().filter(|s| s.enabled) {
            let what = || format!("snat {}: publicNicMac", s.key());
            let pub_if = ifname(&s.public_mac, &what)?;
            ifname(&s.private_mac, &|| {
                format!("snat {}: privateNicMac", s.key())
            })?;
            add(
                "snat_out",
                format!("\"{pub_if}\" . {} : {}", s.private_net, s.public_ip),
                Some(FlowMatch::SrcNet(s.private_net)),
            );
            add("count_snat_out", snat_counter(&pub_if, s), None);
        }
    }

    for e in model.eips.values() {
        for (set, el, f) in eip_elements(e, obs.links)? {
            add(set, el, f);
        }
    }
    for r in model.port_forwards.values() {
        for (set, el, f) in pf_elements(r, obs.links)? {
            add(set, el, f);
        }
    }

    let (skeleton, chain_rules) = skeleton(mgmt.as_ref(), obs.agent_port);
    Ok(Ruleset {
        skeleton,
        elements: el,
        chain_rules,
    })
}

impl Ruleset {
    /// Record an element-level change the kernel has taken.
    pub fn commit(&mut self, gone: Vec<Element>, came: Vec<Element>) {
        for (set, el, _) in gone {
            if let Some(m) = self.elements.get_mut(set) {
                m.remove(&el);
            }
        }
        for (set, el, f) in came {
            self.elements.entry(set).or_default().insert(el, f);
        }
    }
}
