//! One failover run: traffic through the pair (pings and one TCP
//! connection through SNAT), the master's host killed, and what the
//! traffic saw.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::pair::{OUTSIDE, Pair, build};

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

pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}
