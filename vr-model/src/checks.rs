//! Semantic checks of DHCP batches (issue 13): the conversion in
//! `plan::dnsmasq` makes the entries; these refuse what a map would
//! silently collapse or dnsmasq would hand out wrongly, naming entry and field.

use std::net::Ipv4Addr;

use crate::dhcp::{DhcpEntry, DhcpServer};
use crate::field::{FieldError, check_host_in, check_host_ip, unique};

/// One batch of static leases (`dhcpEntries`, or a server's `dhcpInfos`):
/// each IP a guest can have, not its gateway's, and no MAC or IP twice on
/// one VR NIC.
pub fn dhcp_entries(name: &str, entries: &[DhcpEntry]) -> Result<(), FieldError> {
    for (i, e) in entries.iter().enumerate() {
        let err = |field, reason| FieldError {
            entry: format!("{name}[{i}] (mac {})", e.mac),
            field,
            reason,
        };
        check_host_ip(e.ip).map_err(|r| err("ip", r))?;
        if let Some(p) = e.netmask {
            check_host_in(e.ip, p).map_err(|r| err("ip", r))?;
        }
        if let Some(gw) = e.gateway {
            check_host_ip(gw).map_err(|r| err("gateway", r))?;
            if gw == e.ip {
                return Err(err("ip", format!("{} is the gateway's own address", e.ip)));
            }
        }
        for d in &e.dns {
            check_dns(*d).map_err(|r| err("dns", r))?;
        }
    }
    unique(entries, name, "mac", |e| {
        format!("{} on VR NIC {}", e.mac, e.vr_nic_mac)
    })?;
    unique(entries, name, "ip", |e| {
        format!("{} on VR NIC {}", e.ip, e.vr_nic_mac)
    })?;
    Ok(())
}

/// A DNS server handed to guests: any unicast address (a loopback one
/// means nothing to a guest).
fn check_dns(ip: Ipv4Addr) -> Result<(), String> {
    check_host_ip(ip)
}

/// `dhcpServers`: one server per VR NIC, a unicast gateway and DNS, and
/// valid leases (across servers too: a guest MAC is leased once per NIC).
pub fn dhcp_servers(servers: &[(DhcpServer, Vec<DhcpEntry>)]) -> Result<(), FieldError> {
    unique(servers, "dhcpServers", "nicMac", |(s, _)| {
        s.nic_mac.to_string()
    })?;
    for (i, (s, entries)) in servers.iter().enumerate() {
        let err = |field, reason| FieldError {
            entry: format!("dhcpServers[{i}] (nicMac {})", s.nic_mac),
            field,
            reason,
        };
        if let Some(gw) = s.gateway {
            check_host_ip(gw).map_err(|r| err("gateway", r))?;
            check_host_in(gw, s.subnet.prefix_len()).map_err(|r| err("gateway", r))?;
        }
        if let Some(d) = s.dns_server {
            check_dns(d).map_err(|r| err("dnsServer", r))?;
        }
        dhcp_entries(&format!("dhcpServers[{i}].dhcpInfos"), entries)?;
    }
    Ok(())
}

// ---- The management plane (issue 14) ----
//
// The agent serves the controller on the management NIC's IP, port
// [`agent_port`] (7272, the protocol's, unless `--listen` names another). No tenant entry may take that
// address or port: a PF or TCP listener there would hand the controller's
// commands to a guest, an EIP or VIP on it would take the address itself
// (removing a VIP flushes it from the NIC). Whole-model checks, so the batch
// path (`validate`), the one-entry path (`check_added`) and boot agree.

use std::sync::atomic::{AtomicU16, Ordering};

/// The protocol's port of the VR agent.
pub const DEFAULT_AGENT_PORT: u16 = 7272;

/// The port the agent serves on (`--listen`'s, else the protocol's 7272):
/// a fact of the process, set once at start.
static AGENT_PORT: AtomicU16 = AtomicU16::new(DEFAULT_AGENT_PORT);

pub fn set_agent_port(port: u16) {
    AGENT_PORT.store(port, Ordering::Relaxed);
}

fn agent_port() -> u16 {
    AGENT_PORT.load(Ordering::Relaxed)
}
use crate::lb::{LbMode, Listener};
use crate::{Eip, Invalid, Model, Nic, NicCategory, PortForward, Vip};
use common::net::Proto;

/// The management NICs' addresses, with the NIC's MAC.
pub fn mgmt_ips(m: &Model) -> Vec<(Ipv4Addr, common::net::Mac)> {
    m.nics
        .values()
        .filter(|n| n.category == NicCategory::Management)
        .filter_map(|n| n.ip.map(|(ip, _)| (ip, n.mac)))
        .collect()
}

fn on_mgmt(ip: Ipv4Addr, mgmt: &[(Ipv4Addr, common::net::Mac)]) -> Option<common::net::Mac> {
    mgmt.iter().find(|(m, _)| *m == ip).map(|(_, mac)| *mac)
}

pub fn pf_vs_mgmt(r: &PortForward, mgmt: &[(Ipv4Addr, common::net::Mac)]) -> Result<(), Invalid> {
    let port = agent_port();
    let covers = r.proto == Proto::Tcp && r.vip_ports.start <= port && port <= r.vip_ports.end;
    match on_mgmt(r.vip, mgmt) {
        Some(mac) if covers => Err(Invalid::Router(format!(
            "port forwarding rule {}: tcp ports {} on vipIp {} cover the agent's port {port} on the management IP (management NIC {mac})",
            r.uuid, r.vip_ports, r.vip
        ))),
        _ => Ok(()),
    }
}

pub fn eip_vs_mgmt(e: &Eip, mgmt: &[(Ipv4Addr, common::net::Mac)]) -> Result<(), Invalid> {
    match on_mgmt(e.vip, mgmt) {
        Some(mac) => Err(Invalid::Router(format!(
            "eip {}: vipIp {} is the management IP (management NIC {mac}); the controller reaches the agent there",
            e.vip, e.vip
        ))),
        None => Ok(()),
    }
}

pub fn vip_vs_mgmt(v: &Vip, mgmt: &[(Ipv4Addr, common::net::Mac)]) -> Result<(), Invalid> {
    let std::net::IpAddr::V4(ip) = v.ip else {
        return Ok(());
    };
    match on_mgmt(ip, mgmt) {
        Some(mac) => Err(Invalid::Router(format!(
            "vip {ip}: is the management IP (management NIC {mac}); the controller reaches the agent there"
        ))),
        None => Ok(()),
    }
}

pub fn listener_vs_mgmt(
    l: &Listener,
    mgmt: &[(Ipv4Addr, common::net::Mac)],
) -> Result<(), Invalid> {
    let port = agent_port();
    match on_mgmt(l.vip, mgmt) {
        Some(mac) if l.port == port && l.mode != LbMode::Udp => Err(Invalid::Router(format!(
            "listener {}: {} port {port} on vip {} is the agent's port on the management IP (management NIC {mac})",
            l.uuid,
            l.mode.l4(),
            l.vip
        ))),
        _ => Ok(()),
    }
}

/// Every entry of the model against its management IPs.
pub fn management_plane(m: &Model) -> Result<(), Invalid> {
    let mgmt = mgmt_ips(m);
    if mgmt.is_empty() {
        return Ok(());
    }
    m.port_forwards
        .values()
        .try_for_each(|r| pf_vs_mgmt(r, &mgmt))?;
    m.eips.values().try_for_each(|e| eip_vs_mgmt(e, &mgmt))?;
    m.vips.values().try_for_each(|v| vip_vs_mgmt(v, &mgmt))?;
    m.lb.listeners
        .values()
        .try_for_each(|l| listener_vs_mgmt(l, &mgmt))
}

/// A `/configurenic` entry for a NIC that is the management NIC keeps its
/// category and address (the agent's guard and listener are on them).
pub fn mgmt_nic_change(old: &Nic, new: &Nic) -> Result<(), Invalid> {
    if old.category != NicCategory::Management {
        return Ok(());
    }
    if new.category != NicCategory::Management {
        return Err(Invalid::Router(format!(
            "nic {}: is the management NIC; its category cannot change from Management to {:?}",
            old.mac, new.category
        )));
    }
    let (was, is) = (old.ip.map(|(ip, _)| ip), new.ip.map(|(ip, _)| ip));
    if was.is_some() && was != is {
        return Err(Invalid::Router(format!(
            "nic {}: is the management NIC; its IP cannot move from {} to {} (the agent serves the controller there)",
            old.mac,
            was.map_or("none".into(), |i| i.to_string()),
            is.map_or("none".into(), |i| i.to_string())
        )));
    }
    Ok(())
}

/// `/removenic` of the management NIC would cut the controller off (boot
/// forgets a management NIC the bootstrap info replaced with its own edit).
pub fn mgmt_nic_removal(n: &Nic) -> Result<(), Invalid> {
    if n.category == NicCategory::Management {
        return Err(Invalid::Router(format!(
            "nic {}: is the management NIC; removing it would cut the controller off from the agent",
            n.mac
        )));
    }
    Ok(())
}

/// What a persisted state (of an older agent) holds on these management
/// IPs: dropped at boot, before the bootstrap info's NICs are configured.
pub fn clear_management_plane(m: &mut Model, ips: &[Ipv4Addr]) -> Vec<String> {
    let mgmt: Vec<_> = ips
        .iter()
        .map(|ip| (*ip, common::net::Mac([0u8; 6])))
        .collect();
    let mut dropped = vec![];
    m.port_forwards.retain(|u, r| {
        let keep = pf_vs_mgmt(r, &mgmt).is_ok();
        if !keep {
            dropped.push(format!("port forwarding rule {u}"));
        }
        keep
    });
    m.eips.retain(|vip, e| {
        let keep = eip_vs_mgmt(e, &mgmt).is_ok();
        if !keep {
            dropped.push(format!("eip {vip}"));
        }
        keep
    });
    m.vips.retain(|ip, v| {
        let keep = vip_vs_mgmt(v, &mgmt).is_ok();
        if !keep {
            dropped.push(format!("vip {ip}"));
        }
        keep
    });
    m.lb.listeners.retain(|u, l| {
        let keep = listener_vs_mgmt(l, &mgmt).is_ok();
        if !keep {
            dropped.push(format!("listener {u}"));
        }
        keep
    });
    dropped
}

// ---------------------------------------------------------------- pairs
//
// Conflicts between two entries, one function each, so the whole-model
// path (`Model::validate`) and the one-entry path (`Model::check_added`)
// refuse the same things with the same words.

/// Port forwards on one VIP and protocol whose port ranges overlap.
pub fn pf_vs_pf(r: &PortForward, o: &PortForward) -> Result<(), Invalid> {
    if o.vip == r.vip && o.proto == r.proto && o.vip_ports.overlaps(&r.vip_ports) {
        return Err(Invalid::Clash(format!(
            "port forwarding rule {}: {} ports {} on vipIp {} overlap rule {} ({})",
            r.uuid, r.proto, r.vip_ports, r.vip, o.uuid, o.vip_ports
        )));
    }
    Ok(())
}

/// A VIP is either an EIP (all its ports) or carries port forwards.
pub fn pf_vs_eip(r: &PortForward, e: &Eip) -> Result<(), Invalid> {
    if r.vip == e.vip {
        return Err(Invalid::Clash(format!(
            "port forwarding rule {}: vipIp {} is the EIP of guest {}",
            r.uuid, r.vip, e.guest
        )));
    }
    Ok(())
}

/// Outbound EIP traffic is keyed by (public NIC, guest): one EIP each.
pub fn eip_vs_eip(e: &Eip, o: &Eip) -> Result<(), Invalid> {
    if o.vip != e.vip && o.public_mac == e.public_mac && o.guest == e.guest {
        return Err(Invalid::Clash(format!(
            "eip {}: guest {} already has EIP {} on the same public NIC {}",
            e.vip, e.guest, o.vip, e.public_mac
        )));
    }
    Ok(())
}

/// A listener's VIP is not an EIP.
pub fn listener_vs_eip(l: &Listener, e: &Eip) -> Result<(), Invalid> {
    if l.vip == e.vip {
        return Err(Invalid::Clash(format!(
            "listener {}: vip {} is the EIP of guest {}",
            l.uuid, l.vip, e.guest
        )));
    }
    Ok(())
}

/// A listener's VIP port is the listener's alone.
pub fn listener_vs_pf(l: &Listener, r: &PortForward) -> Result<(), Invalid> {
    let proto = if l.mode == LbMode::Udp {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    if r.vip == l.vip
        && r.proto == proto
        && r.vip_ports.start <= l.port
        && l.port <= r.vip_ports.end
    {
        return Err(Invalid::Clash(format!(
            "listener {}: {proto} port {} on vip {} is forwarded by port forwarding rule {}",
            l.uuid, l.port, l.vip, r.uuid
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Edit;
    use common::net::{Mac, PortRange};

    const MGMT: &str = "fa:26:9c:aa:00:01";

    fn nic(ip: &str, category: NicCategory) -> Nic {
        Nic {
            mac: MGMT.parse().unwrap(),
            ip: Some((ip.parse().unwrap(), 24)),
            gateway: None,
            is_default_route: false,
            category,
            mtu: None,
            default_action: None,
            ip6: None,
            gateway6: None,
        }
    }

    fn pf(proto: Proto, start: u16, end: u16) -> PortForward {
        PortForward {
            uuid: "r".into(),
            proto,
            vip: "10.0.0.25".parse().unwrap(),
            vip_ports: PortRange { start, end },
            private_ip: "192.168.100.10".parse().unwrap(),
            private_ports: PortRange { start, end },
            public_mac: MGMT.parse().unwrap(),
            private_mac: "fa:26:9c:aa:00:03".parse().unwrap(),
            allowed: None,
            snat_inbound: false,
        }
    }

    #[test]
    fn the_agent_port_and_address_are_the_controllers() {
        let mut m = Model::default();
        m.apply(&Edit::ConfigureNics(vec![nic(
            "10.0.0.25",
            NicCategory::Management,
        )]))
        .unwrap();
        let mgmt = mgmt_ips(&m);
        let e = pf_vs_mgmt(&pf(Proto::Tcp, 7000, 7300), &mgmt)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rule r") && e.contains("7272") && e.contains(MGMT),
            "{e}"
        );
        pf_vs_mgmt(&pf(Proto::Tcp, 7273, 7300), &mgmt).unwrap();
        pf_vs_mgmt(&pf(Proto::Udp, 7272, 7272), &mgmt).unwrap();
        // The whole-model check and the one-rule check agree.
        let add = Edit::CreatePortForwards(vec![pf(Proto::Tcp, 7272, 7272)]);
        assert!(m.check_added(&add).is_err());
        let mut next = m.clone();
        next.apply(&add).unwrap();
        assert!(next.validate().is_err());
        // A NIC that becomes the management NIC under an existing rule.
        let mut m2 = Model::default();
        m2.apply(&add).unwrap();
        m2.validate().unwrap();
        m2.apply(&Edit::ConfigureNics(vec![nic(
            "10.0.0.25",
            NicCategory::Management,
        )]))
        .unwrap();
        assert!(m2.validate().is_err());
        // Boot drops it.
        let dropped = clear_management_plane(&mut m2, &["10.0.0.25".parse().unwrap()]);
        assert_eq!(dropped, vec!["port forwarding rule r".to_string()]);
        m2.validate().unwrap();
    }

    #[test]
    fn the_management_nic_keeps_its_category_and_address() {
        let old = nic("10.0.0.25", NicCategory::Management);
        mgmt_nic_change(&old, &old).unwrap();
        let e = mgmt_nic_change(&old, &nic("10.0.0.25", NicCategory::Private))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Management") && e.contains("Private"), "{e}");
        let e = mgmt_nic_change(&old, &nic("10.0.0.26", NicCategory::Management))
            .unwrap_err()
            .to_string();
        assert!(e.contains("10.0.0.25") && e.contains("10.0.0.26"), "{e}");
        // Any other NIC may become the management NIC.
        mgmt_nic_change(&nic("10.0.0.25", NicCategory::Private), &old).unwrap();
        let _: Mac = old.mac;
    }
}
