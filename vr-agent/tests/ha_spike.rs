//! Groundwork of issue 17 (router HA pair), with real packets.
//!
//! - The HA fixtures (`conformance/vr/ha/`) parse as fixtures and their
//!   requests fit `common::vr_ha`.
//! - The configs `plan::keepalived` and `plan::conntrackd` render are
//!   accepted by the programs: `keepalived -t` (it also checks that the
//!   interfaces exist, so it runs in a namespace that has them) and
//!   `conntrackd -C` (it has no check-only mode: the daemon must start,
//!   answer `-s` on its socket and stop on `-k`).
//! - `failover_spike`: the measurement. Two router namespaces on a shared
//!   public and private switch, a heartbeat link through a third bridge,
//!   an outside
//!   namespace and a tenant. keepalived from our plan (VRRPv3 unicast,
//!   advert 10 cs, nopreempt) owns the public address 172.20.10.5 and the
//!   tenant gateway 192.168.100.1; each router SNATs the tenant with plain
//!   nft rules written here (not the engine's), drops `ct state invalid`
//!   and has `nf_conntrack_tcp_loose=0`, so a connection the backup has
//!   no entry for cannot be picked up mid-stream; conntrackd FTFW (from our
//!   plan) syncs entries over the heartbeat link. The tenant pings the
//!   outside at 100 pps through SNAT and keeps one TCP connection echoing
//!   8 bytes every 10 ms. Then every process in the master's namespace is
//!   SIGKILLed and its links are set down (the VM is gone). Measured per
//!   run: the longest silence between two ping replies (`ping -D`
//!   timestamps), the lost pings x 10 ms, the time from the kill until the
//!   backup holds the public address (polled with `ip`, a few ms of
//!   resolution), and whether the TCP connection kept flowing (and its
//!   longest stall). A control run without conntrackd follows. Asserted:
//!   every run's silence and VIP time under 1 s, the TCP connection kept in
//!   every run, and lost in the control.
//!
//! Figures on the machine that wrote this (kernel 6.18, keepalived 2.2.7,
//! conntrackd 1.4.7, 2 cores, advert 10 cs, 5 runs):
//! - ping silence: median 340 ms, worst 352 ms (RFC 5798 master-down
//!   3 x 100 ms + skew (256-100)/256 x 100 ms = 361 ms);
//! - lost pings x 10 ms: median 200 ms, worst 210 ms. This undercounts:
//!   iputils ping does not keep its 10 ms pace while no reply comes
//!   (21 sequence numbers in 340 ms), so the silence is the figure to use;
//! - VIP on the backup after: median 344 ms, worst 350 ms;
//! - TCP through SNAT: kept 5 of 5 (longest stall 423..503 ms: the
//!   retransmission after the address moved); without conntrackd lost (no
//!   reply for 5 s: the backup drops the mid-stream segments as invalid).
//!
//! Found on the way: the heartbeat must not be a bare veth between the
//! two routers (the dead peer takes the survivor's carrier down and
//! keepalived goes to FAULT, never MASTER); through a bridge it works, as
//! it does through a real switch. conntrackd runs in a network namespace
//! here (netlink conntrack is per namespace) when its lock file and socket
//! are per instance, which the plan makes the caller choose.
//!
//! Rerun: `cargo test -p vr-agent --test ha_spike -- --nocapture --test-threads 1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::objects_only::ObjectsOnly;
use common::vr_ha;
use serde::Deserialize;
use testbed::{Netns, Proc, TempDir, addr, bridge, enslave, route, veth};
use vr_agent::plan::{conntrackd, keepalived};

const VIP: &str = "172.20.10.5";
const GW: &str = "192.168.100.1";
const OUTSIDE: &str = "172.20.10.1";
const ADVERT_CS: u16 = 10;
const RUNS: usize = 5;

// ------------------------------------------------------------ fixtures

#[test]
fn ha_fixtures_parse_and_fit_the_wire_types() {
    let dir = testbed::conformance::fixture_dir("vr").join("ha");
    let all = testbed::conformance::load_dir(&dir).unwrap();
    let paths: Vec<&str> = all.iter().map(|f| f.path.as_str()).collect();
    for p in [
        vr_ha::ENABLE_HA_PATH,
        vr_ha::SYNC_HA_PATH,
        vr_ha::RESTART_KEEPALIVED_PATH,
        vr_ha::GARP_PATH,
        vr_ha::HA_STATUS_REPORT_PATH,
        "/ping",
    ] {
        assert!(paths.contains(&p), "no fixture for {p}: {paths:?}");
    }
    for f in &all {
        let body = f.request.clone();
        let ok = match f.path.as_str() {
            vr_ha::ENABLE_HA_PATH => vr_ha::EnableVyosHaCmd::deserialize(ObjectsOnly(body))
                .map(|c| assert!(c.heartbeat_nic.is_some() && !c.vips.is_empty())),
            vr_ha::SYNC_HA_PATH | vr_ha::RESTART_KEEPALIVED_PATH => {
                vr_ha::EmptyCmd::deserialize(ObjectsOnly(body)).map(drop)
            }
            vr_ha::HA_STATUS_REPORT_PATH => {
                vr_ha::HaStatusReport::deserialize(ObjectsOnly(body)).map(drop)
            }
            _ => Ok(()),
        };
        ok.unwrap_or_else(|e| panic!("{}: {e}", f.name));
        for step in f.setup.iter().filter(|s| s.path == vr_ha::ENABLE_HA_PATH) {
            vr_ha::EnableVyosHaCmd::deserialize(ObjectsOnly(step.body.clone())).unwrap();
        }
    }
}

// ------------------------------------------------------------ configs

fn spec(local: &str, peer: &str, priority: u8, notify: keepalived::Notify) -> keepalived::HaSpec {
    keepalived::HaSpec {
        router_id: "spike".into(),
        heartbeat: "eth0".parse().unwrap(),
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        vrid: 50,
        priority,
        advert_cs: ADVERT_CS,
        shared: vec![
            keepalived::SharedAddr {
                nic: "eth1".parse().unwrap(),
                addr: VIP.parse().unwrap(),
                prefix: 24,
            },
            keepalived::SharedAddr {
                nic: "eth2".parse().unwrap(),
                addr: GW.parse().unwrap(),
                prefix: 24,
            },
        ],
        notify,
        nopreempt: true,
    }
}

fn sync_spec(dir: &TempDir, tag: &str, local: &str, peer: &str) -> conntrackd::SyncSpec {
    conntrackd::SyncSpec {
        heartbeat: "eth0".parse().unwrap(),
        local: local.parse().unwrap(),
        peer: peer.parse().unwrap(),
        port: 0,
        socket: dir.path().join(format!("{tag}.ctl")).display().to_string(),
        lock_file: dir.path().join(format!("{tag}.lock")).display().to_string(),
        ignore: vec![],
    }
}

/// A namespace with eth0, eth1, eth2 (veth pairs to eth9x), eth0 with the
/// heartbeat address: what keepalived -t and conntrackd look for.
fn router_like() -> Netns {
    let ns = Netns::new("hacfg").unwrap();
    for i in 0..3 {
        ns.ip(&format!("link add eth{i} type veth peer name eth9{i}"))
            .unwrap();
        ns.ip(&format!("link set eth{i} up")).unwrap();
        ns.ip(&format!("link set eth9{i} up")).unwrap();
    }
    addr(&ns, "eth0", "10.0.0.5/24").unwrap();
    ns
}

#[test]
fn rendered_keepalived_conf_passes_keepalived_t() {
    testbed::require_privileged!();
    let ns = router_like();
    let dir = TempDir::new("hacfg").unwrap();
    let notify = keepalived::Notify {
        master: Some("/bin/true".into()),
        backup: Some("/bin/true".into()),
        fault: Some("/bin/true".into()),
        fifo: Some(dir.path().join("k.fifo").display().to_string()),
    };
    let conf = keepalived::render(&spec("10.0.0.5", "10.0.0.6", 100, notify)).unwrap();
    let file = dir.path().join("keepalived.conf");
    std::fs::write(&file, &conf).unwrap();
    let out = ns
        .command("keepalived", &["-t", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keepalived -t: {:?}\n{err}\n{conf}",
        out.status
    );
    // keepalived -t exits 0 on some warnings; none is expected here.
    assert!(
        !err.contains("WARNING") && !err.contains("Unknown"),
        "{err}\n{conf}"
    );

    // The check is real: a keyword it does not know fails it.
    std::fs::write(&file, conf.replace("nopreempt", "nopreemptx")).unwrap();
    let bad = ns
        .command("keepalived", &["-t", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "keepalived -t accepted an unknown keyword"
    );
}

#[test]
fn rendered_conntrackd_conf_starts_conntrackd() {
    testbed::require_privileged!();
    let ns = router_like();
    let dir = TempDir::new("hacfg").unwrap();
    let s = sync_spec(&dir, "c", "10.0.0.5", "10.0.0.6");
    let file = dir.path().join("conntrackd.conf");
    std::fs::write(&file, conntrackd::render(&s).unwrap()).unwrap();
    let f = file.to_str().unwrap();
    let mut d = ns.spawn("conntrackd", &["-C", f]).unwrap();
    let up = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        ns.command("conntrackd", &["-C", f, "-s"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(up, "conntrackd did not answer -s: {}", d.log());
    assert!(d.is_running(), "{}", d.log());
    ns.exec("conntrackd", &["-C", f, "-k"]).unwrap();
    let down = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(50), || {
        !d.is_running()
    });
    assert!(down, "conntrackd ignored -k: {}", d.log());

    // A syntax error makes it exit at once, with the line.
    std::fs::write(&file, "Sync {\n  Mode FTFW {\n").unwrap();
    let out = ns.command("conntrackd", &["-C", f]).output().unwrap();
    assert!(!out.status.success());
}

// ------------------------------------------------------------ the spike

/// The pair and its neighbours; dropping it removes every namespace.
struct Pair {
    routers: [Netns; 2],
    out: Netns,
    ten: Netns,
    sw: Netns,
    dir: TempDir,
    procs: Vec<Proc>,
}

const HB: [&str; 2] = ["10.0.0.5", "10.0.0.6"];

fn build() -> Pair {
    let sw = Netns::new("hasw").unwrap();
    let routers = [Netns::new("har1").unwrap(), Netns::new("har2").unwrap()];
    let out = Netns::new("haout").unwrap();
    let ten = Netns::new("haten").unwrap();
    bridge(&sw, "pub").unwrap();
    bridge(&sw, "priv").unwrap();
    for (i, r) in routers.iter().enumerate() {
        veth(r, "eth1", &sw, &format!("p{i}")).unwrap();
        enslave(&sw, &format!("p{i}"), "pub").unwrap();
        veth(r, "eth2", &sw, &format!("q{i}")).unwrap();
        enslave(&sw, &format!("q{i}"), "priv").unwrap();
        r.sysctl("net.ipv4.ip_forward", "1").unwrap();
        r.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
            .unwrap();
        // SNAT and the usual drop of what conntrack cannot place.
        let rules = r#"
table ip spike {
    chain c_forward {
        type filter hook forward priority 0;
        ct state invalid drop
    }
    chain c_post {
        type nat hook postrouting priority 100;
        oifname "eth1" ip saddr 192.168.100.0/24 snat to 172.20.10.5
    }
}
"#;
        let mut nft = r.command("nft", &["-f", "-"]);
        nft.stdin(std::process::Stdio::piped());
        let mut child = nft.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft in router {i}");
    }
    // The heartbeat link through a switch too: a dead peer must not take
    // the survivor's carrier down (keepalived enters FAULT on that).
    bridge(&sw, "hb").unwrap();
    for (i, r) in routers.iter().enumerate() {
        veth(r, "eth0", &sw, &format!("h{i}")).unwrap();
        enslave(&sw, &format!("h{i}"), "hb").unwrap();
    }
    addr(&routers[0], "eth0", "10.0.0.5/24").unwrap();
    addr(&routers[1], "eth0", "10.0.0.6/24").unwrap();
    veth(&out, "eth0", &sw, "po").unwrap();
    enslave(&sw, "po", "pub").unwrap();
    addr(&out, "eth0", "172.20.10.1/24").unwrap();
    veth(&ten, "eth0", &sw, "qt").unwrap();
    enslave(&sw, "qt", "priv").unwrap();
    addr(&ten, "eth0", "192.168.100.10/24").unwrap();
    route(&ten, "default via 192.168.100.1").unwrap();
    Pair {
        routers,
        out,
        ten,
        sw,
        dir: TempDir::new("ha").unwrap(),
        procs: vec![],
    }
}

impl Pair {
    fn start_keepalived(&mut self, i: usize, priority: u8) {
        let conf =
            keepalived::render(&spec(HB[i], HB[1 - i], priority, Default::default())).unwrap();
        let d = self.dir.path();
        let file = d.join(format!("keepalived{i}.conf"));
        std::fs::write(&file, conf).unwrap();
        let pid = |k: &str| d.join(format!("{k}{i}.pid")).display().to_string();
        let p = self.routers[i]
            .spawn(
                "keepalived",
                &[
                    "--dont-fork",
                    "--log-console",
                    "--vrrp",
                    "-f",
                    file.to_str().unwrap(),
                    "-p",
                    &pid("k"),
                    "-r",
                    &pid("v"),
                ],
            )
            .unwrap();
        self.procs.push(p);
    }

    fn start_conntrackd(&mut self, i: usize) {
        let s = sync_spec(&self.dir, &format!("c{i}"), HB[i], HB[1 - i]);
        let file = self.dir.path().join(format!("conntrackd{i}.conf"));
        std::fs::write(&file, conntrackd::render(&s).unwrap()).unwrap();
        let p = self.routers[i]
            .spawn("conntrackd", &["-C", file.to_str().unwrap()])
            .unwrap();
        self.procs.push(p);
    }

    fn holds_vip(&self, i: usize) -> bool {
        self.routers[i]
            .ip("-4 -o addr show dev eth1")
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/")))
            .unwrap_or(false)
    }

    /// The router's host is gone: every process in it killed, links down.
    fn kill(&self, i: usize) {
        let ns = self.routers[i].name();
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                nix::sys::signal::SIGKILL,
            );
        }
        for l in ["eth0", "eth1", "eth2"] {
            let _ = self.routers[i].ip(&format!("link set {l} down"));
        }
    }
}

/// One TCP connection tenant -> outside through SNAT, 8 bytes each way
/// every 10 ms; counts round trips and remembers the first error.
struct Stream {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<(u64, Option<String>, Vec<Instant>)>,
    _server: std::thread::JoinHandle<()>,
}

fn stream(p: &Pair) -> Stream {
    let listener = p.out.run(|| TcpListener::bind((OUTSIDE, 9000)).unwrap());
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut b = [0u8; 8];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        }
    });
    let mut c = p
        .ten
        .run(|| {
            TcpStream::connect_timeout(
                &format!("{OUTSIDE}:9000").parse().unwrap(),
                Duration::from_secs(2),
            )
        })
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_nodelay(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let worker = std::thread::spawn(move || {
        let (mut n, mut when) = (0u64, vec![]);
        let mut b = [0u8; 8];
        while !st.load(Ordering::Relaxed) {
            let r = c
                .write_all(&n.to_be_bytes())
                .and_then(|_| c.read_exact(&mut b));
            if let Err(e) = r {
                return (n, Some(e.to_string()), when);
            }
            if u64::from_be_bytes(b) != n {
                return (n, Some(format!("echo {b:?} for {n}")), when);
            }
            n += 1;
            when.push(Instant::now());
            std::thread::sleep(Duration::from_millis(10));
        }
        (n, None, when)
    });
    Stream {
        stop,
        worker,
        _server: server,
    }
}

#[derive(Debug)]
struct Run {
    /// Lost pings x 10 ms.
    gap_ms: u64,
    /// Longest time between two ping replies.
    silence_ms: u64,
    /// Largest step of icmp_seq between two replies (1 = none lost).
    seq_jump: u64,
    /// Longest time between two TCP round trips (10 ms when nothing stalls).
    tcp_stall_ms: u64,
    vip_ms: u64,
    tcp_ok: bool,
    tcp_note: String,
}

fn one_run(with_conntrackd: bool) -> Run {
    let mut p = build();
    if with_conntrackd {
        p.start_conntrackd(0);
        p.start_conntrackd(1);
    }
    p.start_keepalived(0, 110);
    let up = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        p.holds_vip(0)
    });
    assert!(
        up,
        "router 0 never became master: {}",
        p.procs.last().unwrap().log()
    );
    p.start_keepalived(1, 100);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!p.holds_vip(1), "both routers hold the VIP");
    // The outside's and the tenant's ARP entries point at router 0 now.
    assert!(
        testbed::ping(&p.ten, OUTSIDE, 1),
        "no path through router 0"
    );

    let tcp = stream(&p);
    let ping = p
        .ten
        .spawn(
            "ping",
            &["-n", "-D", "-i", "0.01", "-W", "1", "-c", "300", OUTSIDE],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    p.kill(0);
    let held = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
        p.holds_vip(1)
    });
    let vip_ms = t0.elapsed().as_millis() as u64;
    assert!(
        held,
        "the backup never took the VIP: {}",
        p.procs[p.procs.len() - 1].log()
    );
    let mut ping = ping;
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        !ping.is_running()
    });
    let log = ping.log();
    // "300 packets transmitted, 271 received, ..."
    let stats = log
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping said: {log}"));
    let nums: Vec<u64> = stats
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let lost = nums[0] - nums[1];
    // "[1764652000.123456] 64 bytes from ...: icmp_seq=17 ...": the longest
    // silence between two replies, by the clock and by sequence numbers.
    let replies: Vec<(f64, u64)> = log
        .lines()
        .filter_map(|l| {
            let t = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((t, seq))
        })
        .collect();
    let silence_ms = replies
        .windows(2)
        .map(|w| ((w[1].0 - w[0].0) * 1000.0) as u64)
        .max()
        .unwrap_or(0);
    let seq_jump = replies
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or(0);

    std::thread::sleep(Duration::from_millis(300));
    tcp.stop.store(true, Ordering::Relaxed);
    let (n, err, when) = tcp.worker.join().unwrap();
    let after = when.iter().filter(|w| **w > t0).count();
    let tcp_stall_ms = when
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .max()
        .unwrap_or(0);
    let tcp_ok = err.is_none() && after > 10;
    Run {
        gap_ms: lost * 10,
        silence_ms,
        seq_jump,
        tcp_stall_ms,
        vip_ms,
        tcp_ok,
        tcp_note: format!(
            "{n} round trips, {after} after the kill{}",
            err.map(|e| format!(", error: {e}")).unwrap_or_default()
        ),
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn failover_spike() {
    testbed::require_privileged!();
    let runs: Vec<Run> = (0..RUNS).map(|_| one_run(true)).collect();
    for (i, r) in runs.iter().enumerate() {
        eprintln!(
            "run {i}: ping gap {} ms (longest silence {} ms, seq jump {}), VIP on the backup after {} ms, TCP {} (longest stall {} ms): {}",
            r.gap_ms,
            r.silence_ms,
            r.seq_jump,
            r.vip_ms,
            if r.tcp_ok { "kept" } else { "LOST" },
            r.tcp_stall_ms,
            r.tcp_note
        );
    }
    let gaps: Vec<u64> = runs.iter().map(|r| r.gap_ms).collect();
    let vips: Vec<u64> = runs.iter().map(|r| r.vip_ms).collect();
    let silences: Vec<u64> = runs.iter().map(|r| r.silence_ms).collect();
    eprintln!(
        "ping silence ms: median {} worst {}; lost x 10 ms: median {} worst {}; VIP on backup after ms: median {} worst {}; TCP kept {}/{}",
        median(silences.clone()),
        silences.iter().max().unwrap(),
        median(gaps.clone()),
        gaps.iter().max().unwrap(),
        median(vips.clone()),
        vips.iter().max().unwrap(),
        runs.iter().filter(|r| r.tcp_ok).count(),
        runs.len()
    );
    // The control: without conntrackd the backup has no entry for the
    // connection and (tcp_loose=0, invalid dropped) cannot pick it up.
    let control = one_run(false);
    eprintln!("control without conntrackd: {control:?}");
    for r in &runs {
        assert!(r.silence_ms < 1000, "{runs:?}");
        assert!(r.vip_ms < 1000, "{runs:?}");
        assert!(r.tcp_ok, "{runs:?}");
    }
    assert!(
        !control.tcp_ok,
        "without conntrackd the connection survived too, so the runs above prove nothing about it: {control:?}"
    );
}

/// Two facts the engine's supervisor must handle, measured here:
/// - keepalived killed with SIGKILL on a router that is otherwise alive
///   leaves the shared addresses on its NICs (it gets no chance to remove
///   them): the backup takes over and both hold them, so the agent must
///   delete them itself when keepalived exits;
/// - the old master, back with keepalived restarted, stays backup
///   (`nopreempt`) although its priority is higher.
#[test]
fn kill9_leaves_addresses_and_the_old_master_returns_as_backup() {
    testbed::require_privileged!();
    let mut p = build();
    p.start_keepalived(0, 110);
    assert!(testbed::wait_until(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || p.holds_vip(0)
    ));
    p.start_keepalived(1, 100);
    std::thread::sleep(Duration::from_millis(500));
    // procs[0] is router 0's keepalived: SIGKILL its process group only.
    p.procs[0].kill();
    assert!(
        testbed::wait_until(Duration::from_secs(3), Duration::from_millis(5), || p
            .holds_vip(1)),
        "the backup never took over: {}",
        p.procs[1].log()
    );
    assert!(
        p.holds_vip(0),
        "keepalived -9 removed its addresses after all; the supervisor need not"
    );
    // The agent's cleanup, then keepalived again on the old master.
    p.routers[0]
        .ip(&format!("addr del {VIP}/24 dev eth1"))
        .unwrap();
    p.routers[0]
        .ip(&format!("addr del {GW}/24 dev eth2"))
        .unwrap();
    p.start_keepalived(0, 110);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !p.holds_vip(0) && p.holds_vip(1),
        "the old master preempted: {}",
        p.procs.last().unwrap().log()
    );
    assert!(
        testbed::ping(&p.ten, OUTSIDE, 1),
        "no path through the new master"
    );
}

/// Split brain and its end: the heartbeat cut (the switch port of router
/// 1's heartbeat NIC down, carrier kept) makes both routers master; after
/// the heal, the time until only one holds the public address is measured
/// (5 runs, printed) and asserted under one advert interval (issue 17):
/// keepalived demotes the lower priority on the first advert it receives.
/// Measured here: 15..25 ms (median 21) with advert 10 cs.
#[test]
fn heartbeat_cut_and_healed_leaves_one_master() {
    testbed::require_privileged!();
    let mut heals = vec![];
    for _ in 0..RUNS {
        let mut p = build();
        p.start_keepalived(0, 110);
        assert!(testbed::wait_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || p.holds_vip(0)
        ));
        p.start_keepalived(1, 100);
        std::thread::sleep(Duration::from_millis(500));
        // Drop VRRP between the two on the switch, links stay up.
        p.sw
            .sh("nft add table bridge cut; nft add chain bridge cut f '{ type filter hook forward priority 0; }'; nft add rule bridge cut f iifname h0 drop; nft add rule bridge cut f iifname h1 drop")
            .unwrap();
        assert!(
            testbed::wait_until(Duration::from_secs(3), Duration::from_millis(5), || p
                .holds_vip(1)),
            "no split brain after the cut: {}",
            p.procs[1].log()
        );
        assert!(p.holds_vip(0));
        p.sw.sh("nft delete table bridge cut").unwrap();
        let t0 = Instant::now();
        let one = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(2), || {
            p.holds_vip(0) != p.holds_vip(1)
        });
        let ms = t0.elapsed().as_millis() as u64;
        assert!(one, "still two masters 3 s after the heal");
        heals.push(ms);
    }
    eprintln!(
        "one master after the heal, ms: {heals:?}, median {} worst {}",
        median(heals.clone()),
        heals.iter().max().unwrap()
    );
    assert!(
        heals.iter().all(|ms| *ms < u64::from(ADVERT_CS) * 10),
        "{heals:?}"
    );
}
