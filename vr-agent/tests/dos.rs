//! Denial of service (issue 14), against the real vr-agent in its namespace
//! lab (privileged): slow headers, idle sockets past the fd limit, huge
//! bodies and undeliverable callbacks leave `/echo` answering within 1 s and
//! the agent's fds and memory bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use testbed::dos;

fn agent_addr() -> SocketAddr {
    "10.0.0.25:7272".parse().unwrap()
}

fn agent_pid(lab: &Lab) -> u32 {
    lab.agent.as_ref().unwrap().pid()
}

/// `/echo` answered 200 within 1 s on a fresh connection.
fn echo_is_prompt(lab: &Lab, when: &str) {
    let got = lab
        .ctl
        .run(|| dos::post_timed(agent_addr(), "/echo", "{}", Duration::from_secs(3)));
    match got {
        Ok((200, t)) if t < Duration::from_secs(1) => {}
        other => panic!(
            "/echo {when}: {other:?} (want 200 within 1 s)\n{}",
            lab.log()
        ),
    }
}

#[test]
fn slowloris_connections_are_closed_and_echo_answers() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let mut slow = lab
        .ctl
        .run(|| dos::Slowloris::open(agent_addr(), "/echo", 200))
        .unwrap();
    let start = Instant::now();
    // The header-read timeout is 10 s; 14 s leaves room for a loaded box.
    while slow.drip() > 0 && start.elapsed() < Duration::from_secs(14) {
        echo_is_prompt(&lab, "during the slowloris");
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!(
        "slowloris: {} open after {:?}",
        slow.open_count(),
        start.elapsed()
    );
    assert_eq!(
        slow.open_count(),
        0,
        "{} of 200 slowloris connections still open after {:?}",
        slow.open_count(),
        start.elapsed()
    );
    echo_is_prompt(&lab, "after the slowloris");
}

#[test]
fn idle_sockets_past_the_fd_limit_leave_echo_answering() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let pid = agent_pid(&lab);
    // The VR image's limit (systemd's default soft limit).
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=1024:1024"])
        .output()
        .unwrap();
    assert!(out.status.success(), "prlimit: {out:?}");
    let idle = lab
        .ctl
        .run(|| dos::idle_connections(agent_addr(), 1100))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    echo_is_prompt(&lab, "with 1100 idle connections open");
    let fds = dos::fd_count(pid);
    eprintln!("1100 idle connections: the agent holds {fds} fds");
    assert!(fds < 1024, "agent holds {fds} fds");
    drop(idle);
}

#[test]
fn a_huge_content_length_is_refused_before_the_body() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    for path in ["/syncportforwarding", "/echo", "/configurenic"] {
        let answer = lab.ctl.run(|| {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(agent_addr()).unwrap();
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Length: 1000000000\r\n\r\n{{"
            )
            .unwrap();
            dos::read_answer(&mut s, Duration::from_secs(1))
        });
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{path} with a 1 GB Content-Length answered within 1 s: {answer:?}"
        );
        assert!(
            answer.contains(&format!("{path} takes at most")),
            "the 413 names the cap: {answer:?}"
        );
    }
    echo_is_prompt(&lab, "after the huge bodies");
}

#[test]
fn big_bodies_keep_the_agent_small() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let pid = agent_pid(&lab);
    let before = dos::status_kb(pid, "VmRSS");
    let mut answers = Vec::new();
    for chunked in [false, true] {
        let got: Vec<String> = lab.ctl.run(|| {
            let senders: Vec<_> = (0..8)
                .map(|_| {
                    std::thread::spawn(move || {
                        dos::post_big(agent_addr(), "/syncportforwarding", 60_000_000, chunked)
                            .unwrap_or_else(|e| format!("error: {e}"))
                    })
                })
                .collect();
            senders.into_iter().map(|h| h.join().unwrap()).collect()
        });
        answers.extend(got.into_iter().map(|a| (chunked, a)));
        echo_is_prompt(&lab, "after the big bodies");
    }
    let peak = dos::status_kb(pid, "VmHWM");
    eprintln!("agent RSS before {before} kB, peak {peak} kB");
    assert!(
        peak < 150 * 1024,
        "8 concurrent 60 MB bodies pushed the agent's RSS to {peak} kB (before: {before} kB)"
    );
    for (chunked, a) in &answers {
        // Empty: the connection was reset before the 413 could be read.
        assert!(
            a.is_empty() || a.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {a:.200}"
        );
    }
}

#[test]
fn undeliverable_callbacks_hold_few_fds() {
    testbed::require_privileged!();
    let lab = Lab::new().unwrap();
    let pid = agent_pid(&lab);
    // The controller's port 9 swallows SYNs: every callback connect hangs.
    lab.ctl
        .sh("nft add table inet dos && nft add chain inet dos in '{ type filter hook input priority 0; }' && nft add rule inet dos in tcp dport 9 drop")
        .unwrap();
    let ok = lab
        .ctl
        .run(|| dos::async_posts(agent_addr(), "/echo", "{}", "http://10.0.0.2:9/cb", 3000, 4))
        .unwrap();
    assert_eq!(ok, 3000, "async /echo answered 200");
    let mut most = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        most = most.max(dos::fd_count(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("3000 undeliverable callbacks: at most {most} fds");
    assert!(
        most < 300,
        "3000 undeliverable callbacks: the agent held {most} fds"
    );
    echo_is_prompt(&lab, "with 3000 callbacks pending");
}
