//! Router tests over the fake kernel: fixtures accepted, modes, errors.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::netstate::{Addr, Link, Observed, Op, Route, TABLE_MAIN};
use crate::sys::netlink::FakeNetlink;
use crate::sys::sysctl::FakeSysctl;

fn host() -> Observed {
    let eth0 = Link {
        index: 2,
        name: "eth0".into(),
        kind: Some("veth".into()),
        mac: Some("52:54:00:00:00:21".parse().unwrap()),
        mtu: 1500,
        up: true,
        master: None,
        alias: None,
        bridge: None,
    };
    let ip = "10.0.0.21".parse().unwrap();
    Observed {
        links: vec![eth0],
        addrs: vec![Addr {
            link: "eth0".into(),
            address: ip,
            local: Some(ip),
            prefix_len: 24,
            scope: 0,
            flags: 0x80,
            label: Some("eth0".into()),
            broadcast: None,
            lifetimes: None,
        }],
        routes: vec![Route {
            v6: false,
            table: TABLE_MAIN,
            dst: None,
            dst_len: 0,
            src_len: 0,
            tos: 0,
            protocol: 3,
            scope: 0,
            kind: 1,
            flags: 0,
            gateway: Some("10.0.0.1".parse().unwrap()),
            oif: Some("eth0".into()),
            prefsrc: None,
            metric: None,
            multipath: false,
            extra: vec![],
        }],
    }
}

struct Env {
    nl: Arc<FakeNetlink>,
    sysctl: Arc<FakeSysctl>,
    app: axum::Router,
    dir: std::path::PathBuf,
}

fn env(name: &str) -> Env {
    let nl = Arc::new(FakeNetlink::new(host()));
    let sysctl = Arc::new(FakeSysctl::default());
    sysctl
        .values
        .lock()
        .unwrap()
        .insert("net/bridge/bridge-nf-call-iptables".into(), "0".into());
    let dir = std::env::temp_dir().join(format!("kvm-agent-api-{name}-{}", std::process::id()));
    let agent = Agent::new(nl.clone(), sysctl.clone(), dir.clone());
    Env {
        nl,
        sysctl,
        app: router(Arc::new(agent)),
        dir,
    }
}

async fn post(app: &axum::Router, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let rsp = app
        .clone()
        .oneshot(
            Request::post(path)
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = rsp.status();
    let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&b).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&b).into(),
    ));
    (status, v)
}

const F1: &str = r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b","sendCommandUrl":"http://10.0.0.10:8080/zstack/asyncrest/sendcommand","iptablesRules":["-A INPUT -p tcp -m tcp --dport 16509 -j ACCEPT"],"ignoreMsrs":false,"pageTableExtensionDisabled":false,"tcpServerPort":7123,"version":"5.2.0","kvmHostAddons":{"qcow2Options":" -o cluster_size=2097152 "}}"#;
const F2: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","disableIptables":false,"mtu":1500,"isolated":false}"#;

#[tokio::test]
async fn connect_fixture_then_ping_reports_the_session() {
    let e = env("connect");
    let (s, v) = post(&e.app, "/host/ping", r#"{"hostUuid":"x"}"#).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        serde_json::json!({"hostUuid":"","success":true,"error":""})
    );
    let (s, v) = post(&e.app, "/host/connect", F1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let (_, v) = post(&e.app, "/host/ping/", "{}").await;
    assert_eq!(v["hostUuid"], "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b");
    assert_eq!(v["version"], "5.2.0");
    assert_eq!(
        v["sendCommandUrl"],
        "http://10.0.0.10:8080/zstack/asyncrest/sendcommand"
    );
    let saved = std::fs::read_to_string(e.dir.join("host-connect.json")).unwrap();
    assert!(saved.contains("3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b"));
    std::fs::remove_dir_all(&e.dir).unwrap();
}

#[tokio::test]
async fn echo_capacity_fact_and_unknown_paths() {
    let e = env("host");
    let (s, v) = post(&e.app, "/host/echo", "").await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, serde_json::Value::String(String::new()))
    );
    let (s, v) = post(&e.app, "/host/capacity", "{}").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["cpuNum"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["totalMemory"].as_u64().unwrap() > 0);
    let (s, v) = post(&e.app, "/host/fact", "{}").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ipAddresses"], serde_json::json!(["10.0.0.21"]));
    assert_eq!(v["cpuArchitecture"], std::env::consts::ARCH);
    let (s, v) = post(&e.app, "/vm/nosuch", "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v, "no plugin registered the path[/vm/nosuch]");
}

#[tokio::test]
async fn check_physical_interfaces_names_the_missing_one() {
    let e = env("checkphy");
    let (s, v) = post(
        &e.app,
        "/network/checkphysicalnetworkinterface",
        r#"{"interfaceNames":["eth0"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["failedInterfaceNames"], serde_json::json!([]));
    let (s, v) = post(
        &e.app,
        "/network/checkphysicalnetworkinterface",
        r#"{"interfaceNames":["eth0","eth9"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["success"], false);
    assert_eq!(v["failedInterfaceNames"], serde_json::json!(["eth9"]));
}

#[tokio::test]
async fn createbridge_fixture_migrates_then_is_idempotent_then_deletes() {
    let e = env("bridge");
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", F2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!({"success":true,"error":""}));
    {
        let st = e.nl.state.lock().unwrap();
        let br = st.link("br_eth0").unwrap();
        assert_eq!(br.mac, st.link("eth0").unwrap().mac);
        assert_eq!(st.link("eth0").unwrap().master, Some(br.index));
        assert_eq!(
            st.link("eth0").unwrap().alias.as_deref(),
            Some("uuid: a1b2c3d4e5f60718293a4b5c6d7e8f90")
        );
        assert!(st.addrs_on("eth0").next().is_none());
        assert_eq!(st.addrs_on("br_eth0").count(), 1);
        assert_eq!(st.routes[0].oif.as_deref(), Some("br_eth0"));
    }
    assert!(
        e.sysctl
            .writes
            .lock()
            .unwrap()
            .contains(&("net/bridge/bridge-nf-call-iptables".into(), "1".into()))
    );
    let n = e.nl.applied.lock().unwrap().len();
    let (s, _) = post(&e.app, "/network/l2novlan/createbridge", F2).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        e.nl.applied.lock().unwrap().len(),
        n,
        "second createbridge changed something"
    );
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/checkbridge",
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0"}"#,
    )
    .await;
    assert_eq!((s, v["success"].clone()), (StatusCode::OK, true.into()));
    let (s, v) = post(&e.app, "/network/l2novlan/deletebridge", r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(*e.nl.state.lock().unwrap(), host());
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/checkbridge",
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        serde_json::json!({"success":false,"error":"can not find bridge[br_eth0]"})
    );
}

#[tokio::test]
async fn silent_gateway_rolls_back_and_says_so() {
    let e = env("gw");
    e.nl.gateway_answers
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", F2).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("unable to create bridge[br_eth0] from device[eth0], because default gateway 10.0.0.1 did not answer"), "{msg}");
    assert!(msg.ends_with("rolled back to the previous state"), "{msg}");
    assert_eq!(*e.nl.state.lock().unwrap(), host());
}

#[tokio::test]
async fn occupied_nic_bad_names_and_attached_vms_are_clear_errors() {
    let e = env("errors");
    {
        let mut st = e.nl.state.lock().unwrap();
        let mut brx = st.links[0].clone();
        brx.index = 9;
        brx.name = "br_x".into();
        brx.kind = Some("bridge".into());
        st.links.push(brx);
        st.links[0].master = Some(9);
    }
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", F2).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        v["error"],
        "unable to create bridge[br_eth0] from device[eth0], because failed to create bridge[br_eth0], physical interface[eth0] has been occupied by bridge[br_x]"
    );
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/createbridge",
        r#"{"physicalInterfaceName":"eth 0","bridgeName":"br"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("physicalInterfaceName"),
        "{v}"
    );
    let (s, v) = post(
        &e.app,
        "/network/l2vlan/createbridge",
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br","vlan":5000}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // A tap on the bridge = a VM attached: deletebridge refuses.
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/deletebridge",
        r#"{"physicalInterfaceName":"eth1","bridgeName":"br_x"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(v["error"].as_str().unwrap().contains("VMs attached"), "{v}");
    assert!(
        !e.nl
            .applied
            .lock()
            .unwrap()
            .iter()
            .any(|o| matches!(o, Op::DeleteLink { .. }))
    );
}
