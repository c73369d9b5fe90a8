//! Semantic checks of DHCP batches (issue 13): the conversion in
//! `plan::dnsmasq` makes the entries; these refuse what a map would
//! silently collapse or dnsmasq would hand out wrongly, naming entry and field.

use std::net::Ipv4Addr;

use crate::model::from_wire::{FieldError, check_host_in, check_host_ip, unique};
use crate::plan::dnsmasq::{DhcpEntry, DhcpServer};

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
