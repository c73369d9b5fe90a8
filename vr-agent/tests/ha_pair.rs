//! The HA pair through the real agents (issue 17): two vr-agent binaries,
//! each in its router namespace, configured alike over HTTP as the node
//! does (`/init`, `/configurenic`, `/syncsnat`) and paired with
//! `/enableVyosha`; keepalived and conntrackd are the agents' children.
//!
//! The topology (`testbed::vr_pair`, shared with `bench ha`): both routers
//! hold the same public and private addresses on shared bridges; only the
//! master's NICs are up. Measured: the master's namespace killed (every process SIGKILLed,
//! links down: its VM gone) under a 100 pps ping through SNAT and one TCP
//! connection echoing every 10 ms; the longest ping silence, whether the
//! TCP connection kept going; the survivor says Master on `/ping` and to
//! the node's callback.
//!
//! Rerun: `cargo test -p vr-agent --test ha_pair -- --nocapture --test-threads 1`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::TempDir;
use testbed::failover::longest_silence_ms;
use testbed::vr_pair::{Failover, MACS, MGMT_IP, OUTSIDE, PAIR_VIP, Pair, TENANT_IP, UUIDS};

fn agent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vr-agent"))
}

fn paired() -> Pair {
    testbed::vr_pair::paired(agent())
}

fn build() -> Pair {
    testbed::vr_pair::build(agent())
}

#[test]
fn the_pair_elects_one_master_and_says_so() {
    testbed::require_privileged!();
    let p = paired();
    assert!(
        testbed::ping(&p.ten, OUTSIDE, 2),
        "no path through the master"
    );
    // The pair's VIP is on the master only.
    let on = |i: usize| {
        p.routers[i]
            .sh("ip -4 -o addr show dev eth1")
            .unwrap_or_default()
            .contains(&format!("{PAIR_VIP}/16"))
    };
    assert!(on(0), "{}", p.log(0));
    assert!(testbed::ping(&p.out, PAIR_VIP, 1));
    let r = testbed::wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let r = p.reports();
        r.contains(&(UUIDS[0].into(), "Master".into()))
            && r.contains(&(UUIDS[1].into(), "Backup".into()))
    });
    assert!(r, "the node was told: {:?}", p.reports());
    // A repeat of the same body changes nothing (no new election).
    let (code, v) = p.enable_ha(0);
    assert!(code == 200 && v["success"] == true, "{v}");
    assert_eq!(p.ha_status(0), "Master");
    // GET /ha (what vrctl's vr status shows) says each side's view.
    for (i, want) in [(0, "Master"), (1, "Backup")] {
        let url = format!("http://{}:7272/ha", MGMT_IP[i]);
        let (_, text) = testbed::http_get(&p.ctl, &url).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["role"], want, "router {i}: {v}");
        assert_eq!(v["haStatus"], want, "router {i}: {v}");
    }
    // syncVpcRouterHa answers the role; restartKeepalived demotes.
    let (_, v) = p.post(1, "/syncVpcRouterHa", json!({})).unwrap();
    assert_eq!(v["haStatus"], "Backup", "{v}");
    // The replies fit what the node reads (the fixtures the conformance
    // test cannot send: its router has no pair), from both sides.
    let fixtures =
        testbed::conformance::load_dir(&testbed::conformance::fixture_dir("vr").join("ha"))
            .unwrap();
    let fixture = |path: &str| {
        fixtures
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no fixture for {path}"))
    };
    for (i, uuid) in UUIDS.iter().enumerate() {
        for (path, body) in [
            ("/enableVyosha", p.enable_body(i)),
            ("/ping", json!({"uuid": uuid})),
        ] {
            let (code, v) = p.post(i, path, body).unwrap();
            fixture(path)
                .check(code, &v)
                .unwrap_or_else(|e| panic!("router {i} {path}: {e}"));
        }
    }
    // The node's split-brain answer to the master: it steps down at once
    // and the peer takes over.
    let (code, v) = p.post(0, "/restartKeepalived", json!({})).unwrap();
    fixture("/restartKeepalived")
        .check(code, &v)
        .unwrap_or_else(|e| panic!("/restartKeepalived: {e}"));
    assert!(!p.link_up(0, "eth1"), "the demoted router still answers");
    assert!(
        testbed::wait_until(Duration::from_secs(3), Duration::from_millis(10), || p
            .ha_status(1)
            == "Master"),
        "the peer did not take over:\n{}",
        p.log(1)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.ha_status(0), "Backup", "{}", p.log(0));
    assert!(
        testbed::ping(&p.ten, OUTSIDE, 2),
        "no path through the new master"
    );
}

#[test]
fn hostile_enable_bodies_are_refused_and_change_nothing() {
    testbed::require_privileged!();
    let p = build();
    p.configure(0);
    let good = p.enable_body(0);
    let cases = [
        ("heartbeatNic", json!("fa:16:3e:99:99:99")),
        // The firewall takes VRRP and the sync on the management NIC only.
        ("heartbeatNic", json!(MACS[0][1])),
        ("localIp", json!("10.0.0.25\n}\nvrrp_script x {")),
        ("peerIp", json!("10.0.0.25")),
        ("keepalive", json!(0)),
        (
            "vips",
            json!([{"nicMac": MACS[0][0], "nicVip": PAIR_VIP, "netmask": "255.255.0.0"}]),
        ),
        (
            "vips",
            json!([{"nicMac": MACS[0][1], "nicVip": "1.2.3.4\"", "netmask": "255.255.0.0"}]),
        ),
        (
            "callbackUrl",
            json!("http://169.254.169.254/latest/meta-data"),
        ),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value;
        let (code, v) = p.post(0, "/enableVyosha", body).unwrap();
        assert_eq!(code, 400, "{field}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(field) || field == "peerIp",
            "{field}: {v}"
        );
        assert_eq!(p.ha_status(0), "NoHa", "{field} half-applied");
        assert!(p.link_up(0, "eth1"), "{field} set a NIC down");
    }
    assert!(
        !p.states[0].path().join("ha/enable.json").exists(),
        "a refused body was kept"
    );
}

#[test]
fn killing_the_master_moves_everything_within_a_second_and_keeps_sessions() {
    testbed::require_privileged!();
    let mut p = paired();
    let dir = TempDir::new("hplease").unwrap();
    assert_eq!(
        p.lease(&dir).as_deref(),
        Some(TENANT_IP),
        "no lease from the master"
    );
    assert!(p.resolves(), "no DNS on the master");
    let _backend = testbed::TcpServer::start(&p.ten, &format!("{TENANT_IP}:80")).unwrap();
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || p
            .lb_answers()),
        "no load balancer on the master:\n{}",
        p.log(0)
    );
    let f = p.failover().unwrap();
    let (tcp, pf, t0) = (&f.snat, &f.port_forward, f.killed_at);
    eprintln!(
        "failover: shared NICs up on the backup after {:?} ms; longest ping silence {} ms through SNAT, {} ms through the EIP; TCP through SNAT {} round trips, {} after the kill, longest stall {} ms, error {:?}; through the port forward {} round trips, {} after, longest stall {} ms, error {:?}",
        f.up_ms,
        f.silence_snat_ms,
        f.silence_eip_ms,
        tcp.round_trips,
        tcp.after(t0),
        tcp.longest_stall_ms(),
        tcp.error,
        pf.round_trips,
        pf.after(t0),
        pf.longest_stall_ms(),
        pf.error,
    );
    assert!(
        f.up_ms.is_some(),
        "the backup never brought the shared NICs up:\n{}",
        p.log(1)
    );
    assert!(
        f.silence_snat_ms < 1000,
        "ping silence {} ms",
        f.silence_snat_ms
    );
    assert!(
        f.silence_eip_ms < 1000,
        "ping silence through the EIP {} ms",
        f.silence_eip_ms
    );
    for (what, s) in [("SNAT", tcp), ("the port forward", pf)] {
        assert!(
            Failover::kept(s, t0),
            "the TCP session through {what} did not survive: {s:?}"
        );
    }
    assert_eq!(p.ha_status(1), "Master", "{}", p.log(1));
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(50), || p
            .reports()
            .contains(&(UUIDS[1].into(), "Master".into()))),
        "the node was not told: {:?}",
        p.reports()
    );
    assert!(
        p.routers[1]
            .sh("ip -4 -o addr show dev eth1")
            .unwrap_or_default()
            .contains(&format!("{PAIR_VIP}/16")),
        "the pair's VIP did not move"
    );
    // The new master's dnsmasq serves: the same address, the same name.
    assert_eq!(
        p.lease(&dir).as_deref(),
        Some(TENANT_IP),
        "the tenant's address changed:\n{}",
        p.log(1)
    );
    assert!(p.resolves(), "no DNS after the failover");
    let t_lb = Instant::now();
    assert!(
        testbed::wait_until(Duration::from_secs(10), Duration::from_millis(20), || p
            .lb_answers()),
        "no load balancer after the failover:\n{}",
        p.log(1)
    );
    eprintln!(
        "the load balancer answered {} ms after DHCP and DNS were checked",
        t_lb.elapsed().as_millis()
    );

    // The old master comes back (its VM restarted: links up, agent up with
    // its persisted pair) and stays backup.
    for l in ["eth0", "eth1", "eth2"] {
        p.routers[0].ip(&format!("link set {l} up")).unwrap();
    }
    p.start_agent(0);
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || p
            .ha_status(0)
            == "Backup"),
        "the old master: {}\n{}",
        p.ha_status(0),
        p.log(0)
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(p.ha_status(0), "Backup", "preempted:\n{}", p.log(0));
    assert_eq!(p.ha_status(1), "Master");
    assert!(
        !p.link_up(0, "eth1"),
        "the returning router answers for the shared addresses"
    );
    assert!(
        testbed::ping(&p.ten, OUTSIDE, 2),
        "no path after the return"
    );
}

/// Sends forged VRRPv3 adverts (`python3`, a raw socket with its own IP
/// header): from `src` to `dst`, virtual router 50, priority 254, for the
/// pair's VIP, every 10 ms for `secs`.
const FORGE_VRRP: &str = r#"
import socket, struct, sys, time
src, dst, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
vip = socket.inet_aton(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def vrrp():
    body = struct.pack("!BBBBH", 0x31, 50, 254, 1, 10) + b"\0\0" + vip
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(body))
    c = csum(pseudo + body)
    return body[:6] + struct.pack("!H", c) + body[8:]
v = vrrp()
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xc0, 20 + len(v), 0, 0, 255, 112, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
end = time.time() + secs
while time.time() < end:
    s.sendto(ip + v, (dst, 0))
    time.sleep(0.01)
"#;

/// What conntrackd counts as received and malformed (`-s network`, the
/// first "Malformed messages" line is under `recv:`).
fn sync_malformed(p: &Pair, i: usize) -> u64 {
    let conf = p.states[i].path().join("ha/conntrackd.conf");
    let out = p.routers[i]
        .sh(&format!("conntrackd -C {} -s network", conf.display()))
        .unwrap();
    out.lines()
        .find(|l| l.contains("Malformed messages:"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("odd conntrackd stats: {out}"))
}

/// The heartbeat (VRRP, conntrackd's sync) is the management NIC's: a
/// tenant that reaches the master's management address through its own
/// link can neither demote the master with forged adverts nor feed
/// conntrackd (which binds the address, not the device).
#[test]
fn the_tenant_side_cannot_reach_the_heartbeat() {
    testbed::require_privileged!();
    let p = paired();
    let before = p.reports().len();
    let malformed = sync_malformed(&p, 0);
    let send = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
         [s.sendto(b'x' * 64, ('{}', {})) for _ in range(50)]",
        MGMT_IP[0],
        vr_agent::plan::conntrackd::SYNC_PORT
    );
    let sent = p.ten.command("python3", &["-c", &send]).output().unwrap();
    assert!(sent.status.success(), "{sent:?}");
    // The source is the peer's, which keepalived's unicast check takes.
    let out = p
        .ten
        .command(
            "python3",
            &["-c", FORGE_VRRP, MGMT_IP[1], MGMT_IP[0], "1.5", PAIR_VIP],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the forger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sync_malformed(&p, 0),
        malformed,
        "the tenant's datagrams reached conntrackd"
    );
    assert_eq!(p.ha_status(0), "Master", "demoted:\n{}", p.log(0));
    assert_eq!(p.ha_status(1), "Backup");
    let after: Vec<_> = p.reports().into_iter().skip(before).collect();
    assert!(after.is_empty(), "the pair moved: {after:?}");
}

/// keepalived SIGKILLed on a live master (its processes only; the agent
/// stays): the master stops answering at once instead of holding the
/// shared addresses while the peer takes over, the peer becomes master,
/// and the restarted keepalived stays backup.
#[test]
fn keepalived_killed_on_the_master_hands_over_without_both_answering() {
    testbed::require_privileged!();
    let p = paired();
    let ping = p
        .ten
        .spawn(
            "ping",
            &["-n", "-D", "-i", "0.01", "-W", "1", "-c", "200", OUTSIDE],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ha = p.states[0].path().join("ha");
    let t0 = Instant::now();
    for f in ["keepalived.pid", "vrrp.pid"] {
        let pid: i32 = std::fs::read_to_string(ha.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    }
    let down = testbed::wait_until(Duration::from_secs(2), Duration::from_millis(2), || {
        !p.link_up(0, "eth1")
    });
    let down_ms = t0.elapsed().as_millis();
    assert!(down, "the master kept its shared NICs up:\n{}", p.log(0));
    let up = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(5), || {
        p.link_up(1, "eth1")
    });
    let up_ms = t0.elapsed().as_millis();
    assert!(up, "the peer never took over:\n{}", p.log(1));
    let mut ping = ping;
    testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        !ping.is_running()
    });
    let silence = longest_silence_ms(&ping.log());
    eprintln!(
        "keepalived killed: master's NICs down after {down_ms} ms, the peer's up after {up_ms} ms; longest ping silence {silence} ms"
    );
    assert!(silence < 1000, "ping silence {silence} ms");
    // The supervisor restarts keepalived; with the peer master it stays
    // backup and the NICs stay down.
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(20), || p
            .ha_status(0)
            == "Backup"
            && p.states[0].path().join("ha/vrrp.pid").exists()),
        "{}",
        p.log(0)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.ha_status(1), "Master");
    assert!(!p.link_up(0, "eth1"), "both answer after the restart");
}

/// Cuts (or heals) router `i`'s heartbeat: VRRP and the conntrack sync
/// dropped on its management NIC, in a table of the test's own (the
/// management API stays reachable, so both sides can be asked).
fn heartbeat(p: &Pair, i: usize, cut: bool) {
    let script = if cut {
        "nft -f - <<'EOF'
table inet hpcut {
  chain in { type filter hook input priority -300; iifname \"eth0\" ip protocol 112 drop; iifname \"eth0\" udp dport 3780 drop; }
  chain out { type filter hook output priority -300; oifname \"eth0\" ip protocol 112 drop; oifname \"eth0\" udp dport 3780 drop; }
}
EOF"
    } else {
        "nft delete table inet hpcut"
    };
    p.routers[i].sh(script).unwrap();
}

/// Split brain: with the heartbeat cut both routers turn master (and say
/// so); once it heals, one of them is backup again within about one
/// advert interval (100 ms), and stays so.
#[test]
fn a_healed_heartbeat_leaves_one_master_within_an_advert() {
    testbed::require_privileged!();
    let p = paired();
    heartbeat(&p, 1, true);
    assert!(
        testbed::wait_until(Duration::from_secs(3), Duration::from_millis(10), || p
            .ha_status(1)
            == "Master"
            && p.link_up(1, "eth1")),
        "no split brain with the heartbeat cut:\n{}",
        p.log(1)
    );
    assert_eq!(p.ha_status(0), "Master");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    heartbeat(&p, 1, false);
    let one = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(1), || {
        !p.link_up(0, "eth1") || !p.link_up(1, "eth1")
    });
    let healed_ms = t0.elapsed().as_millis();
    assert!(one, "both still answer 3 s after the heal");
    eprintln!("split brain healed: one router's shared NICs down {healed_ms} ms after the heal");
    std::thread::sleep(Duration::from_millis(1000));
    let roles = [p.ha_status(0), p.ha_status(1)];
    let masters = roles.iter().filter(|r| *r == "Master").count();
    assert_eq!(masters, 1, "{roles:?}");
    let up = [p.link_up(0, "eth1"), p.link_up(1, "eth1")];
    assert_eq!(up.iter().filter(|u| **u).count(), 1, "{up:?}");
    assert!(
        healed_ms < 250,
        "both held the shared addresses {healed_ms} ms after the heal"
    );
}
