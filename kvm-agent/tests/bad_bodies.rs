//! The corpus of bad bodies (issue 13): every one, in sync mode (no
//! callback: a 4xx, or for the node's `syncJsonPost` paths the 200 +
//! `success:false` it reads) and in async mode (as the node posts, with
//! `taskuuid` and `callbackurl`: the callback says success:false), is
//! refused naming the problem, with a bounded one-line error, and leaves
//! the host exactly as it was: the fake kernel's links, addresses, routes
//! and applied ops, sysctl, the hypervisor's domains and calls, the
//! anti-spoofing guard's calls, the session, and every file under the
//! test's directory (state, sockets, volumes, console logs). Through the
//! real router over fakes (no root needed). The corpus is
//! `tests/bad_bodies/corpus.jsonl`, written by `gen.py` beside it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use kvm_agent::api::{Agent, AppState, VmSide, router};
use kvm_agent::netstate::{Addr, Link, Observed, Route, TABLE_MAIN};
use kvm_agent::paths::HostDirs;
use kvm_agent::plan::domain::{DomainOptions, DomainType};
use kvm_agent::sys::antispoof::FakeGuard;
use kvm_agent::sys::hostinfo::HostProbe;
use kvm_agent::sys::hypervisor::FakeHypervisor;
use kvm_agent::sys::netlink::FakeNetlink;
use kvm_agent::sys::sysctl::FakeSysctl;
use serde_json::Value;
use testbed::conformance::Mode;
use testbed::{CallbackReceiver, TempDir};
use tower::ServiceExt;

fn link(index: u32, name: &str, kind: Option<&str>, mac: &str, up: bool) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        mac: Some(mac.parse().unwrap()),
        mtu: 1500,
        up,
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    }
}

/// The reference host (eth0 with 10.0.0.21/24 and the default route, eth1)
/// plus a NIC that is down (eth2), a dummy and the loopback.
fn kernel() -> Observed {
    let ip = "10.0.0.21".parse().unwrap();
    Observed {
        links: vec![
            link(1, "lo", None, "00:00:00:00:00:00", true),
            link(2, "eth0", Some("veth"), "52:54:00:00:00:21", true),
            link(3, "eth1", Some("veth"), "52:54:00:00:01:21", true),
            link(4, "eth2", Some("veth"), "52:54:00:00:02:21", false),
            link(5, "dummy0", Some("dummy"), "52:54:00:00:00:77", true),
        ],
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

struct Host {
    app: axum::Router,
    agent: AppState,
    nl: Arc<FakeNetlink>,
    sysctl: Arc<FakeSysctl>,
    hv: Arc<FakeHypervisor>,
    guard: Arc<FakeGuard>,
    dir: TempDir,
}

fn host() -> Host {
    let dir = TempDir::new("kvm-bad-bodies").unwrap();
    let d = dir.path();
    let write = |rel: &str, text: &str| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "host/proc/meminfo",
        "MemTotal: 70000000 kB\nMemAvailable: 67108864 kB\n",
    );
    write("host/sys/devices/system/cpu/online", "0-3\n");
    write("volumes/root.qcow2", "qcow2");
    write("agentSocket/notasocket", "a regular file");
    write("victim/precious", "keep me");
    std::os::unix::fs::symlink("/etc", d.join("volumes/esc")).unwrap();
    std::os::unix::fs::symlink(d.join("victim/precious"), d.join("agentSocket/link")).unwrap();
    let sysctl = Arc::new(FakeSysctl::default());
    sysctl
        .values
        .lock()
        .unwrap()
        .insert("net/bridge/bridge-nf-call-iptables".into(), "0".into());
    let nl = Arc::new(FakeNetlink::new(kernel()));
    let hv = Arc::new(FakeHypervisor::default());
    let guard = Arc::new(FakeGuard::default());
    let mut a = Agent::new(nl.clone(), sysctl.clone(), d.join("state")).with_vm(
        VmSide::new(
            Some(hv.clone()),
            DomainOptions {
                domain_type: DomainType::Qemu,
                console_log_dir: d.join("console"),
                vnc_listen: "127.0.0.1".into(),
            },
        )
        .with_guard(guard.clone())
        .with_dirs(HostDirs {
            socket_dir: d.join("agentSocket"),
            volume_dirs: vec![d.join("volumes")],
            image_dirs: vec![d.join("images")],
        }),
    );
    let qemu = format!("qemu-system-{}", std::env::consts::ARCH);
    a.host = HostProbe::with_root(d.join("host")).with_tools(&[
        ("libvirtd", "9.0.0"),
        ("qemu-img", "7.2.15"),
        (&qemu, "7.2.15"),
    ]);
    let agent = Arc::new(a);
    Host {
        app: router(agent.clone()),
        agent,
        nl,
        sysctl,
        hv,
        guard,
        dir,
    }
}

fn files(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("-> {:?}", std::fs::read_link(&p).unwrap())
        } else if m.is_dir() {
            files(&p, out);
            format!(
                "dir {:o}",
                std::os::unix::fs::PermissionsExt::mode(&m.permissions())
            )
        } else if m.is_file() {
            format!("{:?}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()))
        } else {
            "special".into()
        };
        out.push(format!("{}: {what}", p.display()));
    }
}

/// Everything a bad body must leave as it was.
fn snapshot(h: &Host) -> String {
    let mut tree = vec![];
    files(h.dir.path(), &mut tree);
    format!(
        "kernel: {:?}\napplied: {:?}\nsysctl: {:?} {:?}\ndomains: {:?}\nlibvirt calls: {:?}\n\
         guard: {:?}\nsession: {:?}\nvolume sync: {:?}\nbootstraps: {}\nfiles:\n{}",
        h.nl.state.lock().unwrap(),
        h.nl.applied.lock().unwrap(),
        h.sysctl.values.lock().unwrap(),
        h.sysctl.writes.lock().unwrap(),
        h.hv.domains.lock().unwrap(),
        h.hv.calls.lock().unwrap(),
        h.guard.calls.lock().unwrap(),
        h.agent.session.lock().unwrap(),
        h.agent.vm.volume_sync.lock().unwrap(),
        h.agent.vm.bootstraps.len(),
        tree.join("\n"),
    )
}

/// The bytes to send: `$TMP` is the test's directory, `{{1MiB}}` 1 MiB of
/// "a", `{{xff}}` and `{{xe9}}` the bytes that make a body not UTF-8.
fn expand(text: &str, tmp: &Path) -> Vec<u8> {
    let text = text
        .replace("$TMP", &tmp.display().to_string())
        .replace("{{1MiB}}", &"a".repeat(1 << 20));
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("{{x") {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let byte = u8::from_str_radix(&rest[i + 3..i + 5], 16).unwrap();
        out.push(byte);
        rest = &rest[i + 7..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// How long one command may take to be refused.
const WAIT: Duration = Duration::from_secs(10);

/// POSTs `body` as the node does in `mode`; the HTTP status and the reply
/// (the body, or the callback carrying this call's `taskuuid`; a path that
/// answers inline even with a callback header gives its body).
async fn exchange(
    h: &Host,
    cb: &CallbackReceiver,
    path: &str,
    mode: Mode,
    body: Vec<u8>,
    task: &str,
) -> Result<(u16, Value), String> {
    let mut req = Request::post(path).header("Content-Length", body.len());
    req = match mode {
        Mode::Sync => req.header("Content-Type", "application/json"),
        Mode::Async => req
            .header("taskuuid", task)
            .header(
                "callbackurl",
                format!("{}/zstack/asyncrest/callback", cb.url()),
            )
            .header("Content-Type", "application/json; charset=utf-8"),
    };
    let call = h.app.clone().oneshot(req.body(Body::from(body)).unwrap());
    let rsp = tokio::time::timeout(WAIT, call)
        .await
        .map_err(|_| format!("no answer within {WAIT:?}"))?
        .map_err(|e| e.to_string())?;
    let status = rsp.status().as_u16();
    let bytes = axum::body::to_bytes(rsp.into_body(), 256 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let json = |b: &[u8]| {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
    };
    if mode == Mode::Sync || status != 200 || &bytes[..] != b"\"\"" {
        return Ok((status, json(&bytes)));
    }
    let start = Instant::now();
    loop {
        if let Some(r) = cb
            .requests()
            .into_iter()
            .find(|r| r.header("taskuuid") == Some(task))
        {
            return Ok((status, json(r.body.as_bytes())));
        }
        if start.elapsed() > WAIT {
            return Err(format!("no callback within {WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Paths the node posts with `syncJsonPost`: it reads only a 200 body.
fn node_sync(path: &str) -> bool {
    matches!(
        path,
        "/host/connect" | "/network/checkphysicalnetworkinterface"
    )
}

/// What is wrong with the answer to a bad body, if anything.
fn judge(path: &str, expect: &str, mode: Mode, status: u16, reply: &Value) -> Option<String> {
    let text = reply.to_string();
    let err = reply["error"].as_str().unwrap_or("");
    let ok_status = match mode {
        Mode::Sync if node_sync(path) => status == 200,
        Mode::Sync => (400..500).contains(&status),
        Mode::Async => status == 200,
    };
    if !ok_status || reply["success"] != false {
        return Some(format!(
            "accepted or wrong status {status}: {}",
            common::text::excerpt_n(&text, 300)
        ));
    }
    if !err.contains(expect) {
        return Some(format!(
            "error does not name {expect:?}: {}",
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

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/kvm")
        .join(format!("{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["request"].clone()
}

/// A host with something of every kind a bad body could wreck: a session,
/// a bridge and a VLAN bridge, a running VM with a hot-plugged NIC.
fn setup() -> Vec<(&'static str, Mode, Value)> {
    let mut start = fixture("vm-start");
    start["rootVolume"]["installPath"] = "$TMP/volumes/root.qcow2".into();
    vec![
        ("/host/connect", Mode::Sync, fixture("host-connect")),
        (
            "/network/l2novlan/createbridge",
            Mode::Async,
            fixture("network-l2novlan-createbridge"),
        ),
        (
            "/network/l2vlan/createbridge",
            Mode::Async,
            fixture("network-l2vlan-createbridge"),
        ),
        ("/vm/start", Mode::Async, start),
        ("/vm/attachnic", Mode::Async, fixture("vm-attachnic")),
    ]
}

struct Case {
    name: String,
    path: String,
    text: String,
    expect: String,
}

fn corpus() -> Vec<Case> {
    include_str!("bad_bodies/corpus.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Case {
                name: s("name"),
                path: s("path"),
                text: match v.get("raw") {
                    Some(r) => r.as_str().unwrap().to_string(),
                    None => v["body"].to_string(),
                },
                expect: s("expect"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_body_is_refused_by_name_and_changes_nothing() {
    let h = host();
    let cb = CallbackReceiver::start(None).unwrap();
    for (i, (path, mode, body)) in setup().into_iter().enumerate() {
        let bytes = expand(&body.to_string(), h.dir.path());
        let (status, v) = exchange(&h, &cb, path, mode, bytes, &format!("setup-{i}"))
            .await
            .unwrap();
        assert_eq!(
            (status, &v["success"]),
            (200, &Value::Bool(true)),
            "setup {path}: {v}"
        );
    }
    let mut before = snapshot(&h);
    let cases = corpus();
    assert!(cases.len() >= 300, "{}", cases.len());
    let mut failures = vec![];
    // BAD_BODIES_DUMP=<file>: every case's status and error, to review
    // what the `expect` words match.
    let mut dump = std::env::var_os("BAD_BODIES_DUMP").map(|_| String::new());
    for (n, c) in cases.iter().enumerate() {
        for mode in [Mode::Sync, Mode::Async] {
            let body = expand(&c.text, h.dir.path());
            let task = format!("{:032x}", n * 2 + (mode == Mode::Async) as usize);
            match exchange(&h, &cb, &c.path, mode, body, &task).await {
                Ok((status, reply)) => {
                    if let Some(d) = &mut dump {
                        let err = reply["error"].as_str().unwrap_or("");
                        let err = common::text::excerpt_n(err, 300);
                        d.push_str(&format!("{} ({mode:?}) {status}: {err}\n", c.name));
                    }
                    if let Some(why) = judge(&c.path, &c.expect, mode, status, &reply) {
                        failures.push(format!("{} ({mode:?}): {why}", c.name));
                    }
                }
                Err(e) => failures.push(format!("{} ({mode:?}): {e}", c.name)),
            }
            let now = snapshot(&h);
            if now != before {
                failures.push(format!(
                    "{} ({mode:?}): changed the host: {}",
                    c.name,
                    first_difference(&before, &now)
                ));
                before = now;
            }
        }
    }
    if let (Some(d), Some(path)) = (dump, std::env::var_os("BAD_BODIES_DUMP")) {
        std::fs::write(path, d).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases x 2 modes failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Where the snapshots first differ, with some context.
fn first_difference(before: &str, now: &str) -> String {
    let i = before
        .bytes()
        .zip(now.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let around = |s: &str| {
        let mut from = i.saturating_sub(120);
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        common::text::excerpt_n(&s[from..], 300)
    };
    format!("was ...{} now ...{}", around(before), around(now))
}
