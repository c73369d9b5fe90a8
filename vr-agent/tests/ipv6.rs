//! IPv6 NIC addresses, the IPv6 default route and IPv6 VIPs, with real
//! packets: a neighbour on the public network pings them, and learns a
//! VIP's MAC from the router's unsolicited neighbour advertisement.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn public_nic(with_ip6: bool) -> Value {
    let mut n = json!({"ip": "172.20.10.5", "mac": PUB_MAC, "netmask": "255.255.0.0",
        "gateway": "172.20.0.1", "isDefaultRoute": true, "category": "Public"});
    if with_ip6 {
        n["ip6"] = json!("2001:db8:20::5");
        n["prefixLength"] = json!(64);
        n["gateway6"] = json!("2001:db8:20::1");
        n["addressMode"] = json!("Stateful-DHCP");
    }
    json!({"nics": [n]})
}

/// What VipTO.valueOf makes of an IPv6 VIP: ip6, netmask, gateway6 and
/// prefixLength, no ip.
fn vip6(ip6: &str) -> Value {
    json!({"ip6": ip6, "netmask": "ffff:ffff:ffff:ffff::", "gateway6": "2001:db8:20::1",
           "prefixLength": 64, "ownerEthernetMac": PUB_MAC, "vipUuid": "v6", "isSystem": false})
}

fn ping6(lab: &Lab, ip: &str) -> bool {
    testbed::ping(&lab.public, ip, 2)
}

/// The MAC the public neighbour has cached for `ip`, if any.
fn cached_mac(lab: &Lab, ip: &str) -> String {
    lab.public
        .sh(&format!("ip -6 neigh show {ip} dev eth0"))
        .unwrap_or_default()
}

#[test]
fn ipv6_addresses_default_route_and_vips() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.public
        .ip("addr add 2001:db8:20::1/64 dev eth0 nodad")
        .unwrap();
    lab.base_config();
    lab.ok("/configurenic", public_nic(true));
    let a = lab.vr.sh("ip -6 addr show dev eth1").unwrap();
    assert!(a.contains("2001:db8:20::5/64"), "{a}");
    let r = lab.vr.sh("ip -6 route show default").unwrap();
    assert!(r.contains("via 2001:db8:20::1 dev eth1"), "{r}");
    assert!(ping6(&lab, "2001:db8:20::5"), "NIC address does not answer");

    // The neighbour cached another router's MAC for the VIP (it moved).
    lab.public
        .ip("-6 neigh replace 2001:db8:20::100 lladdr 02:00:00:00:00:99 dev eth0 nud stale")
        .unwrap();
    // VirtualRouterSyncVipFlow: every VIP in one /createvip, IPv4 and IPv6,
    // and nicIps with the IPv6-only NIC's address.
    lab.ok(
        "/createvip",
        json!({"syncVip": true, "vips": [vip("172.20.10.100"), vip6("2001:db8:20::100")],
               "nicIps": [
                   {"ip": "172.20.10.5", "netmask": "255.255.0.0", "ownerEthernetMac": PUB_MAC},
                   {"ip": "2001:db8:20::5", "netmask": "ffff:ffff:ffff:ffff::", "ownerEthernetMac": PUB_MAC}]}),
    );
    let learned = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(100), || {
        cached_mac(&lab, "2001:db8:20::100").contains(PUB_MAC)
    });
    assert!(
        learned,
        "no unsolicited neighbour advertisement: {}\n{}",
        cached_mac(&lab, "2001:db8:20::100"),
        lab.log()
    );
    assert!(ping6(&lab, "2001:db8:20::100"), "IPv6 VIP does not answer");
    assert!(testbed::ping(&lab.public, "172.20.10.100", 1));
    let a = lab.vr.sh("ip -4 -o addr show dev eth1").unwrap();
    let first = a.lines().next().unwrap_or("");
    assert!(
        first.contains("172.20.10.5/16"),
        "NIC's own IPv4 first:\n{a}"
    );

    // Restart with the addresses gone: re-applied from the persisted state.
    lab.kill_agent();
    lab.vr.ip("-6 addr flush dev eth1 scope global").unwrap();
    lab.start_agent().unwrap();
    assert!(ping6(&lab, "2001:db8:20::100"), "VIP not re-applied");
    assert!(ping6(&lab, "2001:db8:20::5"), "NIC address not re-applied");

    // Removal.
    lab.ok("/removevip", json!({"vips": [vip6("2001:db8:20::100")]}));
    let a = lab.vr.sh("ip -6 addr show dev eth1").unwrap();
    assert!(!a.contains("2001:db8:20::100"), "{a}");
    assert!(!ping6(&lab, "2001:db8:20::100"));
    assert!(
        testbed::ping(&lab.public, "172.20.10.100", 1),
        "IPv4 VIP stays"
    );
    lab.ok("/configurenic", public_nic(false));
    let a = lab.vr.sh("ip -6 addr show dev eth1").unwrap();
    assert!(!a.contains("2001:db8:20::5"), "{a}");
}

#[test]
fn bad_ipv6_fields_are_named() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let mut nic = public_nic(true);
    nic["nics"][0]["prefixLength"] = json!(129);
    let (code, v) = lab.post("/configurenic", nic).unwrap();
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("prefixLength"), "{v}");
    let (code, v) = lab
        .post("/createvip", json!({"vips": [vip6("2001:db8:20::zz")]}))
        .unwrap();
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ip6"), "{v}");
}
