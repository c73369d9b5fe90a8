//! The management plane belongs to the controller (issue 14), with real
//! packets in the lab's namespaces:
//! * entries that would take the agent's address or port away (a PF, LB
//!   listener, EIP or VIP on the management IP, a /configurenic that turns
//!   the management NIC into another category or moves its IP) are 409s
//!   naming the conflict, and the controller still reaches the agent;
//! * the tenant and the outside cannot connect to the agent's port before,
//!   during and after `nft flush ruleset`; the controller can throughout;
//! * commands come only from allowed controller addresses (403 naming the
//!   peer), and a callback URL must point at one (400).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use testbed::Netns;

const MGMT_IP: &str = "10.0.0.25";

fn conflict(lab: &Lab, path: &str, body: Value, want: &[&str]) {
    let (code, text) = lab.post_raw(path, &body.to_string(), &[]).unwrap();
    assert_eq!(code, 409, "{path}: {text}\n{}", lab.log());
    for w in want {
        assert!(text.contains(w), "{path}: {text:?} does not name {w:?}");
    }
    // The agent still answers its controller.
    assert_eq!(lab.post_raw("/echo", "{}", &[]).unwrap().0, 200);
}

#[test]
fn entries_on_the_management_ip_and_agent_port_are_conflicts() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    conflict(
        &lab,
        "/createportforwarding",
        json!({"rules": [pf("steal", MGMT_IP, "tcp", 7000, 7300, 7000, 7300, None)]}),
        &["steal", MGMT_IP, "7272", "management"],
    );
    // A sync naming such a rule clashes with the router too (not a 400).
    conflict(
        &lab,
        "/syncportforwarding",
        json!({"rules": [pf("steal", MGMT_IP, "tcp", 7272, 7272, 80, 80, None)]}),
        &["steal", "7272", "management"],
    );
    conflict(
        &lab,
        "/synceip",
        json!({"eips": [eip(MGMT_IP, "192.168.100.10")]}),
        &[MGMT_IP, "management"],
    );
    conflict(
        &lab,
        "/createeip",
        json!({"eip": eip(MGMT_IP, "192.168.100.10")}),
        &[MGMT_IP, "management"],
    );
    conflict(
        &lab,
        "/createvip",
        json!({"vips": [{"ip": MGMT_IP, "netmask": "255.255.255.0", "ownerEthernetMac": MGMT_MAC}]}),
        &[MGMT_IP, "management"],
    );
    conflict(
        &lab,
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "grab", "vip": MGMT_IP,
            "publicNic": MGMT_MAC, "nicIps": ["192.168.100.10"], "instancePort": 80,
            "loadBalancerPort": 7272, "mode": "tcp", "parameters": [], "serverGroups": [],
            "redirectRules": []}]}),
        &["grab", "7272", "management"],
    );
    conflict(
        &lab,
        "/configurenic",
        json!({"nics": [{"ip": MGMT_IP, "mac": MGMT_MAC, "netmask": "255.255.255.0",
            "category": "Private"}]}),
        &[MGMT_MAC, "Management", "Private"],
    );
    conflict(
        &lab,
        "/configurenic",
        json!({"nics": [{"ip": "10.0.0.26", "mac": MGMT_MAC, "netmask": "255.255.255.0",
            "category": "Management"}]}),
        &[MGMT_MAC, MGMT_IP, "10.0.0.26"],
    );
    conflict(
        &lab,
        "/removenic",
        json!({"nics": [{"ip": MGMT_IP, "mac": MGMT_MAC, "netmask": "255.255.255.0",
            "category": "Management"}]}),
        &[MGMT_MAC, "management NIC"],
    );
    // Other ports and other VIPs stay fine.
    lab.ok(
        "/createportforwarding",
        json!({"rules": [pf("ok", MGMT_IP, "tcp", 8000, 8010, 8000, 8010, None)]}),
    );
    let state = testbed::http_get(&lab.ctl, &format!("{AGENT}/state"))
        .unwrap()
        .1;
    assert!(
        !state.contains("steal") && !state.contains("grab"),
        "{state}"
    );
}

/// Can `ns` open a TCP connection to the agent?
fn connects(ns: &Netns) -> bool {
    let to: SocketAddr = format!("{MGMT_IP}:7272").parse().unwrap();
    ns.run(|| TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_ok())
}

#[test]
fn only_the_management_nic_reaches_the_agent_even_without_nft() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    // The outside routes to the management network through the VR.
    testbed::route(&lab.public, "10.0.0.0/24 via 172.20.10.5").unwrap();
    let check = |when: &str| {
        assert!(connects(&lab.ctl), "{when}: the controller cannot connect");
        assert!(!connects(&lab.tenant), "{when}: the tenant connected");
        assert!(!connects(&lab.public), "{when}: the outside connected");
    };
    check("before the flush");
    lab.vr.sh("nft flush ruleset").unwrap();
    // The drift check puts the table back within ~1 s: probe at once and
    // repeatedly meanwhile.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        check("after nft flush ruleset");
    }
    // Without our table (and with another one that accepts everything).
    lab.vr.sh("nft flush ruleset").unwrap();
    check("right after a second flush");
    let back = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        lab.table_text().contains("table ip vragent")
    });
    assert!(back, "the table did not come back\n{}", lab.log());
    check("after the repair");
}

#[test]
fn commands_only_from_allowed_controllers_and_callbacks_only_to_them() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    // A second host on the management network, which is no controller
    // (the lab allows 10.0.0.2 only): refused naming its address, /echo too.
    lab.ctl.sh("ip addr add 10.0.0.3/24 dev eth0").unwrap();
    for (method, path) in [
        ("POST", "/echo"),
        ("POST", "/configurenic"),
        ("GET", "/state"),
    ] {
        let out = lab
            .ctl
            .sh(&format!(
                "curl -s -w ' %{{http_code}}' --interface 10.0.0.3 -X {method} -d '{{}}' {AGENT}{path}"
            ))
            .unwrap();
        assert!(out.ends_with(" 403"), "{path}: {out}");
        assert!(out.contains("10.0.0.3"), "{path}: {out}");
    }
    let out = lab
        .ctl
        .sh(&format!(
            "curl -s -w ' %{{http_code}}' --interface 10.0.0.3 {AGENT}/healthz"
        ))
        .unwrap();
    assert!(out.ends_with(" 200"), "/healthz: {out}");
    // A callback into the tenant's network is refused before the command runs.
    let (code, text) = lab
        .post_raw(
            "/createportforwarding",
            &json!({"rules": [pf("cb", "172.20.10.100", "tcp", 80, 80, 80, 80, None)]}).to_string(),
            &[
                ("callbackurl", "http://192.168.100.10:8080/cb"),
                ("taskuuid", "t1"),
            ],
        )
        .unwrap();
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("192.168.100.10"), "{text}");
    let state = testbed::http_get(&lab.ctl, &format!("{AGENT}/state"))
        .unwrap()
        .1;
    assert!(
        !state.contains("\"cb\""),
        "the refused command ran: {state}"
    );
    // The audit line of a mutating command: peer, path, result, generation.
    let log = lab.log();
    let line = log
        .lines()
        .find(|l| l.contains("audit") && l.contains("/syncsnat"))
        .unwrap_or_else(|| panic!("no audit line for /syncsnat:\n{log}"));
    assert!(
        line.contains("10.0.0.2") && line.contains("generation") && line.contains("success"),
        "{line}"
    );
}

#[test]
fn the_protected_port_is_the_one_the_agent_listens_on() {
    testbed::require_privileged!();
    let vr = Netns::new("mpvr").unwrap();
    let ctl = Netns::new("mpctl").unwrap();
    testbed::veth(&vr, "eth0", &ctl, "eth0").unwrap();
    testbed::set_mac(&vr, "eth0", MGMT_MAC).unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.25/24").unwrap();
    testbed::addr(&ctl, "eth0", "10.0.0.2/24").unwrap();
    let state = testbed::TempDir::new("mpstate").unwrap();
    let agent = testbed::Proc::start(vr.command(
        env!("CARGO_BIN_EXE_vr-agent"),
        &[
            "--listen",
            "10.0.0.25:7300",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--allow-from",
            "10.0.0.2",
            "--drift-check-secs",
            "0",
        ],
    ))
    .unwrap();
    let url = |p: &str| format!("http://10.0.0.25:7300{p}");
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        testbed::http_post(&ctl, &url("/echo"), "{}", &[]).is_ok_and(|r| r.0 == 200)
    });
    assert!(up, "{}", agent.log());
    let post =
        |p: &str, body: Value| testbed::http_post(&ctl, &url(p), &body.to_string(), &[]).unwrap();
    let (code, text) = post(
        "/configurenic",
        json!({"nics": [{"ip": MGMT_IP, "mac": MGMT_MAC, "netmask": "255.255.255.0",
            "category": "Management"}]}),
    );
    assert_eq!(code, 200, "{text}");
    let (code, text) = post(
        "/createportforwarding",
        json!({"rules": [pf("steal", MGMT_IP, "tcp", 7300, 7300, 80, 80, None)]}),
    );
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("7300"), "{text}");
    // 7272 is not the agent's port here: no management-plane conflict
    // (this topology has no public NIC, which is what it is refused for).
    let (code, text) = post(
        "/createportforwarding",
        json!({"rules": [pf("ok", MGMT_IP, "tcp", 7272, 7272, 80, 80, None)]}),
    );
    // Both are 409s (clashes with the router); the cause tells them apart.
    assert!(
        text.contains("matches no NIC") && !text.contains("agent's port"),
        "{code} {text}"
    );
}
