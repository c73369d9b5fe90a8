//! Least privilege inside the router: dnsmasq and haproxy's workers run
//! as their own unprivileged users (DHCP, DNS and an HTTPS listener still
//! serve), and the state dir is private: 0711 (search only, no listing),
//! every file 0600, before and after a restart of the agent.
//!
//! The documented exceptions: `dnsmasq/` is 0711 and the files dnsmasq
//! re-reads after dropping root (hosts, addn-hosts, servers, leases) belong
//! to dnsmasq's user (still 0600); haproxy's unix sockets are sockets.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use testbed::{Netns, TempDir};

const VIP: &str = "172.20.10.100";
const TENANT_MAC: &str = "fa:a1:5e:12:34:56";

/// (pid, ppid, real/effective/saved/fs uids) of every process whose
/// command line contains `needle`.
fn processes(needle: &str) -> Vec<(u32, u32, Vec<u32>)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let ppid = field("PPid:").first().copied().unwrap_or(0);
        out.push((pid, ppid, field("Uid:")));
    }
    out
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap_or_else(|| panic!("no user {user} on this box"))
        .uid
        .as_raw()
}

fn keypair(dir: &Path) -> (PathBuf, String) {
    let (key, crt) = (dir.join("k.pem"), dir.join("c.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=lb.test",
            "-addext",
            "subjectAltName=DNS:lb.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    (crt, pem)
}

/// An HTTP server on the tenant's port 80 answering `ok` to every request
/// (one thread, one request per connection), until the test ends.
fn web(ns: &Netns) -> std::net::TcpListener {
    let listener = ns
        .run(|| std::net::TcpListener::bind("0.0.0.0:80"))
        .unwrap();
    let l = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    listener
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

fn https_get(lab: &Lab, ca: &Path) -> anyhow::Result<String> {
    lab.public.sh(&format!(
        "curl -sS -m 5 --cacert {} --resolve lb.test:443:{VIP} https://lb.test/",
        ca.display()
    ))
}

fn dhcp_servers() -> Value {
    json!({"dhcpServers": [{"nicMac": PRIV_MAC, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
        "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1", "mtu": 1450,
        "dhcpInfos": [
            {"ip": "192.168.100.10", "mac": TENANT_MAC, "hostname": "web-01.zstack.local", "isDefaultL3Network": true},
            {"ip": "192.168.100.20", "mac": "fa:a1:5e:00:00:20", "hostname": "db-01.zstack.local", "isDefaultL3Network": true}]}]})
}

/// DHCP, DNS, a certificate and an HTTPS listener: every kind of file the
/// agent writes into its state dir.
fn configure(lab: &Lab, tmp: &TempDir) -> PathBuf {
    lab.base_config();
    lab.tenant.ip("addr flush dev eth0").unwrap();
    testbed::set_mac(&lab.tenant, "eth0", TENANT_MAC).unwrap();
    lab.ok("/refreshDhcpServer", dhcp_servers());
    lab.ok(
        "/setdns",
        json!({"dns": [{"dnsAddress": "172.20.0.1", "nicMac": PRIV_MAC}]}),
    );
    let env = testbed::dhcp_lease(&lab.tenant, "eth0", 10, false, tmp.path())
        .unwrap_or_else(|| panic!("no lease\n{}", lab.log()));
    assert_eq!(env["ip"], "192.168.100.10", "{env:?}");
    testbed::addr(&lab.tenant, "eth0", "192.168.100.10/24").unwrap();

    lab.ok("/createvip", json!({"vips": [vip(VIP)]}));
    let (ca, pem) = keypair(tmp.path());
    lab.ok(
        "/certificate/create",
        json!({"uuid": "cert-1", "certificate": pem}),
    );
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "tls", "vip": VIP, "publicNic": PUB_MAC,
            "nicIps": ["192.168.100.10"], "instancePort": 80, "loadBalancerPort": 443,
            "mode": "https", "serverGroups": [], "redirectRules": [], "certificateUuid": "cert-1",
            "parameters": ["accessControlStatus::enable", "aclType::white", "aclEntry::172.20.0.0/16"]}]}),
    );
    ca
}

/// Every path under `dir` that breaks the rules, with why.
fn loose_modes(dir: &Path, dnsmasq_uid: u32) -> Vec<String> {
    let mut bad = vec![];
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    let top = mode(dir);
    if top.permissions().mode() & 0o7777 != 0o711 {
        bad.push(format!(
            "{}: dir mode {:o}",
            dir.display(),
            top.permissions().mode()
        ));
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = mode(&p);
            let perm = m.permissions().mode() & 0o7777;
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            let ft = m.file_type();
            if ft.is_dir() {
                let want = if name == "dnsmasq" { 0o711 } else { 0o700 };
                if perm != want || m.uid() != 0 {
                    bad.push(format!(
                        "{name}/: dir mode {perm:o} uid {} (want {want:o}, root)",
                        m.uid()
                    ));
                }
                stack.push(p);
            } else if ft.is_socket() {
                if perm & 0o077 != 0 {
                    bad.push(format!("{name}: socket mode {perm:o}"));
                }
            } else {
                let dnsmasq_reads = ["dhcp-hosts", "addn-hosts", "servers", "dnsmasq.leases"]
                    .iter()
                    .any(|f| name == format!("dnsmasq/{f}"));
                let want_uid = if dnsmasq_reads { dnsmasq_uid } else { 0 };
                if perm != 0o600 || m.uid() != want_uid {
                    bad.push(format!(
                        "{name}: mode {perm:o} uid {} (want 600, uid {want_uid})",
                        m.uid()
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn dnsmasq_and_haproxy_workers_run_unprivileged_and_serve() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let tmp = TempDir::new("leastpriv").unwrap();
    let _upstream = testbed::upstream_dns(&lab.public, "172.20.0.1").unwrap();
    let ca = configure(&lab, &tmp);
    let _web = web(&lab.tenant);

    assert_eq!(
        dig(&lab, "db-01.zstack.local"),
        "192.168.100.20",
        "{}",
        lab.log()
    );
    assert_eq!(dig(&lab, "www.example.test"), "203.0.113.7");
    // The backend turns healthy within a few checks.
    let mut seen = String::new();
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        seen = https_get(&lab, &ca).unwrap_or_else(|e| format!("{e:#}"));
        seen == "ok"
    });
    assert_eq!(seen, "ok", "{}", lab.log());

    let state = lab.state.path().display().to_string();
    let dnsmasq = processes(&format!("--conf-file={state}/dnsmasq/dnsmasq.conf"));
    assert_eq!(dnsmasq.len(), 1, "{dnsmasq:?}");
    let want = uid_of("dnsmasq");
    assert!(
        dnsmasq[0].2.iter().all(|u| *u == want),
        "dnsmasq uids {:?}, want {want}",
        dnsmasq[0].2
    );

    let haproxy = processes(&format!("{state}/haproxy/haproxy.cfg"));
    let pids: Vec<u32> = haproxy.iter().map(|p| p.0).collect();
    let workers: Vec<_> = haproxy.iter().filter(|p| pids.contains(&p.1)).collect();
    assert!(!workers.is_empty(), "no haproxy worker: {haproxy:?}");
    let want = uid_of("haproxy");
    for w in workers {
        assert!(
            w.2.iter().all(|u| *u == want),
            "haproxy worker {w:?}, want uid {want}"
        );
    }

    // A SIGHUP reload (one more host) is read by the unprivileged dnsmasq.
    lab.ok(
        "/adddhcp",
        json!({"dhcpEntries": [{"ip": "192.168.100.30", "mac": "fa:a1:5e:00:00:30", "netmask": "255.255.255.0",
            "gateway": "192.168.100.1", "hostname": "app-01.zstack.local", "vrNicMac": PRIV_MAC,
            "dnsServer": "192.168.100.1", "isDefaultL3Network": true}]}),
    );
    let resolved = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        dig(&lab, "app-01.zstack.local") == "192.168.100.30"
    });
    assert!(resolved, "the reloaded hosts were not read\n{}", lab.log());
}

#[test]
fn the_state_dir_is_private_before_and_after_a_restart() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    let tmp = TempDir::new("leastpriv-files").unwrap();
    let ca = configure(&lab, &tmp);
    let dnsmasq_uid = uid_of("dnsmasq");
    let bad = loose_modes(lab.state.path(), dnsmasq_uid);
    assert!(bad.is_empty(), "{bad:#?}");

    lab.kill_agent();
    // What an older agent left world-readable is tightened at start.
    for (path, mode) in [
        ("", 0o755),
        ("state.json", 0o644),
        ("haproxy/haproxy.cfg", 0o644),
        ("certificates/cert-1.pem", 0o644),
    ] {
        let p = lab.state.path().join(path);
        std::fs::set_permissions(&p, PermissionsExt::from_mode(mode)).unwrap();
    }
    lab.start_agent().unwrap();
    let _web = web(&lab.tenant);
    let served = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        https_get(&lab, &ca).is_ok_and(|s| s == "ok")
    });
    assert!(served, "listener down after restart:\n{}", lab.log());
    lab.ok(
        "/createportforwarding",
        json!({"rules": [pf("pf-1", VIP, "TCP", 8080, 8080, 80, 80, None)]}),
    );
    let bad = loose_modes(lab.state.path(), dnsmasq_uid);
    assert!(bad.is_empty(), "{bad:#?}");
}
