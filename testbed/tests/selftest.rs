//! Self-tests of the test bed with real packets between namespaces.
//! Run as root: `REQUIRE_PRIVILEGED=1 cargo test -p testbed`.

use anyhow::Result;
use std::time::{Duration, Instant};
use testbed::{
    CallbackReceiver, Netns, TcpServer, UdpServer, addr, bridge, enslave, http_get, http_post, mac,
    ping, require_privileged, route, set_mac, tcp_probe, udp_probe, veth,
};

const SECS2: Duration = Duration::from_secs(2);

/// Two namespaces `a` (10.0.0.1) and `b` (10.0.0.2) joined by a veth pair.
fn pair() -> Result<(Netns, Netns)> {
    let a = Netns::new("a")?;
    let b = Netns::new("b")?;
    veth(&a, "eth0", &b, "eth0")?;
    addr(&a, "eth0", "10.0.0.1/24")?;
    addr(&b, "eth0", "10.0.0.2/24")?;
    Ok((a, b))
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tcp_udp_and_ping_across_veth() -> Result<()> {
    require_privileged!(Ok(()));
    let (a, b) = pair()?;
    let _tcp = TcpServer::start(&b, "0.0.0.0:8080")?;
    let _udp = UdpServer::start(&b, "0.0.0.0:5353")?;

    let seen = tcp_probe(&a, "10.0.0.2:8080", SECS2)?;
    assert!(seen.starts_with("10.0.0.1:"), "tcp server saw {seen}");
    let seen = udp_probe(&a, "10.0.0.2:5353", SECS2)?;
    assert!(seen.starts_with("10.0.0.1:"), "udp server saw {seen}");
    assert!(ping(&a, "10.0.0.2", 1));
    assert!(!ping(&a, "10.0.0.9", 1), "nobody has 10.0.0.9");
    Ok(())
}

#[test]
fn closed_ports_fail_fast() -> Result<()> {
    require_privileged!(Ok(()));
    let (a, _b) = pair()?;
    let start = Instant::now();
    assert!(tcp_probe(&a, "10.0.0.2:8081", Duration::from_secs(10)).is_err());
    assert!(udp_probe(&a, "10.0.0.2:8081", Duration::from_secs(10)).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    Ok(())
}

#[test]
fn bridge_router_sysctl_and_mac() -> Result<()> {
    require_privileged!(Ok(()));
    // a -- [br0 in sw] -- r -- b, r routes between 10.1.0.0/24 and 10.2.0.0/24.
    let (a, sw, r, b) = (
        Netns::new("a")?,
        Netns::new("sw")?,
        Netns::new("r")?,
        Netns::new("b")?,
    );
    bridge(&sw, "br0")?;
    veth(&a, "eth0", &sw, "pa")?;
    veth(&r, "eth0", &sw, "pr")?;
    enslave(&sw, "pa", "br0")?;
    enslave(&sw, "pr", "br0")?;
    veth(&r, "eth1", &b, "eth0")?;
    addr(&a, "eth0", "10.1.0.2/24")?;
    addr(&r, "eth0", "10.1.0.1/24")?;
    addr(&r, "eth1", "10.2.0.1/24")?;
    addr(&b, "eth0", "10.2.0.2/24")?;
    route(&a, "default via 10.1.0.1")?;
    route(&b, "default via 10.2.0.1")?;

    set_mac(&a, "eth0", "02:00:00:aa:bb:cc")?;
    assert_eq!(mac(&a, "eth0")?, "02:00:00:aa:bb:cc");

    assert_eq!(
        r.sh("cat /proc/sys/net/ipv4/ip_forward")?.trim(),
        "0",
        "new namespaces do not forward"
    );
    assert!(ping(&a, "10.1.0.1", 1), "across the bridge");
    assert!(!ping(&a, "10.2.0.2", 1), "not routed yet");
    r.sysctl("net.ipv4.ip_forward", "1")?;
    assert_eq!(r.sh("cat /proc/sys/net/ipv4/ip_forward")?.trim(), "1");
    let _srv = TcpServer::start(&b, "0.0.0.0:80")?;
    assert_eq!(
        tcp_probe(&a, "10.2.0.2:80", SECS2)?.split(':').next(),
        Some("10.1.0.2")
    );
    Ok(())
}

#[test]
fn callback_receiver_records_and_answers_404() -> Result<()> {
    require_privileged!(Ok(()));
    let ns = Netns::new("cb")?;
    let cb = CallbackReceiver::start(Some(&ns))?;
    let url = format!("{}/callback", cb.url());

    let (code, _) = http_post(&ns, &url, r#"{"success":true}"#, &[("taskuuid", "t-1")])?;
    assert_eq!(code, 200);
    cb.set_status(404);
    let (code, _) = http_post(&ns, &url, r#"{"success":false}"#, &[("TaskUuid", "t-2")])?;
    assert_eq!(code, 404);
    let (code, _) = http_get(&ns, &cb.url())?;
    assert_eq!(code, 404);

    let reqs = cb.wait_for(3, SECS2)?;
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/callback")
    );
    assert_eq!(reqs[0].header("TASKUUID"), Some("t-1"));
    assert_eq!(
        reqs[1].headers.get("taskuuid").map(String::as_str),
        Some("t-2")
    );
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(reqs[1].json()?["success"], false);
    assert_eq!(reqs[2].method, "GET");
    assert!(cb.wait_for(4, Duration::from_millis(100)).is_err());
    Ok(())
}

#[test]
fn callback_receiver_in_root_namespace() -> Result<()> {
    // Only loopback of the root namespace is used; nothing is changed there.
    let cb = CallbackReceiver::start(None)?;
    let body = "x".repeat(5000); // large enough for curl to send `Expect: 100-continue`
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            &body,
            &cb.url(),
        ])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cb.wait_for(1, SECS2)?[0].body, body);
    Ok(())
}

#[test]
fn guards_clean_up_even_on_panic() -> Result<()> {
    require_privileged!(Ok(()));
    let (name, pid) = {
        let (a, b) = pair()?;
        let _srv = TcpServer::start(&b, "0.0.0.0:7000")?;
        let proc = a.spawn("sh", &["-c", "echo started; exec sleep 1000"])?;
        assert!(testbed::wait_until(
            SECS2,
            Duration::from_millis(20),
            || proc.log().contains("started")
        ));
        assert!(
            a.run(|| std::net::UdpSocket::bind("10.0.0.1:0")).is_ok(),
            "run() is inside a"
        );
        assert!(
            std::net::UdpSocket::bind("10.0.0.1:0").is_err(),
            "the root namespace is untouched"
        );
        assert!(netns_list().contains(a.name()));
        ((a.name().to_string(), b.name().to_string()), proc.pid())
    };
    let list = netns_list();
    assert!(!list.contains(&name.0) && !list.contains(&name.1), "{list}");
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err();
    assert!(gone, "process {pid} still alive");

    // A panicking test still removes its namespace.
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let ns = Netns::new("panic").expect("netns");
        tx.send(ns.name().to_string()).expect("send");
        panic!("deliberate");
    })
    .join();
    assert!(joined.is_err());
    let name = rx.recv()?;
    assert!(!netns_list().contains(&name));
    Ok(())
}

#[test]
fn ifnames_are_short_and_unique() {
    let names: Vec<String> = (0..100).map(|_| testbed::ifname("vethlongtag")).collect();
    assert!(names.iter().all(|n| n.len() <= 15), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
}

#[test]
fn wait_ok_reports_the_last_error() {
    let mut n = 0;
    let err = testbed::wait_ok(
        Duration::from_millis(50),
        Duration::from_millis(10),
        || -> Result<()> {
            n += 1;
            anyhow::bail!("attempt {n}")
        },
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("attempt {n}")),
        "{err:#}"
    );
    let tmp = testbed::TempDir::new("t").expect("tempdir");
    let path = tmp.path().to_path_buf();
    std::fs::write(path.join("f"), "x").expect("write");
    drop(tmp);
    assert!(!path.exists());
}
