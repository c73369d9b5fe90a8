//! Privileged: the `/host` and `/network` part of the bad-body corpus
//! (tests/bad_bodies/corpus.jsonl) against the real kernel, in a network
//! namespace: each body, sync and async, is refused naming its problem and
//! leaves `ip -d link`, `ip addr`, every routing table, sysctl (fake) and
//! the state directory byte-identical. Not here (`bad_bodies.rs` runs
//! them, and these, over fakes): `/vm` (libvirt for real) and
//! `/network/l2vlan` (machines without the 8021q module cannot create
//! VLAN interfaces at all).
//!
//! Topology (namespaces only, nothing in the root namespace): host eth0
//! 10.0.0.21/24 with the default route via the gateway namespace's
//! 10.0.0.1, eth1, eth2 (down) and dummy0 (veths: this kernel may lack the
//! dummy module), lo, and a bridge br_eth1_100 (what a VLAN bridge is
//! named; the corpus uses it as "an uplink that is a bridge").

#[path = "bad_bodies/shared.rs"]
mod shared;

use std::sync::Arc;
use std::time::Duration;

use kvm_agent::api::{Agent, router};
use kvm_agent::sys::hostinfo::HostProbe;
use kvm_agent::sys::netlink::RtNetlink;
use kvm_agent::sys::sysctl::FakeSysctl;
use serde_json::Value;
use shared::*;
use testbed::conformance::Mode;
use testbed::{CallbackReceiver, Netns, TempDir, addr, route, veth};

/// `ip -j <words>` without what the kernel changes on its own (bridge
/// timers, operstate while a port comes up).
fn ip_json(ns: &Netns, words: &str) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_timer") && k != "operstate");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let out = ns.ip(&format!("-j {words}")).unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    strip(&mut v);
    v.to_string()
}

fn kernel(ns: &Netns) -> String {
    format!(
        "links: {}\naddrs: {}\nroutes4: {}\nroutes6: {}",
        ip_json(ns, "-d link"),
        ip_json(ns, "addr"),
        ip_json(ns, "-4 route show table all"),
        ip_json(ns, "-6 route show table all"),
    )
}

#[test]
fn bad_network_bodies_change_nothing_in_the_kernel() {
    testbed::require_privileged!();
    let host = Netns::new("kbbh").unwrap();
    let gw = Netns::new("kbbg").unwrap();
    // No IPv6 link-local addresses appearing on new links later.
    for ns in [&host, &gw] {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1").unwrap();
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
            .unwrap();
    }
    for (a, b) in [
        ("eth0", "gw0"),
        ("eth1", "gw1"),
        ("eth2", "gw2"),
        ("dummy0", "gw3"),
    ] {
        veth(&host, a, &gw, b).unwrap();
    }
    host.ip("link set eth2 down").unwrap();
    testbed::bridge(&host, "br_eth1_100").unwrap();
    addr(&host, "eth0", "10.0.0.21/24").unwrap();
    addr(&gw, "gw0", "10.0.0.1/24").unwrap();
    route(&host, "default via 10.0.0.1 dev eth0").unwrap();
    let dir = TempDir::new("kvm-bad-bodies-netns").unwrap();
    let tmp = dir.path();
    let failures = host.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sysctl = Arc::new(FakeSysctl::default());
            sysctl
                .values
                .lock()
                .unwrap()
                .insert("net/bridge/bridge-nf-call-iptables".into(), "0".into());
            let nl = Arc::new(RtNetlink::new().expect("rtnetlink socket"));
            let mut a = Agent::new(nl, sysctl.clone(), tmp.join("state"));
            let qemu = format!("qemu-system-{}", std::env::consts::ARCH);
            a.host = HostProbe::with_root(tmp.join("host")).with_tools(&[
                ("libvirtd", "9.0.0"),
                ("qemu-img", "7.2.15"),
                (&qemu, "7.2.15"),
            ]);
            let app = router(Arc::new(a));
            let cb = CallbackReceiver::start(Some(&host)).unwrap();
            let setup = vec![
                ("/host/connect", Mode::Sync, fixture("host-connect")),
                (
                    "/network/l2novlan/createbridge",
                    Mode::Async,
                    fixture("network-l2novlan-createbridge"),
                ),
            ];
            run_setup(&app, &cb, tmp, setup).await;
            // The new bridges' ports settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cases = corpus(&[
                "/host",
                "/network/checkphysicalnetworkinterface",
                "/network/l2novlan",
                "/network/bridge",
            ]);
            assert!(cases.len() >= 300, "{}", cases.len());
            let snapshot = || {
                let mut tree = vec![];
                files(tmp, &mut tree);
                format!(
                    "{}\nsysctl: {:?} {:?}\nfiles:\n{}",
                    kernel(&host),
                    sysctl.values.lock().unwrap(),
                    sysctl.writes.lock().unwrap(),
                    tree.join("\n")
                )
            };
            let failures = run_corpus(&app, &cb, tmp, &cases, snapshot).await;
            (cases.len(), failures)
        })
    });
    let (n, failures) = failures;
    assert!(
        failures.is_empty(),
        "{} of {n} cases x 2 modes failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
