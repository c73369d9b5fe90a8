//! Groundwork of issue 17 (router HA pair), with real packets.
//!
//! - The HA fixtures (`conformance/vr/ha/` and the served ones in `conformance/vr/`) parse as fixtures and their
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

#[path = "ha_spike/failover.rs"]
mod failover;
#[path = "ha_spike/pair.rs"]
mod pair;

use std::time::{Duration, Instant};

use common::objects_only::ObjectsOnly;
use common::vr_ha;
use serde::Deserialize;
use testbed::{Netns, TempDir, addr};
use vr_agent::plan::{conntrackd, keepalived};

use failover::{Run, median, one_run};
use pair::{ADVERT_CS, GW, OUTSIDE, VIP, build, spec, sync_spec};

const RUNS: usize = 5;

// ------------------------------------------------------------ fixtures

#[test]
fn ha_fixtures_parse_and_fit_the_wire_types() {
    // Served ones moved up to conformance/vr/, where the conformance test
    // sends them; the rest wait in ha/.
    let dir = testbed::conformance::fixture_dir("vr");
    let mut all = testbed::conformance::load_dir(&dir.join("ha")).unwrap();
    all.extend(testbed::conformance::load_dir(&dir).unwrap());
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
