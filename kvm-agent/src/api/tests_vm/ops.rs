//! Issue 12: what the management node reads from the VM replies, the VM
//! paths a router host receives, used capacity and cleanTraffic.

use super::*;

fn is_obj(v: &Value) -> bool {
    v.is_object()
}

/// Every dereference the node makes on a `/vm/start` reply (zstackio/zstack
/// 5a29293b): KVMHost.startVm `nicInfos[].deviceAddress.toString()`,
/// VirtualPciDeviceKvmExtensionPoint `memBalloonInfo.deviceAddress` and
/// `virtualDeviceInfoList[].isValid()`, KvmHypervisorInfoExtensions
/// `virtualizerInfo`.
fn node_reads_start_reply(v: &Value) {
    assert_eq!(v["success"], true, "{v}");
    assert!(is_obj(&v["memBalloonInfo"]["deviceAddress"]), "{v}");
    for n in v["nicInfos"].as_array().expect("nicInfos") {
        assert!(n["macAddress"].is_string(), "{n}");
        assert!(is_obj(&n["deviceAddress"]), "{n}");
    }
    for d in v["virtualDeviceInfoList"].as_array().expect("list") {
        assert!(d["resourceUuid"].is_string(), "{d}");
        assert!(is_obj(&d["deviceAddress"]), "{d}");
    }
    for k in ["uuid", "virtualizer", "version"] {
        assert!(v["virtualizerInfo"][k].is_string(), "{v}");
    }
}

#[tokio::test]
async fn start_and_reboot_replies_carry_what_the_node_dereferences() {
    let e = env("node-reads", test_driver());
    let uuid = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    node_reads_start_reply(&v);
    assert_eq!(v["nicInfos"].as_array().unwrap().len(), 2);
    // A running VM's start (no-op) answers the same way.
    let (_, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    node_reads_start_reply(&v);
    let (s, v) = post(
        &e.app,
        "/vm/reboot",
        &json!({"uuid": uuid, "timeout": 10}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["virtualizerInfo"]["uuid"], uuid.as_str());
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": uuid}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn check_state_console_port_and_virtualizer_info() {
    let e = env("paths", test_driver());
    let uuid = unique_uuid();
    let gone = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = post(
        &e.app,
        "/vm/checkstate",
        &json!({"vmUuids": [uuid, gone], "hostUuid": "h"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["states"][&uuid], "Running", "{v}");
    assert_eq!(v["states"][&gone], "Shutdown", "{v}");

    let (s, v) = post(
        &e.app,
        "/vm/getvncport",
        &json!({"vmUuid": uuid}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["protocol"], "vnc", "{v}");
    assert!(v["port"].is_i64(), "{v}");
    let (s, v) = post(
        &e.app,
        "/vm/getvncport",
        &json!({"vmUuid": gone}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, _) = post(
        &e.app,
        "/host/connect",
        &json!({"hostUuid": "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
                "sendCommandUrl": "", "version": "5.2.0"})
        .to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(
        &e.app,
        "/vm/getvirtualizerinfo",
        &json!({"vmUuids": [uuid]}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["hostInfo"]["uuid"], "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
        "{v}"
    );
    assert!(v["hostInfo"]["virtualizer"].is_string() && v["hostInfo"]["version"].is_string());
    assert_eq!(v["vmInfoList"][0]["uuid"], uuid.as_str(), "{v}");
    let (s, v) = post(&e.app, "/vm/getvirtualizerinfo", "{}").await;
    assert_eq!((s, v["vmInfoList"].clone()), (StatusCode::OK, json!([])));
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": uuid}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
}

fn new_nic(clean: bool) -> Value {
    json!({"mac": "FA:4C:EE:9A:76:05", "ips": ["10.0.5.9"], "bridgeName": "br_eth5",
           "uuid": "0123456789abcdef0123456789abcdef", "nicInternalName": "vnic12.5",
           "deviceId": 5, "useVirtio": true, "mtu": 1450, "driverType": "virtio",
           "type": "VNIC", "cleanTraffic": clean})
}

#[tokio::test]
async fn attach_and_detach_nic_by_hot_plug() {
    let fake = Arc::new(FakeHypervisor::default());
    let e = env("nic", fake.clone());
    let uuid = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let attach = json!({"vmUuid": uuid, "nic": new_nic(true), "accountUuid": "a"}).to_string();
    let (s, v) = post(&e.app, "/vm/attachnic", &attach).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["virtualDeviceInfoList"][0]["resourceUuid"],
        "0123456789abcdef0123456789abcdef"
    );
    assert!(
        is_obj(&v["virtualDeviceInfoList"][0]["deviceAddress"]),
        "{v}"
    );
    let xml = fake.xml(&uuid, false).unwrap();
    let nic = crate::plan::domain::interface_by_mac(&xml, "fa:4c:ee:9a:76:05").expect("attached");
    assert!(
        nic.xml.contains("<source bridge='br_eth5'/>"),
        "{}",
        nic.xml
    );
    assert!(nic.xml.contains("<mtu size='1450'/>"), "{}", nic.xml);
    assert_eq!(nic.tap.as_deref(), Some("vnic12.5"));
    assert_eq!(
        e.guard.calls.lock().unwrap().as_slice(),
        ["apply vnic12.5 fa:4c:ee:9a:76:05 [10.0.5.9]"]
    );
    // Attaching the same NIC again changes nothing.
    let (s, v) = post(&e.app, "/vm/attachnic", &attach).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let attaches = |f: &FakeHypervisor| {
        f.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("attach"))
            .count()
    };
    assert_eq!(attaches(&fake), 1);

    let detach = json!({"vmUuid": uuid, "nic": new_nic(true)}).to_string();
    let (s, v) = post(&e.app, "/vm/detachnic", &detach).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let xml = fake.xml(&uuid, false).unwrap();
    assert!(crate::plan::domain::interface_by_mac(&xml, "fa:4c:ee:9a:76:05").is_none());
    assert_eq!(
        e.guard.calls.lock().unwrap().last().map(String::as_str),
        Some("remove vnic12.5")
    );
    let (s, v) = post(&e.app, "/vm/detachnic", &detach).await;
    assert_eq!(s, StatusCode::OK, "detach of a detached NIC: {v}");

    // Errors name the field or the VM.
    let mut bad = new_nic(false);
    bad["mac"] = json!("nope");
    let (s, v) = post(
        &e.app,
        "/vm/attachnic",
        &json!({"vmUuid": uuid, "nic": bad}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "field nic.mac: \"nope\" is not a MAC address");
    let other = unique_uuid();
    let (s, v) = post(
        &e.app,
        "/vm/attachnic",
        &json!({"vmUuid": other, "nic": new_nic(false)}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], format!("unable to find vm[uuid:{other}]"));
}

#[tokio::test]
async fn capacity_counts_running_domains() {
    let fake = Arc::new(FakeHypervisor::default());
    let e = env("used", fake.clone());
    let (a, b) = (unique_uuid(), unique_uuid());
    let (s, _) = post(&e.app, "/vm/start", &start_body(&e, &a, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK);
    let mut body: Value = serde_json::from_str(&start_body(&e, &b, 128 << 20)).unwrap();
    body["cpuNum"] = json!(2);
    let (s, _) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(&e.app, "/host/capacity", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["usedCpu"], 3, "{v}");
    assert_eq!(v["usedMemory"], (192u64 << 20), "{v}");
    // A stopped domain uses nothing.
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": b}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = post(&e.app, "/host/capacity", "{}").await;
    assert_eq!(
        (v["usedCpu"].clone(), v["usedMemory"].clone()),
        (json!(1), json!(64u64 << 20))
    );
}

#[tokio::test]
async fn clean_traffic_is_enforced_or_refused_never_ignored() {
    let fake = Arc::new(FakeHypervisor::default());
    let e = env("clean", fake.clone());
    let uuid = unique_uuid();
    let mut body: Value = serde_json::from_str(&start_body(&e, &uuid, 64 << 20)).unwrap();
    body["nics"][0]["cleanTraffic"] = json!(true);
    body["nics"][0]["ips"] = json!(["10.0.0.200", "2001:db8::200"]);
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        e.guard.calls.lock().unwrap().as_slice(),
        ["apply vnic12.0 fa:4c:ee:9a:76:00 [10.0.0.200,2001:db8::200]"]
    );
    let (s, _) = post(&e.app, "/vm/stop", &json!({"uuid": uuid}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let calls = e.guard.calls.lock().unwrap().clone();
    assert_eq!(calls[1..], ["remove vnic12.0", "remove vnic12.1"]);

    // Without a tap name the rules cannot be bound: refused, nothing defined.
    let other = unique_uuid();
    let mut body: Value = serde_json::from_str(&start_body(&e, &other, 64 << 20)).unwrap();
    body["nics"][1]["cleanTraffic"] = json!(true);
    body["nics"][1]["nicInternalName"] = json!("");
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("field nics[1].nicInternalName: \"\" is required with cleanTraffic=true"),
        "{v}"
    );
    assert_eq!(fake.lookup(&other).unwrap(), None);

    // Rules that cannot be loaded fail the start; the VM is not started.
    e.guard.fail.store(true, Ordering::SeqCst);
    let mut body: Value = serde_json::from_str(&start_body(&e, &other, 64 << 20)).unwrap();
    body["nics"][0]["cleanTraffic"] = json!(true);
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("anti-spoofing"),
        "{v}"
    );
    assert_eq!(fake.lookup(&other).unwrap(), None);
}

/// The bootstrap document reaches the router with its keys exactly as the
/// node wrote them (a stock ZStack image reads `EnableVyosCmd` etc.
/// case-sensitively).
#[tokio::test]
async fn bootstrap_info_keys_pass_through_unchanged() {
    let e = env("boot-keys", Arc::new(FakeHypervisor::default()));
    let sock = e.dir.join("keys.sock");
    std::fs::create_dir_all(&e.dir).unwrap();
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, _) = l.accept().unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
        b
    });
    let info = json!({"EnableVyosCmd": true, "ConfigTcForVipQos": false,
        "SkipVyosIptables": true, "managementNodeCidr": "10.1.0.0/24",
        "managementNic": {"ip": "10.0.0.200", "deviceName": "eth0", "isDefaultRoute": true}});
    let body = json!({"socketPath": sock, "bootStrapInfoTimeout": 5, "info": info});
    let (s, v) = post(&e.app, "/appliancevm/setbootstrapinfo", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(got, info);
}

/// `NicTO.isolated`: the tap must become an isolated bridge port; where it
/// cannot (here: the fake host has no such bridge), the start fails and the
/// VM is gone, never left running unisolated.
#[tokio::test]
async fn nic_isolation_is_applied_or_the_start_fails() {
    let fake = Arc::new(FakeHypervisor::default());
    let e = env("isolated", fake.clone());
    let uuid = unique_uuid();
    let mut body: Value = serde_json::from_str(&start_body(&e, &uuid, 64 << 20)).unwrap();
    body["nics"][0]["isolated"] = json!(true);
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot isolate tap vnic12.0 on bridge br_eth0"),
        "{v}"
    );
    assert_eq!(fake.lookup(&uuid).unwrap(), None, "VM left behind");
    // Not asked, bridge not isolated: nothing to do, the start succeeds.
    body["nics"][0]["isolated"] = json!(false);
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// `/vm/volumesync`: a volume file no VM uses is reported once it was unused
/// at two calls in a row; the running VM's root volume never is.
#[tokio::test]
async fn volume_sync_reports_files_unused_twice() {
    let fake = Arc::new(FakeHypervisor::default());
    let e = env("volsync", fake.clone());
    let ps = e.dir.join("ps");
    std::fs::create_dir_all(&ps).unwrap();
    for f in ["root-a.qcow2", "orphan-b.qcow2"] {
        std::fs::write(ps.join(f), b"").unwrap();
    }
    let uuid = unique_uuid();
    let mut body: Value = serde_json::from_str(&start_body(&e, &uuid, 64 << 20)).unwrap();
    body["rootVolume"]["installPath"] = json!(ps.join("root-a.qcow2"));
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = format!("file://{}", ps.display());
    let req = json!({"storagePaths": [url, "ceph://pool/x"]}).to_string();
    let (s, v) = post(&e.app, "/vm/volumesync", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["inactiveVolumePaths"], json!({}), "first round: {v}");
    let (_, v) = post(&e.app, "/vm/volumesync", &req).await;
    assert_eq!(
        v["inactiveVolumePaths"],
        json!({url.clone(): [format!("{}/orphan-b.qcow2", ps.display())]}),
        "{v}"
    );
}
