//! The management node in its own subnet behind the management gateway,
//! the router's default route on the public NIC (the normal vrouter
//! layout). The router answers the node only through the route to
//! `managementNodeCidr` (bootstrap) / `mgtCidr` (`/init`) via the
//! management gateway; real packets, in namespaces:
//!
//! ```text
//!  mn (10.9.0.2) -- mgw (10.9.0.1 | 10.0.0.1) --eth0-- vr (10.0.0.25) --eth1-- pub (172.20.0.1)
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use testbed::{MGMT_MAC, Netns, PUB_MAC, Proc, TempDir};

struct Nets {
    mn: Netns,
    mgw: Netns,
    vr: Netns,
    _public: Netns,
}

fn nets() -> Nets {
    let mn = Netns::new("mn").unwrap();
    let mgw = Netns::new("mgw").unwrap();
    let vr = Netns::new("mrvr").unwrap();
    let public = Netns::new("mrpub").unwrap();
    testbed::veth(&mn, "eth0", &mgw, "eth0").unwrap();
    testbed::veth(&mgw, "eth1", &vr, "eth0").unwrap();
    testbed::veth(&vr, "eth1", &public, "eth0").unwrap();
    testbed::set_mac(&vr, "eth0", MGMT_MAC).unwrap();
    testbed::set_mac(&vr, "eth1", PUB_MAC).unwrap();
    testbed::addr(&mn, "eth0", "10.9.0.2/24").unwrap();
    testbed::route(&mn, "default via 10.9.0.1").unwrap();
    testbed::addr(&mgw, "eth0", "10.9.0.1/24").unwrap();
    testbed::addr(&mgw, "eth1", "10.0.0.1/24").unwrap();
    mgw.sysctl("net.ipv4.ip_forward", "1").unwrap();
    testbed::addr(&public, "eth0", "172.20.0.1/16").unwrap();
    Nets {
        mn,
        mgw,
        vr,
        _public: public,
    }
}

/// `/echo` from `ns` with a short timeout: true when it answered 200.
fn echo(ns: &Netns) -> bool {
    ns.sh("curl -s -m 2 -o /dev/null -w '%{http_code}' -XPOST -d '{}' http://10.0.0.25:7272/echo")
        .is_ok_and(|c| c.trim() == "200")
}

fn echo_within(ns: &Netns, secs: u64) -> bool {
    testbed::wait_until(
        Duration::from_secs(secs),
        Duration::from_millis(200),
        || echo(ns),
    )
}

fn post(ns: &Netns, path: &str, body: Value) -> (u16, String) {
    testbed::http_post(
        ns,
        &format!("http://10.0.0.25:7272{path}"),
        &body.to_string(),
        &[],
    )
    .unwrap()
}

fn our_routes(vr: &Netns) -> String {
    vr.sh("ip route show proto 250").unwrap()
}

fn nics() -> Value {
    json!({"nics": [
        {"ip": "10.0.0.25", "mac": MGMT_MAC, "netmask": "255.255.255.0", "gateway": "10.0.0.1",
         "category": "Management"},
        {"ip": "172.20.10.5", "mac": PUB_MAC, "netmask": "255.255.0.0", "gateway": "172.20.0.1",
         "isDefaultRoute": true, "category": "Public"}]})
}

fn agent(vr: &Netns, state: &TempDir, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--state-dir",
        state.path().to_str().unwrap(),
        "--drift-check-secs",
        "1",
        // The gateway posts on-link, the node from its network.
        "--allow-from",
        "10.0.0.1,10.9.0.0/24",
    ];
    args.extend_from_slice(extra);
    let mut cmd = vr.command(env!("CARGO_BIN_EXE_vr-agent"), &args);
    cmd.env("VR_AGENT_LOG", "debug");
    Proc::start(cmd).unwrap()
}

#[test]
fn bootstrap_management_node_cidr_routes_the_node_via_the_management_gateway() {
    testbed::require_privileged!();
    let n = nets();
    let tmp = TempDir::new("mrboot").unwrap();
    let file = tmp.path().join("bootstrap.json");
    let doc = json!({
        "managementNic": {"ip": "10.0.0.25", "netmask": "255.255.255.0", "gateway": "10.0.0.1",
            "mac": MGMT_MAC, "deviceName": "eth0", "isDefaultRoute": false, "category": "Management"},
        "additionalNics": [{"ip": "172.20.10.5", "netmask": "255.255.0.0", "gateway": "172.20.0.1",
            "mac": PUB_MAC, "deviceName": "eth1", "isDefaultRoute": true, "category": "Public"}],
        "uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11", "managementNodeIp": "10.9.0.2",
        "managementNodeCidr": "10.9.0.0/24"
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let p = agent(&n.vr, &tmp, &["--bootstrap", file.to_str().unwrap()]);
    assert!(
        echo_within(&n.mgw, 10),
        "agent not up on-link:\n{}",
        p.log()
    );
    let route = n.vr.sh("ip route show default").unwrap();
    assert!(route.contains("via 172.20.0.1 dev eth1"), "{route}");
    assert!(
        echo_within(&n.mn, 5),
        "the management node in 10.9.0.0/24 gets no answer; routes:\n{}\n{}",
        n.vr.sh("ip route").unwrap(),
        p.log()
    );
    let ours = our_routes(&n.vr);
    assert!(ours.contains("10.9.0.0/24 via 10.0.0.1 dev eth0"), "{ours}");
}

#[test]
fn init_mgt_cidr_route_follows_changes_restart_and_drift() {
    testbed::require_privileged!();
    let n = nets();
    // The management address comes from the bootstrap info in a real VR.
    testbed::addr(&n.vr, "eth0", "10.0.0.25/24").unwrap();
    let state = TempDir::new("mrinit").unwrap();
    let listen = ["--listen", "10.0.0.25:7272"];
    let mut p = agent(&n.vr, &state, &listen);
    assert!(echo_within(&n.mgw, 10), "agent not up:\n{}", p.log());
    let (code, body) = post(&n.mgw, "/configurenic", nics());
    assert_eq!(code, 200, "{body}");
    assert!(
        !echo(&n.mn),
        "answered without a route: the test proves nothing"
    );

    let (code, body) = post(
        &n.mgw,
        "/init",
        json!({"uuid": "vr1", "mgtCidr": "10.9.0.0/24"}),
    );
    assert_eq!(code, 200, "{body}");
    assert!(echo_within(&n.mn, 5), "no answer after /init:\n{}", p.log());
    assert_eq!(
        our_routes(&n.vr).trim(),
        "10.9.0.0/24 via 10.0.0.1 dev eth0"
    );
    // Idempotent.
    let (code, body) = post(
        &n.mgw,
        "/init",
        json!({"uuid": "vr1", "mgtCidr": "10.9.0.0/24"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(our_routes(&n.vr).lines().count(), 1);

    // Someone deletes it: the drift check puts it back.
    n.vr.ip("route del 10.9.0.0/24").unwrap();
    assert!(echo_within(&n.mn, 5), "route not repaired:\n{}", p.log());

    // Restart with the route gone: re-applied from the persisted state.
    p.kill();
    n.vr.ip("route del 10.9.0.0/24").unwrap();
    p = agent(&n.vr, &state, &listen);
    assert!(
        echo_within(&n.mn, 10),
        "route not re-applied at start:\n{}",
        p.log()
    );

    // The node moved: the old route goes, the new one comes.
    let (code, body) = post(
        &n.mgw,
        "/init",
        json!({"uuid": "vr1", "mgtCidr": "10.8.0.0/16"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        our_routes(&n.vr).trim(),
        "10.8.0.0/16 via 10.0.0.1 dev eth0"
    );
    assert!(!echo(&n.mn));

    // On-link: no route at all.
    let (code, body) = post(
        &n.mgw,
        "/init",
        json!({"uuid": "vr1", "mgtCidr": "10.0.0.0/24"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(our_routes(&n.vr).trim(), "");

    let (code, body) = post(
        &n.mgw,
        "/init",
        json!({"uuid": "vr1", "mgtCidr": "10.9.0.300/24"}),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("mgtCidr"), "{body}");
}
