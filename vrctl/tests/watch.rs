//! `vrctl watch` against two compute hosts (kvm-agent on libvirt's test
//! driver, each in its namespace) and a router whose agent runs while a
//! host runs its VM: the test plays the hypervisor, vrctl watch plays the
//! controller with no command from a person. Host A comes back without
//! the VM (it is started there again), then A is gone with shared storage
//! (it moves to B; A's copy is destroyed once A answers again), then B is gone with local storage (it is re-created on
//! A from the image); each within 30 s of its first missed ping.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{Agent, start_kvm_agent_at};
use serde_json::{Value, json};
use testbed::{Netns, Proc, TempDir};

const UUID: &str = "7a7c0000000000000000000000000001";
const HOST_A: &str = "http://10.0.0.21:7070";
const HOST_B: &str = "http://10.0.0.22:7070";

fn description(dir: &Path, image: &Path, storage: &str) -> Value {
    json!({
        "agent": "http://10.0.0.25:7272",
        "uuid": UUID,
        "managementNodeCidr": "10.0.0.0/24",
        "nics": [
            {"mac": "fa:26:9c:aa:00:01", "ip": "10.0.0.25", "netmask": "255.255.255.0",
             "category": "Management"},
            {"mac": "fa:26:9c:aa:00:02", "ip": "172.20.10.5", "netmask": "255.255.0.0",
             "category": "Public", "isDefaultRoute": true}
        ],
        "snats": [{"publicIp": "172.20.10.5", "publicNicMac": "fa:26:9c:aa:00:02",
                   "privateNicMac": "fa:26:9c:aa:00:02",
                   "privateNicIp": "172.20.10.5", "snatNetmask": "255.255.0.0"}],
        "vm": {"hosts": [HOST_A, HOST_B], "cpuNum": 1, "memoryMb": 256,
               "image": image, "diskDir": dir.join("disks"), "socketDir": dir.join("sock"),
               "bridges": {"fa:26:9c:aa:00:01": "br_eth0", "fa:26:9c:aa:00:02": "br_eth1"},
               "managementNodeIp": "10.0.0.2", "bootTimeoutSecs": 30,
               "storage": storage}
    })
}

/// The router's VM state on `host` (sync vmsync), None when it has none.
fn vm_state(ctl: &Netns, host: &str) -> Option<String> {
    let body = vrctl::client::body(&vrctl::host::vm_sync_cmd()).to_string();
    let (code, text) = testbed::http_post(ctl, &format!("{host}/vm/vmsync"), &body, &[]).ok()?;
    let v: Value = serde_json::from_str(&text).ok().filter(|_| code == 200)?;
    v["states"][UUID].as_str().map(str::to_string)
}

/// The watch's events so far (its JSON lines).
fn events(watch: &Proc) -> Vec<Value> {
    watch
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Waits for the watch's `n`th action event, and returns it.
fn nth_action(watch: &Proc, n: usize, within: Duration) -> Value {
    let is_action = |e: &&Value| {
        ["start", "move", "recreate", "reboot"].contains(&e["event"].as_str().unwrap_or(""))
    };
    let t0 = Instant::now();
    loop {
        let actions: Vec<Value> = events(watch).iter().filter(is_action).cloned().collect();
        if let Some(a) = actions.get(n) {
            return a.clone();
        }
        assert!(
            t0.elapsed() < within,
            "no action {} within {within:?}; the watch said:\n{}",
            n + 1,
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn record(state: &Path) -> Value {
    let text = std::fs::read_to_string(state.join(format!("routers/{UUID}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn watch_starts_moves_and_recreates_a_lost_router_on_its_own() {
    testbed::require_privileged!();
    let tmp = TempDir::new("vrwatch").unwrap();
    let image = tmp.path().join("base.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("16M")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(!common::require_vm(), "qemu-img is missing");
        eprintln!("skipped: qemu-img is missing");
        return;
    }
    // One management network: vrctl (10.0.0.2), the router, hosts A and B.
    let ctl = Netns::new("wctl").unwrap();
    let vr = Netns::new("wvr").unwrap();
    let hosts = [Netns::new("wha").unwrap(), Netns::new("whb").unwrap()];
    testbed::bridge(&ctl, "br0").unwrap();
    testbed::addr(&ctl, "br0", "10.0.0.2/24").unwrap();
    testbed::veth(&ctl, "pvr", &vr, "eth0").unwrap();
    testbed::enslave(&ctl, "pvr", "br0").unwrap();
    testbed::veth(&vr, "eth1", &ctl, "vpub").unwrap();
    testbed::set_mac(&vr, "eth0", "fa:26:9c:aa:00:01").unwrap();
    testbed::set_mac(&vr, "eth1", "fa:26:9c:aa:00:02").unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.25/24").unwrap();
    for (i, h) in hosts.iter().enumerate() {
        let port = format!("ph{i}");
        testbed::veth(&ctl, &port, h, "eth0").unwrap();
        testbed::enslave(&ctl, &port, "br0").unwrap();
        testbed::addr(h, "eth0", &format!("10.0.0.{}/24", 21 + i)).unwrap();
    }
    let host_state = [
        TempDir::new("vrwha").unwrap(),
        TempDir::new("vrwhb").unwrap(),
    ];
    let start_host = |i: usize| {
        let listen = format!("10.0.0.{}:7070", 21 + i);
        start_kvm_agent_at(
            &hosts[i],
            &host_state[i],
            &listen,
            tmp.path(),
            (&ctl, "10.0.0.2"),
        )
    };
    let mut kvm: [Option<Proc>; 2] = [Some(start_host(0)), Some(start_host(1))];
    let up: [AtomicBool; 2] = [AtomicBool::new(true), AtomicBool::new(true)];
    let file = tmp.path().join("router.json");
    let write = |storage: &str| {
        let d = description(tmp.path(), &image, storage);
        std::fs::write(&file, serde_json::to_string_pretty(&d).unwrap()).unwrap();
    };
    write("shared");
    let state = tmp.path().join("vrctl");
    let agent_state = tmp.path().join("agent");
    let done = AtomicBool::new(false);
    // How long the router takes from its VM running to its agent starting.
    let boot_ms = AtomicU64::new(0);
    std::thread::scope(|s| {
        // Stops the hypervisor thread however the test ends (a failed
        // assert would otherwise leave the scope waiting for it).
        let _stop = Stop(&done);
        // The hypervisor: the router's agent runs exactly while a host
        // that is up runs its VM.
        s.spawn(|| {
            let mut agent: Option<Agent> = None;
            let mut running_since = None;
            while !done.load(Ordering::Relaxed) {
                let runs = [HOST_A, HOST_B].iter().enumerate().any(|(i, h)| {
                    up[i].load(Ordering::Relaxed) && vm_state(&ctl, h).as_deref() == Some("Running")
                });
                let since: &mut Instant = running_since.get_or_insert_with(Instant::now);
                let booted =
                    since.elapsed() >= Duration::from_millis(boot_ms.load(Ordering::Relaxed));
                if !runs {
                    running_since = None;
                }
                if runs && booted && agent.is_none() {
                    agent = Some(Agent::start(&vr, &agent_state));
                } else if !runs && agent.is_some() {
                    agent = None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let ctl_env = [("VRCTL_STATE_DIR", state.to_str().unwrap())];
        let r = common::vrctl(
            &[
                "--netns",
                ctl.name(),
                "vr",
                "create",
                file.to_str().unwrap(),
            ],
            &ctl_env,
        );
        assert_eq!(r.code, 0, "vr create: {}", r.stderr);
        assert_eq!(vm_state(&ctl, HOST_A).as_deref(), Some("Running"));
        let mut cmd = ctl.command(
            env!("CARGO_BIN_EXE_vrctl"),
            &[
                "--json",
                "watch",
                file.to_str().unwrap(),
                "--interval-ms",
                "300",
                "--misses",
                "2",
                "--host-gone-secs",
                "5",
                "--reboot-after-secs",
                "3",
            ],
        );
        cmd.env("VRCTL_STATE_DIR", &state);
        let watch = Proc::start(cmd).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            events(&watch).is_empty(),
            "a healthy router: {}",
            watch.log()
        );

        // 1. Host A reboots: back within the gone time, without the VM.
        up[0].store(false, Ordering::Relaxed);
        kvm[0] = None;
        kvm[0] = Some(start_host(0));
        up[0].store(true, Ordering::Relaxed);
        let a = nth_action(&watch, 0, Duration::from_secs(40));
        assert_eq!(a["event"], "start", "{a}");
        assert_eq!(a["host"], HOST_A, "{a}");
        assert!(a["ok"].as_bool().unwrap(), "{a}");
        assert!(a["secs"].as_f64().unwrap() < 30.0, "{a}");
        assert_eq!(vm_state(&ctl, HOST_A).as_deref(), Some("Running"));

        // 2. Host A is cut off (its link down; its kvm-agent and the VM
        // still run there, unseen): shared disk, so the same disk starts
        // on B.
        let disk = tmp.path().join(format!("disks/vr-{UUID}.qcow2"));
        let disk_before = std::fs::metadata(&disk).unwrap().modified().unwrap();
        up[0].store(false, Ordering::Relaxed);
        hosts[0].ip("link set eth0 down").unwrap();
        let a = nth_action(&watch, 1, Duration::from_secs(40));
        assert_eq!(a["event"], "move", "{a}");
        assert_eq!(a["host"], HOST_B, "{a}");
        assert!(a["ok"].as_bool().unwrap(), "{a}");
        assert!(a["secs"].as_f64().unwrap() < 30.0, "{a}");
        assert_eq!(vm_state(&ctl, HOST_B).as_deref(), Some("Running"));
        assert_eq!(
            std::fs::metadata(&disk).unwrap().modified().unwrap(),
            disk_before,
            "a move keeps the disk"
        );
        assert_eq!(record(&state)["leftOn"], json!([HOST_A]));

        // A answers again, still running its copy: the watch destroys it
        // (two routers would answer for the same addresses) and forgets A.
        hosts[0].ip("link set eth0 up").unwrap();
        up[0].store(true, Ordering::Relaxed);
        assert!(
            testbed::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
                record(&state).get("leftOn").is_none()
            }),
            "{}\n{}",
            record(&state),
            watch.log()
        );
        assert_eq!(vm_state(&ctl, HOST_A), None, "the stray copy on A");
        assert!(
            events(&watch)
                .iter()
                .any(|e| e["event"] == "destroy-stray" && e["host"] == HOST_A && e["ok"] == true),
            "{}",
            watch.log()
        );
        assert_eq!(vm_state(&ctl, HOST_B).as_deref(), Some("Running"));

        // 3. Local storage, and B is gone: a new disk from the image on A.
        write("local");
        std::thread::sleep(Duration::from_millis(700)); // the watch re-reads it
        up[1].store(false, Ordering::Relaxed);
        kvm[1] = None;
        hosts[1].ip("link set eth0 down").unwrap();
        let a = nth_action(&watch, 2, Duration::from_secs(40));
        assert_eq!(a["event"], "recreate", "{a}");
        assert_eq!(a["host"], HOST_A, "{a}");
        assert!(a["ok"].as_bool().unwrap(), "{a}");
        assert!(a["secs"].as_f64().unwrap() < 30.0, "{a}");
        assert_ne!(
            std::fs::metadata(&disk).unwrap().modified().unwrap(),
            disk_before,
            "a re-create makes a new disk"
        );
        assert_eq!(vm_state(&ctl, HOST_A).as_deref(), Some("Running"));

        // The record keeps what was done, and `vr status` shows it.
        let actions = record(&state)["actions"].clone();
        let names: Vec<&str> = actions
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        // In this order (a retried action would repeat its name).
        let mut want = ["start", "move", "destroy-stray", "recreate"]
            .into_iter()
            .peekable();
        for n in &names {
            if want.peek() == Some(n) {
                want.next();
            }
        }
        assert!(want.peek().is_none(), "{actions}");
        let st = common::vrctl(
            &[
                "--netns",
                ctl.name(),
                "vr",
                "status",
                file.to_str().unwrap(),
            ],
            &ctl_env,
        );
        assert_eq!(st.code, 0, "{}", st.stderr);
        assert!(st.stdout.contains("recreate"), "{}", st.stdout);
        let secs: Vec<f64> = events(&watch)
            .iter()
            .filter_map(|e| e["secs"].as_f64())
            .collect();
        eprintln!("recovered after (s, from the first missed ping): {secs:?}");
        eprintln!("the watch said:\n{}", watch.log());

        // A router stopped on purpose is left stopped.
        let r = common::vrctl(
            &[
                "--netns",
                ctl.name(),
                "vr",
                "stop",
                file.to_str().unwrap(),
                "--grace",
                "1",
            ],
            &ctl_env,
        );
        assert_eq!(r.code, 0, "vr stop: {}", r.stderr);
        std::thread::sleep(Duration::from_secs(4));
        let actions = |w: &Proc| {
            events(w)
                .iter()
                .filter(|e| {
                    ["start", "move", "recreate", "reboot"]
                        .contains(&e["event"].as_str().unwrap_or(""))
                })
                .count()
        };
        let acted = actions(&watch);
        assert_eq!(acted, 3, "the stopped router was acted on: {}", watch.log());
        assert_eq!(vm_state(&ctl, HOST_A), None);
        // Started again by hand, booting for a second: its silence while
        // stopped (longer than --reboot-after-secs) does not count, so it
        // is not rebooted while it boots.
        boot_ms.store(1000, Ordering::Relaxed);
        let r = common::vrctl(
            &["--netns", ctl.name(), "vr", "start", file.to_str().unwrap()],
            &ctl_env,
        );
        assert_eq!(r.code, 0, "vr start: {}", r.stderr);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(
            actions(&watch),
            3,
            "acted on a started router: {}",
            watch.log()
        );
        eprintln!("the watch said, to the end:\n{}", watch.log());
    });
    drop(kvm);
}
