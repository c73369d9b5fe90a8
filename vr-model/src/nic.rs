//! The router's NICs: their addresses, category, default firewall action,
//! and where the management node lives; from `NicInfo` bodies.

use std::net::{Ipv4Addr, Ipv6Addr};

use common::net::{Ipv4Net, Mac};
use common::text::excerpt;
use common::vr;
use serde::{Deserialize, Serialize};

use crate::Edit;
use crate::field::{Entry, FieldError, unique};
use crate::nat::snats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NicCategory {
    Public,
    Private,
    Management,
}

/// What the forward filter does with new, non-NAT connections into the
/// network behind a private NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub mac: Mac,
    /// Primary address and prefix; None for a NIC only known by its MAC.
    pub ip: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub is_default_route: bool,
    pub category: NicCategory,
    pub mtu: Option<u32>,
    pub default_action: Option<DefaultAction>,
    /// IPv6 address and prefix length (`ip6`, `prefixLength`).
    #[serde(default)]
    pub ip6: Option<(Ipv6Addr, u8)>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

impl Nic {
    pub fn network(&self) -> Option<Ipv4Net> {
        self.ip.map(|(ip, len)| Ipv4Net::containing(ip, len))
    }
}

/// Where the management node lives, as each source last said it: the
/// bootstrap info's `managementNodeCidr` and `/init`'s `mgtCidr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgmtCidrs {
    pub boot: Option<Ipv4Net>,
    pub init: Option<Ipv4Net>,
}

/// Who said where the management node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CidrSource {
    Bootstrap,
    Init,
}

// ---------------------------------------------------------------- from the wire

pub fn nic(i: usize, n: &vr::NicInfo) -> Result<Nic, FieldError> {
    let e = Entry(format!("nics[{i}] (mac {})", excerpt(&n.mac)));
    let mac = e.mac("mac", &n.mac)?;
    let ip = match n.ip.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(ip) => {
            let ip = e.host_ip("ip", ip)?;
            let mask = n.netmask.as_deref().unwrap_or("");
            let prefix = e.netmask("netmask", mask)?;
            e.host_in("ip", ip, prefix)?;
            Some((ip, prefix))
        }
    };
    let category = match n
        .category
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("public") => NicCategory::Public,
        Some("management") | Some("system") => NicCategory::Management,
        Some("private") | None | Some("") => NicCategory::Private,
        Some(other) => {
            return Err(e.err(
                "category",
                format!("{other:?} is not Public, Private, Management or System"),
            ));
        }
    };
    let mtu = e.mtu("mtu", n.mtu)?;
    let ip6 = match e.opt_ip6("ip6", &n.ip6)? {
        None => None,
        Some(ip) => Some((ip, e.prefix6("prefixLength", n.prefix_length)?)),
    };
    Ok(Nic {
        mac,
        ip,
        gateway: e.opt_gateway("gateway", &n.gateway)?,
        is_default_route: n.is_default_route,
        category,
        mtu,
        default_action: default_action(&e, &n.firewall_default_action)?,
        ip6,
        gateway6: e.opt_ip6("gateway6", &n.gateway6)?,
    })
}

fn default_action(e: &Entry, s: &Option<String>) -> Result<Option<DefaultAction>, FieldError> {
    match s.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(None),
        Some("accept") => Ok(Some(DefaultAction::Accept)),
        Some("reject") | Some("drop") => Ok(Some(DefaultAction::Reject)),
        Some(other) => Err(e.err(
            "firewallDefaultAction",
            format!("{other:?} is not accept or reject"),
        )),
    }
}

/// The management node's CIDR (`mgtCidr`, `managementNodeCidr`); empty: none.
pub fn mgmt_cidr(field: &'static str, s: &str) -> Result<Option<Ipv4Net>, FieldError> {
    match s.trim() {
        "" => Ok(None),
        c => c.parse::<Ipv4Net>().map(Some).map_err(|e| FieldError {
            entry: "command".into(),
            field,
            reason: e.to_string(),
        }),
    }
}

pub fn nics(list: &[vr::NicInfo]) -> Result<Vec<Nic>, FieldError> {
    let nics: Vec<Nic> = list
        .iter()
        .enumerate()
        .map(|(i, n)| nic(i, n))
        .collect::<Result<_, _>>()?;
    unique(&nics, "nics", "mac", |n| n.mac.to_string())?;
    Ok(nics)
}

pub fn nic_macs(list: &[vr::NicInfo]) -> Result<Vec<Mac>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, n)| Entry(format!("nics[{i}]")).mac("mac", &n.mac))
        .collect()
}

pub fn default_actions(list: &[vr::NicInfo]) -> Result<Vec<(Mac, DefaultAction)>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, n)| {
            let e = Entry(format!("nics[{i}] (mac {})", excerpt(&n.mac)));
            let mac = e.mac("mac", &n.mac)?;
            let action = default_action(&e, &n.firewall_default_action)?
                .ok_or_else(|| e.err("firewallDefaultAction", "is missing"))?;
            Ok((mac, action))
        })
        .collect()
}

/// `/changeDefaultNic`'s new default NIC and SNATs.
pub fn change_default_nic(c: &vr::ChangeDefaultNicCmd) -> Result<Edit, FieldError> {
    let n = &c.new_nic;
    let e = Entry(format!("newNic (mac {})", excerpt(&n.mac)));
    Ok(Edit::ChangeDefaultNic {
        mac: e.mac("mac", &n.mac)?,
        gateway: e.opt_gateway("gateway", &n.gateway)?,
        gateway6: e.opt_ip6("gateway6", &n.gateway6)?,
        snats: snats("snats", &c.snats)?,
    })
}

/// syncVip's NIC addresses that must stay first on their NIC. NicIpTO
/// carries a NIC's primary address, which is IPv6 for an IPv6-only NIC:
/// address order only matters for IPv4 (the kernel's primary), so those
/// are skipped.
pub fn nic_ips(list: &[vr::NicIpInfo]) -> Result<Vec<(Mac, Ipv4Addr, u8)>, FieldError> {
    list.iter()
        .enumerate()
        .filter(|(_, n)| !n.ip.trim().is_empty() && n.ip.trim().parse::<Ipv6Addr>().is_err())
        .map(|(i, n)| {
            let e = Entry(format!("nicIps[{i}] (ip {})", excerpt(&n.ip)));
            Ok((
                e.mac("ownerEthernetMac", &n.owner_ethernet_mac)?,
                e.ip("ip", &n.ip)?,
                e.netmask("netmask", &n.netmask)?,
            ))
        })
        .collect()
}
