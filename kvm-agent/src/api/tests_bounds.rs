//! Hostile input on the host and network paths: every bad field is a 400
//! (or the node's 200 + success:false) naming it, never a 500 or a panic,
//! and nothing quoted in a reply is unbounded.

use super::*;

fn link(index: u32, name: &str, kind: Option<&str>, mac: &str) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        mac: Some(mac.parse().unwrap()),
        mtu: 1500,
        up: true,
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    }
}

fn with_lo_and_dummy(e: &Env) {
    let mut s = e.nl.state.lock().unwrap();
    s.links.push(link(1, "lo", None, "00:00:00:00:00:00"));
    s.links
        .push(link(7, "dummy0", Some("dummy"), "52:54:00:00:00:77"));
}

fn error_of(v: &serde_json::Value) -> String {
    assert_eq!(v["success"], false, "{v}");
    v["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn connect_fields_are_bounded_and_printable() {
    let e = env("bounds-connect");
    let mut cmd: serde_json::Value = serde_json::from_str(F1).unwrap();
    cmd["hostUuid"] = "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b\nINFO forged".into();
    let (s, v) = post(&e.app, "/host/connect", &cmd.to_string()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(error_of(&v).starts_with("field hostUuid:"), "{v}");
    let mut cmd: serde_json::Value = serde_json::from_str(F1).unwrap();
    cmd["version"] = "5".repeat(1 << 20).into();
    let (_, v) = post(&e.app, "/host/connect", &cmd.to_string()).await;
    let m = error_of(&v);
    assert!(
        m.starts_with("field version:") && m.len() < 300,
        "{}",
        m.len()
    );
    let mut cmd: serde_json::Value = serde_json::from_str(F1).unwrap();
    cmd["sendCommandUrl"] = "file:///etc/shadow".into();
    let (_, v) = post(&e.app, "/host/connect", &cmd.to_string()).await;
    assert!(error_of(&v).starts_with("field sendCommandUrl:"), "{v}");
    // Nothing of it was kept: ping still has no session.
    let (_, v) = post(&e.app, "/host/ping", "{}").await;
    assert_eq!(v["hostUuid"], "");
    let (s, v) = post(
        &e.app,
        "/host/update/configuration",
        r#"{"sendCommandUrl":"http://10.0.0.11:8080/x\r\nHost: evil"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).starts_with("field sendCommandUrl:"), "{v}");
}

#[tokio::test]
async fn check_physical_interfaces_bounds_the_names_it_echoes() {
    let e = env("bounds-checkphy");
    let body = serde_json::json!({"interfaceNames": ["eth0", "x".repeat(1 << 20)]});
    let (s, v) = post(
        &e.app,
        "/network/checkphysicalnetworkinterface",
        &body.to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let m = error_of(&v);
    assert!(
        m.starts_with("field interfaceNames[1]:") && m.len() < 300,
        "{}",
        m.len()
    );
    assert!(v.to_string().len() < 1000, "{}", v.to_string().len());
}

#[tokio::test]
async fn createbridge_refuses_loopback_and_a_bad_l2_uuid() {
    let e = env("bounds-lo");
    with_lo_and_dummy(&e);
    let mut cmd: serde_json::Value = serde_json::from_str(F2).unwrap();
    cmd["physicalInterfaceName"] = "lo".into();
    cmd["bridgeName"] = "br_lo".into();
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", &cmd.to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error_of(&v).contains("device[lo] is the loopback device"),
        "{v}"
    );
    let mut cmd: serde_json::Value = serde_json::from_str(F2).unwrap();
    cmd["l2NetworkUuid"] = "a1b2\u{1b}[2J".into();
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", &cmd.to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).starts_with("field l2NetworkUuid:"), "{v}");
    assert!(e.nl.applied.lock().unwrap().is_empty(), "nothing applied");
}

#[tokio::test]
async fn addif_onto_a_non_bridge_or_of_loopback_is_a_clear_400() {
    let e = env("bounds-addif");
    with_lo_and_dummy(&e);
    let (s, v) = post(&e.app, "/network/l2novlan/createbridge", F2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let addif = |nic: &str, br: &str| {
        serde_json::json!({"physicalInterfaceName": nic, "bridgeName": br}).to_string()
    };
    let (s, v) = post(&e.app, "/network/bridge/addif", &addif("dummy0", "eth0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error_of(&v).contains("link eth0 exists and is not a bridge"),
        "{v}"
    );
    let (s, v) = post(
        &e.app,
        "/network/bridge/addif",
        &addif("dummy0", "br_nosuch"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error_of(&v).contains("can not find bridge[br_nosuch]"),
        "{v}"
    );
    let (s, v) = post(&e.app, "/network/bridge/addif", &addif("lo", "br_eth0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("loopback"), "{v}");
    let (s, v) = post(
        &e.app,
        "/network/bridge/addif",
        &addif("br_eth0", "br_eth0"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("interface br_eth0 is bridge"), "{v}");
    let (s, v) = post(&e.app, "/network/bridge/addif", &addif("dummy0", "br_eth0")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// kvmagent's check_bridge fails when the uplink does not exist
/// (network_plugin.py `_ifup_device_if_down`); so does this one.
#[tokio::test]
async fn checkbridge_fails_for_an_uplink_that_does_not_exist() {
    let e = env("bounds-check");
    {
        let mut s = e.nl.state.lock().unwrap();
        let mut br = link(9, "br_eth9", Some("bridge"), "52:54:00:00:00:99");
        br.bridge = Some(crate::netstate::BridgeOpts {
            stp: 0,
            forward_delay: 0,
        });
        s.links.push(br);
    }
    let body = r#"{"physicalInterfaceName":"eth9","bridgeName":"br_eth9"}"#;
    let (s, v) = post(&e.app, "/network/l2novlan/checkbridge", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error_of(&v).contains("cannot find network device[eth9], the uplink of bridge[br_eth9]"),
        "{v}"
    );
    let body = r#"{"physicalInterfaceName":"eth9","bridgeName":"br_eth9_5","vlan":5}"#;
    let (s, v) = post(&e.app, "/network/l2vlan/checkbridge", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let body = "{\"physicalInterfaceName\":\"eth0\\n\",\"bridgeName\":\"br_eth9\"}";
    let (s, v) = post(&e.app, "/network/l2novlan/checkbridge", body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        error_of(&v).starts_with("field physicalInterfaceName:"),
        "{v}"
    );
}

/// `Instant::now() + u64::MAX s` panicked: the task died and the reply was
/// a 500 "command task failed".
#[tokio::test]
async fn a_huge_bootstrap_timeout_is_clamped_not_a_panic() {
    let e = env("bounds-boot");
    std::fs::create_dir_all(&e.dir).unwrap();
    let sock = e.dir.join("applianceVm.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, _) = l.accept().unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
    });
    let body = serde_json::json!({"socketPath": sock, "bootStrapInfoTimeout": u64::MAX,
        "info": {"a": 1}});
    let (s, v) = post(&e.app, "/appliancevm/setbootstrapinfo", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    reader.join().unwrap();
    let body = serde_json::json!({"socketPath": "/run/x\n.sock", "info": {}});
    let (s, v) = post(&e.app, "/appliancevm/setbootstrapinfo", &body.to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).starts_with("field socketPath:"), "{v}");
    let _ = std::fs::remove_dir_all(&e.dir);
}
