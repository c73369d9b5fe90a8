//! `GET /metrics` (Prometheus text, promtool-clean), `GET /metrics/zstack`
//! (zvr's names) and `GET /readyz`: what one scrape reads and how it is
//! named.

use std::collections::BTreeMap;

use common::net::{IfName, Mac};
use serde_json::Value;

use crate::engine::Stats;
use crate::plan::nat;
use crate::sys::haproxy::{StatKind, StatRow};
use vr_model::Model;

pub mod nft;
pub mod ready;
pub mod zstack;

pub use common::prometheus::{self as text, Histogram};
use text::{Exposition, Kind};

/// Everything one scrape reads, taken without holding the engine lock
/// longer than a clone.
pub struct Scrape {
    pub model: Model,
    pub stats: Stats,
    pub generation: u64,
    pub links: BTreeMap<Mac, IfName>,
    /// `nft -j list table ip vragent`, None when it cannot be read.
    pub nat: Option<Value>,
    pub haproxy: Vec<StatRow>,
    pub dhcp_leases: usize,
    /// nf_conntrack_count and nf_conntrack_max of the router's namespace.
    pub conntrack: (Option<u64>, Option<u64>),
}

/// nf_conntrack_count / nf_conntrack_max as this process sees them (the
/// agent runs in the router's network namespace).
pub fn read_conntrack() -> (Option<u64>, Option<u64>) {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{f}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    (read("nf_conntrack_count"), read("nf_conntrack_max"))
}

/// The counters of each EIP, port forward and SNAT network.
pub struct Counted {
    /// vip, direction -> (packets, bytes)
    pub eips: Vec<(std::net::Ipv4Addr, &'static str, (u64, u64))>,
    /// uuid, vip, direction -> (packets, bytes)
    pub pfs: Vec<(String, std::net::Ipv4Addr, &'static str, (u64, u64))>,
    /// network, public ip, direction -> (packets, bytes)
    pub snats: Vec<(String, std::net::Ipv4Addr, &'static str, (u64, u64))>,
}

pub fn counted(s: &Scrape) -> Counted {
    let c = s.nat.as_ref().map(nft::counters).unwrap_or_default();
    let get = |set: &str, el: &str| {
        c.get(set)
            .and_then(|m| m.get(&nft::key(el)))
            .copied()
            .unwrap_or((0, 0))
    };
    let find = |els: &[nat::Element], set: &str| {
        els.iter()
            .find(|(s, _, _)| *s == set)
            .map(|(_, e, _)| get(set, e))
    };
    let mut out = Counted {
        eips: vec![],
        pfs: vec![],
        snats: vec![],
    };
    for e in s.model.eips.values() {
        let Ok(els) = nat::eip_elements(e, &s.links) else {
            continue;
        };
        for (set, dir) in [("count_eip_in", "in"), ("count_eip_out", "out")] {
            if let Some(v) = find(&els, set) {
                out.eips.push((e.vip, dir, v));
            }
        }
    }
    for r in s.model.port_forwards.values() {
        let Ok(els) = nat::pf_elements(r, &s.links) else {
            continue;
        };
        if let Some(v) = find(&els, "count_pf_in").or_else(|| find(&els, "count_pf_range_in")) {
            out.pfs.push((r.uuid.clone(), r.vip, "in", v));
        }
    }
    if s.model.snat_enabled {
        for sn in s.model.snats.values().filter(|s| s.enabled) {
            let Some(pub_if) = s.links.get(&sn.public_mac) else {
                continue;
            };
            let v = get("count_snat_out", &nat::snat_counter(pub_if, sn));
            out.snats
                .push((sn.private_net.to_string(), sn.public_ip, "out", v));
        }
    }
    out
}

pub fn render(s: &Scrape) -> String {
    let mut x = Exposition::default();
    engine_families(&mut x, s);
    rule_families(&mut x, &counted(s));
    lb_families(&mut x, &s.haproxy);
    x.render()
}

fn engine_families(x: &mut Exposition, s: &Scrape) {
    let st = &s.stats;
    x.gauge(
        "vr_agent_build_info",
        "The agent's version and the zvr protocol level it speaks (always 1).",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("zvr_version", common::vr::ZVR_VERSION),
        ],
        1.0,
    );
    for (name, help, v) in [
        ("vr_agent_applies_total", "Edits applied.", st.applies),
        (
            "vr_agent_apply_failures_total",
            "Edits refused or failed.",
            st.failures,
        ),
        (
            "vr_agent_nft_full_renders_total",
            "Whole-table nft transactions.",
            st.full_renders,
        ),
        (
            "vr_agent_nft_drift_repairs_total",
            "Times our table was found edited and replaced.",
            st.drift_repairs,
        ),
        (
            "vr_agent_conntrack_deleted_total",
            "Stale conntrack entries removed.",
            st.conntrack_deleted,
        ),
        (
            "vr_agent_dnsmasq_restarts_total",
            "Times dnsmasq died and was restarted.",
            st.dnsmasq_restarts,
        ),
        (
            "vr_agent_haproxy_reloads_total",
            "Hitless haproxy reloads (or starts) for a new config.",
            st.haproxy_reloads,
        ),
        (
            "vr_agent_haproxy_reload_failures_total",
            "haproxy reloads (or starts) that failed.",
            st.haproxy_reload_failures,
        ),
        (
            "vr_agent_haproxy_restarts_total",
            "Times haproxy died and was restarted.",
            st.haproxy_restarts,
        ),
        (
            "vr_agent_child_hung_restarts_total",
            "Times dnsmasq or haproxy stopped answering its probe and was restarted.",
            st.hung_restarts,
        ),
    ] {
        x.counter(name, help, &[], v as f64);
    }
    let m = &s.model;
    for (kind, n) in [
        ("port_forward", m.port_forwards.len()),
        ("eip", m.eips.len()),
        ("vip", m.vips.len()),
        ("snat", m.snats.len()),
        ("dhcp_entry", m.dhcp.entries.len()),
        ("nic", m.nics.len()),
        ("lb_listener", m.lb.listeners.len()),
        ("certificate", m.lb.certificates.len()),
    ] {
        x.gauge(
            "vr_agent_entries",
            "Entries of the router's configuration, by kind.",
            &[("kind", kind)],
            n as f64,
        );
    }
    x.gauge(
        "vr_agent_generation",
        "Generation of the persisted configuration.",
        &[],
        s.generation as f64,
    );
    x.gauge(
        "vr_agent_dhcp_leases",
        "Leases dnsmasq holds now.",
        &[],
        s.dhcp_leases as f64,
    );
    if let Some(n) = s.conntrack.0 {
        x.gauge(
            "vr_agent_conntrack_entries",
            "Connections tracked (nf_conntrack_count).",
            &[],
            n as f64,
        );
    }
    if let Some(n) = s.conntrack.1 {
        x.gauge(
            "vr_agent_conntrack_entries_limit",
            "Most connections the table holds (nf_conntrack_max).",
            &[],
            n as f64,
        );
    }
    x.declare(
        "vr_agent_apply_duration_seconds",
        Kind::Histogram,
        "Time to apply one edit, by section of the router.",
    );
    for (section, h) in &st.apply_seconds {
        x.histogram(
            "vr_agent_apply_duration_seconds",
            "Time to apply one edit, by section of the router.",
            &[("section", section)],
            h,
        );
    }
}

fn rule_families(x: &mut Exposition, c: &Counted) {
    const EIP_P: &str = "Packets of an EIP: in = to its VIP (before DNAT), out = from its guest leaving the public NIC.";
    const EIP_B: &str = "Bytes of an EIP (see vr_agent_eip_packets_total).";
    const PF_P: &str = "Packets to a port forward's VIP protocol and port(s) (before DNAT).";
    const PF_B: &str = "Bytes to a port forward's VIP protocol and port(s).";
    const SN_P: &str = "Packets from an SNAT network leaving its public NIC (EIP guests and DNAT replies excluded).";
    const SN_B: &str = "Bytes from an SNAT network leaving its public NIC.";
    for (n, h) in [
        ("vr_agent_eip_packets_total", EIP_P),
        ("vr_agent_eip_bytes_total", EIP_B),
        ("vr_agent_port_forward_packets_total", PF_P),
        ("vr_agent_port_forward_bytes_total", PF_B),
        ("vr_agent_snat_packets_total", SN_P),
        ("vr_agent_snat_bytes_total", SN_B),
    ] {
        x.declare(n, Kind::Counter, h);
    }
    for (vip, dir, (p, b)) in &c.eips {
        let vip = vip.to_string();
        let l = [("vip", vip.as_str()), ("direction", *dir)];
        x.counter("vr_agent_eip_packets_total", EIP_P, &l, *p as f64);
        x.counter("vr_agent_eip_bytes_total", EIP_B, &l, *b as f64);
    }
    for (uuid, vip, dir, (p, b)) in &c.pfs {
        let vip = vip.to_string();
        let l = [
            ("uuid", uuid.as_str()),
            ("vip", vip.as_str()),
            ("direction", *dir),
        ];
        x.counter("vr_agent_port_forward_packets_total", PF_P, &l, *p as f64);
        x.counter("vr_agent_port_forward_bytes_total", PF_B, &l, *b as f64);
    }
    for (net, ip, dir, (p, b)) in &c.snats {
        let ip = ip.to_string();
        let l = [
            ("network", net.as_str()),
            ("public_ip", ip.as_str()),
            ("direction", *dir),
        ];
        x.counter("vr_agent_snat_packets_total", SN_P, &l, *p as f64);
        x.counter("vr_agent_snat_bytes_total", SN_B, &l, *b as f64);
    }
}

/// haproxy's statistics: listeners (frontends), backends and servers in
/// families of their own.
fn lb_families(x: &mut Exposition, rows: &[StatRow]) {
    for r in rows {
        let (kind, labels): (&str, Vec<(&str, &str)>) = match r.kind {
            StatKind::Listener => ("listener", vec![("listener", &r.listener)]),
            StatKind::Backend => (
                "backend",
                vec![("listener", &r.listener), ("backend", &r.proxy)],
            ),
            StatKind::Server => (
                "server",
                vec![
                    ("listener", &r.listener),
                    ("backend", &r.proxy),
                    ("server", &r.server),
                ],
            ),
        };
        x.gauge(
            &format!("vr_agent_lb_{kind}_up"),
            "1 when haproxy reports it UP or OPEN.",
            &labels,
            f64::from(u8::from(r.up)),
        );
        x.gauge(
            &format!("vr_agent_lb_{kind}_sessions_current"),
            "Sessions open now (haproxy scur).",
            &labels,
            r.sessions_current as f64,
        );
        x.counter(
            &format!("vr_agent_lb_{kind}_sessions_total"),
            "Sessions since haproxy started (haproxy stot).",
            &labels,
            r.sessions_total as f64,
        );
        x.counter(
            &format!("vr_agent_lb_{kind}_received_bytes_total"),
            "Bytes received (haproxy bin).",
            &labels,
            r.bytes_in as f64,
        );
        x.counter(
            &format!("vr_agent_lb_{kind}_sent_bytes_total"),
            "Bytes sent (haproxy bout).",
            &labels,
            r.bytes_out as f64,
        );
    }
}
