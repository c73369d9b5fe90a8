//! `/changeDefaultNic` (the node sends it when a VR's default network
//! changes): the default route and the SNATs move to the new NIC, with real
//! packets; a change the kernel refuses half way leaves the old one in force.
//!
//! ```text
//!  tenant -- vr --eth1-- pub  (172.20.0.1; 198.51.100.7 on lo)
//!             \--eth3-- pub2 (172.30.0.1; 198.51.100.7 on lo)
//! ```

mod common;

use common::*;
use serde_json::{Value, json};
use testbed::{Netns, TcpServer, tcp_probe};

const PUB2_MAC: &str = "fa:26:9c:aa:00:04";

/// The lab plus a second uplink on eth3, configured by the agent.
fn second_uplink(lab: &Lab) -> Netns {
    let pub2 = Netns::new("pub2").unwrap();
    testbed::veth(&lab.vr, "eth3", &pub2, "eth0").unwrap();
    testbed::set_mac(&lab.vr, "eth3", PUB2_MAC).unwrap();
    testbed::addr(&pub2, "eth0", "172.30.0.1/16").unwrap();
    lab.ok(
        "/configurenic",
        json!({"nics": [{"ip": "172.30.10.5", "mac": PUB2_MAC, "netmask": "255.255.0.0",
            "gateway": "172.30.0.1", "category": "Public",
            "ip6": "2001:db8:30::5", "prefixLength": 64, "gateway6": "2001:db8:30::1"}]}),
    );
    pub2
}

fn snat2() -> Value {
    json!({"publicNicMac": PUB2_MAC, "publicIp": "172.30.10.5", "privateNicMac": PRIV_MAC,
           "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
           "snatNetmask": "255.255.255.0"})
}

/// The same "internet" address behind both uplinks, answering with the
/// source it saw.
fn internet(ns: &Netns) -> TcpServer {
    testbed::addr(ns, "lo", "198.51.100.7/32").unwrap();
    TcpServer::start(ns, "198.51.100.7:80").unwrap()
}

#[test]
fn default_route_and_snat_move_to_the_new_nic() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let pub2 = second_uplink(&lab);
    let _a = internet(&lab.public);
    let _b = internet(&pub2);
    let seen = tcp_probe(&lab.tenant, "198.51.100.7:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.10.5", "{}", lab.log());

    // What VirtualRouterManagerImpl sends: mac, state, ip/gateway, ip6/gateway6, snats.
    lab.ok(
        "/changeDefaultNic",
        json!({"newNic": {"mac": PUB2_MAC, "state": "enable", "ip": "172.30.10.5",
            "gateway": "172.30.0.1", "ip6": "2001:db8:30::5", "gateway6": "2001:db8:30::1",
            "isDefaultRoute": false}, "snats": [snat2()]}),
    );
    let route = lab
        .vr
        .sh("ip route show default; ip -6 route show default")
        .unwrap();
    assert!(
        route.contains("default via 172.30.0.1 dev eth3")
            && route.contains("default via 2001:db8:30::1 dev eth3"),
        "{route}"
    );
    assert!(!route.contains("eth1"), "{route}");
    let seen = tcp_probe(&lab.tenant, "198.51.100.7:80", T).unwrap();
    assert_eq!(source(&seen), "172.30.10.5", "{}", lab.log());

    // The desired state says so too, and a restart keeps it.
    let (_, state) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["model"]["nics"][PUB2_MAC]["is_default_route"], true);
    assert_eq!(state["model"]["nics"][PUB_MAC]["is_default_route"], false);

    // An unknown NIC is refused and changes nothing.
    let (code, v) = lab
        .post(
            "/changeDefaultNic",
            json!({"newNic": {"mac": "fa:26:9c:aa:00:99", "gateway": "172.40.0.1"}}),
        )
        .unwrap();
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("fa:26:9c:aa:00:99"),
        "{v}"
    );
}

#[test]
fn a_change_refused_half_way_is_undone() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let pub2 = second_uplink(&lab);
    let _a = internet(&lab.public);
    let _b = internet(&pub2);
    let before = lab.vr.sh("ip route show default").unwrap();
    assert!(before.contains("via 172.20.0.1 dev eth1"), "{before}");
    // The IPv4 gateway is fine, the IPv6 one is on no link: the kernel
    // refuses the second route after the first was moved.
    let (code, v) = lab
        .post(
            "/changeDefaultNic",
            json!({"newNic": {"mac": PUB2_MAC, "gateway": "172.30.0.1",
                "gateway6": "2001:db8:99::1"}, "snats": [snat2()]}),
        )
        .unwrap();
    assert_eq!(code, 500, "{v}");
    assert_eq!(v["success"], false, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("default route"),
        "{v}"
    );
    let after = lab.vr.sh("ip route show default").unwrap();
    assert_eq!(after, before, "default route not restored:\n{}", lab.log());
    let seen = tcp_probe(&lab.tenant, "198.51.100.7:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.10.5", "{}", lab.log());
    let (_, state) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["model"]["nics"][PUB_MAC]["is_default_route"], true);
    assert_eq!(state["model"]["nics"][PUB2_MAC]["is_default_route"], false);
    let snat_out = lab.vr.sh("nft list table ip vragent").unwrap();
    assert!(!snat_out.contains("172.30.10.5"), "SNAT moved:\n{snat_out}");
}
