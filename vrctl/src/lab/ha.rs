//! `lab up --ha`: the pair's failover proven with real traffic. Under a
//! 100/s ping through SNAT and one to the EIP, and one TCP session echoing
//! every 10 ms through SNAT and one through a port forward, the master is
//! killed (its VM destroyed, or every process of its namespace killed and
//! its links down); then the services are asked again through the new
//! master, and the lost half is re-created and must rejoin as backup.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testbed::failover::{EchoReport, echo_stream_between, longest_silence_ms};

use super::addresses::*;
use super::drive::{half_status, pair_status, recreate_half};
use super::topo::{self, nsh, sh};
use super::{Mode, Names, Row, checks, in_netns, row};
use crate::spec::RouterSpec;

/// A failover's silence above this fails the row (the budget).
const MAX_SILENCE_MS: u64 = 1000;
/// The new master's `/ping` saying so: polled over a fresh TLS connection
/// each time, which under TCG costs most of a second per handshake; the
/// traffic's silence is the failover's measure.
const MAX_REPORT: Duration = Duration::from_secs(5);

/// The rows of the failover and the rejoin.
pub fn prove(
    names: &Names,
    mode: Mode,
    bin: &std::path::Path,
    uris: &[String],
    specs: &[RouterSpec; 2],
) -> Vec<Row> {
    let n = |r: &str| names.ns(r);
    let (out, t1, t2) = (n("out"), n("ten1"), n("ten2"));
    let mut rows = vec![];
    let echo = format!("{OUTSIDE_IP}:{ECHO_PORT}");
    let sessions = echo_stream_between(&t2, &echo, &out, &echo).and_then(|snat| {
        let pf = echo_stream_between(
            &out,
            &format!("{VIP_PF}:{ECHO_PORT}"),
            &t1,
            &format!("192.168.100.10:{ECHO_PORT}"),
        )?;
        Ok((snat, pf))
    });
    let (snat, pf) = match sessions {
        Ok(s) => s,
        Err(e) => {
            rows.push(row(
                "HA failover: TCP sessions through SNAT and the port forward",
                Err(format!("{e:#}")),
            ));
            return rows;
        }
    };
    let pings = [ping(&t2, OUTSIDE_IP), ping(&out, VIP_EIP)];
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = Instant::now();
    let killed = kill_master(names, mode, uris);
    let n2 = names.clone();
    let master = in_netns(&n("mn"), async move || {
        // Polled past MAX_REPORT, so a slow report is told from none.
        while killed_at.elapsed() < 2 * MAX_REPORT {
            // Only the survivor: the lost half would hold each question up.
            if half_status(n2.clone(), 1).await == "Master" {
                return Some(killed_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    })
    .ok()
    .flatten();
    let logs: Vec<String> = pings.into_iter().map(finish_ping).collect();
    rows.push(row(
        "HA failover: the master killed, the backup takes over",
        match (killed, master) {
            (Err(e), _) => Err(format!("killing {}: {e}", n("vr"))),
            (Ok(how), Some(t)) if t < MAX_REPORT => Ok(format!(
                "{how}; {} reports Master {} ms after",
                n("vr2"),
                t.as_millis()
            )),
            (Ok(how), Some(t)) => Err(format!(
                "{how}; {} reports Master only {} ms after",
                n("vr2"),
                t.as_millis()
            )),
            (Ok(how), None) => Err(format!("{how}; {} never reported Master", n("vr2"))),
        },
    ));
    for (what, log) in [
        (format!("ping {OUTSIDE_IP} through SNAT"), &logs[0]),
        (format!("ping the EIP {VIP_EIP}"), &logs[1]),
    ] {
        let silence = longest_silence_ms(log);
        rows.push(row(
            &format!("HA failover: {what} (100/s) silent under 1 s"),
            if silence < MAX_SILENCE_MS {
                Ok(format!("longest silence {silence} ms"))
            } else if silence == u64::MAX {
                Err("fewer than two replies".into())
            } else {
                Err(format!("silent for {silence} ms"))
            },
        ));
    }
    for (what, s) in [
        (format!("TCP to {echo} through SNAT"), snat),
        (
            format!("TCP through the port forward {VIP_PF}:{ECHO_PORT}"),
            pf,
        ),
    ] {
        rows.push(row(
            &format!("HA failover: {what} kept"),
            kept(s.finish(), killed_at),
        ));
    }
    rows.push(row(
        "HA after failover: web-01's DHCP renewal keeps its address",
        checks::dhcp(
            names,
            &t1,
            "192.168.100.10 192.168.100.1 192.168.100.1 zstack.local web-01",
        ),
    ));
    rows.push(row(
        "HA after failover: DNS answers",
        checks::dns(&t1, "db-01.zstack.local", "192.168.100.20"),
    ));
    let mut lb = Err("not tried".to_string());
    topo::wait_until(Duration::from_secs(30), || {
        lb = checks::reaches(&out, &format!("{VIP_LB}:80"), "web-01", "192.168.100.1");
        lb.is_ok()
    });
    rows.push(row("HA after failover: the load balancer answers", lb));
    rows.push(if mode == Mode::Vm {
        row(
            "HA: vrctl watch starts the lost half again, it rejoins as backup, the other stays master",
            rejoin_by_watch(names, killed_at),
        )
    } else {
        row(
            "HA: the lost half re-created rejoins as backup, the other stays master",
            rejoin(names, bin, &specs[0]),
        )
    });
    rows.push(row(
        "HA: one router answers for the shared addresses",
        one_holder(names),
    ));
    rows
}

/// `ping -D` at 100/s for 4 s from `ns`.
fn ping(ns: &str, ip: &str) -> std::io::Result<Child> {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-D", "-i", "0.01"])
        .args(["-W", "1", "-c", "400", ip])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

fn finish_ping(p: std::io::Result<Child>) -> String {
    p.and_then(Child::wait_with_output)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A session kept: no error, and it went on after the kill.
fn kept(r: EchoReport, killed_at: Instant) -> Result<String, String> {
    let after = r.after(killed_at);
    match r.error {
        Some(e) => Err(format!("{e} after {} round trips", r.round_trips)),
        None if after > 10 => Ok(format!(
            "{after} round trips after the kill, longest stall {} ms",
            r.longest_stall_ms()
        )),
        None => Err(format!("only {after} round trips after the kill")),
    }
}

/// The master's host gone: its VM destroyed, or its namespace's processes
/// killed and its links down. How, for the report.
fn kill_master(names: &Names, mode: Mode, uris: &[String]) -> Result<String, String> {
    let vr = names.ns("vr");
    if mode == Mode::Vm {
        let uri = uris.first().ok_or("no libvirt URI")?;
        topo::virsh(uri, &["destroy", VR_UUID]).map_err(|e| e.to_string())?;
        return Ok(format!("VM {VR_UUID} destroyed"));
    }
    let killed = topo::kill_in(&vr);
    for l in ["eth0", "eth1", "eth2"] {
        let _ = sh(&format!("ip -n {vr} link set {l} down"));
    }
    Ok(format!("{killed} processes of {vr} killed, its links down"))
}

/// VM mode: `vrctl watch router.json` (1 s pings, 2 misses) finds the
/// destroyed half, asks its host (it answers without the VM) and starts it
/// again from its disk; the resync pairs it, and it must come up Backup
/// with the other still Master, as in [`rejoin`].
fn rejoin_by_watch(names: &Names, killed_at: Instant) -> Result<String, String> {
    let vrctl = std::env::current_exe().map_err(|e| e.to_string())?;
    let pki = super::secure::pki_dir(&names.state);
    let env = [
        format!("VRCTL_STATE_DIR={}", names.state.join("vrctl").display()),
        format!("VRCTL_PKI_DIR={}", pki.display()),
        format!(
            "VRCTL_TOKEN_FILE={}",
            super::secure::token_file(&names.state).display()
        ),
    ];
    let file = names.state.join("router.json").display().to_string();
    let log = names.state.join("logs/vrctl-watch.log");
    let mut args: Vec<String> = env.to_vec();
    args.push(vrctl.display().to_string());
    for a in ["watch", &file, "--interval-ms", "1000", "--misses", "2"] {
        args.push(a.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = topo::spawn(&names.ns("mn"), "env", &args, &log).map_err(|e| e.to_string())?;
    let n2 = names.clone();
    let seen = in_netns(&names.ns("mn"), async move || {
        let want = ["Backup", "Master"];
        let mut seen = pair_status(n2.clone()).await;
        while seen != want && killed_at.elapsed() < Duration::from_secs(90) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            seen = pair_status(n2.clone()).await;
        }
        let back = killed_at.elapsed();
        if seen == want {
            tokio::time::sleep(Duration::from_secs(2)).await;
            seen = pair_status(n2.clone()).await;
        }
        (seen, back)
    });
    let _ = sh(&format!("kill {pid} 2>/dev/null; true"));
    let (seen, back) = seen.map_err(|e| e.to_string())?;
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let started = said
        .lines()
        .find(|l| l.contains(" start "))
        .unwrap_or("")
        .trim()
        .to_string();
    if seen == ["Backup", "Master"] {
        Ok(format!(
            "watch: {started:?}; paired again {:.1} s after the kill, {} Backup, {} Master, 2 s later still",
            back.as_secs_f64(),
            names.ns("vr"),
            names.ns("vr2")
        ))
    } else {
        Err(format!(
            "haStatus {seen:?} {:.0} s after the kill; the watch said:\n{said}",
            back.as_secs_f64()
        ))
    }
}

/// Namespace mode: the first half made again; it must come up Backup and
/// both must hold their roles for 2 s (no preemption flap).
fn rejoin(names: &Names, bin: &std::path::Path, spec: &RouterSpec) -> Result<String, String> {
    let (n2, bin, spec) = (names.clone(), PathBuf::from(bin), spec.clone());
    // Watched all along the re-creation (bootstrap, resync, election): the
    // new half must never have a shared address on a link that is up.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, ns) = (stop.clone(), names.ns("vr"));
        std::thread::spawn(move || {
            let shared = [VR_PUB_IP, VIP_PF, VIP_EIP, VIP_LB, HA_VIP, "192.168.100.1"];
            while !stop.load(Ordering::Relaxed) {
                // `show up`: only links that are up.
                let up =
                    sh(&format!("ip -n {ns} -o -4 addr show up 2>/dev/null")).unwrap_or_default();
                for line in up.lines() {
                    if let Some(ip) = shared.iter().find(|ip| line.contains(&format!(" {ip}/"))) {
                        return Some(format!("{ip} up: {}", line.trim()));
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        })
    };
    let made = in_netns(&names.ns("mn"), async move || {
        recreate_half(n2, bin, 0, spec).await
    });
    stop.store(true, Ordering::Relaxed);
    let held = watcher.join().unwrap_or(None);
    let made = made.map_err(|e| e.to_string())??;
    if let Some(seen) = held {
        return Err(format!(
            "{made}; while it came back the re-created half held a shared address: {seen}"
        ));
    }
    let want = ["Backup", "Master"];
    let n2 = names.clone();
    let seen = in_netns(&names.ns("mn"), async move || {
        let t0 = Instant::now();
        let mut seen = pair_status(n2.clone()).await;
        while seen != want && t0.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            seen = pair_status(n2.clone()).await;
        }
        if seen == want {
            tokio::time::sleep(Duration::from_secs(2)).await;
            seen = pair_status(n2.clone()).await;
        }
        seen
    })
    .map_err(|e| e.to_string())?;
    if seen == want {
        Ok(format!(
            "{made}; {} Backup, {} Master, 2 s later still",
            names.ns("vr"),
            names.ns("vr2")
        ))
    } else {
        Err(format!("{made}; haStatus {seen:?}, expected {want:?}"))
    }
}

/// The MACs in arping's replies ("... reply from IP [MAC] ..."), lower
/// case, each once.
fn answered_by(out: &str) -> Vec<String> {
    let mut macs: Vec<String> = out
        .lines()
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_lowercase()))
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// ARP for the public and the private address: only the master's MACs
/// answer.
fn one_holder(names: &Names) -> Result<String, String> {
    let mut seen = vec![];
    for (ns, ip, want) in [
        (names.ns("out"), VR_PUB_IP, PUB2_MAC),
        (names.ns("ten1"), "192.168.100.1", PRIV2_MAC),
    ] {
        let got = nsh(&ns, &format!("arping -c 3 -w 4 -I eth0 {ip}"))
            .map_err(|e| format!("arping {ip}: {e}"))?;
        let macs = answered_by(&got);
        if macs != [want] {
            return Err(format!("{ip} answered by {macs:?}, expected only {want}"));
        }
        seen.push(format!("{ip} by {want} only"));
    }
    Ok(seen.join(", "))
}
