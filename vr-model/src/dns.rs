//! DNS forwarding of the router (dnsmasq's upstreams and the NICs it
//! answers on): from `/setdns` and `/setvpcdns` bodies.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::net::Mac;
use common::vr;
use serde::{Deserialize, Serialize};

use crate::field::{Entry, FieldError};

/// DNS forwarding (`/setdns`): upstream servers and the NICs DNS listens on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsConfig {
    /// In the controller's order, without duplicates.
    pub upstreams: Vec<Ipv4Addr>,
    pub listen: BTreeSet<Mac>,
}

/// `/setdns` (the complete list) and the addresses of `/removedns`.
pub fn dns(cmd: &vr::DnsCmd) -> Result<DnsConfig, FieldError> {
    let mut cfg = DnsConfig::default();
    for (i, d) in cmd.dns.iter().enumerate() {
        let e = Entry(format!("dns[{i}] (dnsAddress {})", d.dns_address));
        let ip = e.ip("dnsAddress", &d.dns_address)?;
        if !cfg.upstreams.contains(&ip) {
            cfg.upstreams.push(ip);
        }
        if let Some(m) = d.nic_mac.as_deref().filter(|m| !m.trim().is_empty()) {
            cfg.listen.insert(e.mac("nicMac", m)?);
        }
    }
    Ok(cfg)
}

/// `/setvpcdns`.
pub fn vpc_dns(cmd: &vr::SetVpcDnsCmd) -> Result<DnsConfig, FieldError> {
    let mut cfg = DnsConfig::default();
    for (i, d) in cmd.dns.iter().enumerate() {
        let ip = Entry(format!("dns[{i}]")).ip("dns", d)?;
        if !cfg.upstreams.contains(&ip) {
            cfg.upstreams.push(ip);
        }
    }
    for (i, m) in cmd.nic_mac.iter().enumerate() {
        cfg.listen
            .insert(Entry(format!("nicMac[{i}]")).mac("nicMac", m)?);
    }
    Ok(cfg)
}
