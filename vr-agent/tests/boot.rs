//! The boot path: NICs configured from a bootstrap file, then the agent
//! answers on the management IP; a MAC the box lacks is a clear error.

use std::time::Duration;

use serde_json::json;
use testbed::{Netns, Proc, TempDir};

fn bootstrap(mgmt_mac: &str) -> String {
    json!({
        "managementNic": {"ip": "10.0.0.25", "netmask": "255.255.255.0", "gateway": "10.0.0.1",
            "mac": mgmt_mac, "deviceName": "eth0", "isDefaultRoute": false, "category": "Management", "mtu": 1500},
        "additionalNics": [{"ip": "172.20.10.5", "netmask": "255.255.0.0", "gateway": "172.20.0.1",
            "mac": "fa:26:9c:aa:00:02", "deviceName": "eth1", "isDefaultRoute": true, "category": "Public", "mtu": 1450}],
        "uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11", "managementNodeIp": "10.0.0.2", "sshPort": 22
    })
    .to_string()
        + "        " // kvm-agent pads the document with spaces
}

fn topology() -> (Netns, Netns, Netns) {
    let vr = Netns::new("bootvr").unwrap();
    let ctl = Netns::new("bootctl").unwrap();
    let public = Netns::new("bootpub").unwrap();
    testbed::veth(&vr, "eth0", &ctl, "eth0").unwrap();
    testbed::veth(&vr, "eth1", &public, "eth0").unwrap();
    testbed::set_mac(&vr, "eth0", "fa:26:9c:aa:00:01").unwrap();
    testbed::set_mac(&vr, "eth1", "fa:26:9c:aa:00:02").unwrap();
    testbed::addr(&ctl, "eth0", "10.0.0.2/24").unwrap();
    testbed::addr(&public, "eth0", "172.20.0.1/16").unwrap();
    (vr, ctl, public)
}

fn agent(vr: &Netns, file: &std::path::Path, state: &TempDir) -> Proc {
    Proc::start(vr.command(
        env!("CARGO_BIN_EXE_vr-agent"),
        &[
            "--bootstrap",
            file.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
            "--bootstrap-timeout-secs",
            "5",
        ],
    ))
    .unwrap()
}

#[test]
fn nics_from_bootstrap_then_serves_on_management_ip() {
    testbed::require_privileged!();
    let (vr, ctl, public) = topology();
    let tmp = TempDir::new("boot").unwrap();
    let file = tmp.path().join("bootstrap.json");
    std::fs::write(&file, bootstrap("fa:26:9c:aa:00:01")).unwrap();
    let p = agent(&vr, &file, &tmp);
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        testbed::http_post(&ctl, "http://10.0.0.25:7272/echo", "{}", &[]).is_ok_and(|r| r.0 == 200)
    });
    assert!(
        up,
        "agent did not answer on the management IP:\n{}",
        p.log()
    );
    let eth1 = vr
        .sh("ip -4 -o addr show dev eth1; ip -o link show dev eth1")
        .unwrap();
    assert!(
        eth1.contains("172.20.10.5/16") && eth1.contains("mtu 1450"),
        "{eth1}"
    );
    let route = vr.sh("ip route show default").unwrap();
    assert!(route.contains("via 172.20.0.1 dev eth1"), "{route}");
    assert!(testbed::ping(&public, "172.20.10.5", 2));
}

#[test]
fn unknown_mac_is_a_clear_error_not_a_hang() {
    testbed::require_privileged!();
    let (vr, _ctl, _public) = topology();
    let tmp = TempDir::new("bootbad").unwrap();
    let file = tmp.path().join("bootstrap.json");
    std::fs::write(&file, bootstrap("fa:26:9c:aa:00:99")).unwrap();
    let mut p = agent(&vr, &file, &tmp);
    let exited = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        !p.is_running()
    });
    assert!(exited, "agent should stop with an error");
    let log = p.log();
    assert!(
        log.contains("fa:26:9c:aa:00:99") && log.contains("matches no NIC"),
        "{log}"
    );
    // And a missing document times out with its own message.
    let mut p = agent(&vr, &tmp.path().join("nothing-here"), &tmp);
    let exited = testbed::wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        !p.is_running()
    });
    assert!(exited);
    assert!(p.log().contains("no bootstrap info at"), "{}", p.log());
}

/// kvm-agent pushes the document once per start of the VM and the channel
/// is at EOF afterwards: an agent restarted in the same boot (kill -9)
/// configures itself from the document it kept, at once, instead of
/// waiting for a push that never comes. The kept copy is 0600 (it can
/// carry the agent's key); a document on the channel still wins.
#[test]
fn restarted_in_the_same_boot_it_uses_the_document_it_kept() {
    use std::os::unix::fs::PermissionsExt;
    testbed::require_privileged!();
    let (vr, ctl, _public) = topology();
    let tmp = TempDir::new("boot").unwrap();
    let state = TempDir::new("bootstate").unwrap();
    let file = tmp.path().join("vport");
    std::fs::write(&file, bootstrap("fa:26:9c:aa:00:01")).unwrap();
    let echo = || {
        testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            testbed::http_post(&ctl, "http://10.0.0.25:7272/echo", "{}", &[])
                .is_ok_and(|r| r.0 == 200)
        })
    };
    let p = agent(&vr, &file, &state);
    assert!(echo(), "{}", p.log());
    let kept = state.path().join("bootstrap.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // kill -9; the channel has nothing more to say.
    drop(p);
    std::fs::write(&file, "").unwrap();
    let p = agent(&vr, &file, &state);
    assert!(echo(), "restarted agent did not serve:\n{}", p.log());
    assert!(
        p.log().contains("using the one received earlier"),
        "{}",
        p.log()
    );
    drop(p);
    // A new document on the channel wins over the kept one (this one
    // names a MAC the box lacks, so the agent says so and stops).
    std::fs::write(&file, bootstrap("fa:26:9c:aa:00:09")).unwrap();
    let mut p = agent(&vr, &file, &state);
    let exited = testbed::wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        !p.is_running()
    });
    assert!(
        exited && p.log().contains("fa:26:9c:aa:00:09"),
        "{}",
        p.log()
    );
    // A kept copy that is not ours to trust (garbage, or another boot's)
    // is ignored: the agent waits for the channel as before.
    std::fs::write(&file, "").unwrap();
    for junk in ["{not json", r#"{"boot_id":"another boot","document":{}}"#] {
        std::fs::write(&kept, junk).unwrap();
        let mut p = agent(&vr, &file, &state);
        let exited =
            testbed::wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
                !p.is_running()
            });
        assert!(
            exited && p.log().contains("no bootstrap info at"),
            "{junk}: {}",
            p.log()
        );
    }
}
