//! Protocol bodies -> validated model entries. Each error names the entry
//! (list position and its identity) and the field, in the protocol's names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::net::{Ipv4Net, Mac, PortRange, Proto, netmask_prefix, parse_ipv4};
use common::text::{excerpt, quoted};
use common::vr;

use super::{DefaultAction, Edit, Eip, Nic, NicCategory, PortForward, Snat, Vip};

/// A field-level validation error: "<entry>: <field>: <reason>".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {field}: {reason}")]
pub struct FieldError {
    pub entry: String,
    pub field: &'static str,
    pub reason: String,
}

/// One entry of a request, by its position and identity, for errors.
pub(crate) struct Entry(pub(crate) String);

impl Entry {
    pub(crate) fn err(&self, field: &'static str, reason: impl ToString) -> FieldError {
        FieldError {
            entry: self.0.clone(),
            field,
            reason: reason.to_string(),
        }
    }
    pub(crate) fn mac(&self, field: &'static str, s: &str) -> Result<Mac, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        s.trim().parse().map_err(|e| self.err(field, e))
    }
    pub(crate) fn ip(&self, field: &'static str, s: &str) -> Result<Ipv4Addr, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        parse_ipv4(s).map_err(|e| self.err(field, e))
    }
    /// An address a host, VIP or guest can have: not 0.0.0.0, broadcast,
    /// loopback, multicast or link-local (none of them can be a NIC's,
    /// a VIP's or a guest's address on a routed network).
    pub(crate) fn host_ip(&self, field: &'static str, s: &str) -> Result<Ipv4Addr, FieldError> {
        let ip = self.ip(field, s)?;
        check_host_ip(ip).map_err(|r| self.err(field, r))?;
        Ok(ip)
    }
    /// [`Self::host_ip`], and not the network or broadcast address of its
    /// subnet when the prefix is known (and leaves room for both).
    pub(crate) fn host_in(
        &self,
        field: &'static str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), FieldError> {
        check_host_in(ip, prefix).map_err(|r| self.err(field, r))
    }
    /// An optional gateway: a unicast address when given.
    pub(crate) fn opt_gateway(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv4Addr>, FieldError> {
        let ip = self.opt_ip(field, s)?;
        if let Some(ip) = ip {
            check_host_ip(ip).map_err(|r| self.err(field, r))?;
        }
        Ok(ip)
    }
    pub(crate) fn opt_ip(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv4Addr>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => self.ip(field, s).map(Some),
        }
    }
    pub(crate) fn opt_ip6(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv6Addr>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => {
                let ip: Ipv6Addr = s.parse().map_err(|_| {
                    self.err(field, format!("{} is not an IPv6 address", quoted(s)))
                })?;
                check_ip6(ip).map_err(|r| self.err(field, r))?;
                Ok(Some(ip))
            }
        }
    }
    pub(crate) fn prefix6(&self, field: &'static str, p: Option<i64>) -> Result<u8, FieldError> {
        match p {
            None => Err(self.err(field, "is missing")),
            Some(p) if (1..=128).contains(&p) => Ok(p as u8),
            Some(p) => Err(self.err(field, format!("{p} is outside 1-128"))),
        }
    }
    pub(crate) fn netmask(&self, field: &'static str, s: &str) -> Result<u8, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        netmask_prefix(s).map_err(|e| self.err(field, e))
    }
    pub(crate) fn opt_netmask(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<u8>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => netmask_prefix(s).map(Some).map_err(|e| self.err(field, e)),
        }
    }
    pub(crate) fn mtu(
        &self,
        field: &'static str,
        m: Option<i64>,
    ) -> Result<Option<u32>, FieldError> {
        match m {
            None | Some(0) => Ok(None),
            Some(m) if (68..=65535).contains(&m) => Ok(Some(m as u32)),
            Some(m) => Err(self.err(field, format!("{m} is outside 68-65535"))),
        }
    }
    /// A host or domain name: dot-separated labels of letters, digits, '-'
    /// and '_', 1-63 bytes each, 253 in all. Anything else (newline, comma,
    /// '#', whitespace, control characters) could inject a directive.
    pub(crate) fn name(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<String>, FieldError> {
        let s = match s.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(s) => s.trim_end_matches('.'),
        };
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(self.err(
                field,
                format!("{} contains {c:?}, not allowed in a name", quoted(s)),
            ));
        }
        if s.len() > 253 || s.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(self.err(
                field,
                format!(
                    "{} is not a valid DNS name (labels of 1-63, 253 in all)",
                    quoted(s)
                ),
            ));
        }
        Ok(Some(s.to_ascii_lowercase()))
    }
}

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

/// Refuses a batch where two entries share `key` (a uuid, an IP, a MAC):
/// a map would silently keep only the last one.
pub(crate) fn unique<T>(
    list: &[T],
    name: &str,
    field: &'static str,
    key: impl Fn(&T) -> String,
) -> Result<(), FieldError> {
    let mut seen = std::collections::BTreeMap::new();
    for (i, x) in list.iter().enumerate() {
        if let Some(j) = seen.insert(key(x), i) {
            return Err(FieldError {
                entry: format!("{name}[{i}]"),
                field,
                reason: format!("{} is also in {name}[{j}]", excerpt(&key(x))),
            });
        }
    }
    Ok(())
}

/// Why `ip` cannot be a host's, a VIP's or a guest's address.
pub fn check_host_ip(ip: Ipv4Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "is the unspecified address"
    } else if ip.is_broadcast() {
        "is the broadcast address"
    } else if ip.is_loopback() {
        "is a loopback address"
    } else if ip.is_multicast() {
        "is a multicast address"
    } else if ip.is_link_local() {
        "is a link-local address"
    } else if ip.octets()[0] >= 240 {
        "is a reserved (class E) address"
    } else {
        return Ok(());
    };
    Err(format!("{ip} {why}"))
}

/// Why `ip` cannot be a host of its /`prefix` subnet: its network or
/// broadcast address (a /31 or /32 has neither).
pub fn check_host_in(ip: Ipv4Addr, prefix: u8) -> Result<(), String> {
    if prefix >= 31 {
        return Ok(());
    }
    let net = Ipv4Net::containing(ip, prefix);
    let host_bits = u32::MAX >> prefix;
    let bits = u32::from(ip);
    if bits & host_bits == 0 {
        return Err(format!("{ip} is the network address of {net}"));
    }
    if bits & host_bits == host_bits {
        return Err(format!("{ip} is the broadcast address of {net}"));
    }
    Ok(())
}

/// Why `ip` cannot be a NIC's, a VIP's or a gateway's IPv6 address.
pub fn check_ip6(ip: Ipv6Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "is the unspecified address"
    } else if ip.is_loopback() {
        "is the loopback address"
    } else if ip.is_multicast() {
        "is a multicast address"
    } else {
        return Ok(());
    };
    Err(format!("{ip} {why}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_entry_and_field() {
        let r = vr::PortForwardingRule {
            uuid: "u1".into(),
            vip_port_start: 80,
            vip_port_end: 80,
            private_port_start: 80,
            private_port_end: 80,
            protocol_type: "TCP".into(),
            vip_ip: "172.20.10.300".into(),
            public_mac: "fa:26:9c:aa:00:02".into(),
            private_ip: "192.168.100.10".into(),
            private_mac: "fa:26:9c:aa:00:03".into(),
            ..Default::default()
        };
        let e = port_forwards(std::slice::from_ref(&r))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "rules[0] (uuid u1): vipIp: \"172.20.10.300\" is not an IPv4 address"
        );
        let mut r2 = r;
        r2.vip_ip = "172.20.10.100".into();
        r2.vip_port_end = 90;
        r2.private_port_end = 85;
        let e = port_forwards(&[r2]).unwrap_err().to_string();
        assert!(e.contains("privatePortStart/privatePortEnd"), "{e}");
    }

    #[test]
    fn allowed_cidr_any_means_everyone() {
        let r = vr::PortForwardingRule {
            uuid: "u1".into(),
            vip_port_start: 80,
            vip_port_end: 80,
            private_port_start: 80,
            private_port_end: 80,
            protocol_type: "udp".into(),
            vip_ip: "172.20.10.100".into(),
            public_mac: "fa:26:9c:aa:00:02".into(),
            private_ip: "192.168.100.10".into(),
            private_mac: "fa:26:9c:aa:00:03".into(),
            allowed_cidr: Some("0.0.0.0/0".into()),
            ..Default::default()
        };
        assert_eq!(port_forward(0, &r).unwrap().allowed, None);
    }
}
