//! A `/configurenic` the kernel refuses half-way leaves the links as they
//! were: addresses (with the VIPs an IPv4 primary takes along when it is
//! deleted), their order, the MTU and every route, compared as the
//! kernel lists them.

mod common;

use common::*;
use serde_json::json;

/// `ip -j` dumps, without the link-local addresses' DAD progress (which
/// moves on its own while the test runs).
fn kernel_view(lab: &Lab) -> String {
    lab.vr
        .sh("ip -j addr; ip -j route; ip -j -6 route; ip -j route show table all proto 250")
        .unwrap()
        .replace("\"tentative\":true,", "")
}

#[test]
fn a_refused_configurenic_puts_links_and_routes_back() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    // A refusal no validation foresees: IPv6 is off on the public link.
    lab.vr
        .sh("sysctl -qw net.ipv6.conf.eth1.disable_ipv6=1")
        .unwrap();
    let before = kernel_view(&lab);
    let (_, state_before) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    let (code, v) = lab
        .post(
            "/configurenic",
            json!({"nics": [{"ip": "172.20.10.6", "mac": PUB_MAC, "netmask": "255.255.0.0",
                "gateway": "172.20.0.1", "isDefaultRoute": true, "category": "Public", "mtu": 1400,
                "ip6": "2001:db8:20::5", "prefixLength": 64, "addressMode": "Stateful-DHCP"}]}),
        )
        .unwrap();
    assert!(code >= 400, "{v}");
    assert_eq!(kernel_view(&lab), before, "{v}\n{}", lab.log());
    let (_, state_after) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    let model = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["model"].clone();
    assert_eq!(model(&state_after), model(&state_before));
    // The datapath works as before: SNAT out through the public NIC.
    let _web = testbed::TcpServer::start(&lab.public, "0.0.0.0:80").unwrap();
    let seen = testbed::tcp_probe(&lab.tenant, "172.20.0.1:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.10.5");
}
