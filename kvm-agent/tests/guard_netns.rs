//! Privileged: who may talk to kvm-agent, with real packets (issue 14).
//!
//! One management network (a bridge in `sw`): the controller `ctl`
//! 10.7.0.1, the agent's `host` 10.7.0.2, and a second host `other`
//! 10.7.0.3 on the same network. The agent runs with no `--allow-from`:
//! the first `/host/connect` pins its source as the controller; the other
//! host is then refused (403) for createbridge and connect, a callback URL
//! naming a third address is refused, and the pin survives a restart.

use std::time::Duration;

use anyhow::Result;
use testbed::{Netns, Proc, TempDir, addr, bridge, enslave, http_post, require_privileged, veth};

const AGENT: &str = "http://10.7.0.2:7070";

fn connect_body(send_to: &str) -> String {
    format!(
        r#"{{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b","sendCommandUrl":"http://{send_to}:8080/zstack/asyncrest/sendcommand","version":"5.2.0"}}"#
    )
}

const CREATEBRIDGE: &str = r#"{"physicalInterfaceName":"nosuchnic","bridgeName":"br_nosuchnic","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","mtu":1500}"#;

fn start(host: &Netns, state: &TempDir, extra: &[&str]) -> Result<Proc> {
    let mut args = vec![
        "--listen",
        "0.0.0.0:7070",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--libvirt-uri",
        "test:///default",
    ];
    args.extend_from_slice(extra);
    let mut p = host.spawn(env!("CARGO_BIN_EXE_kvm-agent"), &args)?;
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(host, "http://127.0.0.1:7070/host/echo", "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "agent did not answer: {}", p.log());
    assert!(p.is_running());
    Ok(p)
}

#[test]
fn only_the_pinned_controller_is_served_and_called_back() -> Result<()> {
    require_privileged!(Ok(()));
    let (sw, ctl, host, other) = (
        Netns::new("kvmgs")?,
        Netns::new("kvmgc")?,
        Netns::new("kvmgh")?,
        Netns::new("kvmgo")?,
    );
    bridge(&sw, "br0")?;
    for (ns, port) in [(&ctl, "p1"), (&host, "p2"), (&other, "p3")] {
        veth(ns, "eth0", &sw, port)?;
        enslave(&sw, port, "br0")?;
    }
    addr(&ctl, "eth0", "10.7.0.1/24")?;
    addr(&host, "eth0", "10.7.0.2/24")?;
    addr(&other, "eth0", "10.7.0.3/24")?;
    let state = TempDir::new("kvm-guard-state")?;
    let url = |p: &str| format!("{AGENT}{p}");
    let mut agent = start(&host, &state, &[])?;

    // Before any connect: only /host/connect (and echo) from anyone.
    let (s, b) = http_post(
        &other,
        &url("/network/l2novlan/createbridge"),
        CREATEBRIDGE,
        &[],
    )?;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("no controller yet"), "{b}");
    let (s, b) = http_post(&other, &url("/host/echo"), "", &[])?;
    assert_eq!(s, 200, "{b}");
    // A connect whose sendCommandUrl names another host: refused.
    let (s, b) = http_post(&ctl, &url("/host/connect"), &connect_body("10.7.0.3"), &[])?;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("sendCommandUrl"), "{b}");
    let (s, b) = http_post(&ctl, &url("/host/connect"), &connect_body("10.7.0.1"), &[])?;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains(r#""success":true"#), "{b}");

    // The other host on the management network is refused now.
    let (s, b) = http_post(
        &other,
        &url("/host/connect"),
        &connect_body("10.7.0.3"),
        &[],
    )?;
    assert_eq!(s, 403, "{b}");
    assert!(
        b.contains("refused 10.7.0.3: not a controller address"),
        "{b}"
    );
    let (s, b) = http_post(
        &other,
        &url("/network/l2novlan/createbridge"),
        CREATEBRIDGE,
        &[],
    )?;
    assert_eq!(s, 403, "{b}");
    // The controller is served (createbridge fails on the missing NIC).
    let (s, b) = http_post(
        &ctl,
        &url("/network/l2novlan/createbridge"),
        CREATEBRIDGE,
        &[],
    )?;
    assert_ne!(s, 403, "{b}");
    // A callback to a third address is refused; to the controller, taken.
    let hdr = |cb: &'static str| [("taskuuid", "t1"), ("callbackurl", cb)];
    let (s, b) = http_post(
        &ctl,
        &url("/host/ping"),
        "{}",
        &hdr("http://10.7.0.3:8080/zstack/asyncrest/callback"),
    )?;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("callbackurl"), "{b}");
    let (s, b) = http_post(
        &ctl,
        &url("/host/ping"),
        "{}",
        &hdr("http://10.7.0.1:8080/zstack/asyncrest/callback"),
    )?;
    assert_eq!(s, 200, "{b}");

    // The pin survives a restart, in a file only root reads.
    agent.kill();
    let pinned = state.path().join("controller");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::read_to_string(&pinned)?.trim(), "10.7.0.1");
    assert_eq!(
        std::fs::metadata(&pinned)?.permissions().mode() & 0o777,
        0o600
    );
    let mut agent = start(&host, &state, &[])?;
    let (s, b) = http_post(
        &other,
        &url("/host/connect"),
        &connect_body("10.7.0.3"),
        &[],
    )?;
    assert_eq!(s, 403, "{b}");
    let (s, b) = http_post(&ctl, &url("/host/ping"), "{}", &[])?;
    assert_eq!(s, 200, "{b}");
    // An operator names the second host: served.
    agent.kill();
    let mut agent = start(&host, &state, &["--allow-from", "10.7.0.3/32"])?;
    let (s, b) = http_post(&other, &url("/host/ping"), "{}", &[])?;
    assert_eq!(s, 200, "{b}");
    agent.kill();
    Ok(())
}
