//! The `lb` area: `/lb/refresh` of 100 HTTP listeners x 10 backends
//! (reply time), haproxy and agent memory after it, and failed requests at
//! a paced 200 requests/s through the VIP while 20 refreshes change the
//! backends of the listener being served.
//!
//! Topology: [`Lab::with_backends`] with three backend guests
//! (192.168.100.11-13) behind a bridge; the client is in `pub`, the VIP
//! is on the VR's public NIC (on-link for `pub`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use testbed::Netns;

use crate::lab::{Lab, PUB_MAC};
use crate::report::{self, Section, Table};
use crate::stats::{max, mb, median, ms, percentile};

const VIP: &str = "172.20.10.100";
const BACKENDS: [&str; 3] = ["192.168.100.11", "192.168.100.12", "192.168.100.13"];
/// Step 1: listeners x backends, and how many times the refresh is timed.
const LISTENERS: u16 = 100;
const BACKENDS_PER_LISTENER: u8 = 10;
const BULK_RUNS: usize = 3;
const BULK_PORT: u16 = 10_000;
const REFRESH_BUDGET: Duration = Duration::from_secs(2);
/// Step 2: the load and the refreshes under it.
const RATE: u32 = 200;
const WORKERS: usize = 16;
const REQ_TIMEOUT: Duration = Duration::from_secs(2);
const RELOADS: usize = 20;
const SETTLE: Duration = Duration::from_secs(1);

pub fn run(agent: &std::path::Path) -> Result<Section> {
    let lab = Lab::with_backends(agent, BACKENDS.len())?;
    lab.base_config()?;
    lab.ok(
        "/createvip",
        &json!({"vips": [{"ip": VIP, "netmask": "255.255.0.0", "gateway": "172.20.0.1",
                          "ownerEthernetMac": PUB_MAC}]}),
    )?;
    let webs = lab
        .backends
        .iter()
        .enumerate()
        .map(|(i, ns)| Web::start(ns, "0.0.0.0:80", &format!("be{i}")))
        .collect::<Result<Vec<_>>>()?;

    // 1. 100 x 10 refresh, cold (haproxy starts) then two full changes.
    eprintln!(
        "lb: {LISTENERS} listeners x {BACKENDS_PER_LISTENER} backends, {BULK_RUNS} refreshes"
    );
    let mut bulk = Table::new(&format!(
        "`/lb/refresh` of {LISTENERS} HTTP listeners x {BACKENDS_PER_LISTENER} backends \
         (sync reply, from ctl)"
    ));
    let mut times = vec![];
    for run in 0..BULK_RUNS {
        let took = lab.ok("/lb/refresh", &bulk_body(10 * (run as u16 + 1)))?;
        let what = if run == 0 {
            "first (haproxy starts)"
        } else {
            "every listener's weight changed (reload)"
        };
        bulk.info(
            format!("run {}: {what}", run + 1),
            format!("{:.0} ms", ms(took)),
        );
        times.push(ms(took));
    }
    bulk.check(
        format!("worst of {BULK_RUNS}"),
        format!("{:.0} ms", max(&times)),
        format!("<= {} ms", REFRESH_BUDGET.as_millis()),
        max(&times) <= ms(REFRESH_BUDGET),
    );
    bulk.info(
        format!("median of {BULK_RUNS}"),
        format!("{:.0} ms", median(&times)),
    );
    let ss = lab.vr.sh(&format!("ss -Hltn src {VIP}"))?;
    let listening = ss.lines().count();
    bulk.check(
        format!("listening sockets on {VIP}"),
        listening.to_string(),
        LISTENERS.to_string(),
        listening == usize::from(LISTENERS),
    );

    // 3. Memory after step 1 (old workers given time to leave).
    let mut mem = Table::new(&format!(
        "Memory after step 1 ({LISTENERS} listeners x {BACKENDS_PER_LISTENER} backends)"
    ));
    let mut procs = haproxy_procs(&lab)?;
    let t = Instant::now();
    while procs.iter().filter(|p| !p.master).count() > 1 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        procs = haproxy_procs(&lab)?;
    }
    let master = procs
        .iter()
        .find(|p| p.master)
        .context("no haproxy master")?;
    let workers: Vec<&Haproxy> = procs.iter().filter(|p| !p.master).collect();
    let worker_kb: u64 = workers.iter().map(|p| p.rss_kb).sum();
    mem.info("haproxy master RSS", mb(master.rss_kb));
    mem.info(
        format!("haproxy worker RSS ({} worker)", workers.len()),
        mb(worker_kb),
    );
    mem.info(
        "haproxy total RSS (master + workers)",
        mb(master.rss_kb + worker_kb),
    );
    let (rss, hwm) = lab.agent_memory_kb()?;
    mem.info("vr-agent RSS", mb(rss));
    mem.info("vr-agent peak RSS (VmHWM)", mb(hwm));

    // 2. Hitless reloads under load, with only the served listener.
    lab.ok("/lb/delete", &bulk_body(0))?;
    let set_a = &BACKENDS[..2];
    let set_b = &BACKENDS[1..];
    lab.ok(
        "/lb/refresh",
        &json!({"lbs": [listener("web", 80, set_a, &[])]}),
    )?;
    let target: SocketAddr = format!("{VIP}:80").parse()?;
    let up = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        lab.public.run(|| get(target)).is_ok()
    });
    if !up {
        bail!("no HTTP answer through {target}:\n{}", lab.log());
    }
    eprintln!("lb: {RATE} requests/s while {RELOADS} refreshes change the backends");
    let load = Load::start(&lab.public, target)?;
    std::thread::sleep(SETTLE);
    let window = Instant::now();
    let mut refresh_ms = vec![];
    for i in 0..RELOADS {
        let set = if i % 2 == 0 { set_b } else { set_a };
        let took = lab.ok(
            "/lb/refresh",
            &json!({"lbs": [listener("web", 80, set, &[])]}),
        )?;
        refresh_ms.push(ms(took));
    }
    let window = window.elapsed();
    std::thread::sleep(SETTLE);
    let (samples, elapsed) = load.finish();
    drop(webs);

    let failed: Vec<&Sample> = samples.iter().filter(|s| s.result.is_err()).collect();
    let lat: Vec<f64> = samples.iter().map(|s| ms(s.latency)).collect();
    let rate = samples.len() as f64 / elapsed.as_secs_f64();
    let mut by_backend = std::collections::BTreeMap::<String, usize>::new();
    for s in &samples {
        if let Ok(b) = &s.result {
            *by_backend.entry(b.clone()).or_default() += 1;
        }
    }
    let mut hitless = Table::new(&format!(
        "{RATE} requests/s through the VIP during {RELOADS} back-to-back refreshes \
         (backends {{.11,.12}} <-> {{.12,.13}})"
    ));
    hitless.info(
        "requests (one connection each, 2 s timeout)",
        format!(
            "{} in {:.1} s ({:.1} s of refreshes)",
            samples.len(),
            elapsed.as_secs_f64(),
            window.as_secs_f64()
        ),
    );
    hitless.check(
        "achieved rate",
        format!("{rate:.0}/s"),
        format!(">= {}/s", RATE * 95 / 100),
        rate >= f64::from(RATE) * 0.95,
    );
    hitless.check(
        "failed requests",
        failed.len().to_string(),
        "0",
        failed.is_empty(),
    );
    hitless.info(
        "latency p50 / p99 / max",
        format!(
            "{:.2} / {:.2} / {:.2} ms",
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            max(&lat)
        ),
    );
    hitless.info(
        "answers by backend",
        by_backend
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    hitless.info(
        "refresh reply: median / slowest",
        format!("{:.0} / {:.0} ms", median(&refresh_ms), max(&refresh_ms)),
    );

    let mut notes = vec![
        "Step 1 listeners are all `http` on one VIP (ports 10000-10099), each with the \
         10 backends 192.168.100.11-20 and F11's parameters; only .11-.13 exist, the \
         reply time does not wait for health checks. Runs 2 and 3 change every \
         listener's weight, so each is a config check and a full reload."
            .into(),
        "Step 2 runs after `/lb/delete` of the 100 listeners: one listener (port 80) on \
         the three real backends. The client in `pub` is paced (a request every 5 ms \
         handed to 16 worker threads, a new connection each); latency is connect to \
         last byte. 1 s of load before the first and after the last refresh."
            .into(),
    ];
    if !failed.is_empty() {
        let mut errs: Vec<String> = failed
            .iter()
            .filter_map(|s| s.result.as_ref().err().cloned())
            .collect();
        errs.dedup();
        errs.truncate(5);
        notes.push(format!("First failures: {}", errs.join("; ")));
    }
    Ok(Section {
        title: "LB (vr-agent): haproxy listeners, refresh and hitless reload".into(),
        intro: report::machine(),
        tables: vec![bulk, mem, hitless],
        notes,
    })
}

/// One listener in F11's shape (HTTP, instance port 80).
fn listener(uuid: &str, port: u16, backends: &[&str], params: &[String]) -> Value {
    json!({"lbUuid": "lb-bench", "listenerUuid": uuid, "vip": VIP, "publicNic": PUB_MAC,
           "nicIps": backends, "instancePort": 80, "loadBalancerPort": port, "mode": "http",
           "securityPolicyType": "tls_cipher_policy_default", "enableFullLog": false,
           "parameters": params, "serverGroups": [], "redirectRules": []})
}

/// The 100 x 10 refresh, with `weight` for the first backend.
fn bulk_body(weight: u16) -> Value {
    let backends: Vec<String> = (0..BACKENDS_PER_LISTENER)
        .map(|i| format!("192.168.100.{}", 11 + i))
        .collect();
    let refs: Vec<&str> = backends.iter().map(String::as_str).collect();
    let mut params: Vec<String> = [
        "connectionIdleTimeout::60",
        "Nbprocess::1",
        "balancerAlgorithm::roundrobin",
        "healthCheckTimeout::2",
        "healthCheckTarget::tcp:default",
        "maxConnection::2000000",
        "httpMode::http-server-close",
        "accessControlStatus::disable",
        "healthyThreshold::2",
        "healthCheckInterval::5",
        "unhealthyThreshold::2",
        "aclEntry::",
    ]
    .map(String::from)
    .to_vec();
    params.push(format!("balancerWeight::{}::{}", refs[0], weight.max(1)));
    let lbs: Vec<Value> = (0..LISTENERS)
        .map(|i| listener(&format!("l{i}"), BULK_PORT + i, &refs, &params))
        .collect();
    json!({"lbs": lbs})
}

/// One GET over a new connection; the body (the backend's name) or why not.
fn get(addr: SocketAddr) -> std::result::Result<String, String> {
    let inner = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, REQ_TIMEOUT)?;
        s.set_read_timeout(Some(REQ_TIMEOUT))?;
        s.set_write_timeout(Some(REQ_TIMEOUT))?;
        s.set_nodelay(true)?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {out:?}")))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(
                head.lines().next().unwrap_or("").to_string(),
            ));
        }
        Ok(body.to_string())
    };
    inner().map_err(|e| e.to_string())
}

struct Sample {
    latency: Duration,
    result: std::result::Result<String, String>,
}

/// A paced client: a pacer thread hands one request every 1/RATE s to a
/// pool of worker threads in the namespace. Drop (or `finish`) stops it.
struct Load {
    stop: Arc<AtomicBool>,
    pacer: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    start: Instant,
}

impl Load {
    fn start(ns: &Netns, target: SocketAddr) -> Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let path = format!("/run/netns/{}", ns.name());
        let mut workers = vec![];
        for _ in 0..WORKERS {
            let (rx, samples, path) = (rx.clone(), samples.clone(), path.clone());
            let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            workers.push(std::thread::spawn(move || {
                if nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                    return;
                }
                loop {
                    let job = rx.lock().map(|r| r.recv());
                    if !matches!(job, Ok(Ok(()))) {
                        return;
                    }
                    let t = Instant::now();
                    let result = get(target);
                    let latency = t.elapsed();
                    if let Ok(mut s) = samples.lock() {
                        s.push(Sample { latency, result });
                    }
                }
            }));
        }
        let flag = stop.clone();
        let start = Instant::now();
        let pacer = std::thread::spawn(move || {
            let step = Duration::from_secs(1) / RATE;
            let mut k = 0u32;
            while !flag.load(Ordering::Relaxed) {
                let due = start + step * k;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if tx.send(()).is_err() {
                    return;
                }
                k += 1;
            }
        });
        Ok(Load {
            stop,
            pacer: Some(pacer),
            workers,
            samples,
            start,
        })
    }

    /// Stops the pacer, lets the workers finish what was handed out, and
    /// returns the samples and the paced duration.
    fn finish(mut self) -> (Vec<Sample>, Duration) {
        self.halt();
        let elapsed = self.start.elapsed();
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        (samples, elapsed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pacer.take() {
            let _ = p.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An HTTP server in a namespace answering every request with its name.
struct Web<'a> {
    ns: &'a Netns,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<'a> Web<'a> {
    fn start(ns: &'a Netns, addr: &str, name: &str) -> Result<Web<'a>> {
        let listener = ns
            .run(|| TcpListener::bind(addr))
            .with_context(|| format!("bind {addr} in {}", ns.name()))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = conn {
                    let name = name.clone();
                    std::thread::spawn(move || serve(s, &name));
                }
            }
        });
        Ok(Web {
            ns,
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Web<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let wake: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let _ = self
            .ns
            .run(|| TcpStream::connect_timeout(&wake, Duration::from_secs(1)));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, name: &str) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
        name.len()
    );
}

struct Haproxy {
    master: bool,
    rss_kb: u64,
}

/// The haproxy processes in the vr namespace: the master (the agent's
/// child) and its workers, with their VmRSS.
fn haproxy_procs(lab: &Lab) -> Result<Vec<Haproxy>> {
    let out = Command::new("ip")
        .args(["netns", "pids", lab.vr.name()])
        .output()
        .context("ip netns pids")?;
    let mut procs = vec![];
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("Name:").as_deref() != Some("haproxy") {
            continue;
        }
        let ppid: u32 = field("PPid:").and_then(|v| v.parse().ok()).unwrap_or(0);
        let rss_kb = field("VmRSS:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        procs.push(Haproxy {
            master: ppid == lab.agent_pid(),
            rss_kb,
        });
    }
    if procs.is_empty() {
        bail!("no haproxy process in the vr namespace");
    }
    Ok(procs)
}
