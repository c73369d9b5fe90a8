//! One failover run: traffic through the pair (pings and one TCP
//! connection through SNAT), the master's host killed, and what the
//! traffic saw.

use std::time::{Duration, Instant};

use testbed::failover::{echo_stream, ping_replies};

use super::pair::{OUTSIDE, build};

#[derive(Debug)]
pub struct Run {
    /// Lost pings x 10 ms.
    pub gap_ms: u64,
    /// Longest time between two ping replies.
    pub silence_ms: u64,
    /// Largest step of icmp_seq between two replies (1 = none lost).
    pub seq_jump: u64,
    /// Longest time between two TCP round trips (10 ms when nothing stalls).
    pub tcp_stall_ms: u64,
    pub vip_ms: u64,
    pub tcp_ok: bool,
    pub tcp_note: String,
}

pub fn one_run(with_conntrackd: bool) -> Run {
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

    let tcp = echo_stream(
        &p.ten,
        &format!("{OUTSIDE}:9000"),
        &p.out,
        &format!("{OUTSIDE}:9000"),
    )
    .unwrap();
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
    let replies = ping_replies(&log);
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
    let tcp = tcp.finish();
    let (n, err, after) = (tcp.round_trips, tcp.error.clone(), tcp.after(t0));
    let tcp_stall_ms = tcp.longest_stall_ms();
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

pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}
