//! Load balancing through the real agent and a real haproxy, with real
//! traffic: clients in `pub`, three backend guests behind the VR's private
//! NIC (192.168.100.11-13, see `Lab::with_backends`).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use testbed::Netns;

const VIP: &str = "172.20.10.100";
const BACKENDS: [&str; 3] = ["192.168.100.11", "192.168.100.12", "192.168.100.13"];

/// An HTTP server in a namespace answering every request with its name.
struct Web {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Web {
    fn start(ns: &Netns, addr: &str, name: &str) -> Web {
        let listener = ns.run(|| TcpListener::bind(addr)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let name = name.clone();
                        std::thread::spawn(move || serve(s, &name));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Web {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, name: &str) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
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

/// One GET over a new connection from `ns` (optionally from `src`);
/// the body, or an error.
fn get(ns: &Netns, src: Option<&str>, url_host: &str) -> anyhow::Result<String> {
    let mut args = vec!["-sS", "-m", "3", "--fail"];
    if let Some(s) = src {
        args.extend(["--interface", s]);
    }
    let url = format!("http://{url_host}/");
    args.push(&url);
    let out = ns.exec("curl", &args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` GETs from inside `ns` on raw sockets (fast); body -> count, and
/// the number of failures.
fn spread(ns: &Netns, addr: &str, n: usize) -> (BTreeMap<String, usize>, usize) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    ns.run(|| {
        let mut seen = BTreeMap::new();
        let mut failed = 0;
        for _ in 0..n {
            match raw_get(addr) {
                Ok(body) => *seen.entry(body).or_default() += 1,
                Err(_) => failed += 1,
            }
        }
        (seen, failed)
    })
}

fn raw_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {out:?}")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.to_string()));
    }
    Ok(body.to_string())
}

fn listener(uuid: &str, port: u16, mode: &str, backends: &[&str], params: &[&str]) -> Value {
    json!({"lbUuid": "lb-1", "listenerUuid": uuid, "vip": VIP, "publicNic": PUB_MAC,
           "nicIps": backends, "instancePort": 80, "loadBalancerPort": port, "mode": mode,
           "parameters": params, "serverGroups": [], "redirectRules": []})
}

fn lab() -> Lab {
    let lab = Lab::with_backends(3).unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip(VIP)]}));
    lab
}

fn webs(lab: &Lab) -> Vec<Web> {
    lab.backends
        .iter()
        .enumerate()
        .map(|(i, ns)| Web::start(ns, "0.0.0.0:80", &format!("be{i}")))
        .collect()
}

const FAST_CHECKS: [&str; 4] = [
    "healthCheckInterval::1",
    "healthCheckTimeout::1",
    "unhealthyThreshold::2",
    "healthyThreshold::2",
];

#[test]
fn weighted_round_robin_and_source_and_health() {
    testbed::require_privileged!();
    let lab = lab();
    let mut webs: Vec<Option<Web>> = webs(&lab).into_iter().map(Some).collect();
    let mut params = vec![
        "balancerAlgorithm::roundrobin",
        "balancerWeight::192.168.100.11::1",
        "balancerWeight::192.168.100.12::2",
        "balancerWeight::192.168.100.13::3",
    ];
    params.extend(FAST_CHECKS);
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [listener("web", 80, "http", &BACKENDS, &params)]}),
    );
    let (seen, failed) = spread(&lab.public, &format!("{VIP}:80"), 60);
    assert_eq!(failed, 0, "{seen:?}\n{}", lab.log());
    for (name, want) in [("be0", 10), ("be1", 20), ("be2", 30)] {
        let got = seen.get(name).copied().unwrap_or(0);
        assert!(
            got.abs_diff(want) <= 2,
            "{name}: {got} of 60, want {want}: {seen:?}"
        );
    }

    // Health: be2 stops answering and leaves within interval x fall (+ margin).
    webs[2] = None;
    let t = Instant::now();
    let gone = testbed::wait_until(Duration::from_secs(6), Duration::from_millis(100), || {
        let (seen, failed) = spread(&lab.public, &format!("{VIP}:80"), 6);
        failed == 0 && !seen.contains_key("be2")
    });
    assert!(
        gone,
        "be2 still in the pool after {:?}\n{}",
        t.elapsed(),
        lab.log()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    webs[2] = Some(Web::start(&lab.backends[2], "0.0.0.0:80", "be2"));
    let back = testbed::wait_until(Duration::from_secs(8), Duration::from_millis(200), || {
        spread(&lab.public, &format!("{VIP}:80"), 6)
            .0
            .contains_key("be2")
    });
    assert!(back, "be2 did not come back\n{}", lab.log());

    // Source hashing: one client always reaches the same backend.
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [listener("web", 80, "http", &BACKENDS, &["balancerAlgorithm::source"])]}),
    );
    let (seen, failed) = spread(&lab.public, &format!("{VIP}:80"), 12);
    assert_eq!((seen.len(), failed), (1, 0), "{seen:?}");

    // Metrics per listener and backend.
    let (code, text) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
    assert_eq!(code, 200);
    assert!(
        text.contains(
            r#"vr_agent_lb_server_up{listener="web",backend="web",server="s-192.168.100.11"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("vr_agent_lb_listener_sessions_total{listener=\"web\""),
        "{text}"
    );

    // Delete: haproxy has nothing left to serve.
    lab.ok(
        "/lb/delete",
        json!({"lbs": [listener("web", 80, "http", &BACKENDS, &[])]}),
    );
    assert!(
        lab.public
            .run(|| raw_get(format!("{VIP}:80").parse().unwrap()))
            .is_err()
    );
    drop(webs);
}

#[test]
fn https_redirect_and_acls() {
    testbed::require_privileged!();
    let lab = lab();
    let _webs = webs(&lab);
    let dir = testbed::TempDir::new("lbcert").unwrap();
    let (key, crt) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=lb.test",
        ])
        .args(["-addext", "subjectAltName=DNS:lb.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&crt).unwrap() + &std::fs::read_to_string(&key).unwrap();
    lab.ok(
        "/certificate/create",
        json!({"uuid": "cert-1", "certificate": pem}),
    );
    let mut tls = listener(
        "tls",
        443,
        "https",
        &BACKENDS,
        &["httpVersions::h2,http1.1"],
    );
    tls["certificateUuid"] = json!("cert-1");
    tls["securityPolicyType"] = json!("tls_cipher_policy_1_2");
    let redirect = listener(
        "plain",
        80,
        "http",
        &BACKENDS,
        &[
            "httpRedirectHttps::enable",
            "redirectPort::443",
            "statusCode::301",
        ],
    );
    lab.ok("/lb/refresh", json!({"lbs": [tls.clone(), redirect]}));
    let crt_s = crt.to_str().unwrap();
    let resolve = format!("lb.test:443:{VIP}");
    let out = lab
        .public
        .sh(&format!(
            "curl -sS -m 5 --cacert {crt_s} --resolve {resolve} -w ' %{{http_version}}' https://lb.test/"
        ))
        .unwrap_or_else(|e| panic!("TLS through the VIP: {e:#}\n{}", lab.log()));
    assert!(out.starts_with("be"), "{out}");
    assert!(out.ends_with(" 2"), "h2 was negotiated through alpn: {out}");
    // Redirect to https.
    let out = lab
        .public
        .sh(&format!(
            "curl -sS -m 5 -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{VIP}/x"
        ))
        .unwrap();
    assert_eq!(out, format!("301 https://{VIP}/x"));
    // The certificate in use cannot be deleted.
    let (code, v) = lab
        .post("/certificate/delete", json!({"uuid": "cert-1"}))
        .unwrap();
    assert_eq!(code, 409, "{v}");

    // ACLs: a second client address in pub.
    testbed::addr(&lab.public, "eth0", "172.20.0.2/16").unwrap();
    let acl = |kind: &str, entry: &str| {
        listener(
            "plain",
            80,
            "http",
            &BACKENDS,
            &[
                "accessControlStatus::enable",
                &format!("aclType::{kind}"),
                &format!("aclEntry::{entry}"),
            ],
        )
    };
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [acl("black", "172.20.0.2,10.0.0.0/8")]}),
    );
    get(&lab.public, Some("172.20.0.1"), VIP).unwrap();
    assert!(
        get(&lab.public, Some("172.20.0.2"), VIP).is_err(),
        "black-listed"
    );
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [acl("white", "172.20.0.1-172.20.0.1")]}),
    );
    get(&lab.public, Some("172.20.0.1"), VIP).unwrap();
    assert!(
        get(&lab.public, Some("172.20.0.2"), VIP).is_err(),
        "not on the white list"
    );

    // Removing the https listener deletes its now unused certificate.
    lab.ok("/lb/delete", json!({"lbs": [tls]}));
    let certs = lab.state.path().join("certificates");
    let left: Vec<_> = std::fs::read_dir(&certs).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A UDP server answering each datagram with its name.
fn udp_named(ns: &Netns, name: &str) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let sock = ns.run(|| UdpSocket::bind("0.0.0.0:5353")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_string();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(name.as_bytes(), peer);
            }
        }
    });
    (stop, t)
}

#[test]
fn udp_is_spread_over_backends() {
    testbed::require_privileged!();
    let lab = lab();
    let servers: Vec<_> = lab
        .backends
        .iter()
        .enumerate()
        .map(|(i, ns)| udp_named(ns, &format!("be{i}")))
        .collect();
    let mut l = listener("dns", 53, "udp", &BACKENDS, &[]);
    l["instancePort"] = json!(5353);
    lab.ok("/lb/refresh", json!({"lbs": [l]}));
    let seen = lab.public.run(|| {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        // A new socket per datagram, each kept open to the end: a new flow
        // each time (a closed socket's port may be picked again, and its
        // datagram would then follow the old flow's conntrack entry).
        let mut open = Vec::new();
        for _ in 0..30 {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.send_to(b"q", format!("{VIP}:53")).unwrap();
            let mut buf = [0u8; 64];
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                assert_eq!(from.to_string(), format!("{VIP}:53"));
                *seen
                    .entry(String::from_utf8_lossy(&buf[..n]).into())
                    .or_default() += 1;
            }
            open.push(s);
        }
        seen
    });
    assert_eq!(seen.values().sum::<usize>(), 30, "{seen:?}\n{}", lab.log());
    for name in ["be0", "be1", "be2"] {
        assert_eq!(seen.get(name), Some(&10), "{seen:?}");
    }
    let table = lab.vr.sh("nft list table ip vragent_lb").unwrap();
    assert!(table.contains("numgen inc mod 3"), "{table}");
    // Someone deletes the table: the drift check puts it back.
    lab.vr.sh("nft delete table ip vragent_lb").unwrap();
    let back = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        lab.vr
            .sh("nft list table ip vragent_lb")
            .is_ok_and(|t| t == table)
    });
    assert!(back, "udp LB table not repaired: {}", lab.log());
    lab.ok(
        "/lb/delete",
        json!({"lbs": [listener("dns", 53, "udp", &BACKENDS, &[])]}),
    );
    assert!(
        lab.vr.sh("nft list table ip vragent_lb").is_err(),
        "table removed"
    );
    for (stop, t) in servers {
        stop.store(true, Ordering::Relaxed);
        let _ = t.join();
    }
}

/// ~200 requests/s while 20 refreshes change the backends: none fails.
#[test]
fn reloads_are_hitless() {
    testbed::require_privileged!();
    let lab = lab();
    let _webs = webs(&lab);
    let params = ["balancerAlgorithm::roundrobin"];
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [listener("web", 80, "http", &BACKENDS, &params)]}),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let addr: std::net::SocketAddr = format!("{VIP}:80").parse().unwrap();
    // Three clients, each a new connection per request, ~70 requests/s each.
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, ok, failed, errors) =
                (stop.clone(), ok.clone(), failed.clone(), errors.clone());
            let path = format!("/run/netns/{}", lab.public.name());
            std::thread::spawn(move || {
                let f = std::fs::File::open(&path).unwrap();
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match raw_get(addr) {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            errors.lock().unwrap().push(e.to_string());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let set: &[&str] = if i % 2 == 0 {
            &BACKENDS[..2]
        } else {
            &BACKENDS[1..]
        };
        let r = Instant::now();
        lab.ok(
            "/lb/refresh",
            json!({"lbs": [listener("web", 80, "http", set, &params)]}),
        );
        slowest = slowest.max(r.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let rate = ok as f64 / t.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "{:?}\n{}", errors.lock().unwrap(), lab.log());
    assert!(rate > 150.0, "only {rate:.0} requests/s");
    eprintln!("{ok} requests at {rate:.0}/s, none failed; slowest refresh {slowest:?}");
}

/// The budget: 100 listeners of 10 backends each applied in at most 2 s
/// (the request as the controller sees it, config check and hitless reload
/// included), and again when every listener changes.
#[test]
fn hundred_listeners_refresh_within_budget() {
    testbed::require_privileged!();
    let lab = lab();
    let _webs = webs(&lab);
    let body = |weight: u16| {
        let backends: Vec<String> = (11..21).map(|i| format!("192.168.100.{i}")).collect();
        let refs: Vec<&str> = backends.iter().map(String::as_str).collect();
        let w = format!("balancerWeight::192.168.100.11::{weight}");
        let lbs: Vec<Value> = (0..100)
            .map(|i| {
                listener(
                    &format!("l{i}"),
                    10000 + i,
                    if i % 2 == 0 { "http" } else { "tcp" },
                    &refs,
                    &["balancerAlgorithm::leastconn", &w],
                )
            })
            .collect();
        json!({"lbs": lbs})
    };
    for weight in [10, 20] {
        let t = Instant::now();
        lab.ok("/lb/refresh", body(weight));
        let took = t.elapsed();
        assert!(took < Duration::from_secs(2), "refresh took {took:?}");
        eprintln!("100 x 10 refresh: {took:?}");
    }
    // Every listener listens (most backends do not exist: no traffic test).
    let ss = lab.vr.sh(&format!("ss -Hltn src {VIP}")).unwrap();
    assert_eq!(ss.lines().count(), 100, "{ss}");
}
