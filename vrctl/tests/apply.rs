//! vrctl against a real vr-agent in namespaces, in async mode (the agent
//! calls vrctl's callback receiver back), like the management node.

use std::time::Duration;

mod common;

use common::{Agent, start_kvm_agent};
use testbed::{Netns, TempDir};

const SPEC: &str = r#"
agent = "http://10.0.0.25:7272"
uuid = "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11"

[[nics]]
mac = "fa:26:9c:aa:00:01"
ip = "10.0.0.25"
netmask = "255.255.255.0"
category = "Management"

[[nics]]
mac = "fa:26:9c:aa:00:02"
ip = "172.20.10.5"
netmask = "255.255.0.0"
category = "Public"

[[snats]]
publicNicMac = "fa:26:9c:aa:00:02"
publicIp = "172.20.10.5"
privateNicMac = "fa:26:9c:aa:00:02"
privateNicIp = "172.20.10.5"
snatNetmask = "255.255.0.0"

[[vips]]
ip = "172.20.10.101"
netmask = "255.255.0.0"
ownerEthernetMac = "fa:26:9c:aa:00:02"

[[eips]]
vipIp = "172.20.10.101"
guestIp = "192.168.100.10"
publicMac = "fa:26:9c:aa:00:02"
privateMac = "fa:26:9c:aa:00:02"
"#;

fn vrctl(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = ns
        .command(env!("CARGO_BIN_EXE_vrctl"), args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The exit status and output of one run.
fn vrctl_code(ns: &Netns, args: &[&str]) -> (i32, String) {
    let out = ns
        .command(env!("CARGO_BIN_EXE_vrctl"), args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn apply_diff_and_status_through_callbacks() {
    testbed::require_privileged!();
    let vr = Netns::new("cvr").unwrap();
    let ctl = Netns::new("cctl").unwrap();
    testbed::veth(&vr, "eth0", &ctl, "eth0").unwrap();
    testbed::veth(&vr, "eth1", &ctl, "pub0").unwrap();
    testbed::set_mac(&vr, "eth0", "fa:26:9c:aa:00:01").unwrap();
    testbed::set_mac(&vr, "eth1", "fa:26:9c:aa:00:02").unwrap();
    testbed::addr(&vr, "eth0", "10.0.0.25/24").unwrap();
    testbed::addr(&ctl, "eth0", "10.0.0.2/24").unwrap();
    let tmp = TempDir::new("vrctl").unwrap();
    let _agent = Agent::start(&vr, tmp.path());
    assert!(testbed::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            testbed::http_post(&ctl, "http://10.0.0.25:7272/echo", "{}", &[])
                .is_ok_and(|r| r.0 == 200)
        }
    ));
    let spec = tmp.path().join("router.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let spec = spec.to_str().unwrap();

    // Like diff(1): 1 while there are changes, 0 once there are none.
    let (code, out) = vrctl_code(&ctl, &["vr", "diff", spec]);
    assert!(code == 1 && out.contains("+ eip"), "{code}: {out}");
    let (code, out) = vrctl_code(&ctl, &["--json", "vr", "diff", spec]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(!v["changes"].as_array().unwrap().is_empty(), "{v}");
    let (ok, out) = vrctl(&ctl, &["vr", "apply", spec]);
    assert!(ok, "{out}");
    assert!(out.contains("ok    /synceip"), "{out}");
    let (code, out) = vrctl_code(&ctl, &["vr", "diff", spec]);
    assert!(code == 0 && out.trim() == "no changes", "{code}: {out}");
    let (code, out) = vrctl_code(&ctl, &["--json", "vr", "diff", spec]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]), "{v}");
    let (ok, out) = vrctl(
        &ctl,
        &["--json", "vr", "status", "--agent", "http://10.0.0.25:7272"],
    );
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["uuid"], "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11");
    assert_eq!(v["eips"], 1);
    assert_eq!(v["ha"]["status"], "NoHa", "{v}");
    assert_eq!(v["ha"]["role"], "Off", "{v}");
    // The VIP is really on the router.
    assert!(
        vr.sh("ip -4 addr show dev eth1")
            .unwrap()
            .contains("172.20.10.101/16")
    );

    // A bad entry is refused before anything is sent.
    std::fs::write(
        tmp.path().join("bad.toml"),
        SPEC.replace("192.168.100.10", "192.168.100.300"),
    )
    .unwrap();
    let (code, out) = vrctl_code(
        &ctl,
        &["vr", "apply", tmp.path().join("bad.toml").to_str().unwrap()],
    );
    assert!(
        code == 65 && out.contains("eips[0]") && out.contains("guestIp"),
        "{code}: {out}"
    );
    // A misspelt section is refused (65) before anything is sent: the
    // router keeps its EIP, which an empty sync would have removed.
    std::fs::write(
        tmp.path().join("typo.toml"),
        SPEC.replace("[[eips]]", "[[eip]]"),
    )
    .unwrap();
    let (code, out) = vrctl_code(
        &ctl,
        &[
            "vr",
            "apply",
            tmp.path().join("typo.toml").to_str().unwrap(),
        ],
    );
    assert!(
        code == 65 && out.contains("unknown key \"eip\""),
        "{code}: {out}"
    );
    let (code, out) = vrctl_code(&ctl, &["vr", "diff", spec]);
    assert!(code == 0 && out.trim() == "no changes", "{code}: {out}");
}

/// `vr console` prints the console as text: the colours of the agent's log
/// lines (ANSI escapes) and other control characters are removed.
#[test]
fn vr_console_prints_text_without_escapes() {
    testbed::require_privileged!();
    let host = Netns::new("cconsole").unwrap();
    let tmp = TempDir::new("vrctlconsole").unwrap();
    let (_agent, url) = start_kvm_agent(&host, &tmp);
    let uuid = "c0e50000000000000000000000000001";
    std::fs::create_dir_all(tmp.path().join("console")).unwrap();
    std::fs::write(
        tmp.path().join(format!("console/{uuid}-vm-kernel.log")),
        "[    0.1] Linux version 6.1\r\n\u{1b}[2m2026-12-02T05:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \
         vr_agent: vr-agent serving \u{1b}[3mlisten\u{1b}[0m=10.0.0.25:7272\n",
    )
    .unwrap();
    let spec = format!(
        "uuid = \"{uuid}\"\n[vm]\nhosts = [\"{url}\"]\nimage = \"/x\"\ndiskDir = \"/x\"\nsocketDir = \"/x\"\n"
    );
    let file = tmp.path().join("router.toml");
    std::fs::write(&file, spec).unwrap();
    let state = tmp.path().join("state");
    let args = [
        "--state-dir",
        state.to_str().unwrap(),
        "vr",
        "console",
        file.to_str().unwrap(),
    ];
    let out = host
        .command(env!("CARGO_BIN_EXE_vrctl"), &args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("INFO vr_agent: vr-agent serving listen=10.0.0.25:7272"),
        "{text:?}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
}

#[test]
fn an_agent_of_the_wrong_kind_is_named_not_timed_out() {
    testbed::require_privileged!();
    let ctl = Netns::new("cwrong").unwrap();
    // Something answers HTTP on the agent's address, but 404 to everything.
    let fake = testbed::CallbackReceiver::start(Some(&ctl)).unwrap();
    fake.set_status(404);
    let url = format!("http://127.0.0.1:{}", fake.port());
    let t = std::time::Instant::now();
    let (ok, out) = vrctl(&ctl, &["vr", "status", "--agent", &url]);
    assert!(!ok);
    assert!(
        out.contains("wrong version") && out.contains("answers HTTP but not this command (404"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// kvm-agent's binary from the same target directory (cargo builds every
/// binary of the workspace before it runs any test).
#[test]
fn host_connect_bridge_and_capacity() {
    testbed::require_privileged!();
    let host = Netns::new("chost").unwrap();
    let gw = Netns::new("cgw").unwrap();
    testbed::veth(&host, "eth0", &gw, "eth0").unwrap();
    testbed::addr(&host, "eth0", "10.10.0.5/24").unwrap();
    testbed::addr(&gw, "eth0", "10.10.0.1/24").unwrap();
    testbed::route(&host, "default via 10.10.0.1").unwrap();
    let tmp = TempDir::new("vrctlhost").unwrap();
    let (_agent, url) = start_kvm_agent(&host, &tmp);
    let (ok, out) = vrctl(
        &host,
        &[
            "host",
            "--agent",
            url,
            "connect",
            "--uuid",
            "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = vrctl(
        &host,
        &[
            "host", "--agent", url, "bridge", "--nic", "eth0", "--bridge", "br_eth0",
        ],
    );
    assert!(ok, "{out}");
    let a = host.sh("ip -4 -o addr show dev br_eth0").unwrap();
    assert!(a.contains("10.10.0.5/24"), "{a}");
    assert!(testbed::ping(&host, "10.10.0.1", 1));
    let (ok, out) = vrctl(
        &host,
        &[
            "host", "--agent", url, "bridge", "--nic", "eth0", "--bridge", "br_eth0", "--check",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = vrctl(&host, &["--json", "host", "--agent", url, "capacity"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v["totalMemory"].as_u64().unwrap_or(0) > 0 || v["cpuNum"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    let (ok, out) = vrctl(
        &host,
        &[
            "host", "--agent", url, "bridge", "--nic", "eth0", "--bridge", "br_eth0", "--delete",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        host.sh("ip -4 -o addr show dev eth0")
            .unwrap()
            .contains("10.10.0.5/24")
    );
}

#[test]
fn vm_lifecycle_through_kvm_agent_on_the_test_driver() {
    testbed::require_privileged!();
    let host = Netns::new("cvmhost").unwrap();
    let tmp = TempDir::new("vrctlvm").unwrap();
    let (_agent, url) = start_kvm_agent(&host, &tmp);
    // The kvm protocol reference's F5 body, with a unique uuid and our socket dir.
    let f5 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kvm-agent/src/plan/domain/f5.json"
    );
    let mut body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f5).unwrap()).unwrap();
    let uuid = format!("{:032x}", std::process::id() as u128 * 7919);
    body["vmInstanceUuid"] = serde_json::json!(uuid);
    body["addons"]["channel"]["socketPath"] = serde_json::json!(
        tmp.path()
            .join(format!("sock/applianceVm.{uuid}"))
            .to_str()
            .unwrap()
    );
    let file = tmp.path().join("start.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let vm = |args: &[&str]| {
        let mut all = vec!["vm", "--agent", url];
        all.extend_from_slice(args);
        vrctl(&host, &all)
    };
    let (ok, out) = vm(&["start", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = vm(&["sync"]);
    assert!(
        ok && out.contains(&uuid) && out.contains("Running"),
        "{out}"
    );
    let (ok, out) = vm(&["stop", "--uuid", &uuid, "--type", "cold"]);
    assert!(ok, "{out}");
    let (ok, out) = vm(&["sync"]);
    assert!(ok && !out.contains(&uuid), "{out}");
    // Stopping or destroying a VM that is gone succeeds, as the protocol says.
    let (ok, out) = vm(&["destroy", "--uuid", &uuid]);
    assert!(ok, "{out}");
}
