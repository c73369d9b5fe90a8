//! Paths a request names must be inside the agent's directories; a refused
//! path leaves the file and its directory exactly as they were (issue 14).
//! Also the bootstrap push: per-socket replacement and no thread per call.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::netstate::Observed;
use crate::paths::HostDirs;
use crate::plan::domain::{DomainOptions, DomainType};
use crate::sys::antispoof::FakeGuard;
use crate::sys::hostinfo::HostProbe;
use crate::sys::hypervisor::FakeHypervisor;
use crate::sys::netlink::FakeNetlink;
use crate::sys::sysctl::FakeSysctl;

const F5: &str = include_str!("../plan/domain/f5.json");
const UUID: &str = "7c0de1f2a3b44c5d8e9f00112233aabb";

struct Env {
    app: axum::Router,
    state: AppState,
    hv: Arc<FakeHypervisor>,
    dir: PathBuf,
    /// Outside the agent's directories: must never change.
    victim_dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env(tag: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("kvm-agent-paths-{tag}-{}", std::process::id()));
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
    w("victim/precious", "keep me");
    let victim_dir = dir.join("victim");
    std::fs::set_permissions(&victim_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hv = Arc::new(FakeHypervisor::default());
    let mut agent = Agent::new(
        Arc::new(FakeNetlink::new(Observed::default())),
        Arc::new(FakeSysctl::default()),
        dir.join("state"),
    )
    .with_vm(
        VmSide::new(
            Some(hv.clone()),
            DomainOptions {
                domain_type: DomainType::Qemu,
                console_log_dir: dir.join("console"),
                vnc_listen: "127.0.0.1".into(),
            },
        )
        .with_guard(Arc::new(FakeGuard::default()))
        .with_dirs(HostDirs::under(&dir.join("agent"))),
    );
    agent.host = HostProbe::with_root(dir.join("host"));
    let state = Arc::new(agent);
    Env {
        app: router(state.clone()),
        state,
        hv,
        dir,
        victim_dir,
    }
}

/// Mode, existence and content of the victim directory and file.
fn snapshot(e: &Env) -> (u32, bool, String) {
    let mode = std::fs::metadata(&e.victim_dir)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    let f = e.victim_dir.join("precious");
    (
        mode,
        f.exists(),
        std::fs::read_to_string(&f).unwrap_or_default(),
    )
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

fn start_with(e: &Env, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(F5).unwrap();
    v["rootVolume"]["installPath"] = json!(e.dir.join("agent/volumes/root.qcow2"));
    v["addons"]["channel"]["socketPath"] =
        json!(e.dir.join(format!("agent/sock/applianceVm.{UUID}")));
    edit(&mut v);
    v.to_string()
}

fn refused(s: StatusCode, v: &Value, field: &str, allowed: &Path) {
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(err.starts_with(&format!("field {field}: ")), "{err}");
    assert!(err.contains(&allowed.display().to_string()), "{err}");
}

#[tokio::test]
async fn start_refuses_paths_outside_and_leaves_them_untouched() {
    let e = env("start");
    let before = snapshot(&e);
    let victim = e.victim_dir.join("precious");
    let sock_dir = e.dir.join("agent/sock");
    // The channel socket: chmod of the parent and removal of the file.
    let body = start_with(&e, |v| v["addons"]["channel"]["socketPath"] = json!(victim));
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    refused(s, &v, "addons.channel.socketPath", &sock_dir);
    assert_eq!(snapshot(&e), before);
    // `..` out of the socket directory.
    let body = start_with(&e, |v| {
        v["addons"]["channel"]["socketPath"] =
            json!(format!("{}/../../victim/precious", sock_dir.display()))
    });
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    refused(s, &v, "addons.channel.socketPath", &sock_dir);
    assert_eq!(snapshot(&e), before);
    // Volumes and the direct kernel boot files.
    let vols = e.dir.join("agent/volumes");
    let body = start_with(&e, |v| v["rootVolume"]["installPath"] = json!(victim));
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    refused(s, &v, "rootVolume.installPath", &vols);
    let body = start_with(&e, |v| {
        v["dataVolumes"] = json!([{"installPath": "/etc/shadow", "deviceId": 1,
            "volumeUuid": "0123456789abcdef0123456789abcdef"}])
    });
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    refused(s, &v, "dataVolumes[0].installPath", &vols);
    let body = start_with(&e, |v| {
        v["addons"]["directKernelBoot"] = json!({"kernel": victim, "cmdline": "x"})
    });
    let (s, v) = post(&e.app, "/vm/start", &body).await;
    refused(
        s,
        &v,
        "addons.directKernelBoot.kernel",
        &e.dir.join("agent/images"),
    );
    // A symlink in the socket directory pointing out of it.
    std::fs::create_dir_all(&sock_dir).unwrap();
    std::os::unix::fs::symlink(&victim, sock_dir.join(format!("applianceVm.{UUID}"))).unwrap();
    let (s, v) = post(&e.app, "/vm/start", &start_with(&e, |_| {})).await;
    refused(s, &v, "addons.channel.socketPath", &sock_dir);
    assert_eq!(snapshot(&e), before);
    assert!(e.hv.domains.lock().unwrap().is_empty(), "nothing defined");
    std::fs::remove_file(sock_dir.join(format!("applianceVm.{UUID}"))).unwrap();
    // Inside: accepted; the socket dir the agent created is the one chmodded.
    std::fs::remove_dir(&sock_dir).unwrap();
    let (s, v) = post(&e.app, "/vm/start", &start_with(&e, |_| {})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mode = std::fs::metadata(&sock_dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777);
}

#[tokio::test]
async fn stop_deletes_no_socket_outside_the_socket_dir() {
    let e = env("stop");
    let before = snapshot(&e);
    let victim = e.victim_dir.join("precious");
    // A domain (defined by someone else) whose channel names the victim.
    use crate::sys::hypervisor::Hypervisor;
    let xml = format!(
        "<domain type='qemu'>\n  <name>{UUID}</name>\n  <memory unit='KiB'>1024</memory>\n  <vcpu>1</vcpu>\n  <devices>\n    <channel type='unix'>\n      <source mode='bind' path='{}'/>\n      <target type='virtio' name='x'/>\n    </channel>\n  </devices>\n</domain>",
        victim.display()
    );
    e.hv.define(&xml).unwrap();
    e.hv.start(UUID, false).unwrap();
    let (s, v) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": UUID, "type": "cold"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(snapshot(&e), before, "the victim file is still there");
}

#[tokio::test]
async fn bootstrap_and_volumesync_refuse_paths_outside() {
    let e = env("boot");
    // A unix socket outside the socket dir that would take 8192 bytes.
    let outside = e.victim_dir.join("other.sock");
    let l = std::os::unix::net::UnixListener::bind(&outside).unwrap();
    l.set_nonblocking(true).unwrap();
    let (s, v) = post(
        &e.app,
        "/appliancevm/setbootstrapinfo",
        &json!({"socketPath": outside, "bootStrapInfoTimeout": 2, "info": {"a": 1}}).to_string(),
    )
    .await;
    refused(s, &v, "socketPath", &e.dir.join("agent/sock"));
    assert!(l.accept().is_err(), "no connection was made to it");
    let (s, v) = post(
        &e.app,
        "/vm/volumesync",
        &json!({"storagePaths": [format!("file://{}", e.victim_dir.display())]}).to_string(),
    )
    .await;
    refused(s, &v, "storagePaths[0]", &e.dir.join("agent/volumes"));
}

/// 600 pushes to sockets that never appear (past tokio's 512 blocking
/// threads, which a thread per call exhausted) leave vmsync answering at
/// once; a second push to the same socket replaces the pending one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_bootstrap_pushes_hold_no_thread_and_replace_per_socket() {
    let e = env("many");
    let sock_dir = e.dir.join("agent/sock");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let mut calls = Vec::new();
    for i in 0..600 {
        let app = e.app.clone();
        let body = json!({"socketPath": sock_dir.join(format!("applianceVm.{i}")),
            "bootStrapInfoTimeout": 30, "info": {"i": i}})
        .to_string();
        calls.push(tokio::spawn(async move {
            post(&app, "/appliancevm/setbootstrapinfo", &body).await
        }));
    }
    // Let them all start waiting.
    let t = Instant::now();
    while e.state.vm.bootstraps.len() < 600 && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    let (s, v) = tokio::time::timeout(Duration::from_secs(5), post(&e.app, "/vm/vmsync", "{}"))
        .await
        .expect("vmsync answers");
    let took = t.elapsed();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(took < Duration::from_secs(1), "vmsync took {took:?}");
    // Replace: a newer push to socket 0; the first answers 409 saying so.
    let app = e.app.clone();
    let again = json!({"socketPath": sock_dir.join("applianceVm.0"),
        "bootStrapInfoTimeout": 1, "info": {"i": "again"}})
    .to_string();
    let newer =
        tokio::spawn(async move { post(&app, "/appliancevm/setbootstrapinfo", &again).await });
    let (s, v) = tokio::time::timeout(Duration::from_secs(5), calls.remove(0))
        .await
        .expect("the replaced push answers")
        .unwrap();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("replaced"), "{v}");
    let (s, _) = newer.await.unwrap();
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "no socket within 1 s");
    for c in calls {
        c.abort();
    }
}

/// Log lines of the whole test process: one global subscriber, because a
/// thread-local one missed lines under load (another test's thread had
/// registered the audit callsite first). Tests filter by their own uuid.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Result::Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Result::Ok(())
    }
}

impl Lines {
    fn global() -> Lines {
        static LINES: std::sync::OnceLock<Lines> = std::sync::OnceLock::new();
        LINES
            .get_or_init(|| {
                let lines = Lines::default();
                let w = lines.clone();
                let sub = tracing_subscriber::fmt()
                    .with_ansi(false)
                    .with_writer(move || w.clone())
                    .finish();
                tracing::subscriber::set_global_default(sub)
                    .expect("no other test sets a global subscriber");
                lines
            })
            .clone()
    }

    /// The audit lines that name `uuid` or `path`.
    fn audit(&self, uuid: &str, path: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(" audit: ") && (l.contains(uuid) || l.contains(path)))
            .map(String::from)
            .collect()
    }
}

#[tokio::test]
async fn every_mutating_command_leaves_one_audit_line_with_its_result() {
    const UUID: &str = "a0d17000000000000000000000000001";
    const REFUSED: &str = "/etc/audit-test-socket";
    let lines = Lines::global();
    let e = env("audit");
    // Sync: the line carries the result and the uuids, escaped.
    let (s, _) = post(
        &e.app,
        "/vm/stop",
        &json!({"uuid": UUID, "type": "cold"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let body = start_with(&e, |v| {
        v["vmInstanceUuid"] = json!(UUID);
        v["addons"]["channel"]["socketPath"] = json!(REFUSED)
    });
    let (s, _) = post(&e.app, "/vm/start", &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Read-only: no line.
    let (s, _) = post(&e.app, "/vm/vmsync", "{}").await;
    assert_eq!(s, StatusCode::OK);
    // Async: the line comes when the command is done.
    let rsp = e
        .app
        .clone()
        .oneshot(
            Request::post("/vm/destroy")
                .header("taskuuid", "t-1")
                .header("callbackurl", "http://127.0.0.1:9/cb")
                .body(Body::from(json!({"uuid": UUID}).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let t = Instant::now();
    while lines.audit(UUID, REFUSED).len() < 3 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = lines.audit(UUID, REFUSED);
    assert_eq!(a.len(), 3, "{a:#?}");
    assert!(
        a[0].contains("peer=unknown path=/vm/stop result=success")
            && a[0].contains(&format!("uuids=[\"{UUID}\"]")),
        "{}",
        a[0]
    );
    assert!(
        a[1].contains("path=/vm/start result=error: field addons.channel.socketPath"),
        "{}",
        a[1]
    );
    assert!(a[2].contains("path=/vm/destroy result=success"), "{}", a[2]);
}
