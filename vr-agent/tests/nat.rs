//! NAT datapath of the vr-agent, proven with real packets in namespaces.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use testbed::{TcpServer, UdpServer, tcp_probe, udp_probe};

#[test]
fn snat_eip_port_forwarding_and_hairpin() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let _out = TcpServer::start(&lab.public, "0.0.0.0:80").unwrap();
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    let _dns = UdpServer::start(&lab.tenant, "0.0.0.0:53").unwrap();
    let _range = TcpServer::start(&lab.tenant, "0.0.0.0:9005").unwrap();

    // SNAT: the outside sees the router's public IP.
    let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.10.5", "{}", lab.log());

    // Nothing on the private side is reachable from outside without NAT
    // (default action reject).
    assert!(tcp_probe(&lab.public, "192.168.100.10:80", T).is_err());

    // EIP.
    lab.ok(
        "/createvip",
        json!({"vips": [vip("172.20.10.101"), vip("172.20.10.100")]}),
    );
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    let seen = tcp_probe(&lab.public, "172.20.10.101:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.0.1");
    let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", T).unwrap();
    assert_eq!(
        source(&seen),
        "172.20.10.101",
        "guest leaves through its EIP"
    );
    // Hairpin: the guest reaches its own EIP.
    let seen = tcp_probe(&lab.tenant, "172.20.10.101:80", T).unwrap();
    assert_eq!(source(&seen), "192.168.100.1");
    lab.ok(
        "/removeeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    assert!(
        tcp_probe(&lab.public, "172.20.10.101:80", T).is_err(),
        "EIP removed"
    );
    let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", T).unwrap();
    assert_eq!(
        source(&seen),
        "172.20.10.5",
        "back to SNAT after EIP removal"
    );

    // Port forwarding: TCP, UDP, a range that keeps ports, allowedCidr.
    lab.ok(
        "/createportforwarding",
        json!({"rules": [
            pf("pf-tcp", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None),
            pf("pf-udp", "172.20.10.100", "UDP", 5353, 5353, 53, 53, None),
            pf("pf-range", "172.20.10.100", "TCP", 9000, 9010, 9000, 9010, None),
            pf("pf-acl", "172.20.10.100", "TCP", 8443, 8443, 80, 80, Some("203.0.113.0/24")),
        ]}),
    );
    let seen = tcp_probe(&lab.public, "172.20.10.100:8080", T).unwrap();
    assert_eq!(source(&seen), "172.20.0.1");
    let seen = udp_probe(&lab.public, "172.20.10.100:5353", T).unwrap();
    assert_eq!(source(&seen), "172.20.0.1");
    tcp_probe(&lab.public, "172.20.10.100:9005", T).unwrap();
    assert!(
        tcp_probe(&lab.public, "172.20.10.100:8443", T).is_err(),
        "allowedCidr excludes us"
    );
    // Hairpin through a port forward.
    let seen = tcp_probe(&lab.tenant, "172.20.10.100:8080", T).unwrap();
    assert_eq!(source(&seen), "192.168.100.1");
    // Widen the ACL: now allowed.
    lab.ok(
        "/createportforwarding",
        json!({"rules": [pf("pf-acl", "172.20.10.100", "TCP", 8443, 8443, 80, 80, Some("172.20.0.0/16"))]}),
    );
    tcp_probe(&lab.public, "172.20.10.100:8443", T).unwrap();
    // Revoke stops it.
    lab.ok(
        "/revokeportforwarding",
        json!({"rules": [pf("pf-tcp", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None)]}),
    );
    assert!(tcp_probe(&lab.public, "172.20.10.100:8080", T).is_err());
    assert!(
        udp_probe(&lab.public, "172.20.10.100:5353", T).is_ok(),
        "other rules stay"
    );
}

#[test]
fn sync_replaces_and_repeats_change_nothing() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    let rules = json!({"rules": [
        pf("a", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None),
        pf("b", "172.20.10.100", "UDP", 5353, 5353, 53, 53, None)]});
    lab.ok("/syncportforwarding", rules.clone());
    lab.ok(
        "/synceip",
        json!({"eips": [eip("172.20.10.101", "192.168.100.10")]}),
    );
    let before = lab.table();
    for (path, body) in [
        ("/syncportforwarding", rules.clone()),
        ("/createportforwarding", rules.clone()),
        (
            "/synceip",
            json!({"eips": [eip("172.20.10.101", "192.168.100.10")]}),
        ),
        (
            "/createeip",
            json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
        ),
        ("/syncsnat", json!({"snats": [snat()], "enable": true})),
        ("/createvip", json!({"vips": [vip("172.20.10.100")]})),
    ] {
        lab.ok(path, body);
        assert_eq!(lab.table(), before, "{path} repeated changed the ruleset");
    }
    // Sync replaces the whole section.
    lab.ok(
        "/syncportforwarding",
        json!({"rules": [pf("c", "172.20.10.100", "TCP", 7000, 7000, 80, 80, None)]}),
    );
    let (_, state) = lab.post_raw("/nosuch", "{}", &[]).unwrap();
    assert!(state.contains("no plugin registered the path[/nosuch]"));
    let (code, st) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let uuids: Vec<_> = st["model"]["port_forwards"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(uuids, vec!["c"]);
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    assert!(tcp_probe(&lab.public, "172.20.10.100:8080", T).is_err());
    tcp_probe(&lab.public, "172.20.10.100:7000", T).unwrap();
}

#[test]
fn invalid_batch_changes_nothing_and_names_the_entry() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok(
        "/syncportforwarding",
        json!({"rules": [pf("a", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None)]}),
    );
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    let before = lab.table();
    let cases = [
        // malformed address in the second entry
        (
            "/createportforwarding",
            json!({"rules": [
            pf("ok", "172.20.10.100", "TCP", 81, 81, 80, 80, None),
            pf("bad", "172.20.10.300", "TCP", 82, 82, 80, 80, None)]}),
            400,
            "rules[1] (uuid bad): vipIp",
        ),
        // ranges on one VIP overlapping a held rule: a clash with the
        // router (409)
        (
            "/createportforwarding",
            json!({"rules": [
            pf("ok", "172.20.10.100", "TCP", 81, 81, 80, 80, None),
            pf("overlap", "172.20.10.100", "TCP", 8000, 8090, 8000, 8090, None)]}),
            409,
            "overlap",
        ),
        // two rules of one request overlapping: the request's fault (400),
        // whether it adds or syncs
        (
            "/createportforwarding",
            json!({"rules": [
            pf("one", "172.20.10.100", "TCP", 9000, 9010, 9000, 9010, None),
            pf("two", "172.20.10.100", "TCP", 9005, 9005, 80, 80, None)]}),
            400,
            "rule one",
        ),
        (
            "/syncportforwarding",
            json!({"rules": [
            pf("one", "172.20.10.100", "TCP", 9000, 9010, 9000, 9010, None),
            pf("two", "172.20.10.100", "TCP", 9005, 9005, 80, 80, None)]}),
            400,
            "rule one",
        ),
        // a sync putting a rule on a held EIP's address: a clash (409)
        (
            "/syncportforwarding",
            json!({"rules": [pf("on-eip", "172.20.10.101", "TCP", 80, 80, 80, 80, None)]}),
            409,
            "on-eip",
        ),
        // a NIC MAC the router lacks: the router's state (409), as for
        // /changeDefaultNic
        (
            "/createeip",
            json!({"eip": {"vipIp": "172.20.10.102", "privateMac": PRIV_MAC,
            "publicMac": "fa:26:9c:aa:00:99", "guestIp": "192.168.100.10"}}),
            409,
            "fa:26:9c:aa:00:99 matches no NIC",
        ),
        // wrong JSON type
        (
            "/syncportforwarding",
            json!({"rules": [{"uuid": "x", "vipPortStart": "eighty"}]}),
            400,
            "rules[0].vipPortStart",
        ),
    ];
    for (path, body, code, needle) in cases {
        let (c, v) = lab.post(path, body).unwrap();
        assert_eq!(c, code, "{path}: {v}");
        assert_eq!(v["success"], false);
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
        assert_eq!(lab.table(), before, "{path} changed the ruleset");
    }
    // An EIP VIP already used by another guest is a conflict.
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    let before = lab.table();
    let (c, v) = lab
        .post(
            "/createeip",
            json!({"eip": eip("172.20.10.101", "192.168.100.11")}),
        )
        .unwrap();
    assert_eq!(c, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already the EIP of guest 192.168.100.10")
    );
    assert_eq!(lab.table(), before);
}

#[test]
fn restart_restores_datapath_and_ping_forgets_init() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok(
        "/createvip",
        json!({"vips": [vip("172.20.10.100"), vip("172.20.10.101")]}),
    );
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    lab.ok(
        "/createportforwarding",
        json!({"rules": [pf("a", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None)]}),
    );
    let (_, ping) = lab.post("/ping", json!({"uuid": "x"})).unwrap();
    assert_eq!(ping["uuid"], "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11");
    lab.kill_agent();
    // Like a reboot: the kernel state is gone.
    lab.vr
        .sh("nft delete table ip vragent; ip addr flush dev eth1; ip addr flush dev eth2")
        .unwrap();
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    assert!(tcp_probe(&lab.public, "172.20.10.101:80", T).is_err());
    lab.start_agent().unwrap();
    // No controller call in between.
    let seen = tcp_probe(&lab.public, "172.20.10.101:80", T).unwrap();
    assert_eq!(source(&seen), "172.20.0.1");
    tcp_probe(&lab.public, "172.20.10.100:8080", T).unwrap();
    let seen = tcp_probe(&lab.tenant, "172.20.0.1:443", Duration::from_millis(300));
    assert!(seen.is_err(), "nothing listens on 443 outside");
    let (_, ping) = lab.post("/ping", json!({"uuid": "x"})).unwrap();
    assert_eq!(ping["uuid"], "", "uuid is empty until /init");
}

#[test]
fn drift_is_repaired() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.101")]}));
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    let before = lab.table_text();
    lab.vr.sh("nft flush map ip vragent eip_dnat").unwrap();
    assert_ne!(lab.table_text(), before);
    let repaired = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        lab.table_text() == before
    });
    assert!(repaired, "{}", lab.log());
    lab.vr.sh("nft delete table ip vragent").unwrap();
    let repaired = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        lab.table_text() == before
    });
    assert!(repaired, "table deleted by someone: {}", lab.log());
    let (_, metrics) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
    let repairs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vr_agent_nft_drift_repairs_total "))
        .unwrap();
    assert!(repairs.parse::<u64>().unwrap() >= 2, "{metrics}");
}

#[test]
fn async_mode_delivers_callbacks_and_stops_on_404() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let rx = testbed::CallbackReceiver::start(Some(&lab.ctl)).unwrap();
    let url = rx.url_at("10.0.0.2");
    let (code, _) = lab
        .post_raw(
            "/init",
            r#"{"uuid":"u1"}"#,
            &[("taskuuid", "task-1"), ("callbackurl", &url)],
        )
        .unwrap();
    assert_eq!(code, 200);
    let got = rx.wait_for(1, Duration::from_secs(5)).unwrap();
    assert_eq!(got[0].header("taskuuid"), Some("task-1"));
    let body = got[0].json().unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["uuid"], "u1");
    assert_eq!(body["zvrVersion"].as_str().unwrap().split('.').count(), 4);
    // A failing command is reported as a failure through the callback.
    lab.post_raw(
        "/createeip",
        r#"{"eip":{"vipIp":"1.2.3.4","publicMac":"fa:26:9c:aa:00:99","privateMac":"fa:26:9c:aa:00:03","guestIp":"192.168.100.10"}}"#,
        &[("taskuuid", "task-2"), ("callbackurl", &url)],
    )
    .unwrap();
    let got = rx.wait_for(2, Duration::from_secs(5)).unwrap();
    let body = got[1].json().unwrap();
    assert_eq!(got[1].header("taskuuid"), Some("task-2"));
    assert_eq!(body["success"], false);
    // The controller forgot the task: one attempt, no retries.
    rx.set_status(404);
    lab.post_raw(
        "/echo",
        "{}",
        &[("taskuuid", "task-3"), ("callbackurl", &url)],
    )
    .unwrap();
    rx.wait_for(3, Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rx.requests().len(), 3, "a 404 answer is not retried");
    // Missing taskuuid with a callback url is refused.
    let (code, _) = lab
        .post_raw("/init", "{}", &[("callbackurl", &url)])
        .unwrap();
    assert_eq!(code, 400);
}

/// A UDP flow that started before its port forward existed would keep
/// bypassing the DNAT (conntrack remembers "no NAT"); the agent deletes it.
#[test]
fn stale_conntrack_entries_are_removed() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    let _dns = UdpServer::start(&lab.tenant, "0.0.0.0:53").unwrap();
    let sock = lab.public.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:40000").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.connect("172.20.10.100:5353").unwrap();
        s
    });
    let exchange = |s: &std::net::UdpSocket| {
        s.send(b"hi").unwrap();
        let mut buf = [0u8; 128];
        s.recv(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
    };
    assert!(exchange(&sock).is_err(), "nothing forwards 5353 yet");
    let flows = lab
        .vr
        .sh("conntrack -L -p udp --dport 5353 2>/dev/null")
        .unwrap();
    assert!(
        flows.contains("dport=5353"),
        "the un-NATed flow is tracked: {flows}"
    );
    lab.ok(
        "/createportforwarding",
        json!({"rules": [pf("u", "172.20.10.100", "UDP", 5353, 5353, 53, 53, None)]}),
    );
    // The agent cleans conntrack right after its reply, off the reply path.
    let seen = testbed::wait_ok(Duration::from_secs(3), Duration::from_millis(50), || {
        exchange(&sock).map_err(anyhow::Error::from)
    })
    .expect("same flow is forwarded once its stale entry is gone");
    assert_eq!(source(&seen), "172.20.0.1");
}

/// Revoking a port-range forward removes every flow it left in conntrack,
/// hundreds at once, and leaves the flows of a rule that stays.
#[test]
fn many_stale_flows_of_a_port_range_go_and_other_flows_stay() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    let range = pf(
        "range",
        "172.20.10.100",
        "UDP",
        9000,
        9009,
        9000,
        9009,
        None,
    );
    let kept = pf("kept", "172.20.10.100", "UDP", 9100, 9100, 9100, 9100, None);
    lab.ok(
        "/createportforwarding",
        json!({"rules": [range.clone(), kept]}),
    );
    // 300 flows into the range and 20 to the kept rule, each from its own
    // source port (unanswered UDP: conntrack keeps them 30 s).
    lab.public.run(|| {
        // Neighbours resolved first: a burst into an unresolved one loses packets.
        let warm = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        warm.send_to(b"x", ("172.20.10.100", 9200)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // Kept open until all are sent: a closed one's port could be reused.
        let mut open = vec![];
        for i in 0..320u16 {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            let port = if i < 300 { 9000 + i % 10 } else { 9100 };
            s.send_to(b"x", ("172.20.10.100", port)).unwrap();
            open.push(s);
        }
    });
    let count = |filter: &str| -> usize {
        lab.vr
            .sh(&format!(
                "conntrack -L -f ipv4 -p udp -d 172.20.10.100 {filter} 2>/dev/null | wc -l"
            ))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let in_range = || {
        (9000..=9009)
            .map(|p| count(&format!("--dport {p}")))
            .sum::<usize>()
    };
    assert_eq!(in_range(), 300);
    assert_eq!(count("--dport 9100"), 20);
    lab.ok("/revokeportforwarding", json!({"rules": [range]}));
    let revoked = std::time::Instant::now();
    testbed::wait_ok(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match in_range() {
            0 => Ok(()),
            n => anyhow::bail!("{n} stale flows left"),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.log()));
    eprintln!(
        "300 stale flows gone {:?} after the reply",
        revoked.elapsed()
    );
    assert_eq!(count("--dport 9100"), 20, "the kept rule's flows stay");
    assert!(
        lab.log()
            .contains("removed stale conntrack entries flows=300"),
        "{}",
        lab.log()
    );
}

#[test]
fn vips_are_added_announced_ordered_and_removed() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let addrs = || {
        lab.vr
            .sh("ip -4 -o addr show dev eth1 | awk '{print $4}'")
            .unwrap()
    };
    // A VIP added before the NIC's own address must not become primary after sync.
    lab.vr.sh("ip addr flush dev eth1 && ip addr add 172.20.10.100/16 dev eth1 && ip addr add 172.20.10.5/16 dev eth1").unwrap();
    lab.ok(
        "/createvip",
        json!({"syncVip": true, "vips": [vip("172.20.10.100"), vip("172.20.10.102")],
               "nicIps": [{"ip": "172.20.10.5", "netmask": "255.255.0.0", "ownerEthernetMac": PUB_MAC}]}),
    );
    let list = addrs();
    assert!(
        list.starts_with("172.20.10.5/16\n"),
        "NIC's own IP first: {list}"
    );
    assert!(
        list.contains("172.20.10.100/16") && list.contains("172.20.10.102/16"),
        "{list}"
    );
    // The outside learns the new VIP's MAC from the gratuitous ARP / answers ARP.
    assert!(testbed::ping(&lab.public, "172.20.10.102", 2));
    let neigh = lab.public.sh("ip neigh show 172.20.10.102").unwrap();
    assert!(neigh.contains(PUB_MAC), "{neigh}");
    lab.ok("/removevip", json!({"vips": [vip("172.20.10.102")]}));
    let list = addrs();
    assert!(!list.contains("172.20.10.102"), "{list}");
    assert!(list.contains("172.20.10.100"), "{list}");
}

/// `snatInboundTraffic` on a port forward: the guest sees the router's
/// private address, not the client's. Two rules on two VIPs forwarding
/// overlapping UDP ports to one guest, both with it: the batch used to be
/// refused by nft ("File exists": overlapping pf_inbound intervals keyed by
/// the guest's ports).
#[test]
fn port_forward_snat_inbound_masquerades_overlapping_rules() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    let _dns = UdpServer::start(&lab.tenant, "0.0.0.0:27").unwrap();
    let _dns2 = UdpServer::start(&lab.tenant, "0.0.0.0:28").unwrap();
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    lab.ok(
        "/createvip",
        json!({"vips": [vip("172.20.10.101"), vip("172.20.10.100")]}),
    );
    let inbound = |mut r: serde_json::Value| {
        r["snatInboundTraffic"] = json!(true);
        r
    };
    lab.ok(
        "/createportforwarding",
        json!({"rules": [
            inbound(pf("a", "172.20.10.101", "UDP", 27, 27, 27, 27, None)),
            inbound(pf("b", "172.20.10.100", "UDP", 27, 29, 27, 29, None)),
            pf("plain", "172.20.10.100", "TCP", 8080, 8080, 80, 80, None),
        ]}),
    );
    for (to, why) in [
        ("172.20.10.101:27", "rule a"),
        ("172.20.10.100:27", "rule b, first port"),
        ("172.20.10.100:28", "rule b, inside its range"),
    ] {
        let seen =
            udp_probe(&lab.public, to, T).unwrap_or_else(|e| panic!("{why}: {e}\n{}", lab.log()));
        assert_eq!(source(&seen), "192.168.100.1", "{why}: masqueraded");
    }
    let seen = tcp_probe(&lab.public, "172.20.10.100:8080", T).unwrap();
    assert_eq!(
        source(&seen),
        "172.20.0.1",
        "without snatInboundTraffic the client is seen"
    );

    // Revoking rule a leaves b's masquerade in force.
    lab.ok(
        "/revokeportforwarding",
        json!({"rules": [inbound(pf("a", "172.20.10.101", "UDP", 27, 27, 27, 27, None))]}),
    );
    assert!(
        udp_probe(&lab.public, "172.20.10.101:27", T).is_err(),
        "a revoked"
    );
    let seen = udp_probe(&lab.public, "172.20.10.100:27", T).unwrap();
    assert_eq!(source(&seen), "192.168.100.1", "b still masqueraded");
}
