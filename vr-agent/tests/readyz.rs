//! `/readyz` follows the data plane: a hung dnsmasq makes it 503 naming
//! dnsmasq (while `/healthz` stays 200), and it is 200 again once the
//! agent has replaced the child.

mod common;

use std::time::Duration;

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

fn get(lab: &Lab, path: &str) -> (u16, String) {
    testbed::http_get(&lab.ctl, &format!("{AGENT}{path}")).unwrap()
}

#[test]
fn a_hung_dnsmasq_makes_readyz_503_until_it_is_replaced() {
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
    let (code, body) = get(&lab, "/readyz");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"ready":true,"problems":[]}"#)
    );
    let pid = dnsmasq_pid(&lab).expect("dnsmasq runs");
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let (code, body) = get(&lab, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("dnsmasq does not answer"), "{body}");
    assert_eq!(get(&lab, "/healthz").0, 200, "liveness is not readiness");
    let back = testbed::wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        dnsmasq_pid(&lab).is_some_and(|p| p != pid) && get(&lab, "/readyz").0 == 200
    });
    assert!(
        back,
        "not ready again: {:?}\n{}",
        get(&lab, "/readyz"),
        lab.log()
    );
}
