//! `/metrics` of a router with EIPs, port forwards, SNAT and a listener:
//! promtool accepts it, and the per-rule counters count the test's own
//! packets (real traffic through the real agent in namespaces).

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::json;
use testbed::{TcpServer, UdpServer, tcp_probe, udp_probe};

/// `promtool check metrics` on `text`: its complaints, or None when it
/// accepts. Missing promtool fails under REQUIRE_PRIVILEGED=1 (CI installs
/// it from Debian's `prometheus` package), and skips otherwise.
fn promtool(text: &str) -> Option<Option<String>> {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "promtool is required (apt-get install prometheus): {e}"
            );
            eprintln!("skipping promtool: {e}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((!out.status.success() || !said.trim().is_empty()).then_some(said))
}

/// The value of the one sample of `name` whose labels contain every one of
/// `labels` (`key="value"`), 0 when there is none.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    let hits: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(hits.len() <= 1, "{name} {labels:?}: {hits:?}");
    hits.first().copied().unwrap_or(0.0)
}

fn metrics(lab: &Lab, path: &str) -> String {
    let (code, text) = testbed::http_get(&lab.ctl, &format!("{AGENT}{path}")).unwrap();
    assert_eq!(code, 200, "{text}");
    text
}

const N: usize = 5;

/// Every probe here is meant to pass: a long deadline costs nothing when
/// they do, and a loaded CI machine once took over 2 s (`T`) to answer the
/// first SNAT probe.
const PATIENT: std::time::Duration = std::time::Duration::from_secs(15);

#[test]
fn per_rule_counters_count_real_traffic_and_promtool_accepts() {
    testbed::require_privileged!();
    let lab = Lab::with_backends(1).unwrap();
    lab.base_config();
    let _out = TcpServer::start(&lab.public, "0.0.0.0:80").unwrap();
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    let _dns = UdpServer::start(&lab.tenant, "0.0.0.0:53").unwrap();
    let _be = TcpServer::start(&lab.backends[0], "0.0.0.0:80").unwrap();
    let _range = TcpServer::start(&lab.tenant, "0.0.0.0:9005").unwrap();

    // SNAT first: the tenant is an EIP guest later, whose traffic leaves
    // through its EIP and is not the SNAT network's.
    for _ in 0..N {
        let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", PATIENT).unwrap();
        assert_eq!(source(&seen), "172.20.10.5");
    }
    let text = metrics(&lab, "/metrics");
    let snat = [r#"network="192.168.100.0/24""#, r#"direction="out""#];
    let snat_pkts = sample(&text, "vr_agent_snat_packets_total", &snat);
    assert!(snat_pkts >= N as f64, "snat {snat_pkts}\n{text}");
    assert!(sample(&text, "vr_agent_snat_bytes_total", &snat) >= 60.0 * N as f64);

    let mut vips = vec![vip("172.20.10.100"), vip("172.20.10.101")];
    vips[0]["vipUuid"] = json!("vip-pf");
    vips[1]["vipUuid"] = json!("vip-eip");
    lab.ok("/createvip", json!({"vips": vips}));
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    lab.ok(
        "/createportforwarding",
        json!({"rules": [
            pf("pf-udp", "172.20.10.100", "UDP", 5353, 5353, 53, 53, None),
            pf("pf-range", "172.20.10.100", "TCP", 9000, 9010, 9000, 9010, None),
        ]}),
    );
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "web", "vip": "172.20.10.100",
            "publicNic": PUB_MAC, "nicIps": ["192.168.100.11"], "instancePort": 80,
            "loadBalancerPort": 80, "mode": "tcp", "parameters": [], "serverGroups": [],
            "redirectRules": []}]}),
    );

    for _ in 0..N {
        let seen = tcp_probe(&lab.public, "172.20.10.101:80", PATIENT).unwrap();
        assert_eq!(source(&seen), "172.20.0.1");
        let seen = tcp_probe(&lab.tenant, "172.20.0.1:80", PATIENT).unwrap();
        assert_eq!(source(&seen), "172.20.10.101");
        udp_probe(&lab.public, "172.20.10.100:5353", PATIENT).unwrap();
        tcp_probe(&lab.public, "172.20.10.100:9005", PATIENT).unwrap();
    }
    let lb_ok = (0..N)
        .filter(|_| tcp_probe(&lab.public, "172.20.10.100:80", PATIENT).is_ok())
        .count();
    assert_eq!(lb_ok, N, "{}", lab.log());

    let text = metrics(&lab, "/metrics");
    let eip_in = [r#"vip="172.20.10.101""#, r#"direction="in""#];
    let eip_out = [r#"vip="172.20.10.101""#, r#"direction="out""#];
    // Every inbound probe is at least SYN, ACK and FIN; every outbound one too.
    for (name, labels, least) in [
        ("vr_agent_eip_packets_total", &eip_in, 3 * N),
        ("vr_agent_eip_packets_total", &eip_out, 3 * N),
        ("vr_agent_eip_bytes_total", &eip_in, 3 * 40 * N),
    ] {
        let got = sample(&text, name, labels);
        assert!(got >= least as f64, "{name} {labels:?}: {got}\n{text}");
    }
    let pf = [r#"uuid="pf-udp""#, r#"direction="in""#];
    let got = sample(&text, "vr_agent_port_forward_packets_total", &pf);
    assert!(got >= N as f64, "pf packets {got}\n{text}");
    assert!(sample(&text, "vr_agent_port_forward_bytes_total", &pf) >= 28.0 * N as f64);
    // A port range is counted too (its own interval set).
    let range = [r#"uuid="pf-range""#, r#"direction="in""#];
    let got = sample(&text, "vr_agent_port_forward_packets_total", &range);
    assert!(got >= 3.0 * N as f64, "pf range packets {got}\n{text}");
    // SNAT did not count the EIP guest's or the port forward's packets.
    assert_eq!(
        sample(&text, "vr_agent_snat_packets_total", &snat),
        snat_pkts,
        "{text}"
    );
    let got = sample(
        &text,
        "vr_agent_lb_listener_sessions_total",
        &[r#"listener="web""#],
    );
    assert!(got >= N as f64, "listener sessions {got}\n{text}");
    assert_eq!(
        sample(
            &text,
            "vr_agent_lb_server_up",
            &[r#"listener="web""#, r#"server="s-192.168.100.11""#]
        ),
        1.0,
        "{text}"
    );
    for family in [
        "vr_agent_build_info",
        "vr_agent_conntrack_entries",
        "vr_agent_conntrack_entries_limit",
        "vr_agent_dhcp_leases",
        "vr_agent_apply_duration_seconds_bucket",
        "vr_agent_haproxy_reload_failures_total",
        "vr_agent_lb_backend_up",
        "vr_agent_lb_listener_up",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} missing\n{text}"
        );
    }
    assert!(sample(&text, "vr_agent_conntrack_entries", &[]) >= 1.0);
    if let Some(Some(complaints)) = promtool(&text) {
        panic!("promtool check metrics: {complaints}\n{text}");
    }

    // ZStack's names (zvr's plugin/vip.go and plugin/lb.go), for existing
    // dashboards: the same counters by VIP uuid.
    let z = metrics(&lab, "/metrics/zstack");
    let got = sample(&z, "zstack_vip_in_packages", &[r#"VipUUID="vip-eip""#]);
    assert!(got >= 3.0 * N as f64, "{z}");
    let got = sample(&z, "zstack_vip_in_packages", &[r#"VipUUID="vip-pf""#]);
    assert!(got >= 4.0 * N as f64, "{z}");
    assert!(sample(&z, "zstack_vip_out_bytes", &[r#"VipUUID="vip-eip""#]) > 0.0);
    let got = sample(
        &z,
        "zstack_lb_total_session_num",
        &[r#"ListenerUuid="web""#, r#"NicIpAddress="192.168.100.11""#],
    );
    assert!(got >= N as f64, "{z}");
    // zvr's label names are camelCase, which promtool's lint names; it
    // must be the only complaint.
    if let Some(Some(complaints)) = promtool(&z) {
        for line in complaints.lines().filter(|l| !l.trim().is_empty()) {
            assert!(line.contains("camelCase"), "promtool: {line}\n{z}");
        }
    }

    // Ready: the last apply worked, no drift, children alive.
    let (code, body) = testbed::http_get(&lab.ctl, &format!("{AGENT}/readyz")).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"ready\":true"), "{body}");
}
