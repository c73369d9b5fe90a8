//! The same counters under the names ZStack's own router agent exports,
//! so existing ZStack dashboards keep working. Pinned to zstackio/zstack-vyos
//! at 63bc11ade0f13f3287cdd1d7a90a7aab9a130af0: `plugin/vip.go`
//! (`NewVipPrometheusCollector`: zstack_vip_{in,out}_{bytes,packages},
//! label VipUUID) and `plugin/lb.go` (`NewLbPrometheusCollector`:
//! zstack_lb_*, labels ListenerUuid, NicIpAddress, LbUuid). zvr declares
//! them all as gauges; their camelCase label names are the one thing
//! promtool's lint objects to, so they are served apart from `/metrics`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::text::{Exposition, Kind};
use super::{Scrape, counted};
use crate::sys::haproxy::StatKind;

pub fn render(s: &Scrape) -> String {
    let mut x = Exposition::default();
    let c = counted(s);
    // Per VIP address: (in packets, in bytes, out packets, out bytes).
    let mut by_vip: BTreeMap<IpAddr, [u64; 4]> = BTreeMap::new();
    let mut add = |vip: IpAddr, dir: &str, (p, b): (u64, u64)| {
        let v = by_vip.entry(vip).or_default();
        let i = if dir == "in" { 0 } else { 2 };
        v[i] += p;
        v[i + 1] += b;
    };
    for (vip, dir, v) in &c.eips {
        add(IpAddr::V4(*vip), dir, *v);
    }
    for (_, vip, dir, v) in &c.pfs {
        add(IpAddr::V4(*vip), dir, *v);
    }
    for (_, ip, dir, v) in &c.snats {
        add(IpAddr::V4(*ip), dir, *v);
    }
    let fams = [
        ("zstack_vip_in_bytes", "VIP inbound traffic in bytes"),
        ("zstack_vip_in_packages", "VIP inbound traffic packages"),
        ("zstack_vip_out_bytes", "VIP outbound traffic in bytes"),
        ("zstack_vip_out_packages", "VIP outbound traffic packages"),
    ];
    for (n, h) in fams {
        x.declare(n, Kind::Gauge, h);
    }
    for (ip, v) in &by_vip {
        let Some(uuid) = s
            .model
            .vips
            .values()
            .find(|x| x.ip == *ip)
            .and_then(|x| x.uuid.clone())
        else {
            continue;
        };
        let l = [("VipUUID", uuid.as_str())];
        x.gauge(fams[0].0, fams[0].1, &l, v[1] as f64);
        x.gauge(fams[1].0, fams[1].1, &l, v[0] as f64);
        x.gauge(fams[2].0, fams[2].1, &l, v[3] as f64);
        x.gauge(fams[3].0, fams[3].1, &l, v[2] as f64);
    }
    for r in s.haproxy.iter().filter(|r| r.kind == StatKind::Server) {
        let lb = s
            .model
            .lb
            .listeners
            .get(&r.listener)
            .map(|l| l.lb_uuid.clone())
            .unwrap_or_default();
        let ip = r.server.strip_prefix("s-").unwrap_or(&r.server);
        let l = [
            ("ListenerUuid", r.listener.as_str()),
            ("NicIpAddress", ip),
            ("LbUuid", lb.as_str()),
        ];
        for (n, h, v) in [
            (
                "zstack_lb_status",
                "Backend server health status",
                u64::from(r.up),
            ),
            (
                "zstack_lb_cur_session_num",
                "Backend server active session number",
                r.sessions_current,
            ),
            (
                "zstack_lb_in_bytes",
                "Backend server traffic in bytes",
                r.bytes_in,
            ),
            (
                "zstack_lb_out_bytes",
                "Backend server traffic in bytes",
                r.bytes_out,
            ),
            (
                "zstack_lb_total_session_num",
                "Backend server total session number",
                r.sessions_total,
            ),
        ] {
            x.gauge(n, h, &l, v as f64);
        }
    }
    x.render()
}
