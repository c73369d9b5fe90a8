//! `NicTO.cleanTraffic` proven with packets: kvm-agent (libvirt's test
//! driver, so no qemu) runs in a host namespace with a bridge; a veth named
//! like the VM's tap stands in for it, its peer is the "guest" namespace.
//! After `/vm/start` with cleanTraffic=true the guest's spoofed source IP,
//! spoofed MAC and spoofed ARP sender never reach a receiver on the bridge,
//! its genuine traffic does; after `/vm/stop` the rules are gone and the
//! same spoofed packets pass (so it was our filter that dropped them).
//!
//! Fails (never skips) when REQUIRE_PRIVILEGED=1 and it cannot run.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use testbed::{Netns, TempDir, http_post};

const GUEST_MAC: &str = "52:54:00:00:09:01";
const TAP: &str = "vnic9.0";

fn skip(why: &str) {
    if std::env::var("REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("REQUIRE_PRIVILEGED=1 but the anti-spoofing test cannot run: {why}");
    }
    eprintln!("skipped: {why}");
}

fn ping_from(ns: &Netns, src: &str, dst: &str) -> bool {
    ns.exec("ping", &["-q", "-c", "2", "-W", "1", "-I", src, dst])
        .is_ok()
}

fn arping_from(ns: &Netns, src: &str, dst: &str) -> bool {
    ns.exec(
        "arping",
        &["-q", "-c", "2", "-w", "3", "-I", "eth0", "-s", src, dst],
    )
    .is_ok()
}

#[test]
fn clean_traffic_drops_spoofed_ip_mac_and_arp() -> Result<()> {
    if let Some(why) = testbed::unprivileged_reason() {
        skip(&why);
        return Ok(());
    }
    for p in ["nft", "arping", "ping"] {
        if !std::process::Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            skip(&format!("{p} is not installed"));
            return Ok(());
        }
    }
    let host = Netns::new("spfh")?;
    let guest = Netns::new("spfg")?;
    let rx = Netns::new("spfr")?;
    let dir = TempDir::new("kvm-spoof")?;
    testbed::bridge(&host, "br0")?;
    testbed::veth(&host, TAP, &guest, "eth0")?;
    testbed::veth(&host, "rx0", &rx, "eth0")?;
    testbed::enslave(&host, TAP, "br0")?;
    testbed::enslave(&host, "rx0", "br0")?;
    testbed::set_mac(&guest, "eth0", GUEST_MAC)?;
    testbed::addr(&guest, "eth0", "10.9.0.5/24")?;
    // Spoofed sources the guest will try (local, so ping/arping can bind).
    testbed::addr(&guest, "eth0", "10.9.0.66/32")?;
    testbed::addr(&guest, "eth0", "10.9.0.77/32")?;
    testbed::addr(&rx, "eth0", "10.9.0.9/24")?;
    let rx_mac = testbed::mac(&rx, "eth0")?;
    // Static neighbours: an IP check must not hide behind an ARP drop.
    guest.ip(&format!(
        "neigh replace 10.9.0.9 lladdr {rx_mac} dev eth0 nud permanent"
    ))?;
    for ip in ["10.9.0.5", "10.9.0.66"] {
        rx.ip(&format!(
            "neigh replace {ip} lladdr {GUEST_MAC} dev eth0 nud permanent"
        ))?;
    }

    let agent = host.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "127.0.0.1:7071",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--libvirt-uri",
            "test:///default",
            "--domain-type",
            "qemu",
            "--console-log-dir",
            dir.path().join("console").to_str().unwrap(),
            "--vnc-listen",
            "127.0.0.1",
            "--allow-from",
            "127.0.0.1",
            "--socket-dir",
            dir.path().join("sock").to_str().unwrap(),
            "--volume-dir",
            dir.path().to_str().unwrap(),
            "--image-dir",
            dir.path().to_str().unwrap(),
        ],
    )?;
    let url = |p: &str| format!("http://127.0.0.1:7071{p}");
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(&host, &url("/host/echo"), "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "agent did not answer: {}", agent.log());
    let call = |path: &str, body: &Value| -> Result<(u16, Value)> {
        let (s, b) = http_post(&host, &url(path), &body.to_string(), &[])?;
        Ok((s, serde_json::from_str(&b).unwrap_or(Value::String(b))))
    };

    // Before: the guest can spoof.
    assert!(
        ping_from(&guest, "10.9.0.66", "10.9.0.9"),
        "setup: spoofed ping"
    );
    let uuid = format!("{:08x}{:024x}", std::process::id(), 0x5b00f_u128);
    let start = json!({
        "vmInstanceUuid": uuid, "cpuNum": 1, "memory": 64u64 << 20,
        "nics": [{"mac": GUEST_MAC, "ips": ["10.9.0.5"], "bridgeName": "br0",
                  "nicInternalName": TAP, "deviceId": 0, "cleanTraffic": true}]
    });
    let (s, v) = call("/vm/start", &start)?;
    assert_eq!(s, 200, "{v}\n{}", agent.log());
    let rules = host.sh("nft list table bridge kvm_agent_antispoof")?;
    assert!(
        rules.contains(&format!("\"{TAP}\" : jump nic_vnic9_2e0")),
        "{rules}"
    );

    // Genuine traffic passes; spoofed IP and ARP sender do not.
    assert!(
        ping_from(&guest, "10.9.0.5", "10.9.0.9"),
        "genuine ping\n{rules}"
    );
    assert!(arping_from(&guest, "10.9.0.5", "10.9.0.9"), "genuine arp");
    assert!(
        !ping_from(&guest, "10.9.0.66", "10.9.0.9"),
        "spoofed IP passed\n{rules}"
    );
    assert!(
        !arping_from(&guest, "10.9.0.77", "10.9.0.9"),
        "spoofed ARP passed"
    );
    // Spoofed MAC (the receiver knows the new MAC, so only our rule can drop).
    testbed::set_mac(&guest, "eth0", "52:54:00:00:09:99")?;
    rx.ip("neigh replace 10.9.0.5 lladdr 52:54:00:00:09:99 dev eth0 nud permanent")?;
    assert!(
        !ping_from(&guest, "10.9.0.5", "10.9.0.9"),
        "spoofed MAC passed"
    );

    // Stop removes the rules: the same spoofing now gets through.
    let (s, v) = call("/vm/stop", &json!({"uuid": uuid, "type": "cold"}))?;
    assert_eq!(s, 200, "{v}\n{}", agent.log());
    let left = host.sh("nft list table bridge kvm_agent_antispoof")?;
    assert!(!left.contains(TAP) && !left.contains("nic_vnic9"), "{left}");
    assert!(
        ping_from(&guest, "10.9.0.5", "10.9.0.9"),
        "spoofed MAC after stop"
    );
    testbed::set_mac(&guest, "eth0", GUEST_MAC)?;
    rx.ip(&format!(
        "neigh replace 10.9.0.5 lladdr {GUEST_MAC} dev eth0 nud permanent"
    ))?;
    assert!(
        ping_from(&guest, "10.9.0.66", "10.9.0.9"),
        "spoofed IP after stop"
    );
    assert!(
        arping_from(&guest, "10.9.0.77", "10.9.0.9"),
        "spoofed ARP after stop"
    );
    Ok(())
}
