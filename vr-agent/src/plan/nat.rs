//! The NAT and filter ruleset of the router as one nftables table.
//!
//! Per-entry data (EIPs, port forwards, SNAT networks) lives in maps and sets,
//! so a packet's lookup cost does not grow with the number of rules and one
//! added rule is one element added. The table's skeleton (maps, sets, chains)
//! only changes when NICs change; then the whole table is replaced in one
//! transaction. Everything is rendered in nft's text syntax because nft 1.0.6
//! cannot declare concatenated-data maps in JSON (PLATFORM.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use common::net::{IfName, Ipv4Net, Mac, PortRange, Proto};

use crate::model::{DefaultAction, Eip, Model, NicCategory, PortForward};

pub const FAMILY: &str = "ip";
pub const TABLE: &str = "vragent";

/// Which flows a changed element may have left stale in conntrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowMatch {
    /// Original destination address.
    Dst(Ipv4Addr),
    /// Original source address.
    Src(Ipv4Addr),
    /// Original destination address, protocol and port range.
    DstPorts(Ipv4Addr, Proto, PortRange),
    /// Original source inside a network.
    SrcNet(Ipv4Net),
}

/// The whole desired table: a skeleton plus the elements of each set/map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub skeleton: String,
    /// set name -> element text -> flows it affects.
    pub elements: BTreeMap<&'static str, BTreeMap<String, Option<FlowMatch>>>,
    /// chain name -> number of rules, for drift checks.
    pub chain_rules: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Facts the plan needs from the box.
pub struct Observed<'a> {
    /// NIC MAC -> interface name.
    pub links: &'a BTreeMap<Mac, IfName>,
    /// The agent's TCP port, opened on the management NIC only.
    pub agent_port: u16,
}

/// Declarations of every set and map: (name, declaration body).
const SETS: &[(&str, &str)] = &[
    ("eip_dnat", "type ipv4_addr : ipv4_addr;"),
    ("eip_snat", "type ifname . ipv4_addr : ipv4_addr;"),
    ("eip_inbound", "type ifname . ipv4_addr;"),
    (
        "pf_exact",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "pf_range_keep",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
    ),
    (
        "pf_range_one",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval;",
    ),
    (
        "pf_restricted",
        "type ipv4_addr . inet_proto . inet_service; flags interval;",
    ),
    (
        "pf_allowed",
        "type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval;",
    ),
    (
        "pf_inbound",
        "type ipv4_addr . inet_proto . inet_service; flags interval;",
    ),
    (
        "snat_out",
        "type ifname . ipv4_addr : ipv4_addr; flags interval;",
    ),
    ("hairpin_nets", "type ifname . ipv4_addr; flags interval;"),
    ("reject_into", "type ifname;"),
    // Per-rule packet and byte counters (`/metrics`): one element per EIP,
    // port forward and SNAT network, counted in filter chains that see
    // every packet (the NAT chains see only a connection's first).
    ("count_eip_in", "type ipv4_addr; counter;"),
    ("count_eip_out", "type ifname . ipv4_addr; counter;"),
    // Exact ports in a hash set, ranges in an interval set: 10 000
    // interval elements cost a second to load (PLATFORM.md).
    (
        "count_pf_in",
        "type ipv4_addr . inet_proto . inet_service; counter;",
    ),
    (
        "count_pf_range_in",
        "type ipv4_addr . inet_proto . inet_service; flags interval; counter;",
    ),
    (
        "count_snat_out",
        "type ifname . ipv4_addr; flags interval; counter;",
    ),
];

/// The packet mark bit of a connection to a port forward with
/// snatInboundTraffic (no other user of marks on the router).
pub const PF_INBOUND_MARK: u32 = 0x0001_0000;

/// Offset-shifted port ranges (vip 8000-8010 -> private 9000-9010) become one
/// exact element per port; beyond this many ports the rule is refused.
pub const MAX_SHIFTED_PORTS: u32 = 4096;

pub fn render(model: &Model, obs: &Observed) -> Result<Ruleset, PlanError> {
    let ifname = |mac: &Mac, what: &dyn Fn() -> String| {
        obs.links
            .get(mac)
            .cloned()
            .ok_or_else(|| PlanError(format!("{}: {mac} matches no NIC on this router", what())))
    };
    let mut el: BTreeMap<&'static str, BTreeMap<String, Option<FlowMatch>>> =
        SETS.iter().map(|(n, _)| (*n, BTreeMap::new())).collect();
    let mut add = |set: &'static str, e: String, f: Option<FlowMatch>| {
        el.get_mut(set).expect("declared set").insert(e, f);
    };

    // NICs: hairpin networks, default actions, the management interface.
    let mut mgmt = None;
    for nic in model.nics.values() {
        let name = ifname(&nic.mac, &|| format!("nic {}: mac", nic.mac))?;
        if nic.category == NicCategory::Management && mgmt.is_none() {
            mgmt = Some(name.clone());
        }
        if nic.category == NicCategory::Private {
            if let Some(net) = nic.network() {
                add("hairpin_nets", format!("\"{name}\" . {net}"), None);
            }
            if nic.default_action == Some(DefaultAction::Reject) {
                add("reject_into", format!("\"{name}\""), None);
            }
        }
    }

    if model.snat_enabled {
        for s in model.snats.values().filter(|s| s.enabled) {
            let what = || format!("snat {}: publicNicMac", s.key());
            let pub_if = ifname(&s.public_mac, &what)?;
            ifname(&s.private_mac, &|| {
                format!("snat {}: privateNicMac", s.key())
            })?;
            add(
                "snat_out",
                format!("\"{pub_if}\" . {} : {}", s.private_net, s.public_ip),
                Some(FlowMatch::SrcNet(s.private_net)),
            );
            add("count_snat_out", snat_counter(&pub_if, s), None);
        }
    }

    for e in model.eips.values() {
        for (set, el, f) in eip_elements(e, obs.links)? {
            add(set, el, f);
        }
    }
    for r in model.port_forwards.values() {
        for (set, el, f) in pf_elements(r, obs.links)? {
            add(set, el, f);
        }
    }

    let (skeleton, chain_rules) = skeleton(mgmt.as_ref(), obs.agent_port);
    Ok(Ruleset {
        skeleton,
        elements: el,
        chain_rules,
    })
}

/// One element of a set or map: (set, element text, flows it affects).
pub type Element = (&'static str, String, Option<FlowMatch>);

fn link(
    links: &BTreeMap<Mac, IfName>,
    mac: &Mac,
    what: impl FnOnce() -> String,
) -> Result<IfName, PlanError> {
    links
        .get(mac)
        .cloned()
        .ok_or_else(|| PlanError(format!("{}: {mac} matches no NIC on this router", what())))
}

/// The elements one EIP puts in the table.
pub fn eip_elements(e: &Eip, links: &BTreeMap<Mac, IfName>) -> Result<Vec<Element>, PlanError> {
    let pub_if = link(links, &e.public_mac, || format!("eip {}: publicMac", e.vip))?;
    let priv_if = link(links, &e.private_mac, || {
        format!("eip {}: privateMac", e.vip)
    })?;
    let mut out = vec![
        (
            "eip_dnat",
            format!("{} : {}", e.vip, e.guest),
            Some(FlowMatch::Dst(e.vip)),
        ),
        (
            "eip_snat",
            format!("\"{pub_if}\" . {} : {}", e.guest, e.vip),
            Some(FlowMatch::Src(e.guest)),
        ),
    ];
    if e.snat_inbound {
        out.push(("eip_inbound", format!("\"{priv_if}\" . {}", e.guest), None));
    }
    out.push(("count_eip_in", e.vip.to_string(), None));
    out.push(("count_eip_out", format!("\"{pub_if}\" . {}", e.guest), None));
    Ok(out)
}

/// The elements one port forwarding rule puts in the table.
pub fn pf_elements(
    r: &PortForward,
    links: &BTreeMap<Mac, IfName>,
) -> Result<Vec<Element>, PlanError> {
    link(links, &r.public_mac, || {
        format!("port forwarding rule {}: publicMac", r.uuid)
    })?;
    link(links, &r.private_mac, || {
        format!("port forwarding rule {}: privateMac", r.uuid)
    })?;
    let flow = Some(FlowMatch::DstPorts(r.vip, r.proto, r.vip_ports));
    let (vip, p, pip) = (r.vip, r.proto, r.private_ip);
    let key = format!("{vip} . {p} . {}", range(r.vip_ports));
    let mut out = vec![];
    if r.vip_ports.is_single() {
        out.push((
            "pf_exact",
            format!("{key} : {pip} . {}", r.private_ports.start),
            flow,
        ));
    } else if r.private_ports.is_single() {
        out.push((
            "pf_range_one",
            format!("{key} : {pip} . {}", r.private_ports.start),
            flow,
        ));
    } else if r.private_ports.start == r.vip_ports.start {
        out.push(("pf_range_keep", format!("{key} : {pip}"), flow));
    } else {
        shifted(r, &mut |set, el, f| out.push((set, el, f)))?;
    }
    if let Some(cidr) = r.allowed {
        out.push(("pf_restricted", key.clone(), None));
        out.push(("pf_allowed", format!("{key} . {cidr}"), None));
    }
    // Keyed by the VIP side, which no two rules share (the model refuses
    // overlapping VIP ports): keyed by the guest side, two rules on two
    // VIPs to one guest's ports made overlapping intervals nft refuses.
    if r.snat_inbound {
        out.push(("pf_inbound", key.clone(), None));
    }
    let counter = if r.vip_ports.is_single() {
        "count_pf_in"
    } else {
        "count_pf_range_in"
    };
    out.push((counter, key, None));
    Ok(out)
}

/// The counter element of an SNAT network leaving by `pub_if`.
pub fn snat_counter(pub_if: &IfName, s: &crate::model::Snat) -> String {
    format!("\"{pub_if}\" . {}", s.private_net)
}

/// An element-level change of `applied`: remove `gone`, add `came`. Returns
/// the transaction, or None when the elements cancel out. `applied` is not
/// touched; call [`Ruleset::commit`] once the kernel took the change.
pub fn delta(applied: &Ruleset, gone: &[Element], came: &[Element]) -> Option<Change> {
    let came_keys: BTreeSet<(&str, &str)> = came.iter().map(|(s, e, _)| (*s, e.as_str())).collect();
    let gone_keys: BTreeSet<(&str, &str)> = gone.iter().map(|(s, e, _)| (*s, e.as_str())).collect();
    let present = |set: &str, el: &str| {
        applied
            .elements
            .get(set)
            .is_some_and(|m| m.contains_key(el))
    };
    let mut by_set: BTreeMap<(&str, &str), Vec<&String>> = BTreeMap::new();
    let mut stale = BTreeSet::new();
    for (set, el, f) in gone {
        if !came_keys.contains(&(*set, el.as_str())) && present(set, el) {
            by_set.entry(("delete", set)).or_default().push(el);
            stale.extend(*f);
        }
    }
    for (set, el, f) in came {
        if !gone_keys.contains(&(*set, el.as_str())) && !present(set, el) {
            by_set.entry(("add", set)).or_default().push(el);
            stale.extend(*f);
        }
    }
    if by_set.is_empty() {
        return None;
    }
    let mut script = String::new();
    // Deletes first: a changed element is removed, then added back.
    for verb in ["delete", "add"] {
        for ((v, set), items) in by_set.iter().filter(|((v, _), _)| *v == verb) {
            element_cmd(&mut script, v, set, items.iter().copied());
        }
    }
    Some(Change {
        script,
        full: false,
        stale,
    })
}

impl Ruleset {
    /// Record an element-level change the kernel has taken.
    pub fn commit(&mut self, gone: Vec<Element>, came: Vec<Element>) {
        for (set, el, _) in gone {
            if let Some(m) = self.elements.get_mut(set) {
                m.remove(&el);
            }
        }
        for (set, el, f) in came {
            self.elements.entry(set).or_default().insert(el, f);
        }
    }
}

fn range(r: PortRange) -> String {
    if r.is_single() {
        r.start.to_string()
    } else {
        format!("{}-{}", r.start, r.end)
    }
}

fn shifted(
    r: &PortForward,
    add: &mut impl FnMut(&'static str, String, Option<FlowMatch>),
) -> Result<(), PlanError> {
    if r.vip_ports.count() > MAX_SHIFTED_PORTS {
        return Err(PlanError(format!(
            "port forwarding rule {}: vip ports {} map to private ports {} at another offset; \
             at most {MAX_SHIFTED_PORTS} ports are supported for that",
            r.uuid, r.vip_ports, r.private_ports
        )));
    }
    let flow = Some(FlowMatch::DstPorts(r.vip, r.proto, r.vip_ports));
    for i in 0..r.vip_ports.count() as u16 {
        add(
            "pf_exact",
            format!(
                "{} . {} . {} : {} . {}",
                r.vip,
                r.proto,
                r.vip_ports.start + i,
                r.private_ip,
                r.private_ports.start + i
            ),
            flow,
        );
    }
    Ok(())
}

/// The table's structure. Chains read the maps and sets; only the management
/// interface is spelled out, because an empty set would match everything.
fn skeleton(mgmt: Option<&IfName>, agent_port: u16) -> (String, BTreeMap<&'static str, usize>) {
    let mut s = format!("table {FAMILY} {TABLE} {{\n");
    for (name, decl) in SETS {
        let kind = if decl.contains(" : ") { "map" } else { "set" };
        let _ = writeln!(s, "  {kind} {name} {{ {decl} }}");
    }
    let mut input = vec![];
    if let Some(m) = mgmt {
        input.push(format!(
            "tcp dport {agent_port} iifname != \"{m}\" reject with tcp reset"
        ));
    }
    let l4 = "meta l4proto { tcp, udp }";
    let key = "ip daddr . meta l4proto . th dport";
    let chains: Vec<(&'static str, &str, Vec<String>)> = vec![
        (
            // Before DNAT: the destination is still the VIP.
            "count_in",
            "type filter hook prerouting priority mangle; policy accept;",
            vec![
                "ip daddr @count_eip_in".into(),
                format!("{l4} {key} @count_pf_in"),
                format!("{l4} {key} @count_pf_range_in"),
            ],
        ),
        (
            // Before SNAT: the source is still the guest. `accept` ends only
            // this chain (NAT still runs): an EIP guest's packets and the
            // replies of DNAT'ed connections are not their SNAT network's.
            "count_out",
            "type filter hook postrouting priority srcnat - 10; policy accept;",
            vec![
                "oifname . ip saddr @count_eip_out accept".into(),
                "ct status dnat accept".into(),
                "oifname . ip saddr @count_snat_out".into(),
            ],
        ),
        (
            "pf_acl",
            "type filter hook prerouting priority dstnat - 10; policy accept;",
            vec![format!(
                "{l4} {key} @pf_restricted {key} . ip saddr != @pf_allowed reject with icmp type admin-prohibited"
            )],
        ),
        (
            "prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            vec![
                // Marked before DNAT rewrites the destination; the mark is
                // read by postrouting's masquerade (NAT chains see only a
                // connection's first packet, which carries the mark).
                format!("{l4} {key} @pf_inbound meta mark set meta mark | {PF_INBOUND_MARK:#010x}"),
                "dnat to ip daddr map @eip_dnat".into(),
                format!("{l4} dnat to {key} map @pf_exact"),
                format!("{l4} dnat to {key} map @pf_range_one"),
                format!("{l4} dnat to {key} map @pf_range_keep"),
            ],
        ),
        (
            "forward",
            "type filter hook forward priority filter; policy accept;",
            vec![
                "ct state established,related accept".into(),
                "ct status dnat accept".into(),
                "ct state new oifname @reject_into reject with icmp type admin-prohibited".into(),
            ],
        ),
        (
            "input",
            "type filter hook input priority filter; policy accept;",
            input,
        ),
        (
            "postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            vec![
                "snat to oifname . ip saddr map @eip_snat".into(),
                "ct status dnat oifname . ip daddr @eip_inbound masquerade".into(),
                format!(
                    "ct status dnat meta mark & {PF_INBOUND_MARK:#010x} == {PF_INBOUND_MARK:#010x} masquerade"
                ),
                "ct status dnat oifname . ip saddr @hairpin_nets masquerade".into(),
                "ip daddr != 224.0.0.0/4 snat to oifname . ip saddr map @snat_out".into(),
            ],
        ),
    ];
    let mut counts = BTreeMap::new();
    for (name, head, rules) in chains {
        let _ = writeln!(s, "  chain {name} {{\n    {head}");
        for r in &rules {
            let _ = writeln!(s, "    {r}");
        }
        s.push_str("  }\n");
        counts.insert(name, rules.len());
    }
    s.push_str("}\n");
    (s, counts)
}

/// One transaction that moves the table from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// nft text for `nft -f -`.
    pub script: String,
    /// True when the whole table is replaced.
    pub full: bool,
    /// Flows to remove from conntrack once the change is in.
    pub stale: BTreeSet<FlowMatch>,
}

/// The change from `old` (what the kernel has, None if unknown) to `new`.
/// None when nothing changes.
pub fn change(old: Option<&Ruleset>, new: &Ruleset) -> Option<Change> {
    let Some(old) = old.filter(|o| o.skeleton == new.skeleton) else {
        return Some(full(old, new));
    };
    let mut dels = String::new();
    let mut adds = String::new();
    let mut stale = BTreeSet::new();
    for (set, new_el) in &new.elements {
        let empty = BTreeMap::new();
        let old_el = old.elements.get(set).unwrap_or(&empty);
        let gone: Vec<&String> = old_el.keys().filter(|k| !new_el.contains_key(*k)).collect();
        let came: Vec<&String> = new_el.keys().filter(|k| !old_el.contains_key(*k)).collect();
        stale.extend(gone.iter().filter_map(|k| old_el[*k]));
        stale.extend(came.iter().filter_map(|k| new_el[*k]));
        element_cmd(&mut dels, "delete", set, gone.into_iter());
        element_cmd(&mut adds, "add", set, came.into_iter());
    }
    if dels.is_empty() && adds.is_empty() {
        return None;
    }
    Some(Change {
        script: dels + &adds,
        full: false,
        stale,
    })
}

/// Replace the whole table: declare it (so delete cannot fail), delete it,
/// then add it back with every element, all in one transaction.
pub fn full(old: Option<&Ruleset>, new: &Ruleset) -> Change {
    let mut s = format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n");
    s.push_str(&new.skeleton);
    let mut stale = BTreeSet::new();
    for (set, el) in &new.elements {
        element_cmd(&mut s, "add", set, el.keys());
        if let Some(old) = old {
            let empty = BTreeMap::new();
            let old_el = old.elements.get(set).unwrap_or(&empty);
            stale.extend(
                old_el
                    .iter()
                    .filter(|(k, _)| !el.contains_key(*k))
                    .filter_map(|(_, f)| *f),
            );
            stale.extend(
                el.iter()
                    .filter(|(k, _)| !old_el.contains_key(*k))
                    .filter_map(|(_, f)| *f),
            );
        }
    }
    Change {
        script: s,
        full: true,
        stale,
    }
}

fn element_cmd<'a>(
    out: &mut String,
    verb: &str,
    set: &str,
    items: impl Iterator<Item = &'a String>,
) {
    let mut first = true;
    for item in items {
        if first {
            let _ = write!(out, "{verb} element {FAMILY} {TABLE} {set} {{ ");
            first = false;
        } else {
            out.push_str(", ");
        }
        out.push_str(item);
    }
    if !first {
        out.push_str(" }\n");
    }
}

/// A script that removes our table (used when the agent is told to stop NAT
/// entirely, and by tests).
pub fn delete_table() -> String {
    format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Edit, Eip, Nic, Snat};

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    fn links() -> BTreeMap<Mac, IfName> {
        [
            ("fa:26:9c:aa:00:01", "eth0"),
            ("fa:26:9c:aa:00:02", "eth1"),
            ("fa:26:9c:aa:00:03", "eth2"),
        ]
        .into_iter()
        .map(|(m, n)| (mac(m), n.parse().unwrap()))
        .collect()
    }

    fn nic(
        m: &str,
        ip: &str,
        len: u8,
        category: NicCategory,
        action: Option<DefaultAction>,
    ) -> Nic {
        Nic {
            mac: mac(m),
            ip: Some((ip.parse().unwrap(), len)),
            gateway: None,
            is_default_route: false,
            category,
            mtu: None,
            default_action: action,
            ip6: None,
            gateway6: None,
        }
    }

    fn pf(uuid: &str, vs: u16, ve: u16, ps: u16, pe: u16, allowed: Option<&str>) -> PortForward {
        PortForward {
            uuid: uuid.into(),
            proto: Proto::Tcp,
            vip: "172.20.10.100".parse().unwrap(),
            vip_ports: PortRange { start: vs, end: ve },
            private_ip: "192.168.100.10".parse().unwrap(),
            private_ports: PortRange { start: ps, end: pe },
            public_mac: mac("fa:26:9c:aa:00:02"),
            private_mac: mac("fa:26:9c:aa:00:03"),
            allowed: allowed.map(|c| c.parse().unwrap()),
            snat_inbound: uuid == "exact",
        }
    }

    fn model() -> Model {
        let mut m = Model::default();
        let edits = [
            Edit::ConfigureNics(vec![
                nic(
                    "fa:26:9c:aa:00:01",
                    "10.0.0.25",
                    24,
                    NicCategory::Management,
                    None,
                ),
                nic(
                    "fa:26:9c:aa:00:02",
                    "172.20.10.5",
                    16,
                    NicCategory::Public,
                    None,
                ),
                nic(
                    "fa:26:9c:aa:00:03",
                    "192.168.100.1",
                    24,
                    NicCategory::Private,
                    Some(DefaultAction::Reject),
                ),
            ]),
            Edit::SetSnat(Snat {
                public_mac: mac("fa:26:9c:aa:00:02"),
                public_ip: "172.20.10.5".parse().unwrap(),
                private_mac: mac("fa:26:9c:aa:00:03"),
                private_net: "192.168.100.0/24".parse().unwrap(),
                enabled: true,
            }),
            Edit::CreatePortForwards(vec![
                pf("exact", 8080, 8080, 80, 80, Some("203.0.113.0/24")),
                pf("keep", 9000, 9010, 9000, 9010, None),
                pf("one", 7000, 7010, 22, 22, None),
                pf("shift", 6000, 6002, 7000, 7002, None),
            ]),
            Edit::CreateEip(Eip {
                vip: "172.20.10.101".parse().unwrap(),
                guest: "192.168.100.11".parse().unwrap(),
                public_mac: mac("fa:26:9c:aa:00:02"),
                private_mac: mac("fa:26:9c:aa:00:03"),
                snat_inbound: true,
            }),
        ];
        for e in &edits {
            m.apply(e).unwrap();
        }
        m.validate().unwrap();
        m
    }

    /// The full transaction for a small model, against a golden file
    /// (`UPDATE_GOLDEN=1 cargo test` rewrites it after a deliberate change).
    #[test]
    fn full_render_matches_golden() {
        let links = links();
        let obs = Observed {
            links: &links,
            agent_port: 7272,
        };
        let got = full(None, &render(&model(), &obs).unwrap()).script;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/plan/testdata/nat_small.nft"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &got).unwrap();
        }
        assert_eq!(got, std::fs::read_to_string(path).unwrap());
    }

    #[test]
    fn one_rule_is_one_element_change() {
        let links = links();
        let obs = Observed {
            links: &links,
            agent_port: 7272,
        };
        let m = model();
        let old = render(&m, &obs).unwrap();
        let mut m2 = m.clone();
        m2.apply(&Edit::CreatePortForwards(vec![pf(
            "new", 5000, 5000, 80, 80, None,
        )]))
        .unwrap();
        let c = change(Some(&old), &render(&m2, &obs).unwrap()).unwrap();
        assert!(!c.full);
        assert_eq!(
            c.script,
            "add element ip vragent count_pf_in { 172.20.10.100 . tcp . 5000 }\n\
             add element ip vragent pf_exact { 172.20.10.100 . tcp . 5000 : 192.168.100.10 . 80 }\n",
            "the rule's element and its counter, in one transaction"
        );
        assert_eq!(
            c.stale.into_iter().collect::<Vec<_>>(),
            vec![FlowMatch::DstPorts(
                "172.20.10.100".parse().unwrap(),
                Proto::Tcp,
                PortRange {
                    start: 5000,
                    end: 5000
                }
            )]
        );
        assert!(
            change(Some(&old), &old).is_none(),
            "no change, no transaction"
        );
        // A NIC change rebuilds the table.
        let mut m3 = m;
        m3.apply(&Edit::ForgetNics(vec![mac("fa:26:9c:aa:00:01")]))
            .unwrap();
        assert!(
            change(Some(&old), &render(&m3, &obs).unwrap())
                .unwrap()
                .full
        );
    }

    #[test]
    fn unknown_mac_is_named() {
        let links = BTreeMap::new();
        let obs = Observed {
            links: &links,
            agent_port: 7272,
        };
        let e = render(&model(), &obs).unwrap_err();
        assert!(e.0.contains("matches no NIC"), "{e}");
    }
}
