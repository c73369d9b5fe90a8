//! A hung child is found by its probe, not only by its exit: a SIGSTOPped
//! dnsmasq stops answering DNS, a SIGSTOPped haproxy worker stops serving
//! its listeners (its master still answers), a SIGSTOPped haproxy master
//! stops answering its socket (reloads would fail); each is restarted after
//! three failed probes in a row, the restart is counted on /metrics and
//! the service works again.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

// ---------------------------------------------------------------- haproxy

const VIP: &str = "172.20.10.100";

/// A TCP server in a backend namespace that writes its name and closes.
struct NameServer(Arc<AtomicBool>);

impl NameServer {
    fn start(ns: &testbed::Netns, name: &'static str) -> NameServer {
        let listener = ns.run(|| TcpListener::bind("0.0.0.0:80")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(name.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        NameServer(stop)
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the listener answers on a new connection from `pub` ("" when
/// nothing within a second).
fn through_lb(lab: &Lab) -> String {
    lab.public.run(|| {
        let addr = format!("{VIP}:80").parse().unwrap();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

/// (pid, parent pid) of every haproxy on the lab's config.
fn haproxies(lab: &Lab) -> Vec<(i32, i32)> {
    let conf = lab.state.path().join("haproxy").join("haproxy.cfg");
    let conf = conf.to_str().unwrap().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        if !(cmd.starts_with("haproxy") && cmd.contains(&conf)) {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = stat.rsplit_once(") ")?.1;
        let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
        Some((pid, ppid))
    })
    .collect()
}

/// The master (the agent's child) and its worker.
fn master_and_worker(lab: &Lab) -> Option<(i32, i32)> {
    let procs = haproxies(lab);
    let master = procs
        .iter()
        .find(|(_, ppid)| !procs.iter().any(|(p, _)| p == ppid))?
        .0;
    let worker = procs.iter().find(|(_, ppid)| *ppid == master)?.0;
    Some((master, worker))
}

fn gone_or_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z")
}

/// A router with one TCP listener on the VIP to one backend.
fn lb_lab() -> (Lab, NameServer) {
    let lab = Lab::with_backends(1).unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip(VIP)]}));
    let web = NameServer::start(&lab.backends[0], "be0");
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "tcp-80", "vip": VIP,
            "publicNic": PUB_MAC, "nicIps": ["192.168.100.11"], "instancePort": 80,
            "loadBalancerPort": 80, "mode": "tcp", "parameters": ["balancerAlgorithm::roundrobin"],
            "serverGroups": [], "redirectRules": []}]}),
    );
    assert_eq!(through_lb(&lab), "be0", "{}", lab.log());
    (lab, web)
}

fn hung_restarts(lab: &Lab) -> String {
    let (_, metrics) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("vr_agent_child_hung_restarts_total"))
        .collect()
}

/// Probes every 2 s, three failures in a row, then the restart (a stopped
/// process ignores SIGTERM: 3 s grace, then SIGKILL) and haproxy's start.
const REPLACED_WITHIN: Duration = Duration::from_secs(20);

#[test]
fn a_stopped_haproxy_worker_is_restarted_and_counted() {
    testbed::require_privileged!();
    let (lab, _web) = lb_lab();
    let (master, worker) = master_and_worker(&lab).expect("haproxy master and worker");
    kill(Pid::from_raw(worker), Signal::SIGSTOP).unwrap();
    // The kernel still takes connections into the backlog; nobody serves.
    assert_eq!(through_lb(&lab), "", "a stopped worker served");
    let t = Instant::now();
    let back = testbed::wait_until(REPLACED_WITHIN, Duration::from_millis(200), || {
        master_and_worker(&lab).is_some_and(|(_, w)| w != worker) && through_lb(&lab) == "be0"
    });
    assert!(
        back,
        "hung haproxy worker {worker} (master {master}) not replaced within {REPLACED_WITHIN:?}: {:?}\n{}",
        haproxies(&lab),
        lab.log()
    );
    eprintln!("worker replaced after {:?}", t.elapsed());
    assert_eq!(hung_restarts(&lab), "vr_agent_child_hung_restarts_total 1");
    // The stopped worker holds the listening sockets: it must be ended, not
    // left behind (stopped, or orphaned when its master went).
    assert!(
        testbed::wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
            gone_or_zombie(worker)
        }),
        "stopped worker {worker} left behind: {:?}",
        haproxies(&lab)
    );
    // And the replacement keeps serving.
    for _ in 0..5 {
        assert_eq!(through_lb(&lab), "be0");
    }
}

#[test]
fn a_stopped_haproxy_master_is_restarted_and_counted() {
    testbed::require_privileged!();
    let (lab, _web) = lb_lab();
    let (master, worker) = master_and_worker(&lab).expect("haproxy master and worker");
    kill(Pid::from_raw(master), Signal::SIGSTOP).unwrap();
    // Its worker still serves; but the master cannot reload: it is replaced.
    assert_eq!(through_lb(&lab), "be0");
    let t = Instant::now();
    let back = testbed::wait_until(REPLACED_WITHIN, Duration::from_millis(200), || {
        master_and_worker(&lab).is_some_and(|(m, _)| m != master) && through_lb(&lab) == "be0"
    });
    assert!(
        back,
        "hung haproxy master {master} not replaced within {REPLACED_WITHIN:?}: {:?}\n{}",
        haproxies(&lab),
        lab.log()
    );
    eprintln!("master replaced after {:?}", t.elapsed());
    assert_eq!(hung_restarts(&lab), "vr_agent_child_hung_restarts_total 1");
    assert!(
        testbed::wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
            gone_or_zombie(master) && gone_or_zombie(worker)
        }),
        "old master {master} or worker {worker} left behind: {:?}",
        haproxies(&lab)
    );
    // A refresh (a reload through the new master) works again.
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "tcp-80", "vip": VIP,
            "publicNic": PUB_MAC, "nicIps": ["192.168.100.11"], "instancePort": 80,
            "loadBalancerPort": 80, "mode": "tcp", "parameters": ["balancerAlgorithm::leastconn"],
            "serverGroups": [], "redirectRules": []}]}),
    );
    assert_eq!(through_lb(&lab), "be0");
}
