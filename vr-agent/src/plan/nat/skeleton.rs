//! The table's skeleton: the declarations of its sets and maps and its
//! chains, which read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::net::IfName;

use super::{FAMILY, PF_INBOUND_MARK, TABLE};

/// Declarations of every set and map: (name, declaration body).
pub const SETS: &[(&str, &str)] = &[
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

/// The table's structure. Chains read the maps and sets; only the management
/// interface is spelled out, because an empty set would match everything.
pub(super) fn skeleton(
    mgmt: Option<&IfName>,
    agent_port: u16,
) -> (String, BTreeMap<&'static str, usize>) {
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
        // The HA pair's heartbeat is the management NIC: VRRP adverts and
        // conntrackd's sync from a tenant or the outside could demote the
        // master or plant NAT bindings.
        // 112 is VRRP: the image has no /etc/protocols to name it.
        input.push(format!("ip protocol 112 iifname != \"{m}\" drop"));
        input.push(format!(
            "udp dport {} iifname != \"{m}\" drop",
            crate::plan::conntrackd::SYNC_PORT
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
