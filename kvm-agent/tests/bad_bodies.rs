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

#[path = "bad_bodies/shared.rs"]
mod shared;

use std::sync::Arc;

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
use shared::*;
use testbed::conformance::Mode;
use testbed::{CallbackReceiver, TempDir};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_body_is_refused_by_name_and_changes_nothing() {
    let h = host();
    let cb = CallbackReceiver::start(None).unwrap();
    let tmp = h.dir.path();
    run_setup(&h.app, &cb, tmp, setup()).await;
    let cases = corpus(&[]);
    assert!(cases.len() >= 300, "{}", cases.len());
    let failures = run_corpus(&h.app, &cb, tmp, &cases, || snapshot(&h)).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases x 2 modes failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
