//! Router tests over the fake kernel: fixtures accepted, modes, errors.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::netstate::{Addr, Link, Observed, Op, Route, TABLE_MAIN};
use crate::sys::hostinfo::HostProbe;
use crate::sys::hypervisor::FakeHypervisor;
use crate::sys::netlink::FakeNetlink;
use crate::sys::sysctl::FakeSysctl;

#[cfg(target_arch = "x86_64")]
const QEMU: &str = "qemu-system-x86_64";
#[cfg(target_arch = "aarch64")]
const QEMU: &str = "qemu-system-aarch64";

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
        isolated: false,
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
    state: AppState,
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
    let mut agent = Agent::new(nl.clone(), sysctl.clone(), dir.clone());
    agent.host = HostProbe::default().with_tools(&[
        ("libvirtd", "9.0.0"),
        ("qemu-img", "7.2.15"),
        (QEMU, "7.2.15"),
    ]);
    agent.vm.hypervisor = Some(Arc::new(FakeHypervisor::default()));
    agent.vm.dirs = crate::paths::HostDirs {
        socket_dir: dir.clone(),
        volume_dirs: vec![dir.clone()],
        image_dirs: vec![dir.clone()],
    };
    let state = Arc::new(agent);
    Env {
        nl,
        sysctl,
        app: router(state.clone()),
        state,
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
    // Sync for the node (KVMHost.checkPhysicalInterface): 200, the error in
    // the body, the missing name in failedInterfaceNames.
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["success"], false);
    assert_eq!(v["failedInterfaceNames"], serde_json::json!(["eth9"]));
    let (s, v) = post(&e.app, "/network/checkphysicalnetworkinterface", "{bad").await;
    assert_eq!((s, v["success"].clone()), (StatusCode::OK, false.into()));
    assert_eq!(v["failedInterfaceNames"], serde_json::json!([]));
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
    // A tap on the bridge besides its uplink eth0 = a VM attached:
    // deletebridge refuses.
    {
        let mut st = e.nl.state.lock().unwrap();
        let mut tap = st.links[0].clone();
        tap.index = 10;
        tap.name = "vnet0".into();
        tap.kind = Some("tun".into());
        st.links.push(tap);
    }
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/deletebridge",
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_x"}"#,
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

/// A local callback/event receiver: every POST body with its `commandpath`.
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(axum::routing::post(move |h: HeaderMap, b: Bytes| {
        let tx = tx.clone();
        async move {
            let path = h
                .get("commandpath")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let v = serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null);
            let _ = tx.send((path, v));
            ""
        }
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/zstack/asyncrest/sendcommand",
        l.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, rx)
}

async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) -> (String, serde_json::Value) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("nothing arrived within 10 s")
        .unwrap()
}

/// Every HostFactResponse field KVMHost's collect-kvm-host-facts flow calls
/// a method on: virtualizerInfo (setUuid, NOT NULL columns), libvirtVersion
/// (compareTo), cpuModelName, libvirtCapabilities.
#[tokio::test]
async fn fact_has_every_field_the_node_dereferences() {
    let e = env("fact");
    let (s, v) = post(&e.app, "/host/connect", F1).await;
    assert_eq!(
        (s, v["success"].clone()),
        (StatusCode::OK, true.into()),
        "{v}"
    );
    assert_eq!(v["libvirtVersion"], "9.0.0");
    assert_eq!(v["qemuVersion"], "7.2.15");
    let (s, v) = post(&e.app, "/host/fact", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["virtualizerInfo"],
        serde_json::json!({"uuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
            "virtualizer":"qemu-kvm","version":"7.2.15"})
    );
    assert_eq!(v["libvirtVersion"], "9.0.0");
    assert_eq!(v["qemuImgVersion"], "7.2.15");
    assert_eq!(v["cpuModelName"], "FakeModel");
    assert_eq!(
        v["libvirtCapabilities"],
        serde_json::json!(["incrementaldrivemirror"])
    );
    let _ = std::fs::remove_dir_all(&e.dir);
}

/// What the node cannot parse is an error the node can read, not a field it
/// trips over: no libvirt means no fact, no libvirtd means no connect.
#[tokio::test]
async fn fact_and_connect_fail_readably_without_libvirt() {
    let nl = Arc::new(FakeNetlink::new(host()));
    let dir = std::env::temp_dir().join(format!("kvm-agent-api-nolv-{}", std::process::id()));
    let mut agent = Agent::new(nl, Arc::new(FakeSysctl::default()), dir.clone());
    agent.host = HostProbe::default().with_tools(&[("qemu-img", "7.2.15")]);
    let app = router(Arc::new(agent));
    let (s, v) = post(&app, "/host/fact", "{}").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("libvirtVersion"),
        "{v}"
    );
    // /host/connect is sync for the node: 200 with the error.
    let (s, v) = post(&app, "/host/connect", F1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], false);
    assert!(
        v["error"].as_str().unwrap().contains("libvirtd --version"),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The node's syncJsonPost retries any non-2xx and never reads its body;
/// asyncJsonPost fails a non-2xx with the status line only.
#[tokio::test]
async fn node_reads_every_error_from_a_200_or_the_callback() {
    let e = env("errmodes");
    let (s, v) = post(&e.app, "/host/connect", r#"{"hostUuid":5}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], false);
    assert!(
        v["error"].as_str().unwrap().contains("field hostUuid"),
        "{v}"
    );
    // An async path with a body that does not decode: 200, then the error
    // in the callback.
    let (url, mut rx) = receiver().await;
    let rsp = e
        .app
        .clone()
        .oneshot(
            Request::post("/network/l2vlan/createbridge")
                .header("taskuuid", "t-1")
                .header("callbackurl", &url)
                .body(Body::from(r#"{"vlan":"x"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let (_, v) = next(&mut rx).await;
    assert_eq!(v["success"], false);
    assert!(v["error"].as_str().unwrap().contains("field vlan"), "{v}");
    // Without a callback (curl, vrctl: no ZStack caller) codes stay.
    let (s, _) = post(&e.app, "/network/l2vlan/createbridge", r#"{"vlan":"x"}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let _ = std::fs::remove_dir_all(&e.dir);
}

/// The bootstrap info is opaque: the router's zvrboot reads `EnableVyosCmd`
/// and friends case-sensitively, so the document on the socket keeps them.
#[tokio::test]
async fn bootstrap_info_keys_reach_the_socket_unchanged() {
    let e = env("bootkeys");
    std::fs::create_dir_all(&e.dir).unwrap();
    let sock = e.dir.join("applianceVm.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, _) = l.accept().unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
        b
    });
    let info = serde_json::json!({"EnableVyosCmd": true, "ConfigTcForVipQos": false,
        "SkipVyosIptables": true, "managementNodeCidr": "10.0.0.0/24",
        "managementNic": {"Mac": "fa:4c:ee:9a:76:00", "ip": "10.0.0.200"}});
    let body = serde_json::json!({"socketPath": sock, "bootStrapInfoTimeout": 5, "info": info,
        "kvmHostAddons": {"Qcow2Options": "x"}});
    let (s, v) = post(&e.app, "/appliancevm/setbootstrapinfo", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: serde_json::Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(got, info);
    let _ = std::fs::remove_dir_all(&e.dir);
}

/// `/host/update/configuration` as KVMHost.doUpdateHostConfiguration sends
/// it: later pings report the new URL and events go to it.
#[tokio::test]
async fn update_configuration_moves_pings_and_events_to_the_new_url() {
    let e = env("updconf");
    let (s, _) = post(&e.app, "/host/connect", F1).await;
    assert_eq!(s, StatusCode::OK);
    let (url, mut rx) = receiver().await;
    let cmd = serde_json::json!({"hostUuid": "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
        "sendCommandUrl": url, "kvmHostAddons": {}});
    let (s, v) = post(&e.app, "/host/update/configuration", &cmd.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!({"success":true,"error":""}));
    let (_, v) = post(
        &e.app,
        "/host/ping",
        r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b"}"#,
    )
    .await;
    assert_eq!(v["sendCommandUrl"], url.as_str());
    assert_eq!(v["hostUuid"], "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b");
    let saved = std::fs::read_to_string(e.dir.join("host-connect.json")).unwrap();
    assert!(saved.contains(&url), "{saved}");
    // A libvirt event after the update is reported to the new URL.
    let (tx, erx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(vm::report_events(e.state.clone(), erx));
    tx.send(crate::sys::events::DomainEvent::Reboot {
        name: "7c0de1f2a3b44c5d8e9f00112233aabb".into(),
    })
    .unwrap();
    let (path, body) = next(&mut rx).await;
    assert_eq!(path, "/kvm/reportvmreboot", "{body}");
    let (s, v) = post(
        &e.app,
        "/host/update/configuration",
        r#"{"sendCommandUrl":""}"#,
    )
    .await;
    assert_eq!(
        (s, v["success"].clone()),
        (StatusCode::BAD_REQUEST, false.into())
    );
    let _ = std::fs::remove_dir_all(&e.dir);
}

/// Every reconnect sends `/host/updatedependency` (updatePkgWhenConnect is on
/// by default); a 404 fails the reconnect.
#[tokio::test]
async fn reconnect_paths_are_served() {
    let e = env("updep");
    let cmd = r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b","enableExpRepo":false,"zstackRepo":"zstack-mn,qemu-kvm-ev-mn"}"#;
    let (s, v) = post(&e.app, "/host/updatedependency", cmd).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!({"success":true,"error":""}));
}

/// `isolated` is applied, remembered for later taps and forgotten with the
/// bridge; `pvlan` is refused (never accepted and ignored).
#[tokio::test]
async fn isolated_createbridge_isolates_guest_ports_and_pvlan_is_refused() {
    let e = env("isolated");
    let iso = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","mtu":1500,"isolated":true}"#;
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", iso).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(crate::bridge::is_isolated(&e.dir, "br_eth0"));
    {
        let mut st = e.nl.state.lock().unwrap();
        let br = st.link("br_eth0").unwrap().index;
        let mut tap = st.links[0].clone();
        (tap.index, tap.name, tap.kind, tap.master) = (30, "vnic1.0".into(), None, Some(br));
        st.links.push(tap);
    }
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", iso).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    {
        let st = e.nl.state.lock().unwrap();
        assert!(st.link("vnic1.0").unwrap().isolated);
        assert!(!st.link("eth0").unwrap().isolated, "uplink isolated");
    }
    let pv = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","vlan":100,"pvlan":"pvlan://100-i200"}"#;
    let (s, v) = post(&e.app, "/network/l2vlan/createbridge", pv).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("private VLAN"), "{v}");
    e.nl.state
        .lock()
        .unwrap()
        .links
        .retain(|l| l.name != "vnic1.0");
    let (s, v) = post(
        &e.app,
        "/network/l2novlan/deletebridge",
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!crate::bridge::is_isolated(&e.dir, "br_eth0"));
    let _ = std::fs::remove_dir_all(&e.dir);
}

#[path = "tests_bounds.rs"]
mod bounds;
