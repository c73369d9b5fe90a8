//! `vrctl lab` for real: the seed topology with the VR as a VM (when the
//! machine can run one; `REQUIRE_VM=1` insists), every service proven,
//! the recovery commands exercised, and `lab down` leaving nothing. Plus
//! the two diagnoses that need a VM: an OS that does not boot, and a
//! management IP that cannot be reached. Each diagnosis within 30 s.
//!
//! The VM tests take turns (one lock): two TCG guests at once on a 2-core
//! machine would make every boot slow.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{Run, image_dir, require_vm, vm_missing, vrctl};
use serde_json::Value;

static VM: Mutex<()> = Mutex::new(());

/// `vrctl lab down` whatever happens.
struct Lab(&'static str);
impl Drop for Lab {
    fn drop(&mut self) {
        vrctl(&["lab", "down", "--name", self.0], &[]);
    }
}

impl Lab {
    fn state(&self) -> PathBuf {
        Path::new("/run/vrctl-lab").join(self.0)
    }
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.0)
    }
    /// vrctl as the management node of this lab (in its `mn` namespace, with
    /// the lab's records).
    fn ctl(&self, args: &[&str]) -> Run {
        let mn = self.ns("mn");
        let mut all = vec!["--netns", mn.as_str()];
        all.extend_from_slice(args);
        let records = self.state().join("vrctl");
        // The lab runs with mutual TLS and a token: its CA and credentials.
        let pki = self.state().join("pki");
        let token = pki.join("token");
        vrctl(
            &all,
            &[
                ("VRCTL_STATE_DIR", records.to_str().unwrap()),
                ("VRCTL_PKI_DIR", pki.to_str().unwrap()),
                ("VRCTL_TOKEN_FILE", token.to_str().unwrap()),
            ],
        )
    }
    fn sh(&self, script: &str) -> String {
        let out = Command::new("bash").args(["-c", script]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// What `down` must have removed.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .sh("ip netns list")
            .lines()
            .filter(|l| l.starts_with(&format!("{}-", self.0)))
            .map(|l| format!("namespace {l}"))
            .collect();
        let procs = Command::new("pgrep")
            .args(["-af", &format!("/run/vrctl-lab/{}", self.0)])
            .output()
            .unwrap();
        let procs = String::from_utf8_lossy(&procs.stdout).into_owned();
        left.extend(procs.lines().map(|l| format!("process {l}")));
        if self.state().exists() {
            left.push(format!("{}", self.state().display()));
        }
        left
    }
}

/// Why this machine cannot run the VR as a VM (a failure under REQUIRE_VM=1).
fn vm_unavailable() -> Option<String> {
    let why = vm_missing()?;
    if require_vm() {
        panic!("REQUIRE_VM=1 but {why}");
    }
    Some(why)
}

fn report_rows(v: &Value) -> Vec<(String, bool, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["check"].as_str().unwrap_or("").to_string(),
                r["pass"] == true,
                r["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn assert_all_pass(rows: &Value, what: &str) {
    let rows = report_rows(rows);
    assert!(rows.len() >= 11, "{what}: only {} checks", rows.len());
    let failed: Vec<_> = rows.iter().filter(|r| !r.1).collect();
    assert!(failed.is_empty(), "{what}: failed checks {failed:?}");
}

/// The lab's checks, run again (`lab status`), must all pass.
fn assert_services(lab: &Lab, what: &str) {
    let r = vrctl(&["lab", "status", "--name", lab.0, "--json"], &[]);
    assert_eq!(r.code, 0, "{what}: lab status");
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_all_pass(&st["checks"], what);
}

/// The `KVM_AGENT_*` environment of process `pid` (the lab gives kvm-agent
/// its directories that way).
fn agent_env(pid: &str) -> Vec<(String, String)> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    env.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            k.starts_with("KVM_AGENT_")
                .then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// kvm-agent of the lab's host: its pid and command line.
fn kvm_agent(lab: &Lab) -> Option<(String, Vec<String>)> {
    let pids = lab.sh(&format!("ip netns pids {}", lab.ns("host")));
    pids.split_whitespace().find_map(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "kvm-agent").then(|| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args = cmd
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (pid.to_string(), args)
        })
    })
}

#[test]
fn lab_up_proves_every_service_recovers_and_down_leaves_nothing() {
    testbed::require_privileged!();
    let _turn = VM.lock().unwrap_or_else(|p| p.into_inner());
    let why_not_vm = vm_unavailable();
    let root_before = testbed::root_view();
    let lab = Lab("vrtlab");
    let img = image_dir();
    let r = vrctl(
        &["lab", "up", "--name", lab.0, "--json"],
        &[("VR_IMAGE_DIR", img.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "lab up failed:\n{}\n{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_all_pass(&report["rows"], "lab up");
    let router = report["router"].as_str().unwrap();
    eprintln!("lab router: {router} (not a VM because: {why_not_vm:?})");
    if why_not_vm.is_none() {
        assert!(
            router.starts_with("vm"),
            "the router should be a VM: {report}"
        );
    } else {
        assert_eq!(router, "namespace");
        assert_eq!(report["why_not_vm"].as_str(), why_not_vm.as_deref());
    }

    if router.starts_with("vm") {
        let spec = lab.state().join("router.json");
        let spec = spec.to_str().unwrap();

        // A VR that lost its network (its management NIC off the bridge):
        // the agent is unreachable, and `vr recreate` brings it back.
        let tap = "vr1ab00000.0";
        lab.sh(&format!("ip -n {} link set {tap} nomaster", lab.ns("host")));
        let r = lab.ctl(&["vr", "status", spec]);
        assert_eq!(r.code, 5, "unreachable agent: {}", r.stderr);
        assert!(r.stderr.contains("agent is missing"), "{}", r.stderr);
        let r = lab.ctl(&["vr", "recreate", spec]);
        assert_eq!(r.code, 0, "recreate: {}", r.stderr);
        assert!(r.stdout.contains("re-created"), "{}", r.stdout);
        assert_services(&lab, "after vr recreate");

        // The host goes down (kvm-agent and the VM gone), then comes back:
        // vmsync says Stopped, `vr start` brings the VR back.
        let uri = report["libvirt_uri"].as_str().unwrap();
        let (pid, cmd) = kvm_agent(&lab).expect("kvm-agent runs");
        let env = agent_env(&pid);
        lab.sh(&format!(
            "kill -9 {pid}; virsh -c '{uri}' destroy 1ab0000000000000000000000000a001"
        ));
        let r = lab.ctl(&["vr", "sync", spec]);
        assert_eq!(r.code, 69, "the host failed the request");
        assert!(r.stderr.contains("does not answer"), "{}", r.stderr);
        assert!(r.stderr.contains("--host-gone"), "{}", r.stderr);
        let mut restart = Command::new("ip");
        restart
            .args(["netns", "exec", &lab.ns("host")])
            .args(&cmd)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut restart, 0);
        let mut restarted = restart.spawn().unwrap();
        let back = testbed::wait_until(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(200),
            || lab.ctl(&["vr", "sync", spec]).code == 0,
        );
        assert!(back, "kvm-agent did not come back");
        let r = lab.ctl(&["vr", "sync", spec]);
        assert!(r.stdout.contains("Stopped"), "{}", r.stdout);
        let r = lab.ctl(&["vr", "start", spec]);
        assert_eq!(r.code, 0, "start after the host came back: {}", r.stderr);
        assert_services(&lab, "after vr start on the returned host");

        // The host is gone for good: vmsync cannot answer, the operator
        // says so, the record says Stopped (no database edit).
        let (pid, _) = kvm_agent(&lab).expect("kvm-agent runs");
        lab.sh(&format!("kill -9 {pid}"));
        let _ = restarted.wait();
        let r = lab.ctl(&["vr", "sync", spec, "--host-gone", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let rec: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(rec["state"], "Stopped", "{rec}");
    } else {
        assert_services(&lab, "lab status");
    }

    let r = vrctl(&["lab", "down", "--name", lab.0], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("removed namespace"), "{}", r.stdout);
    assert_eq!(
        lab.leftovers(),
        Vec::<String>::new(),
        "lab down left things"
    );
    let r = vrctl(&["lab", "down", "--name", lab.0], &[]);
    assert!(r.stdout.contains("nothing to remove"), "{}", r.stdout);
    assert_eq!(
        testbed::root_view(),
        root_before,
        "the root namespace changed"
    );
}

#[test]
fn a_router_that_cannot_come_up_is_diagnosed_within_30_s() {
    testbed::require_privileged!();
    let _turn = VM.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = vm_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab("vrtdiag");
    let img = image_dir();
    let r = vrctl(
        &["lab", "up", "--name", lab.0, "--mode", "vm", "--host-only"],
        &[("VR_IMAGE_DIR", img.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "lab up --host-only: {}", r.stderr);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.state().join("router.json")).unwrap())
            .unwrap();
    let write = |name: &str, spec: &Value| {
        let p = lab.state().join(name);
        std::fs::write(&p, spec.to_string()).unwrap();
        p.display().to_string()
    };

    // The OS does not boot: a root disk with no file system on it.
    let blank = lab.state().join("blank.qcow2");
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&blank)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success());
    let mut s = spec.clone();
    s["uuid"] = "d1a60000000000000000000000000b01".into();
    s["vm"]["image"] = blank.display().to_string().into();
    let f = write("noboot.json", &s);
    let r = lab.ctl(&["vr", "create", &f]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for w in [
        "the VR's OS did not boot",
        "vr-initrd: cannot mount root",
        "console tail",
    ] {
        assert!(r.stderr.contains(w), "{w:?} missing from:\n{}", r.stderr);
    }
    assert!(r.secs < 30.0, "diagnosis took {:.1} s", r.secs);
    assert_eq!(lab.ctl(&["vr", "destroy", &f]).code, 0);

    // The management NIC on a bridge without its uplink: the VR boots and
    // its agent serves, but the controller cannot reach it.
    lab.sh(&format!(
        "ip -n {h} link add br_iso type bridge && ip -n {h} link set br_iso up",
        h = lab.ns("host")
    ));
    let mut s = spec.clone();
    s["uuid"] = "d1a60000000000000000000000000b02".into();
    s["vm"]["bridges"]["52:54:00:7e:00:01"] = "br_iso".into();
    let f = write("nouplink.json", &s);
    let r = lab.ctl(&["vr", "create", &f]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    for w in [
        "the management IP 10.0.0.25 is unreachable",
        "vr-agent serving",
        "10.0.0.25/255.255.255.0 gateway 10.0.0.1",
        "bridge[br_iso] has no uplink: eth0 is not one of its ports (it is a port of br_eth0)",
    ] {
        assert!(r.stderr.contains(w), "{w:?} missing from:\n{}", r.stderr);
    }
    assert!(r.secs < 30.0, "diagnosis took {:.1} s", r.secs);
    assert_eq!(lab.ctl(&["vr", "destroy", &f]).code, 0);
}

#[test]
fn lab_in_namespace_mode_proves_every_service() {
    testbed::require_privileged!();
    let _turn = VM.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab("vrtns");
    let r = vrctl(
        &[
            "lab",
            "up",
            "--name",
            lab.0,
            "--mode",
            "namespace",
            "--json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "lab up failed:\n{}\n{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["router"], "namespace");
    assert_eq!(report["why_not_vm"], "--mode namespace");
    assert_all_pass(&report["rows"], "lab up --mode namespace");
    // The router's certificate rotates through the CLI too; the router
    // answers on the new one.
    let spec = lab.state().join("router.json");
    let spec = spec.to_str().unwrap();
    let r = lab.ctl(&["vr", "rotate-cert", spec, "--json"]);
    assert_eq!(r.code, 0, "rotate-cert: {}", r.stderr);
    let rotated: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_ne!(rotated["serial"], rotated["old_serial"], "{rotated}");
    assert!(
        !rotated["old_serial"].as_str().unwrap().is_empty(),
        "{rotated}"
    );
    let r = lab.ctl(&["vr", "status", spec]);
    assert_eq!(r.code, 0, "status after rotate-cert: {}", r.stderr);
    assert!(r.stdout.contains("https://10.0.0.25:7272"), "{}", r.stdout);
    // Without the lab's credentials the router refuses (diagnosis 7).
    let mn = lab.ns("mn");
    let r = vrctl(&["--netns", &mn, "vr", "status", spec], &[]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("requires TLS"), "{}", r.stderr);
    let r = vrctl(&["lab", "down", "--name", lab.0], &[]);
    assert_eq!(r.code, 0);
    assert_eq!(
        lab.leftovers(),
        Vec::<String>::new(),
        "lab down left things"
    );
}

/// `lab up --ha`: two hosts, the pair, the master killed under traffic.
/// Every row must pass (the failover rows: ping silences under 1 s, both
/// TCP sessions kept, DHCP, DNS and the LB after; the lost half re-created
/// as backup; one MAC per shared address), and `lab status` right after,
/// through the new master, too: a re-created half that answered for the
/// shared addresses before its election would have taken the tenants' and
/// the outside's ARP entries with it.
fn ha_lab(name: &'static str, mode: &str) {
    let lab = Lab(name);
    let img = image_dir();
    let r = vrctl(
        &[
            "lab", "up", "--ha", "--name", lab.0, "--mode", mode, "--json",
        ],
        &[("VR_IMAGE_DIR", img.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "lab up --ha failed:\n{}\n{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["ha"], true);
    assert_all_pass(&report["rows"], "lab up --ha");
    let rows = report_rows(&report["rows"]);
    for want in [
        "HA: the pair elected one master",
        "HA failover: the master killed, the backup takes over",
        "HA failover: TCP through the port forward 172.20.10.100:9001 kept",
        "HA: one router answers for the shared addresses",
    ] {
        assert!(rows.iter().any(|r| r.0 == want), "no row {want:?}");
    }
    // Namespace mode re-creates the lost half; with VMs `vrctl watch` starts
    // it again on its host.
    let rejoin = if mode == "vm" {
        "HA: vrctl watch starts the lost half again, it rejoins as backup, the other stays master"
    } else {
        "HA: the lost half re-created rejoins as backup, the other stays master"
    };
    assert!(rows.iter().any(|r| r.0 == rejoin), "no row {rejoin:?}");
    for r in rows.iter().filter(|r| r.0.starts_with("HA")) {
        eprintln!("{}: {}", r.0, r.2);
    }
    assert_services(&lab, "lab status after the failover and the rejoin");
    let r = vrctl(&["lab", "down", "--name", lab.0], &[]);
    assert_eq!(r.code, 0);
    assert_eq!(
        lab.leftovers(),
        Vec::<String>::new(),
        "lab down left things"
    );
}

#[test]
fn ha_lab_in_namespace_mode_fails_over_with_sessions_kept() {
    testbed::require_privileged!();
    let _turn = VM.lock().unwrap_or_else(|p| p.into_inner());
    ha_lab("vrtha", "namespace");
}

#[test]
fn ha_lab_with_vms_fails_over_with_sessions_kept() {
    testbed::require_privileged!();
    let _turn = VM.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(why) = vm_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    ha_lab("vrthavm", "vm");
}
