//! VM endpoints through the router: against libvirt's `test:///default`
//! driver (in-process, no daemon; state is shared per process, so every test
//! uses its own domain names) and against the fake hypervisor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::netstate::Observed;
use crate::plan::domain::{DomainOptions, DomainType};
use crate::sys::antispoof::FakeGuard;
use crate::sys::hostinfo::HostProbe;
use crate::sys::hypervisor::{FakeHypervisor, Libvirt};
use crate::sys::netlink::FakeNetlink;
use crate::sys::sysctl::FakeSysctl;

const F5: &str = include_str!("../plan/domain/f5.json");
const F7: &str = r#"{"uuid":"7c0de1f2a3b44c5d8e9f00112233aabb","type":"grace","timeout":120,"vmNics":[{"uuid":"c0ffee00112233445566778899aabbcc","vmInstanceUuid":"7c0de1f2a3b44c5d8e9f00112233aabb","mac":"fa:4c:ee:9a:76:00","ip":"10.0.0.200","deviceId":0,"internalName":"vnic12.0","type":"VNIC"}]}"#;
const DESTROY: &str = r#"{"uuid":"7c0de1f2a3b44c5d8e9f00112233aabb","vmNics":[]}"#;
const REBOOT: &str =
    r#"{"uuid":"7c0de1f2a3b44c5d8e9f00112233aabb","timeout":300,"bootDev":["hd"]}"#;

fn unique_uuid() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:08x}{:08x}{:016x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos as u64
    )
}

struct Env {
    app: axum::Router,
    dir: PathBuf,
    guard: Arc<FakeGuard>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A host with 64 GiB available and 4 online CPUs (test:///default already
/// runs a domain "test" that reserves 8 GiB).
fn env(tag: &str, hv: Arc<dyn crate::sys::hypervisor::Hypervisor>) -> Env {
    let dir = std::env::temp_dir().join(format!("kvm-agent-vm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "host/proc/meminfo",
        "MemTotal: 70000000 kB\nMemAvailable: 67108864 kB\n",
    );
    w("host/sys/devices/system/cpu/online", "0-3\n");
    let guard = Arc::new(FakeGuard::default());
    let mut agent = Agent::new(
        Arc::new(FakeNetlink::new(Observed::default())),
        Arc::new(FakeSysctl::default()),
        dir.join("state"),
    )
    .with_vm(
        VmSide::new(
            Some(hv),
            DomainOptions {
                domain_type: DomainType::Qemu,
                console_log_dir: dir.join("console"),
                vnc_listen: "127.0.0.1".into(),
            },
        )
        .with_guard(guard.clone())
        .with_dirs(crate::paths::HostDirs {
            socket_dir: dir.clone(),
            volume_dirs: vec![dir.clone(), "/var/lib/zstack/local".into()],
            image_dirs: vec![dir.clone()],
        }),
    );
    agent.host = HostProbe::with_root(dir.join("host"));
    Env {
        app: router(Arc::new(agent)),
        dir,
        guard,
    }
}

fn test_driver() -> Arc<dyn crate::sys::hypervisor::Hypervisor> {
    virt::error::clear_error_callback();
    Arc::new(Libvirt::open("test:///default").expect("test:///default is built into libvirt"))
}

/// F5 with a unique uuid and the channel socket under the test's directory.
fn start_body(env: &Env, uuid: &str, memory: u64) -> String {
    let mut v: Value = serde_json::from_str(F5).unwrap();
    v["vmInstanceUuid"] = json!(uuid);
    v["memory"] = json!(memory);
    v["addons"]["channel"]["socketPath"] = json!(
        env.dir
            .join(format!("applianceVm.{uuid}"))
            .to_str()
            .unwrap()
    );
    v.to_string()
}

async fn post(app: &axum::Router, path: &str, body: &str) -> (StatusCode, Value) {
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
    (
        status,
        serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
    )
}

#[tokio::test]
async fn test_driver_start_is_idempotent_then_sync_reboot_stop() {
    let e = env("life", test_driver());
    let uuid = unique_uuid();
    let body = start_body(&e, &uuid, 64 << 20);
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let macs: Vec<&str> = v["nicInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["macAddress"].as_str().unwrap())
        .collect();
    assert_eq!(macs, ["fa:4c:ee:9a:76:00", "fa:4c:ee:9a:76:01"]);
    assert_eq!(v["virtualizerInfo"]["uuid"], uuid.as_str());
    assert_eq!(
        v["virtualDeviceInfoList"][0]["resourceUuid"],
        "5e6f708192a34b5c6d7e8f9012345678"
    );
    // Start of a running VM succeeds and changes nothing (ZSTAC-26937).
    let (s, v) = post(&e.app, "/vm/start/", &body).await;
    assert_eq!(
        (s, v["success"].clone()),
        (StatusCode::OK, json!(true)),
        "{v}"
    );

    let (s, v) = post(&e.app, "/vm/vmsync", "{}").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["states"][&uuid], "Running", "{v}");
    assert_eq!(v["vmInShutdowns"], json!([]));

    let reboot = json!({"uuid": uuid, "timeout": 10, "bootDev": ["hd"]}).to_string();
    let (s, v) = post(&e.app, "/vm/reboot", &reboot).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = post(&e.app, "/vm/vmsync", "{}").await;
    assert_eq!(v["states"][&uuid], "Running", "{v}");

    let stop = json!({"uuid": uuid, "type": "grace", "timeout": 10}).to_string();
    let (s, v) = post(&e.app, "/vm/stop", &stop).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = post(&e.app, "/vm/vmsync", "{}").await;
    assert!(v["states"].get(&uuid).is_none(), "{v}");
    // Stop, destroy of a missing VM succeed; reboot of one fails clearly.
    let (s, v) = post(&e.app, "/vm/stop", &stop).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": uuid}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(&e.app, "/vm/reboot", &reboot).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], format!("unable to find vm[uuid:{uuid}]"));
}

#[tokio::test]
async fn test_driver_destroy_cold_and_force() {
    let hv = test_driver();
    let e = env("destroy", hv.clone());
    let (a, b, c) = (unique_uuid(), unique_uuid(), unique_uuid());
    for u in [&a, &b, &c] {
        let (s, v) = post(&e.app, "/vm/start", &start_body(&e, u, 64 << 20)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": a}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hv.lookup(&a).unwrap(), None, "destroy undefines");
    let (s, _) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": b, "type": "cold"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hv.lookup(&b).unwrap(), None);
    // force: stopped, but the definition stays (reference 4.3).
    let (s, _) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": c, "type": "force"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let d = hv.lookup(&c).unwrap().expect("force keeps the definition");
    assert!(!d.state.is_active());
    let (_, v) = post(&e.app, "/vm/vmsync", "{}").await;
    assert!(v["states"].get(&c).is_none(), "{v}");
    // A later start replaces the stopped definition.
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &c, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": c}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": c, "type": "sideways"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn test_driver_capacity_errors_name_both_figures() {
    let hv = test_driver();
    let e = env("cap", hv.clone());
    let uuid = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 128 << 30)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "cannot fit VM {uuid}: needs 131072 MiB memory, host has "
        )),
        "{msg}"
    );
    assert!(msg.contains("MemAvailable 65536 MiB"), "{msg}");
    assert_eq!(hv.lookup(&uuid).unwrap(), None, "nothing defined");
    let mut body: Value = serde_json::from_str(&start_body(&e, &uuid, 64 << 20)).unwrap();
    body["cpuNum"] = json!(8);
    let (s, v) = post(&e.app, "/vm/start", &body.to_string()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        v["error"],
        format!("cannot fit VM {uuid}: needs 8 CPUs, host has 4 online CPUs")
    );
}

#[tokio::test]
async fn reference_fixtures_are_accepted() {
    let e = env("fixtures", test_driver());
    // F7 and destroy for a VM that does not exist here: success.
    let (s, v) = post(&e.app, "/vm/stop", F7).await;
    assert_eq!(
        (s, v.clone()),
        (StatusCode::OK, json!({"success":true,"error":""})),
        "{v}"
    );
    let (s, v) = post(&e.app, "/vm/destroy", DESTROY).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"success":true,"error":""})));
    let (s, v) = post(&e.app, "/vm/reboot", REBOOT).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "unable to find vm[uuid:7c0de1f2a3b44c5d8e9f00112233aabb]"
    );
    let (s, v) = post(&e.app, "/vm/vmsync", "{}").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["states"].is_object() && v["vmInShutdowns"].is_array(),
        "{v}"
    );
    // test:///default's own domain "test" is running.
    assert_eq!(v["states"]["test"], "Running");
    // F5 itself (channel under /var/lib/zstack) is exercised by the fake:
    // decoding and planning, without touching this host's /var/lib.
    let fake = Arc::new(FakeHypervisor::default());
    let f = env("fixtures-fake", fake.clone());
    let mut v: Value = serde_json::from_str(F5).unwrap();
    v["addons"]["channel"]["socketPath"] = json!(
        f.dir
            .join("applianceVm.7c0de1f2a3b44c5d8e9f00112233aabb")
            .to_str()
            .unwrap()
    );
    let (s, r) = post(&f.app, "/vm/start", &v.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["virtualizerInfo"]["virtualizer"], "fake");
    assert_eq!(
        fake.calls.lock().unwrap().as_slice(),
        [
            "define 7c0de1f2a3b44c5d8e9f00112233aabb",
            "start 7c0de1f2a3b44c5d8e9f00112233aabb"
        ]
    );
}

#[tokio::test]
async fn grace_stop_falls_back_to_destroy_when_the_guest_ignores_acpi() {
    let fake = Arc::new(FakeHypervisor::default());
    fake.ignore_shutdown.store(true, Ordering::SeqCst);
    let e = env("grace", fake.clone());
    let uuid = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": uuid, "timeout": 1}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(
        calls[2..],
        [
            format!("shutdown {uuid}"),
            format!("destroy {uuid}"),
            format!("undefine {uuid}")
        ]
    );
}

#[tokio::test]
async fn console_tail_and_bootstrap_info() {
    let e = env("console", Arc::new(FakeHypervisor::default()));
    let uuid = unique_uuid();
    let (s, v) = post(
        &e.app,
        "/vm/console/tail",
        &json!({"uuid": uuid}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    std::fs::create_dir_all(e.dir.join("console")).unwrap();
    let log = format!("{}boot failed: no bootable device\n", "x".repeat(10000));
    std::fs::write(e.dir.join(format!("console/{uuid}-vm-kernel.log")), &log).unwrap();
    let (s, v) = post(
        &e.app,
        "/vm/console/tail",
        &json!({"uuid": uuid, "maxBytes": 100}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tail = v["tail"].as_str().unwrap();
    assert_eq!(tail.len(), 100);
    assert!(tail.ends_with("boot failed: no bootable device\n"));

    // setbootstrapinfo (F6 shape) into a socket the test listens on, as
    // qemu does for <source mode='bind'>.
    let sock = e.dir.join("applianceVm.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let (mut c, _) = l.accept().unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
        b
    });
    let f6 = json!({"socketPath": sock, "bootStrapInfoTimeout": 5,
        "info": {"applianceVmSubType":"vrouter","uuid":"7c0de1f2a3b44c5d8e9f00112233aabb",
          "managementNic":{"ip":"10.0.0.200","netmask":"255.255.255.0","gateway":"10.0.0.1",
          "mac":"fa:4c:ee:9a:76:00","deviceName":"eth0","isDefaultRoute":true}}});
    let (s, v) = post(&e.app, "/appliancevm/setbootstrapinfo", &f6.to_string()).await;
    assert_eq!(
        (s, v.clone()),
        (StatusCode::OK, json!({"success":true,"error":""})),
        "{v}"
    );
    let got: Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(got["managementNic"]["mac"], "fa:4c:ee:9a:76:00");
    let (s, v) = post(
        &e.app,
        "/appliancevm/setbootstrapinfo",
        &json!({"socketPath": e.dir.join("nosock"), "bootStrapInfoTimeout": 1, "info": {"uuid": "x"}})
            .to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("set appliance bootstrapinfo error, because: socket "),
        "{v}"
    );
}

#[test]
fn test_driver_lifecycle_events_arrive() {
    crate::sys::events::start_event_loop();
    virt::error::clear_error_callback();
    let lv = Libvirt::open("test:///default").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    crate::sys::events::subscribe(lv.connection(), &tx).unwrap();
    let uuid = unique_uuid();
    let (name, dashed) = crate::plan::domain::parse_vm_uuid(&uuid).unwrap();
    let xml = format!(
        "<domain type='test'><name>{name}</name><uuid>{dashed}</uuid><memory unit='KiB'>65536</memory><os><type>hvm</type></os></domain>"
    );
    lv.define(&xml).unwrap();
    lv.start(&name, false).unwrap();
    lv.destroy(&name).unwrap();
    lv.undefine(&name).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Result::Ok(crate::sys::events::DomainEvent::Lifecycle { name: n, event, .. })
                if n == name =>
            {
                seen.push(event as u32);
                if seen.contains(&virt::sys::VIR_DOMAIN_EVENT_STOPPED) {
                    break;
                }
            }
            Result::Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert!(
        seen.contains(&virt::sys::VIR_DOMAIN_EVENT_STARTED),
        "{seen:?}"
    );
    assert!(
        seen.contains(&virt::sys::VIR_DOMAIN_EVENT_STOPPED),
        "{seen:?}"
    );
}

mod ops;

/// `vmNics` (`VmNicInventory`, typed since the node sends it): a wrongly
/// typed list or entry is a 400 naming the field, and the VM is left
/// running and defined.
#[tokio::test]
async fn malformed_vm_nics_are_refused_and_the_vm_is_untouched() {
    let hv = test_driver();
    let e = env("vmnics", hv.clone());
    let uuid = unique_uuid();
    let (s, v) = post(&e.app, "/vm/start", &start_body(&e, &uuid, 64 << 20)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (path, nics) in [
        ("/vm/stop", json!("eth0")),
        ("/vm/stop", json!([{"uuid": "n", "deviceId": "zero"}])),
        ("/vm/destroy", json!({"mac": "fa:00:00:00:00:01"})),
        ("/vm/destroy", json!([{"mac": 7}])),
        ("/vm/destroy", json!([null, 1])),
    ] {
        let body = json!({"uuid": uuid, "type": "cold", "vmNics": nics}).to_string();
        let (s, v) = post(&e.app, path, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {nics}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains("vmNics"),
            "{path} {nics}: {v}"
        );
        let d = hv.lookup(&uuid).unwrap().expect("still defined");
        assert!(d.state.is_active(), "{path} {nics}: still running");
    }
    let (s, _) = post(&e.app, "/vm/destroy", &json!({"uuid": uuid}).to_string()).await;
    assert_eq!(s, StatusCode::OK);
}
