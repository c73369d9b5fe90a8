//! The diagnoses that need no VM, provoked for real: an agent that is not
//! there, one that answers 404, one too old, and a router no host can fit.
//! Each must be named (own message, own exit status) within 30 s.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

use common::{Run, start_kvm_agent, vrctl};
use serde_json::json;
use testbed::{Netns, TempDir};

/// A fake "agent" on `addr` inside `ns`: every POST gets `status` and `body`.
fn fake_agent(ns: &Netns, addr: &str, status: &'static str, body: &'static str) {
    let listener = ns.run(|| TcpListener::bind(addr)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut rd = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if rd.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut skip = vec![0u8; len];
            let _ = rd.read_exact(&mut skip);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

fn assert_diagnosis(r: &Run, code: i32, words: &[&str]) {
    assert_eq!(r.code, code, "exit status; stderr:\n{}", r.stderr);
    for w in words {
        assert!(r.stderr.contains(w), "{w:?} missing from:\n{}", r.stderr);
    }
    assert!(r.secs < 30.0, "took {:.1} s", r.secs);
}

#[test]
fn missing_and_wrong_version_agents_are_named() {
    testbed::require_privileged!();
    let ctl = Netns::new("dctl").unwrap();
    let vr = Netns::new("dvr").unwrap();
    testbed::veth(&ctl, "eth0", &vr, "eth0").unwrap();
    testbed::addr(&ctl, "eth0", "10.0.0.1/24").unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.25/24").unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.26/24").unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.27/24").unwrap();
    let status = |ip: &str| {
        vrctl(
            &[
                "--netns",
                ctl.name(),
                "vr",
                "status",
                "--agent",
                &format!("http://{ip}:7272"),
            ],
            &[],
        )
    };

    // The VR answers, nothing listens on 7272.
    assert_diagnosis(
        &status("10.0.0.25"),
        5,
        &["agent is missing", "connection refused", "not running"],
    );
    // Nobody at that address at all (no ARP reply).
    assert_diagnosis(&status("10.0.0.99"), 5, &["agent is missing", "no answer"]);
    // Something answers HTTP, but not our protocol (a bare 404).
    fake_agent(&vr, "10.0.0.26:7272", "404 Not Found", "no such path");
    assert_diagnosis(
        &status("10.0.0.26"),
        6,
        &["wrong version", "404", "no such path"],
    );
    // An agent that speaks the protocol at an older level.
    fake_agent(
        &vr,
        "10.0.0.27:7272",
        "200 OK",
        r#"{"success":true,"error":"","zvrVersion":"4.1.0.0"}"#,
    );
    assert_diagnosis(
        &status("10.0.0.27"),
        6,
        &[
            "wrong version",
            "4.1.0.0",
            &format!("needs {}", vrctl::diagnose::MIN_VERSION),
        ],
    );
}

#[test]
fn no_host_fits_the_router() {
    testbed::require_privileged!();
    let host = Netns::new("dhost").unwrap();
    let state = TempDir::new("dfit").unwrap();
    let (_agent, url) = start_kvm_agent(&host, &state);
    let image = state.path().join("base.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("16M")
        .status();
    if !st.is_ok_and(|s| s.success()) {
        if common::require_vm() {
            panic!("qemu-img is missing");
        }
        eprintln!("skipped: qemu-img is missing");
        return;
    }
    let spec = json!({
        "uuid": "d1a6000000000000000000000000f001",
        "nics": [{"ip": "10.0.0.25", "mac": "52:54:00:d1:00:01", "netmask": "255.255.255.0",
                  "category": "Management"}],
        "vm": {"hosts": [url], "cpuNum": 1, "memoryMb": 64u64 << 20,
               "image": image, "diskDir": state.path().join("disks"),
               "socketDir": state.path().join("sock"),
               "bridges": {"52:54:00:d1:00:01": "br_eth0"}}
    });
    let file = state.path().join("router.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let records = state.path().join("vrctl");
    let r = vrctl(
        &[
            "--netns",
            host.name(),
            "vr",
            "create",
            file.to_str().unwrap(),
        ],
        &[("VRCTL_STATE_DIR", records.to_str().unwrap())],
    );
    assert_diagnosis(
        &r,
        2,
        &[
            "no host can fit the VR (1 CPU, 67108864 MiB)",
            url,
            "needs 67108864 MiB memory, host has",
        ],
    );
    // With --json the diagnosis is the run's JSON document, same status.
    let r = vrctl(
        &[
            "--json",
            "--netns",
            host.name(),
            "vr",
            "create",
            file.to_str().unwrap(),
        ],
        &[("VRCTL_STATE_DIR", records.to_str().unwrap())],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert_eq!(v["error"]["diagnosis"], "no_host_fits", "{v}");
    assert_eq!(v["error"]["code"], 2, "{v}");
    // Nothing was left running.
    let sync = vrctl(&["--netns", host.name(), "vm", "--agent", url, "sync"], &[]);
    assert!(
        !sync.stdout.contains("d1a6000000000000000000000000f001"),
        "{}",
        sync.stdout
    );
}
