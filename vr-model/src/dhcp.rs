//! DHCP and DNS of the router: the validated desired state dnsmasq serves
//! and the protocol bodies that edit it. vr-agent's `plan::dnsmasq` renders
//! it into dnsmasq's files; every string is validated here, so no value can
//! inject a directive there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::net::{Ipv4Net, Mac};
use common::vr;
use serde::{Deserialize, Serialize};

use crate::dns::DnsConfig;
use crate::field::{Entry, FieldError};

/// The DHCP server on one VR NIC (`DhcpServerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpServer {
    pub nic_mac: Mac,
    /// The guest network; its address and mask make the static `dhcp-range`.
    pub subnet: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns_domain: Option<String>,
    pub dns_server: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
}

/// One static lease: a guest NIC behind a VR NIC (`DhcpInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpEntry {
    pub vr_nic_mac: Mac,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// Only the VM's default network hands out a router, DNS and hostname.
    pub is_default_l3: bool,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Prefix length.
    pub netmask: Option<u8>,
    pub mtu: Option<u32>,
}

impl DhcpEntry {
    pub fn key(&self) -> (Mac, Mac) {
        (self.vr_nic_mac, self.mac)
    }
    /// The dnsmasq tag of this entry: the MAC without colons (as zstack's agent).
    pub fn tag(&self) -> String {
        self.mac.to_string().replace(':', "")
    }
}

/// Everything dnsmasq serves. Entries are keyed by (VR NIC MAC, guest MAC).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsmasqState {
    pub servers: BTreeMap<Mac, DhcpServer>,
    #[serde(with = "entry_list")]
    pub entries: BTreeMap<(Mac, Mac), DhcpEntry>,
    pub dns: DnsConfig,
}

/// Serialized as a list: JSON map keys cannot be tuples.
mod entry_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<(Mac, Mac), DhcpEntry>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(Mac, Mac), DhcpEntry>, D::Error> {
        let v: Vec<DhcpEntry> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|e| (e.key(), e)).collect())
    }
}

/// A lease to release at once (`dhcp_release <ifname of vr_nic_mac> <ip> <mac>`)
/// because its entry was removed or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub vr_nic_mac: Mac,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

impl From<&DhcpEntry> for Release {
    fn from(e: &DhcpEntry) -> Release {
        Release {
            vr_nic_mac: e.vr_nic_mac,
            ip: e.ip,
            mac: e.mac,
        }
    }
}

/// One command's change to [`DnsmasqState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DhcpEdit {
    /// `/adddhcp`. With `rebuild`, the entries of every VR NIC named in the
    /// list are replaced by the list's; otherwise they are merged.
    Add {
        entries: Vec<DhcpEntry>,
        rebuild: bool,
    },
    /// `/removedhcp`: (VR NIC MAC, guest MAC) keys.
    Remove(Vec<(Mac, Mac)>),
    /// `/refreshDhcpServer`: the complete set of servers and their entries.
    Refresh(Vec<(DhcpServer, Vec<DhcpEntry>)>),
    /// `/startDhcpServer`: one server (re)started with its entries.
    Start(Vec<(DhcpServer, Vec<DhcpEntry>)>),
    /// `/stopDhcpServer`: servers and their entries dropped, by VR NIC MAC.
    Stop(Vec<Mac>),
    /// `/setdns` and `/setvpcdns`: the complete upstream and listen sets.
    SetDns(DnsConfig),
    /// `/removedns`: upstream addresses dropped.
    RemoveDns(Vec<Ipv4Addr>),
}

impl DnsmasqState {
    /// Applies `edit`; returns the leases to release (entries removed, or
    /// replaced by one with another IP or MAC).
    pub fn apply(&mut self, edit: &DhcpEdit) -> Vec<Release> {
        let mut gone = Vec::new();
        match edit {
            DhcpEdit::Add { entries, rebuild } => {
                if *rebuild {
                    let nics: BTreeSet<Mac> = entries.iter().map(|e| e.vr_nic_mac).collect();
                    gone.extend(self.drop_entries(|k| nics.contains(&k.0)));
                }
                gone.extend(upsert(&mut self.entries, entries.iter().cloned()));
            }
            DhcpEdit::Remove(keys) => {
                gone.extend(keys.iter().filter_map(|k| self.entries.remove(k)));
            }
            DhcpEdit::Refresh(servers) => {
                let keep: BTreeSet<(Mac, Mac)> = servers
                    .iter()
                    .flat_map(|(_, es)| es.iter().map(DhcpEntry::key))
                    .collect();
                gone.extend(self.drop_entries(|k| !keep.contains(k)));
                self.servers.clear();
                self.put_servers(servers, &mut gone);
            }
            DhcpEdit::Start(servers) => self.put_servers(servers, &mut gone),
            DhcpEdit::Stop(nics) => {
                for nic in nics {
                    self.servers.remove(nic);
                }
                gone.extend(self.drop_entries(|k| nics.contains(&k.0)));
            }
            DhcpEdit::SetDns(cfg) => self.dns = cfg.clone(),
            DhcpEdit::RemoveDns(ips) => self.dns.upstreams.retain(|u| !ips.contains(u)),
        }
        let mut out: Vec<Release> = gone.iter().map(Release::from).collect();
        // An entry replaced by itself (same IP and MAC) keeps its lease.
        out.retain(|r| {
            self.entries
                .get(&(r.vr_nic_mac, r.mac))
                .is_none_or(|e| e.ip != r.ip)
        });
        out.sort();
        out.dedup();
        out
    }

    fn put_servers(&mut self, servers: &[(DhcpServer, Vec<DhcpEntry>)], gone: &mut Vec<DhcpEntry>) {
        for (s, es) in servers {
            self.servers.insert(s.nic_mac, s.clone());
            gone.extend(upsert(&mut self.entries, es.iter().cloned()));
        }
    }

    fn drop_entries(&mut self, mut pred: impl FnMut(&(Mac, Mac)) -> bool) -> Vec<DhcpEntry> {
        let keys: Vec<(Mac, Mac)> = self.entries.keys().filter(|k| pred(k)).copied().collect();
        keys.iter().filter_map(|k| self.entries.remove(k)).collect()
    }
}

/// Inserts or replaces entries. An entry whose IP another guest MAC holds on
/// the same VR NIC replaces that entry (zstack pain point P6). Returns the
/// entries removed or replaced.
pub fn upsert(
    entries: &mut BTreeMap<(Mac, Mac), DhcpEntry>,
    new: impl IntoIterator<Item = DhcpEntry>,
) -> Vec<DhcpEntry> {
    let mut gone = Vec::new();
    for e in new {
        let clash: Vec<(Mac, Mac)> = entries
            .values()
            .filter(|o| o.vr_nic_mac == e.vr_nic_mac && o.ip == e.ip && o.mac != e.mac)
            .map(DhcpEntry::key)
            .collect();
        gone.extend(clash.iter().filter_map(|k| entries.remove(k)));
        if let Some(old) = entries.insert(e.key(), e) {
            gone.push(old);
        }
    }
    gone
}

// ---------------------------------------------------------------- wire -> model

/// One `DhcpInfo`. Inside a server (`/refreshDhcpServer`) the VR NIC and any
/// missing netmask, gateway, DNS, domain and MTU come from the server.
pub fn entry(
    what: String,
    d: &vr::DhcpInfo,
    server: Option<&DhcpServer>,
) -> Result<DhcpEntry, FieldError> {
    let e = Entry(format!("{what} (mac {})", d.mac));
    let vr_nic_mac = match server {
        Some(s) if d.vr_nic_mac.trim().is_empty() => s.nic_mac,
        _ => e.mac("vrNicMac", &d.vr_nic_mac)?,
    };
    let dns = d
        .dns
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| e.ip("dns", s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = DhcpEntry {
        vr_nic_mac,
        mac: e.mac("mac", &d.mac)?,
        ip: e.ip("ip", &d.ip)?,
        hostname: e.name("hostname", &d.hostname)?,
        is_default_l3: d.is_default_l3_network,
        gateway: e.opt_ip("gateway", &d.gateway)?,
        dns,
        domain: e.name("dnsDomain", &d.dns_domain)?,
        netmask: e.opt_netmask("netmask", &d.netmask)?,
        mtu: e.mtu("mtu", d.mtu)?,
    };
    if let Some(s) = server.filter(|s| s.nic_mac == vr_nic_mac) {
        out.gateway = out.gateway.or(s.gateway);
        if out.dns.is_empty() {
            out.dns.extend(s.dns_server);
        }
        out.domain = out.domain.or_else(|| s.dns_domain.clone());
        out.netmask = out.netmask.or(Some(s.subnet.prefix_len()));
        out.mtu = out.mtu.or(s.mtu);
        if !s.subnet.contains(out.ip) {
            return Err(e.err("ip", format!("{} is outside subnet {}", out.ip, s.subnet)));
        }
    }
    Ok(out)
}

/// `dhcpEntries` of `/adddhcp` or `/removedhcp`.
pub fn entries(list: &[vr::DhcpInfo]) -> Result<Vec<DhcpEntry>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, d)| entry(format!("dhcpEntries[{i}]"), d, None))
        .collect()
}

/// Keys of `/removedhcp` entries: only `vrNicMac` and `mac` are needed.
pub fn entry_keys(list: &[vr::DhcpInfo]) -> Result<Vec<(Mac, Mac)>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, d)| {
            let e = Entry(format!("dhcpEntries[{i}] (mac {})", d.mac));
            Ok((e.mac("vrNicMac", &d.vr_nic_mac)?, e.mac("mac", &d.mac)?))
        })
        .collect()
}

/// One `DhcpServerInfo` with its `dhcpInfos`.
pub fn server(
    i: usize,
    s: &vr::DhcpServerInfo,
) -> Result<(DhcpServer, Vec<DhcpEntry>), FieldError> {
    let e = Entry(format!("dhcpServers[{i}] (nicMac {})", s.nic_mac));
    let nic_mac = e.mac("nicMac", &s.nic_mac)?;
    let gateway = e.opt_ip("gateway", &s.gateway)?;
    let mask = e.opt_netmask("netmask", &s.netmask)?;
    let subnet = match s.subnet.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => {
            let net: Ipv4Net = c.parse().map_err(|err| e.err("subnet", err))?;
            if mask.is_some_and(|m| m != net.prefix_len()) {
                return Err(e.err("netmask", format!("does not match subnet {net}")));
            }
            net
        }
        _ => match (gateway, mask) {
            (Some(gw), Some(m)) => Ipv4Net::containing(gw, m),
            _ => return Err(e.err("subnet", "is missing (and no gateway with netmask)")),
        },
    };
    let server = DhcpServer {
        nic_mac,
        subnet,
        gateway,
        dns_domain: e.name("dnsDomain", &s.dns_domain)?,
        dns_server: e.opt_ip("dnsServer", &s.dns_server)?,
        mtu: e.mtu("mtu", s.mtu)?,
    };
    let list = s
        .dhcp_infos
        .iter()
        .enumerate()
        .map(|(j, d)| entry(format!("dhcpServers[{i}].dhcpInfos[{j}]"), d, Some(&server)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((server, list))
}

/// `dhcpServers` of `/refreshDhcpServer`, `/startDhcpServer`, `/stopDhcpServer`.
pub fn servers(cmd: &vr::DhcpServersCmd) -> Result<Vec<(DhcpServer, Vec<DhcpEntry>)>, FieldError> {
    cmd.dhcp_servers
        .iter()
        .enumerate()
        .map(|(i, s)| server(i, s))
        .collect()
}

/// `/stopDhcpServer`: only `nicMac` matters.
pub fn server_macs(cmd: &vr::DhcpServersCmd) -> Result<Vec<Mac>, FieldError> {
    cmd.dhcp_servers
        .iter()
        .enumerate()
        .map(|(i, s)| Entry(format!("dhcpServers[{i}]")).mac("nicMac", &s.nic_mac))
        .collect()
}

/// The DHCP and DNS bodies of the protocol notes (`refreshDhcpServer`,
/// `addDhcp`, `setDns`) and the state they make: for tests here and in
/// vr-agent's renderer (feature `fixtures`).
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::*;

    use crate::fixtures::{F4, F5, F6};

    pub fn state() -> DnsmasqState {
        let f4: vr::DhcpServersCmd = serde_json::from_str(F4).unwrap();
        let f5: vr::AddDhcpCmd = serde_json::from_str(F5).unwrap();
        let f6: vr::DnsCmd = serde_json::from_str(F6).unwrap();
        let mut st = DnsmasqState::default();
        assert!(
            st.apply(&DhcpEdit::Refresh(servers(&f4).unwrap()))
                .is_empty()
        );
        let add = DhcpEdit::Add {
            entries: entries(&f5.dhcp_entries).unwrap(),
            rebuild: f5.rebuild,
        };
        assert!(
            st.apply(&add).is_empty(),
            "same entry again keeps its lease"
        );
        st.apply(&DhcpEdit::SetDns(crate::dns::dns(&f6).unwrap()));
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::vr;

    use crate::fixtures::{F4, F5};
    use fixtures::state as fixtures_state;

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    #[test]
    fn same_ip_new_mac_replaces_old_entry() {
        let mut st = fixtures_state();
        let mut e = st.entries[&(mac("fa:26:9c:aa:00:03"), mac("fa:a1:5e:12:34:56"))].clone();
        e.mac = mac("fa:a1:5e:99:99:99");
        let rel = st.apply(&DhcpEdit::Add {
            entries: vec![e],
            rebuild: false,
        });
        assert_eq!(
            rel,
            vec![Release {
                vr_nic_mac: mac("fa:26:9c:aa:00:03"),
                ip: "192.168.100.10".parse().unwrap(),
                mac: mac("fa:a1:5e:12:34:56"),
            }]
        );
        assert_eq!(st.entries.len(), 2);
        let ips: Vec<_> = st.entries.values().map(|e| (e.mac, e.ip)).collect();
        assert!(ips.contains(&(mac("fa:a1:5e:99:99:99"), "192.168.100.10".parse().unwrap())));

        // A new IP for the same MAC releases the old lease.
        let mut e2 = st.entries[&(mac("fa:26:9c:aa:00:03"), mac("fa:a1:5e:12:34:57"))].clone();
        e2.ip = "192.168.100.12".parse().unwrap();
        let rel = st.apply(&DhcpEdit::Add {
            entries: vec![e2],
            rebuild: false,
        });
        assert_eq!(rel[0].ip, "192.168.100.11".parse::<Ipv4Addr>().unwrap());

        let rel = st.apply(&DhcpEdit::Remove(vec![(
            mac("fa:26:9c:aa:00:03"),
            mac("fa:a1:5e:12:34:57"),
        )]));
        assert_eq!(rel.len(), 1);
        assert_eq!(st.entries.len(), 1);
    }

    /// Entries on a NIC without a server, in two networks: two ranges, and
    /// each entry once (it was rendered under both; dnsmasq --test refused
    /// the duplicate dhcp-host).
    #[test]
    fn rebuild_replaces_the_entries_of_named_nics() {
        let mut st = fixtures_state();
        let f5: vr::AddDhcpCmd = serde_json::from_str(F5).unwrap();
        let rel = st.apply(&DhcpEdit::Add {
            entries: entries(&f5.dhcp_entries).unwrap(),
            rebuild: true,
        });
        assert_eq!(rel.len(), 1, "the .11 entry is gone: {rel:?}");
        assert_eq!(st.entries.len(), 1);
    }

    #[test]
    fn injection_is_refused_naming_entry_and_field() {
        for (field, bad) in [
            ("hostname", "web\nserver=1.2.3.4"),
            ("hostname", "a,b"),
            ("hostname", "a#b"),
            ("hostname", "a b"),
            ("hostname", "a\u{7}b"),
            ("dnsDomain", "zstack.local\ndhcp-range=x"),
        ] {
            let mut d: vr::AddDhcpCmd = serde_json::from_str(F5).unwrap();
            if field == "hostname" {
                d.dhcp_entries[0].hostname = Some(bad.into());
            } else {
                d.dhcp_entries[0].dns_domain = Some(bad.into());
            }
            let err = entries(&d.dhcp_entries).unwrap_err();
            assert_eq!(err.field, field, "{bad:?}");
            assert_eq!(err.entry, "dhcpEntries[0] (mac fa:a1:5e:12:34:56)");
        }
        let mut d: vr::AddDhcpCmd = serde_json::from_str(F5).unwrap();
        d.dhcp_entries[0].mac = "fa:a1:5e:12:34:56\nx".into();
        assert_eq!(entries(&d.dhcp_entries).unwrap_err().field, "mac");
        let mut d: vr::AddDhcpCmd = serde_json::from_str(F5).unwrap();
        d.dhcp_entries[0].dns = vec!["8.8.8.8,1.1.1.1".into()];
        assert_eq!(entries(&d.dhcp_entries).unwrap_err().field, "dns");
        let mut f4: vr::DhcpServersCmd = serde_json::from_str(F4).unwrap();
        f4.dhcp_servers[0].dhcp_infos[1].ip = "10.9.9.9".into();
        let err = servers(&f4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dhcpServers[0].dhcpInfos[1] (mac fa:a1:5e:12:34:57): ip: 10.9.9.9 is outside subnet 192.168.100.0/24"
        );
        let bad_dns = vr::DnsCmd {
            dns: vec![vr::DnsInfo {
                dns_address: "8.8.8.8\nserver=6.6.6.6".into(),
                nic_mac: None,
            }],
        };
        assert_eq!(crate::dns::dns(&bad_dns).unwrap_err().field, "dnsAddress");
    }

    #[test]
    fn state_roundtrips_through_json() {
        let st = fixtures_state();
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<DnsmasqState>(&json).unwrap(), st);
    }
}
