//! The protocol reference's fixture bodies (section 4: F1-F11, files in
//! vr-model/testdata, `vr_model::fixtures`) are
//! accepted, through the real router and engine with fake side effects (no
//! root needed), and what they render is checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;
use vr_agent::api::{AppState, router};
use vr_agent::engine::Engine;
use vr_agent::sys::Sys;
use vr_agent::sys::conntrack::FakeConntrack;
use vr_agent::sys::firewall::FakeFirewall;
use vr_agent::sys::haproxy::{Call, FakeHaproxy};
use vr_agent::sys::netlink::FakeNetlink;
use vr_agent::sys::store::FileStore;
use vr_model::fixtures::{
    F1, F2, F3, F4, F5, F6, F7, F8, F9, F10_ONE, F10_SYNC, F11, SYNC_VIP_DUAL_STACK,
};

struct Box {
    app: axum::Router,
    firewall: Arc<FakeFirewall>,
    netlink: Arc<FakeNetlink>,
    haproxy: Arc<FakeHaproxy>,
    sysctl: Arc<vr_agent::sys::sysctl::FakeSysctl>,
    _dir: testbed::TempDir,
}

async fn vr() -> Box {
    let dir = testbed::TempDir::new("fixtures").unwrap();
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
    let sys = Sys {
        firewall: firewall.clone(),
        netlink: netlink.clone(),
        conntrack: Arc::new(FakeConntrack::default()),
        store: Arc::new(FileStore::new(dir.path()).unwrap()),
        dnsmasq: Arc::new(vr_agent::sys::dnsmasq::FakeDnsmasq::new()),
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
    Box {
        app: router(state),
        firewall,
        netlink,
        haproxy,
        sysctl,
        _dir: dir,
    }
}

async fn post(b: &Box, path: &str, body: &str) -> (u16, Value) {
    let req = Request::post(path)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap();
    let rsp = b.app.clone().oneshot(req).await.unwrap();
    let status = rsp.status().as_u16();
    let bytes = axum::body::to_bytes(rsp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `/init`'s `ipv4LocalPortRange` goes through the sysctl port (zero
/// values are ignored, as zvr does; a bad range is 400 and writes nothing).
#[tokio::test]
async fn init_sets_the_local_port_range_through_sysctl() {
    let b = vr().await;
    let key = "net/ipv4/ip_local_port_range";
    let (s, _) = post(&b, "/init", F1).await;
    assert_eq!(s, 200);
    assert!(b.sysctl.values.lock().unwrap().get(key).is_none());
    let body = F1.replace("0-0", "1024-65000");
    let (s, v) = post(&b, "/init", &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        b.sysctl.values.lock().unwrap().get(key).map(String::as_str),
        Some("1024 65000")
    );
    let (s, v) = post(&b, "/init", &F1.replace("0-0", "80-90")).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        b.sysctl.values.lock().unwrap().get(key).map(String::as_str),
        Some("1024 65000")
    );
}

#[tokio::test]
async fn reference_fixtures_are_accepted() {
    let b = vr().await;
    let (s, v) = post(&b, "/init", F1).await;
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");
    assert_eq!(v["uuid"], "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11");
    assert_eq!(v["zvrVersion"].as_str().unwrap().split('.').count(), 4);
    let (_, v) = post(&b, "/ping", F2).await;
    assert_eq!(v["uuid"], "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11");
    assert_eq!(v["haStatus"], "NoHa");
    for (path, body) in [
        ("/configurenic", F3),
        ("/syncsnat", F7),
        (
            "/setsnat",
            &*format!(r#"{{"snat":{}}}"#, &F7[10..F7.find("}]").unwrap() + 1]),
        ),
        ("/createvip", F8),
        ("/createportforwarding", F9),
        ("/syncportforwarding", F9),
        ("/revokeportforwarding", F9),
        ("/createeip", F10_ONE),
        ("/removeeip", F10_ONE),
        ("/synceip", F10_SYNC),
    ] {
        let (s, v) = post(&b, path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["success"], true, "{path}: {v}");
        assert_eq!(v["error"], "", "{path}: {v}");
    }
    // What F3/F7/F8/F10 rendered: the whole table once, then element changes.
    let scripts = b.firewall.applied.lock().unwrap().clone();
    let all = scripts.join("");
    assert!(
        all.contains("add element ip vragent reject_into { \"eth2\" }"),
        "{all}"
    );
    assert!(
        all.contains("\"eth1\" . 192.168.100.0/24 : 172.20.10.5"),
        "{all}"
    );
    assert!(
        all.contains("172.20.10.100 . tcp . 8080 : 192.168.10"),
        "{all}"
    );
    assert!(all.contains("add element ip vragent eip_dnat { 172.20.10.101 : 192.168.100.10 }"));
    assert!(all.contains(
        "delete element ip vragent pf_exact { 172.20.10.100 . tcp . 8080 : 192.168.100.10 . 80 }"
    ));
    // F8 put the VIP on eth1 after the NIC's own address.
    let addrs = b.netlink.addrs.lock().unwrap().clone();
    let eth1: common::net::IfName = "eth1".parse().unwrap();
    assert!(
        addrs[&eth1].contains(&("172.20.10.100".parse().unwrap(), 16)),
        "{addrs:?}"
    );
    assert_eq!(b.netlink.announced.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn dhcp_and_dns_fixtures_are_accepted() {
    let b = vr().await;
    for (path, body) in [
        ("/refreshDhcpServer", F4),
        ("/adddhcp", F5),
        ("/setdns", F6),
        ("/removedhcp", F5),
        ("/startDhcpServer", F4),
        ("/removedns", F6),
        ("/stopDhcpServer", F4),
    ] {
        let (s, v) = post(&b, path, body).await;
        assert_eq!((s, &v["success"]), (200, &json!(true)), "{path}: {v}");
    }
}

#[tokio::test]
async fn negative_fixtures() {
    let b = vr().await;
    let (s, _) = post(&b, "/nosuchpath", "{}").await;
    assert_eq!(s, 404);
    let (s, v) = post(
        &b,
        "/createeip",
        r#"{"eip":{"vipIp":"172.20.10.101","privateMac":"fa:26:9c:aa:00:03","publicMac":"fa:26:9c:aa:00:99","guestIp":"192.168.100.10"}}"#,
    )
    .await;
    assert_eq!(s, 409, "a NIC the router lacks is a clash with the router");
    assert_eq!(v["success"], false);
    assert!(v["error"].as_str().unwrap().contains("publicMac"), "{v}");
    assert!(
        b.firewall.applied.lock().unwrap().len() == 1,
        "only the start-up table"
    );
}

#[tokio::test]
async fn lb_fixture_f11_is_accepted() {
    let b = vr().await;
    let (s, v) = post(&b, "/lb/refresh", F11).await;
    assert_eq!((s, &v["success"]), (200, &json!(true)), "{v}");
    let calls = b.haproxy.take_calls();
    let conf = match &calls[..] {
        [Call::Check(_), Call::Write(files), Call::Reload, ..] => files.conf.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        conf.contains("frontend 23fb656e4f324e74a4889582104fcbf0"),
        "{conf}"
    );
    assert!(conf.contains("bind 172.20.10.102:80"), "{conf}");
    assert!(conf.contains("option http-server-close"), "{conf}");
    assert!(
        conf.contains(
            "server s-192.168.100.10 192.168.100.10:80 weight 100 check inter 5s rise 2 fall 2"
        ),
        "{conf}"
    );
    assert!(conf.contains("nbthread 1"), "{conf}");
    // Same body again: nothing to do.
    let (s, _) = post(&b, "/lb/refresh", F11).await;
    assert_eq!(s, 200);
    assert!(
        !b.haproxy.take_calls().contains(&Call::Reload),
        "an unchanged refresh reloads nothing"
    );
    // Errors name the listener and the parameter.
    let bad = F11.replace("healthCheckInterval::5", "healthCheckInterval::often");
    let (s, v) = post(&b, "/lb/refresh", &bad).await;
    assert_eq!(s, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("23fb656e4f324e74a4889582104fcbf0") && e.contains("healthCheckInterval"),
        "{e}"
    );
    // Unknown keys are kept and shown.
    let odd = F11.replace("\"aclEntry::\"", "\"aclEntry::\",\"shinyNewKey::1\"");
    let (s, _) = post(&b, "/lb/refresh", &odd).await;
    assert_eq!(s, 200);
    // A certificate in use cannot go; an unused one can.
    let pem = "-----BEGIN CERTIFICATE-----\\nx\\n-----END CERTIFICATE-----\\n-----BEGIN PRIVATE KEY-----\\ny\\n-----END PRIVATE KEY-----\\n";
    let (s, v) = post(
        &b,
        "/certificate/create",
        &format!(r#"{{"uuid":"c1","certificate":"{pem}"}}"#),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let https = F11
        .replace(
            "\"mode\":\"http\"",
            "\"mode\":\"https\",\"certificateUuid\":\"c1\"",
        )
        .replace("\"loadBalancerPort\":80", "\"loadBalancerPort\":443");
    let (s, v) = post(&b, "/lb/refresh", &https).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&b, "/certificate/delete", r#"{"uuid":"c1"}"#).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = post(&b, "/lb/delete", &https).await;
    assert_eq!(s, 200, "{v}");
    assert!(b.haproxy.take_calls().contains(&Call::Stop));
    let (s, v) = post(&b, "/certificate/delete", r#"{"uuid":"c1"}"#).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&b, "/lb/log/level", r#"{"level":"debug"}"#).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn ipv6_vip_in_a_sync_is_applied_and_announced() {
    let b = vr().await;
    let (code, v) = post(&b, "/createvip", SYNC_VIP_DUAL_STACK).await;
    assert_eq!(code, 200, "{v}");
    let eth1: common::net::IfName = "eth1".parse().unwrap();
    let addrs = b.netlink.addrs.lock().unwrap().clone();
    assert!(
        addrs[&eth1].contains(&("2001:db8:20::100".parse().unwrap(), 64)),
        "{addrs:?}"
    );
    let announced = b.netlink.announced.lock().unwrap().clone();
    assert!(
        announced.contains(&(eth1.clone(), "2001:db8:20::100".parse().unwrap())),
        "{announced:?}"
    );
    let (code, v) = post(
        &b,
        "/removevip",
        r#"{"vips":[{"ip6":"2001:db8:20::100","prefixLength":64,"ownerEthernetMac":"fa:26:9c:aa:00:02"}]}"#,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let addrs = b.netlink.addrs.lock().unwrap().clone();
    assert!(
        !addrs[&eth1].contains(&("2001:db8:20::100".parse().unwrap(), 64)),
        "{addrs:?}"
    );
}

/// The node posts VR commands with asyncJsonPost, which fails a non-2xx
/// answer with its status line only: a body that does not decode must
/// answer 200 and report its error (naming the field) in the callback.
#[tokio::test]
async fn async_decode_error_goes_to_the_callback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = vr().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    let got = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        // Head and a small body arrive quickly; read until the JSON closes.
        while !buf[..n].ends_with(b"}") {
            n += s.read(&mut buf[n..]).await.unwrap();
        }
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let req = Request::post("/createvip")
        .header("Content-Type", "application/json")
        .header("taskuuid", "t-1")
        .header("callbackurl", &url)
        .body(Body::from(r#"{"vips":"not a list"}"#))
        .unwrap();
    let rsp = b.app.clone().oneshot(req).await.unwrap();
    assert_eq!(rsp.status().as_u16(), 200);
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), got)
        .await
        .unwrap()
        .unwrap();
    let body = &seen[seen.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["success"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("vips"), "{v}");
}

/// `/init` carries haproxy's log level (VyosConnectFlow sets
/// virtualRouter.haproxy.logLevel); zvr applies it like /lb/log/level.
#[tokio::test]
async fn init_applies_the_haproxy_log_level() {
    let b = vr().await;
    let (code, v) = post(&b, "/init", r#"{"uuid":"u1","logLevel":"debug"}"#).await;
    assert_eq!(code, 200, "{v}");
    let req = Request::get("/state").body(Body::empty()).unwrap();
    let rsp = b.app.clone().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(rsp.into_body(), 1 << 20)
        .await
        .unwrap();
    let state: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(state["model"]["lb"]["log_level"], "debug", "{state}");
    let (code, v) = post(&b, "/init", r#"{"uuid":"u1","logLevel":"loud"}"#).await;
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("logLevel"), "{v}");
}
