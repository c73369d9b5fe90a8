//! The desired state of the router: what the controller asked for, validated.
//!
//! Every command becomes one [`Edit`] of the [`Model`]; the engine applies the
//! edit to a copy, validates the copy as a whole, renders and applies it, and
//! only then keeps it. `from_wire` turns protocol bodies into edits, naming
//! the entry and field of anything malformed.
//!
//! Pure (serde and thiserror, no runtime, no I/O): shared by vr-agent and
//! the controller (vrctl), which builds the same edits from a router
//! description. Its serde shape is GET /state's and the journal's.

pub mod checks;
pub mod dhcp;
pub mod dns;
pub mod field;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod from_wire;
pub mod invalid;
pub mod lb;
pub mod nat;
pub mod nic;
mod validate;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::net::{Ipv4Net, Mac};
use serde::{Deserialize, Serialize};

use crate::dhcp::{DhcpEdit, DnsmasqState};
pub use invalid::Invalid;
use lb::{LbEdit, LbState};
pub use nat::{Eip, PortForward, Snat, Vip};
pub use nic::{CidrSource, DefaultAction, MgmtCidrs, Nic, NicCategory};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub nics: BTreeMap<Mac, Nic>,
    /// `/syncsnat enable` and `/setsnatservicestate` switch SNAT as a whole.
    pub snat_enabled: bool,
    pub snats: BTreeMap<String, Snat>,
    pub vips: BTreeMap<IpAddr, Vip>,
    pub port_forwards: BTreeMap<String, PortForward>,
    pub eips: BTreeMap<Ipv4Addr, Eip>,
    /// DHCP servers and static leases, DNS forwarding (dnsmasq).
    #[serde(default)]
    pub dhcp: DnsmasqState,
    /// Load balancer listeners and certificates.
    #[serde(default)]
    pub lb: LbState,
    /// The management node's networks, routed via the management NIC's
    /// gateway (the default route is on the public NIC).
    #[serde(default)]
    pub mgmt_cidrs: MgmtCidrs,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            nics: BTreeMap::new(),
            snat_enabled: true,
            snats: BTreeMap::new(),
            vips: BTreeMap::new(),
            port_forwards: BTreeMap::new(),
            eips: BTreeMap::new(),
            dhcp: DnsmasqState::default(),
            lb: LbState::default(),
            mgmt_cidrs: MgmtCidrs::default(),
        }
    }
}

/// One command's change to the desired state. Serialisable: the engine
/// journals edits so a restart replays them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Edit {
    ConfigureNics(Vec<Nic>),
    RemoveNics(Vec<Mac>),
    SetDefaultActions(Vec<(Mac, DefaultAction)>),
    SetSnat(Snat),
    RemoveSnats(Vec<Snat>),
    SyncSnats {
        snats: Vec<Snat>,
        enable: bool,
    },
    SetSnatState {
        snats: Vec<Snat>,
        enabled: bool,
    },
    CreateVips {
        vips: Vec<Vip>,
        primaries: Vec<(Mac, Ipv4Addr, u8)>,
    },
    RemoveVips(Vec<IpAddr>),
    CreatePortForwards(Vec<PortForward>),
    RevokePortForwards(Vec<String>),
    SyncPortForwards(Vec<PortForward>),
    CreateEip(Eip),
    RemoveEip(Ipv4Addr),
    SyncEips(Vec<Eip>),
    Dhcp(DhcpEdit),
    Lb(LbEdit),
    /// `/changeDefaultNic`: the default route moves to this NIC (its
    /// gateways updated when given); non-empty `snats` replace the SNATs.
    ChangeDefaultNic {
        mac: Mac,
        gateway: Option<Ipv4Addr>,
        gateway6: Option<Ipv6Addr>,
        snats: Vec<Snat>,
    },
    /// NICs gone from the VM while the agent was not told (detached from a
    /// stopped router: the node skips `/removenic` then): at boot, the
    /// bootstrap info no longer lists them. Drop them and every entry on
    /// them; the node's reconnect resyncs each section.
    ForgetNics(Vec<Mac>),
    /// Boot (issue 14): drop what the persisted state holds on these
    /// management IPs (a PF or TCP listener on the agent's port, an EIP or
    /// VIP on the address) before the management NIC is configured.
    ClearManagementPlane(Vec<Ipv4Addr>),
    /// The management node's CIDR from one source; None: that source names none.
    SetMgmtCidr {
        source: CidrSource,
        cidr: Option<Ipv4Net>,
    },
}

impl Edit {
    /// Sync edits replace a whole section (the store keeps a snapshot
    /// after them rather than a journal line).
    pub fn is_sync(&self) -> bool {
        matches!(
            self,
            Edit::SyncSnats { .. }
                | Edit::SyncPortForwards(_)
                | Edit::SyncEips(_)
                | Edit::Dhcp(DhcpEdit::Refresh(_))
                | Edit::ForgetNics(_)
                | Edit::ClearManagementPlane(_)
        )
    }

    /// The part of the router an edit changes (the label of the apply
    /// latency histogram).
    pub fn section(&self) -> &'static str {
        match self {
            Edit::ConfigureNics(_)
            | Edit::RemoveNics(_)
            | Edit::SetDefaultActions(_)
            | Edit::ChangeDefaultNic { .. }
            | Edit::ForgetNics(_) => "nics",
            Edit::SetSnat(_)
            | Edit::RemoveSnats(_)
            | Edit::SyncSnats { .. }
            | Edit::SetSnatState { .. } => "snat",
            Edit::CreateVips { .. } | Edit::RemoveVips(_) => "vips",
            Edit::CreatePortForwards(_)
            | Edit::RevokePortForwards(_)
            | Edit::SyncPortForwards(_) => "port_forwards",
            Edit::CreateEip(_) | Edit::RemoveEip(_) | Edit::SyncEips(_) => "eips",
            Edit::Dhcp(_) => "dhcp_dns",
            Edit::Lb(LbEdit::LogLevel(_)) | Edit::Lb(_) => "lb",
            Edit::SetMgmtCidr { .. } | Edit::ClearManagementPlane(_) => "management",
        }
    }

    /// True when the edit is big enough that a snapshot is cheaper to keep
    /// than a journal line.
    pub fn is_bulk(&self) -> bool {
        match self {
            Edit::SyncPortForwards(v) | Edit::CreatePortForwards(v) => v.len() > 64,
            Edit::SyncEips(v) => v.len() > 64,
            Edit::Lb(LbEdit::Refresh { listeners, .. }) => listeners.len() > 16,
            Edit::Dhcp(DhcpEdit::Add { entries, .. }) => entries.len() > 64,
            _ => false,
        }
    }
}

impl Model {
    /// Apply an edit. Fails only for a clash the edit itself makes (e.g. an
    /// EIP VIP bound to another guest); whole-model checks are in `validate`.
    pub fn apply(&mut self, edit: &Edit) -> Result<(), Invalid> {
        match edit {
            Edit::ConfigureNics(nics) => {
                for n in nics {
                    if let Some(old) = self.nics.get(&n.mac) {
                        checks::mgmt_nic_change(old, n)?;
                    }
                }
                for n in nics {
                    let mut n = n.clone();
                    if n.default_action.is_none() {
                        n.default_action = self.nics.get(&n.mac).and_then(|o| o.default_action);
                    }
                    self.nics.insert(n.mac, n);
                }
            }
            Edit::RemoveNics(macs) => {
                for m in macs {
                    if let Some(n) = self.nics.get(m) {
                        checks::mgmt_nic_removal(n)?;
                    }
                }
                // The NIC's addresses go with it, VIPs included (zvr flushes
                // the NIC's addresses).
                for m in macs {
                    self.nics.remove(m);
                }
                self.vips.retain(|_, v| !macs.contains(&v.mac));
            }
            Edit::SetDefaultActions(list) => {
                for (mac, action) in list {
                    let nic = self.nics.entry(*mac).or_insert_with(|| Nic {
                        mac: *mac,
                        ip: None,
                        gateway: None,
                        is_default_route: false,
                        category: NicCategory::Private,
                        mtu: None,
                        default_action: None,
                        ip6: None,
                        gateway6: None,
                    });
                    nic.default_action = Some(*action);
                }
            }
            Edit::SetSnat(s) => {
                self.snats.insert(s.key(), s.clone());
            }
            Edit::RemoveSnats(list) => list.iter().for_each(|s| {
                self.snats.remove(&s.key());
            }),
            Edit::SyncSnats { snats, enable } => {
                self.snats = snats.iter().map(|s| (s.key(), s.clone())).collect();
                self.snat_enabled = *enable;
            }
            Edit::SetSnatState { snats, enabled } => {
                if snats.is_empty() {
                    self.snat_enabled = *enabled;
                }
                for s in snats {
                    let mut s = s.clone();
                    s.enabled = *enabled;
                    self.snats.insert(s.key(), s);
                }
                if *enabled {
                    self.snat_enabled = true;
                }
            }
            Edit::CreateVips { vips, .. } => {
                for v in vips {
                    self.vips.insert(v.ip, v.clone());
                }
            }
            Edit::RemoveVips(ips) => ips.iter().for_each(|ip| {
                self.vips.remove(ip);
            }),
            Edit::CreatePortForwards(rules) => {
                validate::unique_rule_uuids(rules)?;
                for r in rules {
                    self.port_forwards.insert(r.uuid.clone(), r.clone());
                }
            }
            Edit::RevokePortForwards(uuids) => uuids.iter().for_each(|u| {
                self.port_forwards.remove(u);
            }),
            Edit::SyncPortForwards(rules) => {
                validate::unique_rule_uuids(rules)?;
                self.port_forwards = rules.iter().map(|r| (r.uuid.clone(), r.clone())).collect();
            }
            Edit::CreateEip(e) => {
                self.check_eip_vip(e)?;
                self.eips.insert(e.vip, e.clone());
            }
            Edit::RemoveEip(vip) => {
                self.eips.remove(vip);
            }
            Edit::SyncEips(eips) => {
                let mut map = BTreeMap::new();
                for (i, e) in eips.iter().enumerate() {
                    if let Some(old) = map.insert(e.vip, e.clone())
                        && old != *e
                    {
                        return Err(Invalid::Request(format!(
                            "eips[{i}]: vipIp {} is listed twice with different guests ({} and {})",
                            e.vip, old.guest, e.guest
                        )));
                    }
                }
                self.eips = map;
            }
            Edit::Dhcp(e) => {
                self.dhcp.apply(e);
            }
            Edit::Lb(e) => self.lb.apply(e)?,
            Edit::ChangeDefaultNic {
                mac,
                gateway,
                gateway6,
                snats,
            } => {
                let Some(nic) = self.nics.get(mac) else {
                    return Err(Invalid::Router(format!(
                        "newNic: mac {mac} is not a configured NIC of this router (send /configurenic first)"
                    )));
                };
                if gateway.or(nic.gateway).is_none() && gateway6.or(nic.gateway6).is_none() {
                    return Err(Invalid::Router(format!(
                        "newNic (mac {mac}): gateway/gateway6: the new default NIC has no gateway"
                    )));
                }
                for n in self.nics.values_mut() {
                    n.is_default_route = n.mac == *mac;
                    if n.mac == *mac {
                        n.gateway = gateway.or(n.gateway);
                        n.gateway6 = gateway6.or(n.gateway6);
                    }
                }
                if !snats.is_empty() {
                    self.snats = snats.iter().map(|s| (s.key(), s.clone())).collect();
                }
            }
            Edit::ForgetNics(macs) => self.forget_nics(macs),
            Edit::ClearManagementPlane(ips) => {
                checks::clear_management_plane(self, ips);
            }
            Edit::SetMgmtCidr { source, cidr } => match source {
                CidrSource::Bootstrap => self.mgmt_cidrs.boot = *cidr,
                CidrSource::Init => self.mgmt_cidrs.init = *cidr,
            },
        }
        Ok(())
    }

    /// Remove NICs and everything that names them.
    fn forget_nics(&mut self, macs: &[Mac]) {
        let gone = |m: &Mac| macs.contains(m);
        self.nics.retain(|m, _| !gone(m));
        self.vips.retain(|_, v| !gone(&v.mac));
        self.snats
            .retain(|_, s| !gone(&s.public_mac) && !gone(&s.private_mac));
        self.eips
            .retain(|_, e| !gone(&e.public_mac) && !gone(&e.private_mac));
        self.port_forwards
            .retain(|_, r| !gone(&r.public_mac) && !gone(&r.private_mac));
        self.dhcp.servers.retain(|m, _| !gone(m));
        self.dhcp.entries.retain(|(nic, _), _| !gone(nic));
        self.dhcp.dns.listen.retain(|m| !gone(m));
        self.lb
            .listeners
            .retain(|_, l| !l.public_mac.as_ref().is_some_and(gone));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::pf;

    #[test]
    fn state_persisted_before_ipv6_and_management_routes_loads() {
        let old = r#"{"nics":{"fa:26:9c:aa:00:02":{"mac":"fa:26:9c:aa:00:02",
            "ip":["172.20.10.5",16],"gateway":"172.20.0.1","is_default_route":true,
            "category":"Public","mtu":null,"default_action":null}},
            "snat_enabled":true,"snats":{},"port_forwards":{},"eips":{},
            "vips":{"172.20.10.100":{"ip":"172.20.10.100","prefix":16,
            "mac":"fa:26:9c:aa:00:02","is_system":false,"uuid":null}}}"#;
        let m: Model = serde_json::from_str(old).unwrap();
        let ip: IpAddr = "172.20.10.100".parse().unwrap();
        assert_eq!(m.vips[&ip].prefix, 16);
        assert_eq!(m.nics.values().next().unwrap().ip6, None);
        assert_eq!(m.mgmt_cidrs, MgmtCidrs::default());
        let edit: Edit = serde_json::from_str(r#"{"RemoveVips":["172.20.10.100"]}"#).unwrap();
        assert_eq!(edit, Edit::RemoveVips(vec![ip]));
    }

    #[test]
    fn sync_replaces_section() {
        let mut m = Model::default();
        m.apply(&Edit::CreatePortForwards(vec![pf(
            "a",
            "172.20.10.100",
            80,
            80,
        )]))
        .unwrap();
        m.apply(&Edit::SyncPortForwards(vec![pf(
            "b",
            "172.20.10.100",
            81,
            81,
        )]))
        .unwrap();
        assert_eq!(m.port_forwards.keys().collect::<Vec<_>>(), vec!["b"]);
    }
}
