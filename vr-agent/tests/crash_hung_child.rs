//! A hung child is found by its probe, not only by its exit: a SIGSTOPped
//! dnsmasq stops answering DNS, is restarted after three failed probes in
//! a row, and the restart is counted on /metrics.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

fn dnsmasq_pid(lab: &Lab) -> Option<i32> {
    let conf = lab.state.path().join("dnsmasq");
    let conf = conf.to_str().unwrap().to_string();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        (cmd.starts_with("dnsmasq") && cmd.contains(&conf)).then_some(pid)
    })
}

fn dig(lab: &Lab) -> String {
    lab.tenant
        .sh("dig @192.168.100.1 web-01.zstack.local +short +time=1 +tries=1")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_stopped_dnsmasq_is_restarted_and_counted() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok(
        "/refreshDhcpServer",
        json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24",
            "netmask": "255.255.255.0", "gateway": "192.168.100.1", "dnsDomain": "zstack.local",
            "dnsServer": "192.168.100.1", "mtu": 1450, "dhcpInfos": [
            {"ip": "192.168.100.10", "mac": "fa:a1:5e:12:34:56", "hostname": "web-01.zstack.local",
             "isDefaultL3Network": true}]}]}),
    );
    assert_eq!(dig(&lab), "192.168.100.10", "{}", lab.log());
    let pid = dnsmasq_pid(&lab).expect("dnsmasq runs");
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    assert_eq!(dig(&lab), "", "a stopped dnsmasq answered");
    let t = Instant::now();
    let back = testbed::wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        dnsmasq_pid(&lab).is_some_and(|p| p != pid) && dig(&lab) == "192.168.100.10"
    });
    assert!(back, "hung dnsmasq not replaced:\n{}", lab.log());
    eprintln!("replaced after {:?}", t.elapsed());
    let (_, metrics) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
    assert!(
        metrics.contains("vr_agent_child_hung_restarts_total 1"),
        "{metrics}"
    );
    // Not left behind, stopped.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z")
        }
    );
}
