//! What traffic sees when a router is lost: one TCP connection echoing
//! through it, the ping log's silences, and a router namespace's processes
//! killed as if its host were gone. Shared by the HA pair's tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::netns::{Netns, run_in};

/// One TCP connection from `client` to `to`, accepted on `listen` in
/// `server` (the same address, or the one a port forward maps `to` to),
/// 8 bytes each way every 10 ms, until [`EchoStream::finish`].
pub struct EchoStream {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<EchoReport>,
    _server: std::thread::JoinHandle<()>,
}

#[derive(Debug)]
pub struct EchoReport {
    pub round_trips: u64,
    /// The first error (a reset, a 5 s stall, a wrong echo), if any.
    pub error: Option<String>,
    /// When each round trip completed.
    pub replies: Vec<Instant>,
}

impl EchoReport {
    pub fn after(&self, t: Instant) -> usize {
        self.replies.iter().filter(|w| **w > t).count()
    }

    /// The longest time between two round trips (10 ms when nothing stalls).
    pub fn longest_stall_ms(&self) -> u64 {
        self.replies
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis() as u64)
            .max()
            .unwrap_or(0)
    }
}

pub fn echo_stream(client: &Netns, to: &str, server: &Netns, listen: &str) -> Result<EchoStream> {
    echo_stream_between(client.name(), to, server.name(), listen)
}

/// [`echo_stream`] between namespaces known by name (the lab's).
pub fn echo_stream_between(
    client: &str,
    to: &str,
    server: &str,
    listen: &str,
) -> Result<EchoStream> {
    let listener = run_in(server, || TcpListener::bind(listen))
        .with_context(|| format!("listen on {listen} in {server}"))?;
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut b = [0u8; 8];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        }
    });
    let addr = to.parse().with_context(|| format!("address {to:?}"))?;
    let mut c = run_in(client, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    })
    .with_context(|| format!("connect to {to} from {client}"))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.set_nodelay(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let worker = std::thread::spawn(move || {
        let mut r = EchoReport {
            round_trips: 0,
            error: None,
            replies: vec![],
        };
        let mut b = [0u8; 8];
        while !st.load(Ordering::Relaxed) {
            let n = r.round_trips;
            let sent = c
                .write_all(&n.to_be_bytes())
                .and_then(|_| c.read_exact(&mut b));
            if let Err(e) = sent {
                r.error = Some(e.to_string());
                return r;
            }
            if u64::from_be_bytes(b) != n {
                r.error = Some(format!("echo {b:?} for {n}"));
                return r;
            }
            r.round_trips += 1;
            r.replies.push(Instant::now());
            std::thread::sleep(Duration::from_millis(10));
        }
        r
    });
    Ok(EchoStream {
        stop,
        worker,
        _server: server,
    })
}

impl EchoStream {
    pub fn finish(self) -> EchoReport {
        self.stop.store(true, Ordering::Relaxed);
        self.worker.join().expect("echo worker panicked")
    }
}

/// `ping -D` replies as (timestamp s, icmp_seq).
pub fn ping_replies(log: &str) -> Vec<(f64, u64)> {
    log.lines()
        .filter(|l| l.contains("bytes from"))
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
        .collect()
}

/// The longest silence of `ping -D`: between two replies, or after the
/// last one when requests went on unanswered (from ping's summary, "N
/// packets transmitted": each missing request counts as the average time
/// per request of the replies seen); `u64::MAX` with fewer than two
/// replies. Without the tail a backup that never took over would leave
/// only the replies before the kill, and a short silence.
pub fn longest_silence_ms(log: &str) -> u64 {
    let replies = ping_replies(log);
    let between = replies
        .windows(2)
        .map(|w| ((w[1].0 - w[0].0) * 1000.0).round() as u64)
        .max();
    let Some(between) = between else {
        return u64::MAX;
    };
    let (first, last) = (replies[0], replies[replies.len() - 1]);
    let sent = log.lines().find_map(|l| {
        l.split(" packets transmitted")
            .next()?
            .trim()
            .parse::<u64>()
            .ok()
    });
    let tail = match sent {
        Some(sent) if sent > last.1 && last.1 > first.1 => {
            let per_request = (last.0 - first.0) * 1000.0 / (last.1 - first.1) as f64;
            ((sent - last.1) as f64 * per_request).round() as u64
        }
        _ => 0,
    };
    between.max(tail)
}

/// A router's host is gone: every process in `ns` SIGKILLed, then each of
/// `links` set down.
pub fn kill_host(ns: &Netns, links: &[&str]) {
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "pids", ns.name()])
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
    }
    for l in links {
        let _ = ns.ip(&format!("link set {l} down"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_come_from_the_timestamps() {
        let log = "PING 1.2.3.4\n[100.000] 64 bytes from 1.2.3.4: icmp_seq=1 ttl=64\n\
                   [100.010] 64 bytes from 1.2.3.4: icmp_seq=2 ttl=64\n\
                   [100.380] 64 bytes from 1.2.3.4: icmp_seq=24 ttl=64\n";
        assert_eq!(ping_replies(log).len(), 3);
        assert_eq!(longest_silence_ms(log), 370);
        assert_eq!(longest_silence_ms("nothing"), u64::MAX);
        // Replies stop: the unanswered requests after the last are silence.
        let stopped = "[100.000] 64 bytes from 1.2.3.4: icmp_seq=1 ttl=64\n\
                       [100.010] 64 bytes from 1.2.3.4: icmp_seq=2 ttl=64\n\
                       [100.020] 64 bytes from 1.2.3.4: icmp_seq=3 ttl=64\n\
                       --- 1.2.3.4 ping statistics ---\n\
                       300 packets transmitted, 3 received, 99% packet loss, time 3000ms\n";
        assert_eq!(longest_silence_ms(stopped), 2970);
        let all =
            format!("{log}--- 1.2.3.4 ping statistics ---\n24 packets transmitted, 3 received\n");
        assert_eq!(longest_silence_ms(&all), 370);
    }
}
