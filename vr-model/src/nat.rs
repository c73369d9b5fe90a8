//! SNAT, VIPs, port forwards and EIPs: the NAT the router does; from
//! `SnatInfo`, `VipInfo`, `PortForwardingRule` and `EipInfo` bodies.

use std::net::{IpAddr, Ipv4Addr};

use common::net::{Ipv4Net, Mac, PortRange, Proto};
use common::text::excerpt;
use common::vr;
use serde::{Deserialize, Serialize};

use crate::field::{Entry, FieldError, unique};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snat {
    pub public_mac: Mac,
    pub public_ip: Ipv4Addr,
    pub private_mac: Mac,
    /// The guest network, from `privateNicIp` and `snatNetmask`.
    pub private_net: Ipv4Net,
    pub enabled: bool,
}

impl Snat {
    pub fn key(&self) -> String {
        format!("{}/{}", self.private_mac, self.private_net)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vip {
    /// IPv4 (`ip`, `netmask`) or IPv6 (`ip6`, `prefixLength`).
    pub ip: IpAddr,
    pub prefix: u8,
    pub mac: Mac,
    pub is_system: bool,
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    pub uuid: String,
    pub proto: Proto,
    pub vip: Ipv4Addr,
    pub vip_ports: PortRange,
    pub private_ip: Ipv4Addr,
    pub private_ports: PortRange,
    pub public_mac: Mac,
    pub private_mac: Mac,
    /// Sources allowed to use the rule; None means everyone.
    pub allowed: Option<Ipv4Net>,
    pub snat_inbound: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip {
    pub vip: Ipv4Addr,
    pub guest: Ipv4Addr,
    pub public_mac: Mac,
    pub private_mac: Mac,
    pub snat_inbound: bool,
}

// ---------------------------------------------------------------- from the wire

pub fn snat(name: &str, s: &vr::SnatInfo) -> Result<Snat, FieldError> {
    let e = Entry(format!(
        "{name} (privateNicMac {})",
        excerpt(&s.private_nic_mac)
    ));
    let private_ip = e.host_ip("privateNicIp", &s.private_nic_ip)?;
    Ok(Snat {
        public_mac: e.mac("publicNicMac", &s.public_nic_mac)?,
        public_ip: e.host_ip("publicIp", &s.public_ip)?,
        private_mac: e.mac("privateNicMac", &s.private_nic_mac)?,
        private_net: Ipv4Net::containing(private_ip, e.netmask("snatNetmask", &s.snat_netmask)?),
        enabled: s.state.unwrap_or(true),
    })
}

pub fn snats(key: &str, list: &[vr::SnatInfo]) -> Result<Vec<Snat>, FieldError> {
    let out: Vec<Snat> = list
        .iter()
        .enumerate()
        .map(|(i, s)| snat(&format!("{key}[{i}]"), s))
        .collect::<Result<_, _>>()?;
    unique(&out, key, "privateNicMac/privateNicIp", Snat::key)?;
    Ok(out)
}

/// A VIP is IPv4 (`ip`, `netmask`) or IPv6 (`ip6`, `prefixLength`, and
/// no `ip`): VipTO.valueOf sets one or the other.
fn vip_ip(e: &Entry, v: &vr::VipInfo) -> Result<(IpAddr, u8), FieldError> {
    if v.ip.trim().is_empty() {
        let Some(ip6) = e.opt_ip6("ip6", &v.ip6)? else {
            return Err(e.err("ip", "is missing (and no ip6)"));
        };
        // An IPv6 VIP without a prefix length is one host, like an IPv4
        // VIP without a netmask.
        let prefix = match v.prefix_length {
            0 => 128,
            p => e.prefix6("prefixLength", Some(p))?,
        };
        return Ok((IpAddr::V6(ip6), prefix));
    }
    let ip = e.host_ip("ip", &v.ip)?;
    let prefix = if v.netmask.is_empty() {
        32
    } else {
        e.netmask("netmask", &v.netmask)?
    };
    e.host_in("ip", ip, prefix)?;
    Ok((IpAddr::V4(ip), prefix))
}

pub fn vip(i: usize, v: &vr::VipInfo) -> Result<Vip, FieldError> {
    let shown = if v.ip.is_empty() {
        v.ip6.as_deref().unwrap_or("")
    } else {
        &v.ip
    };
    let e = Entry(format!("vips[{i}] (ip {})", excerpt(shown)));
    let (ip, prefix) = vip_ip(&e, v)?;
    Ok(Vip {
        ip,
        prefix,
        mac: e.mac("ownerEthernetMac", &v.owner_ethernet_mac)?,
        is_system: v.is_system,
        uuid: v.vip_uuid.clone().filter(|u| !u.is_empty()),
    })
}

pub fn vips(list: &[vr::VipInfo]) -> Result<Vec<Vip>, FieldError> {
    let out: Vec<Vip> = list
        .iter()
        .enumerate()
        .map(|(i, v)| vip(i, v))
        .collect::<Result<_, _>>()?;
    unique(&out, "vips", "ip", |v| v.ip.to_string())?;
    Ok(out)
}

pub fn vip_ips(list: &[vr::VipInfo]) -> Result<Vec<IpAddr>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, v)| vip_ip(&Entry(format!("vips[{i}]")), v).map(|(ip, _)| ip))
        .collect()
}

pub fn port_forward(i: usize, r: &vr::PortForwardingRule) -> Result<PortForward, FieldError> {
    let e = Entry(format!("rules[{i}] (uuid {})", excerpt(&r.uuid)));
    if r.uuid.trim().is_empty() {
        return Err(e.err("uuid", "is missing"));
    }
    // The uuid names the rule in replies and logs: an id, not text.
    if !super::lb::check_ident(r.uuid.trim()) {
        return Err(e.err("uuid", "is not an id (letters, digits, '-', '_', '.')"));
    }
    let vip_ports = PortRange::new(r.vip_port_start, r.vip_port_end)
        .map_err(|x| e.err("vipPortStart/vipPortEnd", x))?;
    let private_ports = PortRange::new(r.private_port_start, r.private_port_end)
        .map_err(|x| e.err("privatePortStart/privatePortEnd", x))?;
    if !(private_ports.is_single() || private_ports.count() == vip_ports.count()) {
        return Err(e.err(
            "privatePortStart/privatePortEnd",
            format!(
                "private ports {private_ports} must be one port or as many as vip ports {vip_ports}"
            ),
        ));
    }
    let allowed = match r.allowed_cidr.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => {
            let net: Ipv4Net = c.parse().map_err(|x| e.err("allowedCidr", x))?;
            (!net.is_any()).then_some(net)
        }
    };
    Ok(PortForward {
        uuid: r.uuid.trim().to_string(),
        proto: r
            .protocol_type
            .parse::<Proto>()
            .map_err(|x| e.err("protocolType", x))?,
        vip: e.host_ip("vipIp", &r.vip_ip)?,
        vip_ports,
        private_ip: e.host_ip("privateIp", &r.private_ip)?,
        private_ports,
        public_mac: e.mac("publicMac", &r.public_mac)?,
        private_mac: e.mac("privateMac", &r.private_mac)?,
        allowed,
        snat_inbound: r.snat_inbound_traffic,
    })
}

pub fn port_forwards(list: &[vr::PortForwardingRule]) -> Result<Vec<PortForward>, FieldError> {
    let out: Vec<PortForward> = list
        .iter()
        .enumerate()
        .map(|(i, r)| port_forward(i, r))
        .collect::<Result<_, _>>()?;
    unique(&out, "rules", "uuid", |r| r.uuid.clone())?;
    Ok(out)
}

pub fn eip(name: &str, x: &vr::EipInfo) -> Result<Eip, FieldError> {
    let e = Entry(format!("{name} (vipIp {})", excerpt(&x.vip_ip)));
    Ok(Eip {
        vip: e.host_ip("vipIp", &x.vip_ip)?,
        guest: e.host_ip("guestIp", &x.guest_ip)?,
        public_mac: e.mac("publicMac", &x.public_mac)?,
        private_mac: e.mac("privateMac", &x.private_mac)?,
        snat_inbound: x.snat_inbound_traffic,
    })
}

pub fn eips(list: &[vr::EipInfo]) -> Result<Vec<Eip>, FieldError> {
    let out: Vec<Eip> = list
        .iter()
        .enumerate()
        .map(|(i, x)| eip(&format!("eips[{i}]"), x))
        .collect::<Result<_, _>>()?;
    unique(&out, "eips", "vipIp", |e| e.vip.to_string())?;
    Ok(out)
}
