//! NIC and VIP plan: which links to set up and which addresses to add or
//! remove, from the difference between two desired states.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use common::net::{IfName, Mac};

use super::PlanError;
use vr_model::{Edit, Model, Nic};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOp {
    /// Bring the link up, with this MTU if given.
    Up { ifname: IfName, mtu: Option<u32> },
    AddAddr {
        ifname: IfName,
        ip: IpAddr,
        prefix: u8,
    },
    DelAddr {
        ifname: IfName,
        ip: IpAddr,
        prefix: u8,
    },
    /// Replace the default route of the gateway's family.
    DefaultRoute { ifname: IfName, gateway: IpAddr },
    /// Make `ip` the NIC's first address (ZStack's syncVip ordering).
    PrimaryFirst {
        ifname: IfName,
        ip: Ipv4Addr,
        prefix: u8,
    },
    /// Announce an address: gratuitous ARP (IPv4), unsolicited
    /// neighbour advertisement (IPv6).
    Announce { ifname: IfName, ip: IpAddr },
}

impl LinkOp {
    /// The link the operation changes.
    pub fn ifname(&self) -> &IfName {
        match self {
            LinkOp::Up { ifname, .. }
            | LinkOp::AddAddr { ifname, .. }
            | LinkOp::DelAddr { ifname, .. }
            | LinkOp::DefaultRoute { ifname, .. }
            | LinkOp::PrimaryFirst { ifname, .. }
            | LinkOp::Announce { ifname, .. } => ifname,
        }
    }
}

type Addrs = BTreeSet<(Mac, IpAddr, u8)>;

/// Addresses the model wants on the box: NIC primaries (IPv4 and IPv6) and VIPs.
fn addresses(m: &Model) -> Addrs {
    let v4 = m
        .nics
        .values()
        .filter_map(|n| n.ip.map(|(ip, p)| (n.mac, IpAddr::V4(ip), p)));
    let v6 = m
        .nics
        .values()
        .filter_map(|n| n.ip6.map(|(ip, p)| (n.mac, IpAddr::V6(ip), p)));
    let vips = m.vips.values().map(|v| (v.mac, v.ip, v.prefix));
    v4.chain(v6).chain(vips).collect()
}

/// Ops that take the box from `old` to `new`; `old` None means "unknown,
/// ensure everything" (agent start). `edit` adds what only the command says
/// (syncVip primaries).
pub fn plan(
    old: Option<&Model>,
    new: &Model,
    edit: Option<&Edit>,
    links: &BTreeMap<Mac, IfName>,
) -> Result<Vec<LinkOp>, PlanError> {
    let name = |mac: &Mac, what: &str| {
        links.get(mac).cloned().ok_or_else(|| PlanError::NoSuchNic {
            what: what.to_string(),
            mac: *mac,
        })
    };
    let mut ops = vec![];
    let old_addrs = old.map(addresses).unwrap_or_default();
    let new_addrs = addresses(new);
    let changed = |n: &Nic| old.and_then(|o| o.nics.get(&n.mac)) != Some(n);

    for nic in new.nics.values().filter(|n| changed(n)) {
        let ifname = name(&nic.mac, &format!("nic {}: mac", nic.mac))?;
        ops.push(LinkOp::Up {
            ifname: ifname.clone(),
            mtu: nic.mtu,
        });
    }
    for (mac, ip, prefix) in old_addrs.difference(&new_addrs) {
        // A NIC that is gone from the box has no address to remove.
        if let Some(ifname) = links.get(mac) {
            ops.push(LinkOp::DelAddr {
                ifname: ifname.clone(),
                ip: *ip,
                prefix: *prefix,
            });
        }
    }
    for (mac, ip, prefix) in new_addrs.difference(&old_addrs) {
        let ifname = name(mac, &format!("address {ip}: owner mac"))?;
        ops.push(LinkOp::AddAddr {
            ifname: ifname.clone(),
            ip: *ip,
            prefix: *prefix,
        });
        if new.vips.contains_key(ip) {
            ops.push(LinkOp::Announce { ifname, ip: *ip });
        }
    }
    for nic in new
        .nics
        .values()
        .filter(|n| changed(n) && n.is_default_route)
    {
        let gateways = [nic.gateway.map(IpAddr::V4), nic.gateway6.map(IpAddr::V6)];
        for gateway in gateways.into_iter().flatten() {
            ops.push(LinkOp::DefaultRoute {
                ifname: name(&nic.mac, "nic")?,
                gateway,
            });
        }
    }
    if let Some(Edit::CreateVips { primaries, .. }) = edit {
        for (mac, ip, prefix) in primaries {
            ops.push(LinkOp::PrimaryFirst {
                ifname: name(mac, &format!("nicIps {ip}: ownerEthernetMac"))?,
                ip: *ip,
                prefix: *prefix,
            });
        }
    }
    Ok(ops)
}
