//! Traffic generators: a server that accepts and closes, a sink that reads
//! until EOF, and clients measuring connection rate and one-stream
//! throughput. Everything runs inside our own namespaces.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::Netns;

/// What a server does with each accepted connection.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Close at once (the server closes first, so TIME_WAIT stays here and
    /// the client's port is free again at once).
    AcceptClose,
    /// Read until EOF, then close.
    Sink,
}

/// A blocking accept loop on its own thread inside `ns`; Drop stops it by
/// setting a flag and connecting once to wake `accept`.
pub struct Server<'a> {
    ns: &'a Netns,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<'a> Server<'a> {
    pub fn start(ns: &'a Netns, addr: &str, mode: Mode) -> Result<Server<'a>> {
        let listener = ns
            .run(|| TcpListener::bind(addr))
            .with_context(|| format!("bind {addr} in {}", ns.name()))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            pin();
            let mut buf = vec![0u8; 256 * 1024];
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                if let Mode::Sink = mode {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                }
            }
        });
        Ok(Server {
            ns,
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let addr = self.addr;
        let _ = self.ns.run(|| {
            let local = SocketAddr::new([127, 0, 0, 1].into(), addr.port());
            TcpStream::connect_timeout(&local, Duration::from_secs(1))
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens and closes connections to `target` from `ns` for `duration` (or
/// `max` connections), one at a time; returns (connections/s, failures).
pub fn conn_rate(ns: &Netns, target: &str, duration: Duration, max: u64) -> Result<(f64, u64)> {
    let target: SocketAddr = target.parse()?;
    ns.run(|| -> Result<(f64, u64)> {
        pin();
        let t = Instant::now();
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut byte = [0u8; 1];
        while t.elapsed() < duration && ok < max {
            match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(mut s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    // Wait for the server's FIN.
                    match s.read(&mut byte) {
                        Ok(0) => ok += 1,
                        _ => failed += 1,
                    }
                }
                Err(_) => failed += 1,
            }
            if failed > 100 {
                bail!("more than 100 failed connections to {target} ({ok} worked)");
            }
        }
        if ok == 0 {
            bail!("no connection to {target} worked");
        }
        Ok((ok as f64 / t.elapsed().as_secs_f64(), failed))
    })
}

/// Sends one TCP stream from `ns` to `target` (a [`Mode::Sink`]) for
/// `duration`, then waits until the sink has read everything; MB/s (10^6).
pub fn throughput(ns: &Netns, target: &str, duration: Duration) -> Result<f64> {
    let target: SocketAddr = target.parse()?;
    ns.run(|| -> Result<f64> {
        pin();
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
            .with_context(|| format!("connect {target}"))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let chunk = vec![0x5au8; 128 * 1024];
        let t = Instant::now();
        let mut sent = 0u64;
        while t.elapsed() < duration {
            s.write_all(&chunk)?;
            sent += chunk.len() as u64;
        }
        s.shutdown(Shutdown::Write)?;
        let mut rest = [0u8; 16];
        // The sink closes after reading our EOF: everything arrived.
        while s.read(&mut rest)? > 0 {}
        Ok(sent as f64 / t.elapsed().as_secs_f64() / 1e6)
    })
}

/// Runs the calling thread on CPU 0 only. Clients and servers share that
/// core (and the softirq work veth does on the sending core), which makes
/// the runs far less noisy than letting the scheduler move them around.
fn pin() {
    let mut set = nix::sched::CpuSet::new();
    if set.set(0).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}
