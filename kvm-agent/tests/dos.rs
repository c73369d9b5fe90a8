//! Denial of service (issue 14), against the real kvm-agent binary in a
//! host namespace (privileged), driven from inside it over loopback: slow
//! headers, idle sockets past the fd limit, huge bodies and undeliverable
//! callbacks leave `/host/echo` answering within 1 s and the agent's fds and
//! memory bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testbed::{Netns, Proc, TempDir, dos, http_post};

fn agent_addr() -> SocketAddr {
    "127.0.0.1:7070".parse().unwrap()
}

struct Host {
    agent: Proc,
    _state: TempDir,
    ns: Netns,
}

impl Host {
    fn start() -> Host {
        let ns = Netns::new("kvmdos").unwrap();
        let state = TempDir::new("kvmdos-state").unwrap();
        let agent = ns
            .spawn(
                env!("CARGO_BIN_EXE_kvm-agent"),
                &[
                    "--listen",
                    "127.0.0.1:7070",
                    "--state-dir",
                    state.path().to_str().unwrap(),
                    "--libvirt-uri",
                    "test:///default",
                    "--allow-from",
                    "127.0.0.1",
                ],
            )
            .unwrap();
        let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            http_post(&ns, "http://127.0.0.1:7070/host/echo", "", &[]).is_ok_and(|(s, _)| s == 200)
        });
        assert!(up, "agent did not answer: {}", agent.log());
        Host {
            agent,
            _state: state,
            ns,
        }
    }

    fn pid(&self) -> u32 {
        self.agent.pid()
    }

    /// `/host/echo` answered 200 within 1 s on a fresh connection.
    fn echo_is_prompt(&self, when: &str) {
        let got = self
            .ns
            .run(|| dos::post_timed(agent_addr(), "/host/echo", "", Duration::from_secs(3)));
        match got {
            Ok((200, t)) if t < Duration::from_secs(1) => {}
            other => panic!(
                "/host/echo {when}: {other:?} (want 200 within 1 s)\n{}",
                self.agent.log()
            ),
        }
    }
}

#[test]
fn slowloris_connections_are_closed_and_echo_answers() {
    testbed::require_privileged!();
    let host = Host::start();
    let mut slow = host
        .ns
        .run(|| dos::Slowloris::open(agent_addr(), "/host/echo", 200))
        .unwrap();
    let start = Instant::now();
    while slow.drip() > 0 && start.elapsed() < Duration::from_secs(14) {
        host.echo_is_prompt("during the slowloris");
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
}

#[test]
fn idle_sockets_past_the_fd_limit_leave_echo_answering() {
    testbed::require_privileged!();
    let host = Host::start();
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &host.pid().to_string(), "--nofile=1024:1024"])
        .output()
        .unwrap();
    assert!(out.status.success(), "prlimit: {out:?}");
    let idle = host
        .ns
        .run(|| dos::idle_connections(agent_addr(), 1100))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    host.echo_is_prompt("with 1100 idle connections open");
    let fds = dos::fd_count(host.pid());
    eprintln!("1100 idle connections: the agent holds {fds} fds");
    assert!(fds < 1024, "agent holds {fds} fds");
    drop(idle);
}

#[test]
fn huge_bodies_are_refused_and_keep_the_agent_small() {
    testbed::require_privileged!();
    let host = Host::start();
    for path in ["/vm/start", "/host/echo", "/network/bridge/createbridge"] {
        let answer = host.ns.run(|| {
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
    }
    let mut answers = Vec::new();
    for chunked in [false, true] {
        let got: Vec<String> = host.ns.run(|| {
            let senders: Vec<_> = (0..8)
                .map(|_| {
                    std::thread::spawn(move || {
                        dos::post_big(agent_addr(), "/vm/start", 60_000_000, chunked)
                            .unwrap_or_else(|e| format!("error: {e}"))
                    })
                })
                .collect();
            senders.into_iter().map(|h| h.join().unwrap()).collect()
        });
        answers.extend(got);
        host.echo_is_prompt("after the big bodies");
    }
    let peak = dos::status_kb(host.pid(), "VmHWM");
    eprintln!("agent peak RSS {peak} kB");
    assert!(
        peak < 150 * 1024,
        "8 concurrent 60 MB bodies pushed the agent's RSS to {peak} kB"
    );
    for a in &answers {
        assert!(a.is_empty() || a.starts_with("HTTP/1.1 413"), "{a:.200}");
    }
}

#[test]
fn undeliverable_callbacks_hold_few_fds() {
    testbed::require_privileged!();
    let host = Host::start();
    // The controller's port 9 swallows SYNs: every callback connect hangs.
    host.ns
        .sh("nft add table inet dos && nft add chain inet dos in '{ type filter hook input priority 0; }' && nft add rule inet dos in tcp dport 9 drop")
        .unwrap();
    let ok = host
        .ns
        .run(|| {
            dos::async_posts(
                agent_addr(),
                "/host/ping",
                "{}",
                "http://127.0.0.1:9/cb",
                3000,
                4,
            )
        })
        .unwrap();
    assert_eq!(ok, 3000, "async /host/ping answered 200");
    let mut most = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        most = most.max(dos::fd_count(host.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("3000 undeliverable callbacks: at most {most} fds");
    assert!(
        most < 300,
        "3000 undeliverable callbacks: the agent held {most} fds"
    );
    host.echo_is_prompt("with 3000 callbacks pending");
}
