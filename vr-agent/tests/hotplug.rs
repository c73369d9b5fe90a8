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

/// A NIC detached while the router was stopped: the node skips
/// `/removenic` then, and the bootstrap info of the next boot no longer
/// lists it. The persisted state still names it (SNAT, EIP, DHCP on it);
/// the router must boot and serve the rest, not fail on the missing NIC.
#[test]
fn a_nic_detached_while_stopped_is_forgotten_at_boot() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    let guest = Netns::new("hpgone").unwrap();
    lab.vr
        .ip(&format!(
            "link add eth3 address {NEW_MAC} type veth peer name eth0 netns {}",
            guest.name()
        ))
        .unwrap();
    lab.ok("/configurenic", new_nic());
    let snat3 = json!({"publicNicMac": PUB_MAC, "publicIp": "172.20.10.5", "privateNicMac": NEW_MAC,
        "privateNicIp": "192.168.200.1", "snatNetmask": "255.255.255.0"});
    lab.ok(
        "/syncsnat",
        json!({"snats": [snat(), snat3], "enable": true}),
    );
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.101")]}));
    lab.ok(
        "/createeip",
        json!({"eip": {"vipIp": "172.20.10.101", "privateMac": NEW_MAC, "publicMac": PUB_MAC,
            "guestIp": "192.168.200.10"}}),
    );
    lab.ok(
        "/startDhcpServer",
        json!({"dhcpServers": [{"nicMac": NEW_MAC, "subnet": "192.168.200.0/24",
            "netmask": "255.255.255.0", "gateway": "192.168.200.1", "dnsServer": "192.168.200.1",
            "dhcpInfos": [{"ip": "192.168.200.10", "mac": "fa:a1:5e:00:00:10", "isDefaultL3Network": true}]}]}),
    );
    lab.kill_agent();
    lab.vr.ip("link del eth3").unwrap();

    let boot = lab.state.path().join("bootstrap.json");
    let doc = json!({
        "managementNic": {"ip": "10.0.0.25", "netmask": "255.255.255.0", "mac": MGMT_MAC,
            "deviceName": "eth0", "category": "Management"},
        "additionalNics": [
            {"ip": "172.20.10.5", "netmask": "255.255.0.0", "gateway": "172.20.0.1", "mac": PUB_MAC,
             "deviceName": "eth1", "isDefaultRoute": true, "category": "Public"},
            {"ip": "192.168.100.1", "netmask": "255.255.255.0", "mac": PRIV_MAC,
             "deviceName": "eth2", "category": "Private"}],
        "uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11", "managementNodeIp": "10.0.0.2"
    });
    std::fs::write(&boot, doc.to_string()).unwrap();
    let mut cmd = lab.vr.command(
        env!("CARGO_BIN_EXE_vr-agent"),
        &[
            "--bootstrap",
            boot.to_str().unwrap(),
            "--bootstrap-timeout-secs",
            "5",
            "--state-dir",
            lab.state.path().to_str().unwrap(),
        ],
    );
    cmd.env("VR_AGENT_LOG", "debug");
    lab.agent = Some(testbed::Proc::start(cmd).unwrap());
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        lab.post_raw("/echo", "{}", &[]).is_ok_and(|r| r.0 == 200)
    });
    assert!(up, "router did not boot:\n{}", lab.log());
    let (_, state) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    assert!(!state.contains(NEW_MAC), "{state}");
    assert!(!lab.table_text().contains("eth3"), "{}", lab.table_text());
    // What was not on the NIC still works: the tenant's SNAT.
    let _out = TcpServer::start(&lab.public, "0.0.0.0:80").unwrap();
    let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.10.5", "{}", lab.log());
}
