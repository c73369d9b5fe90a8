//! The corpus of bad bodies (issue 13): every one, in sync mode (no
//! callback: a 4xx) and in async mode (as the node posts: the callback says
//! success:false), is refused naming the field at fault, with a bounded
//! reply, and leaves the router exactly as it was: GET /state, the nft
//! transactions, the links, the dnsmasq and haproxy calls. Through the real
//! router and engine over fakes (no root needed). The corpus is
//! `tests/bad_bodies/corpus.jsonl`, written by `gen.py` beside it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use testbed::CallbackReceiver;
use testbed::conformance::Mode;
use testbed::conformance::exchange::exchange;
use tower::ServiceExt;
use vr_agent::api::{AppState, router};
use vr_agent::engine::Engine;
use vr_agent::sys::Sys;
use vr_agent::sys::conntrack::FakeConntrack;
use vr_agent::sys::dnsmasq::FakeDnsmasq;
use vr_agent::sys::firewall::FakeFirewall;
use vr_agent::sys::haproxy::FakeHaproxy;
use vr_agent::sys::netlink::FakeNetlink;
use vr_agent::sys::store::FileStore;

struct Router {
    app: axum::Router,
    firewall: Arc<FakeFirewall>,
    netlink: Arc<FakeNetlink>,
    haproxy: Arc<FakeHaproxy>,
    dnsmasq: Arc<FakeDnsmasq>,
    _dir: testbed::TempDir,
}

async fn router_over_fakes() -> Router {
    let dir = testbed::TempDir::new("bad-bodies").unwrap();
    let netlink = Arc::new(FakeNetlink::default());
    *netlink.links.lock().unwrap() = BTreeMap::from([
        (
            "fa:26:9c:aa:00:01".parse().unwrap(),
            "eth0".parse().unwrap(),
        ),
        (
            "fa:26:9c:aa:00:02".parse().unwrap(),
            "eth1".parse().unwrap(),
        ),
        (
            "fa:26:9c:aa:00:03".parse().unwrap(),
            "eth2".parse().unwrap(),
        ),
    ]);
    let firewall = Arc::new(FakeFirewall::default());
    let haproxy = Arc::new(FakeHaproxy::new());
    let sysctl = Arc::new(vr_agent::sys::sysctl::FakeSysctl::default());
    let dnsmasq = Arc::new(FakeDnsmasq::new());
    let sys = Sys {
        firewall: firewall.clone(),
        netlink: netlink.clone(),
        conntrack: Arc::new(FakeConntrack::default()),
        store: Arc::new(FileStore::new(dir.path()).unwrap()),
        dnsmasq: dnsmasq.clone(),
        haproxy: haproxy.clone(),
        sysctl: sysctl.clone(),
    };
    let engine = Engine::start(sys, 7272).await.unwrap();
    let state = AppState {
        engine: Arc::new(tokio::sync::Mutex::new(engine)),
        uuid: Default::default(),
        sources: std::sync::Arc::new(vr_agent::api::guard::Sources::any()),
        credentials: std::sync::Arc::new(vr_agent::credentials::Live::none()),
        ha: None,
    };
    Router {
        app: router(state),
        firewall,
        netlink,
        haproxy,
        dnsmasq,
        _dir: dir,
    }
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n";

/// A router with something of every kind, so a wipe would show.
fn setup() -> Vec<(&'static str, Value)> {
    let (pubm, privm, mgmt) = (
        "fa:26:9c:aa:00:02",
        "fa:26:9c:aa:00:03",
        "fa:26:9c:aa:00:01",
    );
    let vip = |ip: &str| serde_json::json!({"ip": ip, "netmask": "255.255.0.0", "ownerEthernetMac": pubm});
    vec![
        (
            "/init",
            serde_json::json!({"uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11", "mgtCidr": "10.0.0.0/16", "logLevel": "info"}),
        ),
        (
            "/configurenic",
            serde_json::json!({"nics": [
            {"ip": "10.0.0.5", "mac": mgmt, "gateway": "10.0.0.1", "netmask": "255.255.0.0", "category": "Management"},
            {"ip": "172.20.10.5", "mac": pubm, "gateway": "172.20.0.1", "netmask": "255.255.0.0", "isDefaultRoute": true, "category": "Public"},
            {"ip": "192.168.100.1", "mac": privm, "gateway": "192.168.100.1", "netmask": "255.255.255.0", "category": "Private", "firewallDefaultAction": "reject"}]}),
        ),
        (
            "/syncsnat",
            serde_json::json!({"enable": true, "snats": [{"publicNicMac": pubm, "publicIp": "172.20.10.5", "privateNicMac": privm,
            "privateNicIp": "192.168.100.1", "snatNetmask": "255.255.255.0", "state": true}]}),
        ),
        (
            "/createvip",
            serde_json::json!({"vips": [vip("172.20.10.100"), vip("172.20.10.101"), vip("172.20.10.102")]}),
        ),
        (
            "/createportforwarding",
            serde_json::json!({"rules": [{"uuid": "0e5c7a1f2b3d4e6f8091a2b3c4d5e6f7", "vipPortStart": 8080, "vipPortEnd": 8080,
            "privatePortStart": 80, "privatePortEnd": 80, "protocolType": "TCP", "vipIp": "172.20.10.100", "publicMac": pubm,
            "privateIp": "192.168.100.10", "privateMac": privm, "snatInboundTraffic": false}]}),
        ),
        (
            "/createeip",
            serde_json::json!({"eip": {"vipIp": "172.20.10.101", "privateMac": privm, "publicMac": pubm, "guestIp": "192.168.100.10"}}),
        ),
        (
            "/refreshDhcpServer",
            serde_json::json!({"dhcpServers": [{"nicMac": privm, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
            "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1", "mtu": 1500,
            "dhcpInfos": [{"ip": "192.168.100.10", "mac": "fa:a1:5e:12:34:56", "hostname": "web-01", "isDefaultL3Network": true}]}]}),
        ),
        (
            "/setdns",
            serde_json::json!({"dns": [{"dnsAddress": "223.5.5.5", "nicMac": privm}]}),
        ),
        (
            "/certificate/create",
            serde_json::json!({"uuid": "c1", "certificate": PEM}),
        ),
        (
            "/lb/refresh",
            serde_json::json!({"lbs": [{"lbUuid": "f2c7b2ff2f834e1ea20363f49122a3b4", "listenerUuid": "23fb656e4f324e74a4889582104fcbf0",
            "vip": "172.20.10.102", "publicNic": pubm, "nicIps": ["192.168.100.10"], "instancePort": 80, "loadBalancerPort": 80,
            "mode": "http", "parameters": ["balancerAlgorithm::roundrobin", "healthCheckTarget::tcp:default"],
            "serverGroups": [{"name": "sg", "serverGroupUuid": "9b8a7c6d5e4f40312a1b0c9d8e7f6a5b",
              "backendServers": [{"ip": "192.168.100.10", "weight": 100}], "isDefault": false}], "redirectRules": []}]}),
        ),
    ]
}

/// Everything a bad body must leave as it was.
async fn snapshot(r: &Router) -> String {
    let req = Request::get("/state").body(Body::empty()).unwrap();
    let rsp = r.app.clone().oneshot(req).await.unwrap();
    let state = axum::body::to_bytes(rsp.into_body(), 64 << 20)
        .await
        .unwrap();
    format!(
        "{}\nnft: {:?}\nlinks: {:?} {:?}\nhaproxy: {:?}\ndnsmasq: {:?}",
        String::from_utf8_lossy(&state),
        r.firewall.applied.lock().unwrap(),
        r.netlink.addrs.lock().unwrap(),
        r.netlink.links.lock().unwrap(),
        r.haproxy.calls.lock().unwrap(),
        r.dnsmasq.calls.lock().unwrap(),
    )
}

/// Markers the corpus uses for large strings (the file stays small).
fn expand(v: &mut Value) {
    match v {
        Value::String(s) if s.contains("{{") => {
            *s = s
                .replace("{{1MiB}}", &"a".repeat(1 << 20))
                .replace("{{70KiB}}", &"x".repeat(70 << 10));
        }
        Value::Array(a) => a.iter_mut().for_each(expand),
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (mut k, mut x) in old {
                if k.contains("{{1MiB}}") {
                    k = k.replace("{{1MiB}}", &"a".repeat(1 << 20));
                }
                expand(&mut x);
                m.insert(k, x);
            }
        }
        _ => {}
    }
}

struct Case {
    name: String,
    path: String,
    body: Value,
    expect: String,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("bad_bodies/corpus.jsonl");
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            expand(&mut v["body"]);
            Case {
                name: v["name"].as_str().unwrap().into(),
                path: v["path"].as_str().unwrap().into(),
                body: v["body"].take(),
                expect: v["expect"].as_str().unwrap().into(),
            }
        })
        .collect()
}

/// What is wrong with the answer to a bad body, if anything.
fn judge(c: &Case, mode: Mode, status: u16, reply: &Value) -> Option<String> {
    let text = reply.to_string();
    let err = reply["error"].as_str().unwrap_or("");
    let ok_status = match mode {
        Mode::Sync => (400..500).contains(&status),
        Mode::Async => status == 200 && reply["success"] == false,
    };
    if !ok_status || reply["success"] != false {
        return Some(format!(
            "accepted or wrong status {status}: {}",
            common::text::excerpt_n(&text, 300)
        ));
    }
    if !err.contains(&c.expect) {
        return Some(format!(
            "error does not name {:?}: {}",
            c.expect,
            common::text::excerpt_n(err, 300)
        ));
    }
    if text.len() > 2048 || err.contains('\n') {
        return Some(format!(
            "reply is {} bytes or multi-line: {}",
            text.len(),
            common::text::excerpt_n(err, 300)
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_body_is_refused_by_name_and_changes_nothing() {
    let r = router_over_fakes().await;
    let cb = CallbackReceiver::start(None).unwrap();
    for (path, body) in setup() {
        let (status, v) = exchange(&r.app, &cb, path, Mode::Sync, &body)
            .await
            .unwrap();
        assert_eq!(
            (status, &v["success"]),
            (200, &Value::Bool(true)),
            "setup {path}: {v}"
        );
    }
    let mut before = snapshot(&r).await;
    let cases = corpus();
    assert!(cases.len() >= 300, "{}", cases.len());
    let mut failures = vec![];
    for c in &cases {
        for mode in [Mode::Sync, Mode::Async] {
            let (status, reply) = exchange(&r.app, &cb, &c.path, mode, &c.body).await.unwrap();
            if let Some(why) = judge(c, mode, status, &reply) {
                failures.push(format!("{} ({mode:?}): {why}", c.name));
            }
            let now = snapshot(&r).await;
            if now != before {
                failures.push(format!("{} ({mode:?}): changed the router", c.name));
                before = now;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases x 2 modes failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
