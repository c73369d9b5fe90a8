//! The declarative description of one router (TOML or JSON, with the
//! protocol's field names), the commands that put it on the router in the
//! controller's resync order, and what would change.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::client::body;
use crate::wire;
use common::command::Command;
use common::vr;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vr_model::dhcp::{self, DhcpEdit};
use vr_model::lb::{self, LbEdit};
use vr_model::{Edit, Model, dns, from_wire};

mod diff;
mod unknown;

pub use diff::{Change, diff};
use unknown::{unknown_key, with_line};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RouterSpec {
    /// The router's agent, e.g. `http://10.0.0.25:7272`.
    pub agent: String,
    /// The router's uuid, sent with `/init`.
    pub uuid: String,
    /// The management node's network (`Platform.getManagementServerCidr()`,
    /// e.g. `10.1.0.0/24`): `/init`'s `mgtCidr` and the bootstrap info's
    /// `managementNodeCidr`, from which the router routes the node through
    /// its management NIC's gateway.
    pub management_node_cidr: Option<String>,
    pub nics: Vec<vr::NicInfo>,
    pub dns: Vec<vr::DnsInfo>,
    pub dhcp_servers: Vec<vr::DhcpServerInfo>,
    pub snats: Vec<vr::SnatInfo>,
    pub vips: Vec<vr::VipInfo>,
    pub port_forwards: Vec<vr::PortForwardingRule>,
    pub eips: Vec<vr::EipInfo>,
    /// Certificates by uuid (PEM), uploaded before the listeners that use them.
    pub certificates: BTreeMap<String, String>,
    pub lbs: Vec<vr::LbInfo>,
    /// Where and how the router runs as a VM (`vrctl vr create` and friends).
    pub vm: Option<VmSpec>,
    /// One half of an HA pair: `/enableVyosha` ends every resync.
    pub ha: Option<HaSpec>,
}

/// The router as one half of an active/standby pair (issue 17). The other
/// half has its own description: its own uuid, management NIC and MACs,
/// the same services and shared addresses, and `ha.peerIp` this one's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HaSpec {
    /// The other half's management IP (keepalived's unicast peer).
    pub peer_ip: String,
    /// The other half's uuid: the two are placed on different hosts when
    /// `vm.hosts` allows.
    pub peer_uuid: Option<String>,
    /// VRRP advert interval in seconds as the node sends it
    /// (`vpcHa.keepalived.interval`, 1..60; default 1). The agent
    /// advertises faster (`--ha-advert-ms`).
    pub keepalive: Option<i64>,
    /// Addresses keepalived pings; each unanswered one lowers the priority.
    pub monitors: Vec<String>,
    /// Addresses the pair shares besides its NICs' (the master holds them).
    pub vips: Vec<common::vr_ha::HaVip>,
}

/// The router as a VM: which hosts may run it, its size, its disk and which
/// bridge each NIC (by MAC) sits on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VmSpec {
    /// kvm-agents that may run the router, tried in order (first that fits).
    pub hosts: Vec<String>,
    pub name: String,
    pub cpu_num: u32,
    pub memory_mb: u64,
    /// The VR image (qcow2); the root disk is a copy-on-write overlay of it.
    pub image: String,
    /// Where overlays live: a directory both vrctl and the host see (the
    /// same machine, or shared storage).
    pub disk_dir: String,
    /// Direct kernel boot (the image has no boot loader).
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    /// NIC MAC -> host bridge.
    pub bridges: BTreeMap<String, String>,
    /// Where kvm-agent puts the bootstrap channel's socket.
    pub socket_dir: String,
    /// The address vr-agent is told the management node has.
    pub management_node_ip: Option<String>,
    /// The bootstrap info's `publicKey` (the node's SSH key; empty: none).
    pub public_key: Option<String>,
    /// How long the router may take from start to its agent answering.
    pub boot_timeout_secs: u64,
    /// Whether `diskDir` is shared by the hosts: `vrctl watch` starts a
    /// router whose host is gone on another host from the same disk
    /// (`shared`), or re-creates it there from the image (`local`).
    pub storage: Storage,
}

/// Where a router's disk lives (`vm.storage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On its host only: lost with the host.
    #[default]
    Local,
    /// Seen by every host in `vm.hosts` (NFS, Ceph, ...).
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    /// A key the description does not have: refused, so that a misspelt
    /// section is not read as an empty one (which `vr apply` would sync,
    /// removing every entry of the real one).
    #[error("{path}: unknown key {key:?} {at}{hint}")]
    Unknown {
        path: String,
        key: String,
        at: String,
        hint: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl RouterSpec {
    /// Read a `.toml` or `.json` file, strictly: see [`RouterSpec::parse`].
    pub fn load(path: &std::path::Path) -> Result<RouterSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        RouterSpec::parse(&text, json, &path.display().to_string())
    }

    /// Parse a description (JSON when `json`, else TOML) named `path` in
    /// errors. Every key at every depth must be one the description has
    /// (the entries are the protocol's objects, and a typo inside one, like
    /// `allowedCIDR`, would silently drop what it says); only the maps
    /// `certificates` (uuid -> PEM) and `vm.bridges` (MAC -> bridge) take
    /// keys of the user's choosing.
    pub fn parse(text: &str, json: bool, path: &str) -> Result<RouterSpec, SpecError> {
        let parse_err = |reason: String| SpecError::Parse {
            path: path.to_string(),
            reason,
        };
        let mut unknown: Vec<String> = vec![];
        let spec: RouterSpec = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            let spec = serde_ignored::deserialize(&mut de, |p| unknown.push(p.to_string()))
                .map_err(|e| parse_err(e.to_string()))?;
            de.end().map_err(|e| parse_err(e.to_string()))?;
            spec
        } else {
            let de = toml::Deserializer::new(text);
            serde_ignored::deserialize(de, |p| unknown.push(p.to_string()))
                .map_err(|e| parse_err(e.to_string()))?
        };
        if let Some(first) = unknown.first() {
            return Err(unknown_key(
                &spec,
                first,
                &with_line(path, text, first, json),
            ));
        }
        Ok(spec)
    }

    /// The commands in the order the controller resyncs a router
    /// (`VyosConnectFlow`'s `/init`, then the reconnect flows of
    /// `conf/springConfigXml/vyos.xml`): `/init`, NICs, the guest NICs'
    /// firewall default actions, DNS, DHCP, SNAT, VIPs,
    /// port forwarding, EIPs, certificates (only when there are any, as
    /// `refreshCertsAndListeners` does), load balancers. Each body is a
    /// common::vr command value as the client sends it, with the Java
    /// command class's fields (see `common::vr` and [`crate::wire`]).
    ///
    /// The node itself configures a router's NICs through the bootstrap
    /// info and sends `/configurenic` only for a NIC attached later; vrctl
    /// sends it in every resync so that `vr apply` also works on a router
    /// started without bootstrap info. The sync commands go even when their
    /// list is empty (the node skips some of those), so that an apply
    /// removes what the description no longer has.
    pub fn commands(&self) -> Vec<(&'static str, Value)> {
        let vm = self.vm.clone().unwrap_or_default();
        let mut parms = BTreeMap::new();
        if !self.lbs.is_empty() {
            // `VyosConnectFlow`: the port range goes when the router has a
            // load balancer (`virtualRouter.ipv4LocalPortRange`, "0-0").
            parms.insert("ipv4LocalPortRange".into(), "0-0".into());
        }
        let init = vr::InitCmd {
            uuid: self.uuid.clone(),
            restart_dnsmasq_after_sigusr1: 0,
            mgt_cidr: self.management_node_cidr.clone().unwrap_or_default(),
            log_level: "info".into(),
            time_servers: vm.management_node_ip.iter().cloned().collect(),
            parms,
        };
        let nics = vr::NicsCmd {
            nics: self.nics.iter().map(wire::configure_nic).collect(),
        };
        let actions = vr::NicsCmd {
            nics: self
                .nics
                .iter()
                .filter_map(wire::nic_default_action)
                .collect(),
        };
        let vips = vr::CreateVipCmd {
            vips: self.vips.clone(),
            sync_vip: true,
            nic_ips: self.nics.iter().filter_map(wire::nic_ip).collect(),
        };
        // Bodies shared by several paths (`NicsCmd`, `DnsCmd`, ...) have no
        // `Command::PATH`: their path is written next to them.
        let mut cmds = vec![typed(&init), ("/configurenic", body(&nics))];
        // The node skips it when no guest NIC has an action.
        if !actions.nics.is_empty() {
            cmds.push(("/configurenicdefaultaction", body(&actions)));
        }
        cmds.extend([
            (
                "/setdns",
                body(&vr::DnsCmd {
                    dns: self.dns.clone(),
                }),
            ),
            (
                "/refreshDhcpServer",
                body(&vr::DhcpServersCmd {
                    dhcp_servers: self.dhcp_servers.clone(),
                }),
            ),
            typed(&vr::SyncSnatCmd {
                snats: self.snats.clone(),
                enable: true,
            }),
            typed(&vips),
            (
                "/syncportforwarding",
                body(&vr::PortForwardingCmd {
                    rules: self.port_forwards.clone(),
                }),
            ),
            typed(&vr::SyncEipCmd {
                eips: self.eips.clone(),
            }),
        ]);
        if !self.certificates.is_empty() {
            cmds.push(typed(&vr::CertificatesCmd {
                certs: self.certificates.clone(),
            }));
        }
        cmds.push((
            "/lb/refresh",
            body(&vr::LbCmd {
                lbs: self.lbs.iter().map(wire::lb).collect(),
                enable_haproxy_log: true,
            }),
        ));
        // The node pairs a router once it is configured (`enableHa` runs
        // after the VR's services are applied): the backup then holds the
        // same services, its shared NICs down.
        if let Some(ha) = &self.ha {
            cmds.push((common::vr_ha::ENABLE_HA_PATH, body(&self.enable_ha(ha))));
        }
        cmds
    }

    /// The agent's URL: `agent`, or the management NIC's address on 7272.
    pub fn agent_url(&self) -> Result<String, SpecError> {
        if !self.agent.is_empty() {
            return Ok(self.agent.clone());
        }
        self.management_nic()
            .and_then(|n| n.ip.clone())
            .map(|ip| format!("http://{ip}:7272"))
            .ok_or_else(|| SpecError::Invalid("no `agent` and no Management NIC with an ip".into()))
    }

    pub fn management_nic(&self) -> Option<&vr::NicInfo> {
        self.nics
            .iter()
            .find(|n| {
                n.category
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("Management"))
            })
            .or(self.nics.first())
    }

    /// `/enableVyosha` for this half, as the node fills it (`enableHa`):
    /// the management NIC is the heartbeat, its address `localIp`.
    pub fn enable_ha(&self, ha: &HaSpec) -> common::vr_ha::EnableVyosHaCmd {
        let mgmt = self.management_nic();
        common::vr_ha::EnableVyosHaCmd {
            keepalive: Some(ha.keepalive.unwrap_or(1)),
            heartbeat_nic: mgmt.map(|n| n.mac.clone()),
            local_ip: mgmt.and_then(|n| n.ip.clone()),
            peer_ip: Some(ha.peer_ip.clone()),
            monitors: ha.monitors.clone(),
            vips: ha.vips.clone(),
            ..Default::default()
        }
    }

    /// The `[ha]` section's own checks (the agent checks the rest).
    fn check_ha(&self, ha: &HaSpec) -> Result<(), SpecError> {
        let bad = |why: String| Err(SpecError::Invalid(format!("ha: {why}")));
        let peer: std::net::Ipv4Addr = match ha.peer_ip.parse() {
            Ok(ip) => ip,
            Err(_) => return bad(format!("peerIp {:?} is not an IPv4 address", ha.peer_ip)),
        };
        let mine = self.management_nic().and_then(|n| n.ip.as_deref());
        if mine.is_none() {
            return bad("the pair needs a Management NIC with an ip (the heartbeat)".into());
        }
        if mine == Some(peer.to_string().as_str()) {
            return bad(format!("peerIp {peer} is this router's own management IP"));
        }
        if let Some(k) = ha.keepalive.filter(|k| !(1..=60).contains(k)) {
            return bad(format!("keepalive {k}: must be 1..=60 seconds"));
        }
        if ha.peer_uuid.as_deref() == Some(self.uuid.as_str()) {
            return bad("peerUuid is this router's own uuid".into());
        }
        Ok(())
    }

    /// The desired state the router's agent would hold after `commands`.
    pub fn desired(&self) -> Result<Model, SpecError> {
        if let Some(ha) = &self.ha {
            self.check_ha(ha)?;
        }
        let bad = |e: &dyn Display| SpecError::Invalid(e.to_string());
        let servers = vr::DhcpServersCmd {
            dhcp_servers: self.dhcp_servers.clone(),
        };
        let dns = vr::DnsCmd {
            dns: self.dns.clone(),
        };
        let edits = vec![
            Edit::ConfigureNics(from_wire::nics(&self.nics).map_err(|e| bad(&e))?),
            Edit::Dhcp(DhcpEdit::SetDns(dns::dns(&dns).map_err(|e| bad(&e))?)),
            Edit::Dhcp(DhcpEdit::Refresh(
                dhcp::servers(&servers).map_err(|e| bad(&e))?,
            )),
            Edit::SyncSnats {
                snats: from_wire::snats("snats", &self.snats).map_err(|e| bad(&e))?,
                enable: true,
            },
            Edit::CreateVips {
                vips: from_wire::vips(&self.vips).map_err(|e| bad(&e))?,
                primaries: vec![],
            },
            Edit::SyncPortForwards(
                from_wire::port_forwards(&self.port_forwards).map_err(|e| bad(&e))?,
            ),
            Edit::SyncEips(from_wire::eips(&self.eips).map_err(|e| bad(&e))?),
            Edit::Lb(LbEdit::Certs(self.certificates.keys().cloned().collect())),
        ];
        let (listeners, remove) = lb::listeners(&self.lbs).map_err(|e| bad(&e))?;
        let mut edits = edits;
        edits.push(Edit::Lb(LbEdit::Refresh {
            listeners,
            remove,
            log: false,
        }));
        let mut m = Model::default();
        for e in &edits {
            m.apply(e).map_err(|e| bad(&e))?;
        }
        m.validate().map_err(|e| bad(&e))?;
        Ok(m)
    }
}

/// A body with a path of its own, as the client sends it.
fn typed<C: Command>(cmd: &C) -> (&'static str, Value) {
    (C::PATH, body(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: &str = r#"
agent = "http://10.0.0.25:7272"
uuid = "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11"

[[nics]]
mac = "fa:26:9c:aa:00:02"
ip = "172.20.10.5"
netmask = "255.255.0.0"
gateway = "172.20.0.1"
isDefaultRoute = true
category = "Public"

[[nics]]
mac = "fa:26:9c:aa:00:03"
ip = "192.168.100.1"
netmask = "255.255.255.0"
category = "Private"
firewallDefaultAction = "reject"

[[snats]]
publicNicMac = "fa:26:9c:aa:00:02"
publicIp = "172.20.10.5"
privateNicMac = "fa:26:9c:aa:00:03"
privateNicIp = "192.168.100.1"
snatNetmask = "255.255.255.0"

[[eips]]
vipIp = "172.20.10.101"
guestIp = "192.168.100.10"
publicMac = "fa:26:9c:aa:00:02"
privateMac = "fa:26:9c:aa:00:03"
"#;

    #[test]
    fn spec_to_commands_and_diff() {
        let spec: RouterSpec = toml::from_str(SPEC).unwrap();
        let cmds = spec.commands();
        let paths: Vec<_> = cmds.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            paths,
            [
                "/init",
                "/configurenic",
                "/configurenicdefaultaction",
                "/setdns",
                "/refreshDhcpServer",
                "/syncsnat",
                "/createvip",
                "/syncportforwarding",
                "/synceip",
                "/lb/refresh"
            ]
        );
        // No guest NIC with an action: no /configurenicdefaultaction.
        let mut plain = spec.clone();
        plain.nics[1].firewall_default_action = None;
        assert!(
            plain
                .commands()
                .iter()
                .all(|(p, _)| *p != "/configurenicdefaultaction")
        );
        // `refreshCertsAndListeners` sends certificates only when there are some.
        let mut with_cert = spec.clone();
        with_cert.certificates.insert("c1".into(), "PEM".into());
        let paths: Vec<_> = with_cert.commands().iter().map(|(p, _)| *p).collect();
        assert_eq!(paths[9..], ["/certificates/create", "/lb/refresh"]);
        assert_eq!(cmds[6].1["nicIps"].as_array().unwrap().len(), 2);
        let want = spec.desired().unwrap();
        let d = diff(&Model::default(), &want);
        assert!(d.contains(&Change {
            op: '+',
            section: "eip",
            key: "172.20.10.101".into()
        }));
        assert!(diff(&want, &want).is_empty());
        let mut have = want.clone();
        have.eips.clear();
        have.port_forwards.insert("gone".into(), {
            let r = vr::PortForwardingRule {
                uuid: "gone".into(),
                vip_port_start: 80,
                vip_port_end: 80,
                private_port_start: 80,
                private_port_end: 80,
                protocol_type: "TCP".into(),
                vip_ip: "172.20.10.100".into(),
                public_mac: "fa:26:9c:aa:00:02".into(),
                private_ip: "192.168.100.10".into(),
                private_mac: "fa:26:9c:aa:00:03".into(),
                ..Default::default()
            };
            from_wire::port_forward(0, &r).unwrap()
        });
        let d = diff(&have, &want);
        assert_eq!(d.len(), 2, "{d:?}");
    }

    #[test]
    fn unknown_keys_are_refused_with_where_and_the_closest_key() {
        let typo = SPEC.replace("[[eips]]", "[[eipss]]");
        let e = RouterSpec::parse(&typo, false, "r.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"eipss\"") && e.contains("top level") && e.contains("\"eips\""),
            "{e}"
        );
        let typo = SPEC.replace("guestIp", "guestIP");
        let e = RouterSpec::parse(&typo, false, "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("in eips[0]") && e.contains("\"guestIp\""), "{e}");
        let typo = format!("{SPEC}\n[vm]\ncpuNums = 2\n");
        let e = RouterSpec::parse(&typo, false, "r.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("in vm") && e.contains("\"cpuNum\""), "{e}");
        let json = r#"{"nics":[{"mac":"m","netmask":"255.0.0.0","categry":"Public"}]}"#;
        let e = RouterSpec::parse(json, true, "r.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in nics[0]") && e.contains("\"category\""),
            "{e}"
        );
        // A key skipped on serialise when empty is still a key of its place.
        let json = r#"{"vips":[{"ip6":"2001:db8::1","netmsk":"ffff::"}],
            "dhcpServers":[{"nicMac":"m","dhcpInfos":[{"ip":"10.0.0.2","vrNicMc":"m"}]}]}"#;
        let e = RouterSpec::parse(json, true, "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(did you mean \"netmask\"?)"), "{e}");
        let json = json.replace("netmsk", "netmask");
        let e = RouterSpec::parse(&json, true, "r.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(did you mean \"vrNicMac\"?)"), "{e}");
        // Maps keep keys of the user's choosing; the good file parses.
        let ok = format!("{SPEC}\n[certificates]\nc1 = \"PEM\"\n");
        assert!(RouterSpec::parse(&ok, false, "r.toml").is_ok());
        let json = r#"{"vm":{"bridges":{"fa:26:9c:aa:00:02":"br0"}}}"#;
        assert!(RouterSpec::parse(json, true, "r.json").is_ok());
    }

    #[test]
    fn bad_spec_names_the_entry() {
        let mut spec: RouterSpec = toml::from_str(SPEC).unwrap();
        spec.eips[0].vip_ip = "nope".into();
        let e = spec.desired().unwrap_err().to_string();
        assert!(e.contains("eips[0]") && e.contains("vipIp"), "{e}");
    }

    /// A pair half's resync ends with `/enableVyosha` as the node fills it
    /// (the fixture's fields: heartbeat = the management NIC); a bad `[ha]`
    /// is refused before anything is sent.
    #[test]
    fn a_pair_half_is_paired_last_and_a_bad_ha_section_is_refused() {
        let text = format!(
            "{SPEC}\n[ha]\npeerIp = \"10.0.0.26\"\nkeepalive = 2\n\
             [[ha.vips]]\nnicMac = \"fa:26:9c:aa:00:02\"\nnicVip = \"172.20.10.9\"\nnetmask = \"255.255.0.0\"\n"
        );
        let spec = RouterSpec::parse(&text, false, "pair.toml").unwrap();
        spec.desired().unwrap();
        let cmds = spec.commands();
        let (path, body) = cmds.last().unwrap();
        assert_eq!(*path, "/enableVyosha");
        let mgmt = spec.management_nic().unwrap();
        assert_eq!(
            *body,
            json!({"keepalive": 2, "heartbeatNic": mgmt.mac, "localIp": mgmt.ip, "peerIp": "10.0.0.26",
                   "monitors": [], "vips": [{"nicMac": "fa:26:9c:aa:00:02", "nicVip": "172.20.10.9",
                   "netmask": "255.255.0.0"}]})
        );
        let mine = mgmt.ip.clone().unwrap();
        for (edit, words) in [
            (json!({"peerIp": "ten"}), "peerIp \"ten\""),
            (json!({"peerIp": mine}), "own management IP"),
            (
                json!({"peerIp": "10.0.0.26", "keepalive": 0}),
                "keepalive 0",
            ),
            (
                json!({"peerIp": "10.0.0.26", "peerUuid": spec.uuid}),
                "own uuid",
            ),
        ] {
            let mut bad = spec.clone();
            bad.ha = Some(serde_json::from_value(edit).unwrap());
            let e = bad.desired().unwrap_err().to_string();
            assert!(e.starts_with("ha: ") && e.contains(words), "{e}");
        }
        let e = RouterSpec::parse(
            &format!("{SPEC}\n[ha]\npeerIP = \"10.0.0.26\"\n"),
            false,
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("peerIP") && e.contains("peerIp"), "{e}");
    }
}
