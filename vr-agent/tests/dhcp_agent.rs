//! DHCP and DNS through the agent's HTTP API: a real DHCP client and real
//! DNS queries in the tenant namespace (the topology of `common`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use testbed::TempDir;

const TENANT_MAC: &str = "fa:a1:5e:12:34:56";

/// One DHCP exchange from the tenant; the options it got, or None.
fn dhcp(lab: &Lab, tmp: &TempDir, tries: u32) -> Option<BTreeMap<String, String>> {
    testbed::dhcp_lease(&lab.tenant, "eth0", tries, false, tmp.path())
}

fn dig(lab: &Lab, name: &str) -> String {
    lab.tenant
        .sh(&format!(
            "dig @192.168.100.1 {name} +short +time=2 +tries=2"
        ))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn servers() -> Value {
    json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
        "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1", "mtu": 1450,
        "dhcpInfos": [
            {"ip": "192.168.100.10", "mac": TENANT_MAC, "hostname": "web-01.zstack.local", "isDefaultL3Network": true},
            {"ip": "192.168.100.20", "mac": "fa:a1:5e:00:00:20", "hostname": "db-01.zstack.local", "isDefaultL3Network": true}]}]})
}

fn leases(lab: &Lab) -> String {
    std::fs::read_to_string(lab.state.path().join("dnsmasq/dnsmasq.leases")).unwrap_or_default()
}

#[test]
fn tenant_gets_its_lease_names_resolve_and_removal_frees_the_ip() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    let tmp = TempDir::new("dhcpagent").unwrap();
    // The tenant learns its address by DHCP; the outside runs an upstream DNS.
    lab.tenant.ip("addr flush dev eth0").unwrap();
    testbed::set_mac(&lab.tenant, "eth0", TENANT_MAC).unwrap();
    let _upstream = testbed::upstream_dns(&lab.public, "172.20.0.1").unwrap();

    lab.ok("/refreshDhcpServer", servers());
    lab.ok(
        "/setdns",
        json!({"dns": [{"dnsAddress": "172.20.0.1", "nicMac": PRIV_MAC}]}),
    );
    let env = dhcp(&lab, &tmp, 10).unwrap_or_else(|| panic!("no lease\n{}", lab.log()));
    assert_eq!(env["ip"], "192.168.100.10", "{env:?}");
    assert_eq!(env["router"], "192.168.100.1");
    assert_eq!(env["dns"], "192.168.100.1");
    assert_eq!(env["mtu"], "1450");
    assert_eq!(env["domain"], "zstack.local");
    assert_eq!(env["hostname"], "web-01");
    assert_eq!(env["subnet"], "255.255.255.0");
    testbed::addr(&lab.tenant, "eth0", "192.168.100.10/24").unwrap();
    assert_eq!(dig(&lab, "db-01.zstack.local"), "192.168.100.20");
    assert_eq!(dig(&lab, "www.example.test"), "203.0.113.7");
    assert!(leases(&lab).contains(TENANT_MAC));

    // A host added later is a reload, and the earlier lease stays.
    lab.ok(
        "/adddhcp",
        json!({"dhcpEntries": [{"ip": "192.168.100.30", "mac": "fa:a1:5e:00:00:30", "netmask": "255.255.255.0",
            "gateway": "192.168.100.1", "dns": ["192.168.100.1"], "hostname": "app-01.zstack.local",
            "vrNicMac": PRIV_MAC, "dnsDomain": "zstack.local", "isDefaultL3Network": true, "mtu": 1450}]}),
    );
    assert!(testbed::wait_until(
        Duration::from_secs(3),
        Duration::from_millis(100),
        || { dig(&lab, "app-01.zstack.local") == "192.168.100.30" }
    ));
    assert!(
        leases(&lab).contains(TENANT_MAC),
        "lease kept across the reload"
    );

    // dnsmasq dies: it is restarted, counted, and serves again.
    let conf = format!(
        "--conf-file={}",
        lab.state.path().join("dnsmasq/dnsmasq.conf").display()
    );
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == conf.as_bytes()))
        })
        .expect("our dnsmasq runs")
        .file_name();
    lab.vr
        .sh(&format!("kill -9 {}", pid.to_str().unwrap()))
        .unwrap();
    let restarted = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let (_, m) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
        m.contains("vr_agent_dnsmasq_restarts_total 1")
    });
    assert!(restarted, "{}", lab.log());
    assert!(testbed::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(100),
        || { dig(&lab, "db-01.zstack.local") == "192.168.100.20" }
    ));

    // Kill -9 the agent: the restarted one serves DHCP again from its state.
    lab.kill_agent();
    lab.start_agent().unwrap();
    lab.tenant.ip("addr flush dev eth0").unwrap();
    let env =
        dhcp(&lab, &tmp, 10).unwrap_or_else(|| panic!("no lease after restart\n{}", lab.log()));
    assert_eq!(env["ip"], "192.168.100.10");

    // Removing the entry: no answer, and the lease is released at once.
    lab.ok(
        "/removedhcp",
        json!({"dhcpEntries": [{"ip": "192.168.100.10", "mac": TENANT_MAC, "vrNicMac": PRIV_MAC}]}),
    );
    assert!(
        !leases(&lab).contains(TENANT_MAC),
        "released: {}",
        leases(&lab)
    );
    assert!(dhcp(&lab, &tmp, 2).is_none(), "removed MAC gets no answer");
    // A refresh replaces the whole set: db-01 and app-01 are gone.
    lab.ok(
        "/refreshDhcpServer",
        json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
            "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1",
            "dhcpInfos": [{"ip": "192.168.100.50", "mac": "fa:a1:5e:00:00:50", "hostname": "new-01.zstack.local",
                           "isDefaultL3Network": true}]}]}),
    );
    let hosts = std::fs::read_to_string(lab.state.path().join("dnsmasq/dhcp-hosts")).unwrap();
    assert_eq!(
        hosts,
        "fa:a1:5e:00:00:50,192.168.100.50,new-01.zstack.local,infinite\n"
    );

    // The freed IP goes to another VM at once.
    lab.ok(
        "/adddhcp",
        json!({"dhcpEntries": [{"ip": "192.168.100.10", "mac": "fa:a1:5e:00:00:99", "netmask": "255.255.255.0",
            "gateway": "192.168.100.1", "vrNicMac": PRIV_MAC, "isDefaultL3Network": true}]}),
    );
    testbed::set_mac(&lab.tenant, "eth0", "fa:a1:5e:00:00:99").unwrap();
    let env = dhcp(&lab, &tmp, 10).expect("the freed IP is offered to the new VM");
    assert_eq!(env["ip"], "192.168.100.10");
}

#[test]
fn injected_strings_are_refused_and_nothing_applies() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/refreshDhcpServer", servers());
    let before = std::fs::read_to_string(lab.state.path().join("dnsmasq/dhcp-hosts")).unwrap();
    for hostname in ["evil\ndhcp-range=1.2.3.4", "a,b", "x\u{7}y"] {
        let (code, v) = lab
            .post(
                "/adddhcp",
                json!({"dhcpEntries": [{"ip": "192.168.100.40", "mac": "fa:a1:5e:00:00:40",
                    "hostname": hostname, "vrNicMac": PRIV_MAC, "isDefaultL3Network": true}]}),
            )
            .unwrap();
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("hostname"), "{v}");
    }
    let after = std::fs::read_to_string(lab.state.path().join("dnsmasq/dhcp-hosts")).unwrap();
    assert_eq!(before, after);
}
