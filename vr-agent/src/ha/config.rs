//! `/enableVyosha` -> what the agent runs: keepalived's and conntrackd's
//! specs, the NICs that stay up and the pair's VIPs. Every field is checked
//! here, and the first bad one is named; nothing is written before.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::net::{IfName, Mac};
use common::vr_ha::EnableVyosHaCmd;

use crate::engine::PairVip;
use crate::plan::{conntrackd, keepalived};
use crate::sys::ha::HaPaths;

/// The VRRP id and priority zvr uses: both routers equal, so the first
/// up is master and, with `nopreempt`, stays so.
const VRID: u8 = 50;
const PRIORITY: u8 = 100;
/// The peer of a router whose peer does not exist yet.
pub const NO_PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    pub keepalived: keepalived::HaSpec,
    pub conntrackd: conntrackd::SyncSpec,
    pub heartbeat_mac: Mac,
    pub vips: Vec<PairVip>,
    /// Where transitions are reported (`callbackUrl`).
    pub callback: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {why}")]
pub struct ConfigError {
    pub field: String,
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        why: why.into(),
    }
}

fn ipv4(field: &str, s: &Option<String>) -> Result<Ipv4Addr, ConfigError> {
    let s = s.as_deref().unwrap_or("").trim();
    if s.is_empty() {
        return Err(bad(field, "missing"));
    }
    s.parse()
        .map_err(|_| bad(field, format!("{s:?} is not an IPv4 address")))
}

/// `links` is the box's MAC -> name; `advert_cs` the agent's advert
/// interval (the node's `keepalive` is whole seconds, 1..60, and is only
/// checked: we advertise faster so that a failover takes under a second).
pub fn from_wire(
    cmd: &EnableVyosHaCmd,
    links: &BTreeMap<Mac, IfName>,
    mgmt_mac: Option<Mac>,
    paths: &HaPaths,
    router_id: &str,
    advert_cs: u16,
) -> Result<HaConfig, ConfigError> {
    match cmd.keepalive {
        Some(k) if !(1..=60).contains(&k) => {
            return Err(bad("keepalive", format!("{k}: must be 1..=60 seconds")));
        }
        _ => {}
    }
    let hb_text = cmd.heartbeat_nic.as_deref().unwrap_or("").trim();
    let heartbeat_mac: Mac = hb_text
        .parse()
        .map_err(|_| bad("heartbeatNic", format!("{hb_text:?} is not a MAC address")))?;
    let heartbeat = links
        .get(&heartbeat_mac)
        .cloned()
        .ok_or_else(|| bad("heartbeatNic", format!("{heartbeat_mac} matches no NIC")))?;
    // The firewall accepts VRRP and the conntrack sync on the management
    // NIC only (plan::nat's skeleton); the node always names that NIC.
    match mgmt_mac {
        Some(m) if m == heartbeat_mac => {}
        Some(m) => {
            return Err(bad(
                "heartbeatNic",
                format!(
                    "{heartbeat_mac} is not the management NIC ({m}): the heartbeat runs there only"
                ),
            ));
        }
        None => return Err(bad("heartbeatNic", "no management NIC is configured yet")),
    }
    let local = ipv4("localIp", &cmd.local_ip)?;
    // zvr: an empty peerIp (the peer not created yet) is the local one,
    // i.e. a router alone that is master.
    let peer = match cmd.peer_ip.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(_) => Some(ipv4("peerIp", &cmd.peer_ip)?),
    };
    let mut vips = vec![];
    let mut seen = BTreeSet::new();
    for (i, v) in cmd.vips.iter().enumerate() {
        let f = |k: &str| format!("vips[{i}].{k}");
        let mac: Mac = v
            .nic_mac
            .trim()
            .parse()
            .map_err(|_| bad(f("nicMac"), format!("{:?} is not a MAC address", v.nic_mac)))?;
        if !links.contains_key(&mac) {
            return Err(bad(f("nicMac"), format!("{mac} matches no NIC")));
        }
        if mac == heartbeat_mac {
            return Err(bad(
                f("nicMac"),
                "the heartbeat NIC stays up on both routers; it cannot carry a shared address",
            ));
        }
        let ip: Ipv4Addr = v.nic_vip.trim().parse().map_err(|_| {
            bad(
                f("nicVip"),
                format!("{:?} is not an IPv4 address", v.nic_vip),
            )
        })?;
        let prefix = match (&v.netmask, v.prefix_len) {
            (Some(m), _) => common::net::netmask_prefix(m)
                .map_err(|_| bad(f("netmask"), format!("{m:?} is not a netmask")))?,
            (None, Some(p)) if (1..=32).contains(&p) => p as u8,
            (None, Some(p)) => return Err(bad(f("prefixLen"), format!("{p}: must be 1..=32"))),
            (None, None) => return Err(bad(f("netmask"), "missing")),
        };
        if !seen.insert(ip) {
            return Err(bad(f("nicVip"), format!("{ip} is listed twice")));
        }
        vips.push(PairVip { mac, ip, prefix });
    }
    if vips.is_empty() {
        return Err(bad(
            "vips",
            "empty: keepalived needs at least one shared address",
        ));
    }
    let paths_s = |p: std::path::PathBuf| p.display().to_string();
    let fifo = paths_s(paths.fifo());
    let spec = keepalived::HaSpec {
        router_id: router_id.to_string(),
        heartbeat: heartbeat.clone(),
        local,
        // Alone: keepalived needs a peer; TEST-NET-1 (RFC 5737) is nobody,
        // so the router becomes master after the master-down time.
        peer: peer.unwrap_or(NO_PEER),
        vrid: VRID,
        priority: PRIORITY,
        advert_cs,
        // keepalived moves these itself; the NICs' own addresses move with
        // the links (engine/ha.rs).
        shared: shared_addrs(&vips, links),
        notify: keepalived::Notify {
            fifo: Some(fifo),
            ..Default::default()
        },
        nopreempt: true,
    };
    spec.validate()
        .map_err(|e| bad("localIp/peerIp", e.to_string()))?;
    let sync = conntrackd::SyncSpec {
        heartbeat,
        local,
        peer: spec.peer,
        port: 0,
        socket: paths_s(paths.conntrackd_socket()),
        lock_file: paths_s(paths.conntrackd_lock()),
        ignore: vec![],
    };
    sync.validate()
        .map_err(|e| bad("localIp/peerIp", e.to_string()))?;
    let callback = cmd
        .callback_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok(HaConfig {
        keepalived: spec,
        conntrackd: sync,
        heartbeat_mac,
        vips,
        callback,
    })
}

fn shared_addrs(vips: &[PairVip], links: &BTreeMap<Mac, IfName>) -> Vec<keepalived::SharedAddr> {
    vips.iter()
        .filter_map(|v| {
            Some(keepalived::SharedAddr {
                nic: links.get(&v.mac)?.clone(),
                addr: v.ip,
                prefix: v.prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::objects_only::ObjectsOnly;
    use serde::Deserialize;

    fn links() -> BTreeMap<Mac, IfName> {
        [("fa:26:9c:aa:00:01", "eth0"), ("fa:26:9c:aa:00:02", "eth1")]
            .into_iter()
            .map(|(m, n)| (m.parse().unwrap(), n.parse().unwrap()))
            .collect()
    }

    fn fixture() -> EnableVyosHaCmd {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../conformance/vr/ha/enableVyosha.json"
        );
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        EnableVyosHaCmd::deserialize(ObjectsOnly(f["request"].clone())).unwrap()
    }

    fn mgmt() -> Option<Mac> {
        Some("fa:26:9c:aa:00:01".parse().unwrap())
    }

    fn paths() -> HaPaths {
        HaPaths {
            dir: "/var/lib/vr-agent/ha".into(),
        }
    }

    #[test]
    fn the_nodes_body_becomes_a_spec_keepalived_and_conntrackd_accept() {
        let c = from_wire(&fixture(), &links(), mgmt(), &paths(), "vr-4d8c", 10).unwrap();
        assert_eq!(c.keepalived.heartbeat.as_str(), "eth0");
        assert_eq!(c.keepalived.peer, "10.0.0.6".parse::<Ipv4Addr>().unwrap());
        assert_eq!(c.vips.len(), 1);
        assert_eq!(c.vips[0].prefix, 24);
        assert_eq!(
            c.callback.as_deref(),
            Some("http://10.0.0.10:8080/zstack/asyncrest/sendcommand")
        );
        keepalived::render(&c.keepalived).unwrap();
        conntrackd::render(&c.conntrackd).unwrap();
    }

    type Edit = Box<dyn Fn(&mut EnableVyosHaCmd)>;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, Edit)> = vec![
            ("keepalive", Box::new(|c| c.keepalive = Some(0))),
            ("keepalive", Box::new(|c| c.keepalive = Some(61))),
            ("heartbeatNic", Box::new(|c| c.heartbeat_nic = None)),
            (
                "heartbeatNic",
                Box::new(|c| c.heartbeat_nic = Some("fa:26:9c:aa:00:09".into())),
            ),
            (
                "localIp",
                Box::new(|c| c.local_ip = Some("10.0.0.5\nvrrp_script".into())),
            ),
            ("localIp", Box::new(|c| c.local_ip = None)),
            ("peerIp", Box::new(|c| c.peer_ip = Some("x".into()))),
            (
                "localIp/peerIp",
                Box::new(|c| c.peer_ip = c.local_ip.clone()),
            ),
            (
                "vips[0].nicMac",
                Box::new(|c| c.vips[0].nic_mac = "fa:26:9c:aa:00:01".into()),
            ),
            (
                "vips[0].nicMac",
                Box::new(|c| c.vips[0].nic_mac = "zz".into()),
            ),
            (
                "vips[0].nicVip",
                Box::new(|c| c.vips[0].nic_vip = "1.2.3.4 }".into()),
            ),
            (
                "vips[0].netmask",
                Box::new(|c| c.vips[0].netmask = Some("255.0.255.0".into())),
            ),
            ("vips[0].netmask", Box::new(|c| c.vips[0].netmask = None)),
            (
                "vips[1].nicVip",
                Box::new(|c| c.vips.push(c.vips[0].clone())),
            ),
            ("vips", Box::new(|c| c.vips.clear())),
        ];
        for (field, edit) in cases {
            let mut c = fixture();
            edit(&mut c);
            let e = from_wire(&c, &links(), mgmt(), &paths(), "vr-4d8c", 10).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn the_heartbeat_is_the_management_nic() {
        let eth1 = Some("fa:26:9c:aa:00:02".parse().unwrap());
        for m in [eth1, None] {
            let e = from_wire(&fixture(), &links(), m, &paths(), "vr-4d8c", 10).unwrap_err();
            assert_eq!(e.field, "heartbeatNic", "{e}");
        }
    }

    #[test]
    fn a_router_without_a_peer_yet_is_accepted() {
        let mut c = fixture();
        c.peer_ip = Some(String::new());
        let cfg = from_wire(&c, &links(), mgmt(), &paths(), "vr-4d8c", 10).unwrap();
        assert_ne!(cfg.keepalived.peer, cfg.keepalived.local);
    }
}
