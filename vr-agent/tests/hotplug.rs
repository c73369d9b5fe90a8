//! NIC hot-plug: a VPC router gains a network when the host attaches a NIC,
//! and the node sends `/configurenic` right after; the link can appear in
//! the guest a little after the command. `/removenic` before the host
//! detaches it removes it cleanly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use testbed::{Netns, TcpServer, tcp_probe};

const NEW_MAC: &str = "fa:26:9c:aa:00:05";

fn new_nic() -> serde_json::Value {
    json!({"nics": [{"ip": "192.168.200.1", "mac": NEW_MAC, "netmask": "255.255.255.0",
        "gateway": "192.168.200.1", "category": "Private", "l2type": "L2VlanNetwork",
        "vni": 200, "mtu": 1450, "isDefaultRoute": false, "state": "enable"}]})
}

#[test]
fn a_nic_plugged_after_start_is_configured_and_removed() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    let guest = Netns::new("hpguest").unwrap();
    // The host attaches the NIC; the guest sees it 1.5 s after the command.
    let (vr, peer) = (lab.vr.name().to_string(), guest.name().to_string());
    let plug = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let ok = std::process::Command::new("ip")
            .args([
                "-n", &vr, "link", "add", "eth3", "address", NEW_MAC, "type", "veth",
            ])
            .args(["peer", "name", "eth0", "netns", &peer])
            .status()
            .unwrap();
        assert!(ok.success());
    });
    let t = Instant::now();
    lab.ok("/configurenic", new_nic());
    plug.join().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(1400));
    guest.ip("link set eth0 up").unwrap();
    testbed::addr(&guest, "eth0", "192.168.200.10/24").unwrap();
    testbed::route(&guest, "default via 192.168.200.1").unwrap();
    let link = lab
        .vr
        .sh("ip -o link show dev eth3; ip -4 -o addr show dev eth3")
        .unwrap();
    assert!(
        link.contains("mtu 1450") && link.contains("192.168.200.1/24"),
        "{link}"
    );
    assert!(testbed::ping(&guest, "192.168.200.1", 2), "{}", lab.log());
    // Routed like any NIC: the tenant reaches the new network (no default
    // action set on it; the tenant's own NIC rejects new connections in).
    let _web = TcpServer::start(&guest, "0.0.0.0:80").unwrap();
    let seen = tcp_probe(&lab.tenant, "192.168.200.10:80", T).unwrap();
    assert_eq!(source(&seen), "192.168.100.10");

    // Before the host detaches it: /removenic (with a VIP on it, which the
    // NIC's address flush takes along).
    lab.ok(
        "/createvip",
        json!({"vips": [{"ip": "192.168.200.50", "netmask": "255.255.255.0", "ownerEthernetMac": NEW_MAC}]}),
    );
    lab.ok("/removenic", new_nic());
    let addrs = lab.vr.sh("ip -4 -o addr show dev eth3").unwrap();
    assert_eq!(addrs.trim(), "", "addresses left on the removed NIC");
    lab.vr.ip("link del eth3").unwrap();
    // The router goes on: edits apply, and a restart re-applies its state.
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    lab.kill_agent();
    lab.start_agent().unwrap();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.101")]}));
    assert!(
        !lab.log().contains("re-applying persisted state failed"),
        "{}",
        lab.log()
    );
}

#[test]
fn a_nic_that_never_appears_is_a_clear_error() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let t = Instant::now();
    let (code, v) = lab.post("/configurenic", new_nic()).unwrap();
    let waited = t.elapsed();
    assert_eq!(code, 409, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains(NEW_MAC) && e.contains("after waiting 5 s"),
        "{e}"
    );
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let (_, state) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    assert!(!state.contains(NEW_MAC), "{state}");
}
