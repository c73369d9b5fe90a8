//! Privileged: the bridge migration against the real kernel, in namespaces.
//!
//! Topology (all namespaces are ours; nothing touches the root namespace):
//!   host: eth0 10.0.0.21/24 + 10.0.0.22/24 + 2001:db8::21/64, eth1 192.168.100.21/24,
//!         default via 10.0.0.1 (metric 100), v6 default via 2001:db8::1, a route in
//!         table 100, a scope-link route, an onlink route
//!   gateway: gw0 10.0.0.1 / 2001:db8::1 (peer of eth0), gw1 (peer of eth1), gwr -> remote
//!   remote: r0 10.1.0.2 / 2001:db8:1::2, behind the gateway

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kvm_agent::bridge::{self, BridgeError, Options};
use kvm_agent::plan::bridge::{BridgeSpec, PlanError};
use kvm_agent::sys::netlink::{FailAt, Netlink, RtNetlink};
use kvm_agent::sys::sysctl::ProcSys;
use serde_json::Value;
use testbed::{Netns, Proc, addr, require_privileged, route, veth};

struct Topo {
    host: Netns,
    gw: Netns,
    #[allow(dead_code)]
    remote: Netns,
}

fn topo(default_gw: &str) -> Result<Topo> {
    let (host, gw, remote) = (
        Netns::new("kvmh")?,
        Netns::new("kvmg")?,
        Netns::new("kvmr")?,
    );
    for ns in [&host, &gw, &remote] {
        // DAD would keep fresh IPv6 addresses tentative for a second.
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
    }
    veth(&host, "eth0", &gw, "gw0")?;
    veth(&host, "eth1", &gw, "gw1")?;
    veth(&gw, "gwr", &remote, "r0")?;
    addr(&host, "eth0", "10.0.0.21/24")?;
    addr(&host, "eth0", "10.0.0.22/24")?;
    addr(&host, "eth0", "2001:db8::21/64")?;
    addr(&host, "eth1", "192.168.100.21/24")?;
    addr(&gw, "gw0", "10.0.0.1/24")?;
    addr(&gw, "gw0", "2001:db8::1/64")?;
    addr(&gw, "gw1", "192.168.100.1/24")?;
    addr(&gw, "gwr", "10.1.0.1/24")?;
    addr(&gw, "gwr", "2001:db8:1::1/64")?;
    gw.sysctl("net.ipv4.ip_forward", "1")?;
    gw.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    addr(&remote, "r0", "10.1.0.2/24")?;
    addr(&remote, "r0", "2001:db8:1::2/64")?;
    route(&remote, "default via 10.1.0.1")?;
    remote.ip("-6 route add default via 2001:db8:1::1")?;
    route(
        &host,
        &format!("default via {default_gw} dev eth0 metric 100 proto static"),
    )?;
    route(&host, "10.2.0.0/24 via 10.0.0.1 dev eth0 table 100")?;
    route(&host, "10.3.0.0/24 dev eth0 scope link metric 5")?;
    route(&host, "10.9.9.0/24 via 10.0.9.1 dev eth0 onlink")?;
    host.ip("-6 route add default via 2001:db8::1 dev eth0 metric 1024")?;
    Ok(Topo { host, gw, remote })
}

fn spec(nic: &str, bridge: &str) -> BridgeSpec {
    BridgeSpec {
        bridge: bridge.into(),
        nic: nic.into(),
        mtu: Some(1500),
        l2_uuid: Some("a1b2c3d4e5f60718293a4b5c6d7e8f90".into()),
    }
}

/// Runs `f` with a real netlink socket inside `ns` (current-thread runtime on
/// a thread that joined the namespace).
fn in_ns<T: Send>(ns: &Netns, f: impl AsyncFnOnce(RtNetlink) -> T + Send) -> T {
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = RtNetlink::new().expect("rtnetlink socket");
            f(nl).await
        })
    })
}

fn json(out: std::process::Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).context("ip -j output")
}

/// `ip -j addr` and all-table `ip -j route` (v4 + v6), with what legitimately
/// changes (address lifetimes) removed and routes sorted.
fn dumps(ns: &Netns) -> Result<(Value, Value)> {
    let mut a = json(ns.ip("-j addr")?)?;
    for link in a.as_array_mut().unwrap() {
        if let Some(infos) = link.get_mut("addr_info").and_then(Value::as_array_mut) {
            for i in infos {
                let o = i.as_object_mut().unwrap();
                o.remove("valid_life_time");
                o.remove("preferred_life_time");
            }
        }
    }
    let mut routes: Vec<String> = Vec::new();
    for fam in ["-4", "-6"] {
        let r = json(ns.ip(&format!("-j {fam} route show table all"))?)?;
        routes.extend(r.as_array().unwrap().iter().map(|x| x.to_string()));
    }
    routes.sort();
    Ok((a, Value::from(routes)))
}

fn assert_same(before: &(Value, Value), after: &(Value, Value), what: &str) {
    assert_eq!(before.0, after.0, "{what}: `ip -j addr` differs");
    assert_eq!(before.1, after.1, "{what}: `ip -j route` differs");
}

/// Lost packets of a finished `ping -c N` from its summary line.
fn lost(log: &str) -> Result<(u32, u32)> {
    let line = log
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .with_context(|| format!("no ping summary in {log}"))?;
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    Ok((nums[0], nums[1]))
}

fn wait_exit(p: &mut Proc, within: Duration) -> bool {
    testbed::wait_until(within, Duration::from_millis(20), || !p.is_running())
}

#[test]
fn createbridge_migrates_without_losing_the_host_and_deletebridge_restores() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo("10.0.0.1")?;
    assert!(
        testbed::ping(&t.host, "10.1.0.2", 1),
        "topology broken before the test"
    );
    let before = dumps(&t.host)?;
    let eth0_mac = testbed::mac(&t.host, "eth0")?;

    // 100 pps streams from the gateway to the host during the migration.
    let mut v4 = t.gw.spawn(
        "ping",
        &["-n", "-i", "0.01", "-c", "150", "-W", "1", "10.0.0.21"],
    )?;
    let mut v6 = t.gw.spawn(
        "ping",
        &[
            "-n",
            "-6",
            "-i",
            "0.01",
            "-c",
            "150",
            "-W",
            "1",
            "2001:db8::21",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let out = in_ns(&t.host, async |nl| {
        bridge::create(
            &nl,
            &ProcSys::default(),
            &spec("eth0", "br_eth0"),
            false,
            &Options::default(),
        )
        .await
    })?;
    let took = started.elapsed();
    assert!(
        wait_exit(&mut v4, Duration::from_secs(10)) && wait_exit(&mut v6, Duration::from_secs(10))
    );
    let (tx4, rx4) = lost(&v4.log())?;
    let (tx6, rx6) = lost(&v6.log())?;
    eprintln!(
        "createbridge: {} changes in {:.1} ms (call incl. thread+runtime: {:.1} ms); \
         100 pps during migration: IPv4 lost {} of {tx4}, IPv6 lost {} of {tx6}",
        out.changed,
        out.elapsed.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3,
        tx4 - rx4,
        tx6 - rx6
    );
    assert!(tx4 - rx4 <= 1, "IPv4 lost {} packets", tx4 - rx4);
    assert!(tx6 - rx6 <= 1, "IPv6 lost {} packets", tx6 - rx6);

    // Everything is on the bridge; eth0 keeps only its kernel link-local.
    let link = json(t.host.ip("-j -d link show br_eth0")?)?;
    assert_eq!(link[0]["address"], eth0_mac.as_str());
    assert_eq!(link[0]["linkinfo"]["info_data"]["stp_state"], 0);
    assert_eq!(link[0]["linkinfo"]["info_data"]["forward_delay"], 0);
    assert_eq!(link[0]["ifalias"], "phy_nic: eth0");
    let eth0 = json(t.host.ip("-j addr show dev eth0")?)?;
    assert_eq!(eth0[0]["master"], "br_eth0");
    let eth0_link = json(t.host.ip("-j link show dev eth0")?)?;
    assert_eq!(
        eth0_link[0]["ifalias"],
        "uuid: a1b2c3d4e5f60718293a4b5c6d7e8f90"
    );
    let left: Vec<&Value> = eth0[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .collect();
    assert!(left.is_empty(), "addresses left on eth0: {left:?}");
    let br = t.host.sh("ip -o addr show dev br_eth0")?;
    for a in ["10.0.0.21/24", "10.0.0.22/24", "2001:db8::21/64"] {
        assert!(br.contains(a), "{a} not on br_eth0: {br}");
    }
    let (_, routes) = dumps(&t.host)?;
    for r in routes.as_array().unwrap() {
        let r: Value = serde_json::from_str(r.as_str().unwrap())?;
        if r["dev"] == "eth0" {
            let dst = r["dst"].as_str().unwrap_or("");
            assert!(
                dst.starts_with("fe80") || dst.starts_with("ff00"),
                "route left on eth0: {r}"
            );
        }
    }
    for want in [
        "default via 10.0.0.1 dev br_eth0 proto static metric 100",
        "10.2.0.0/24 via 10.0.0.1 dev br_eth0 table 100",
        "10.3.0.0/24 dev br_eth0 scope link metric 5",
        "10.9.9.0/24 via 10.0.9.1 dev br_eth0 onlink",
        "default via 2001:db8::1 dev br_eth0 metric 1024",
    ] {
        let all = t
            .host
            .sh("ip route show table all; ip -6 route show table all")?;
        assert!(all.contains(want), "missing `{want}` in\n{all}");
    }
    for ip in ["10.0.0.1", "10.1.0.2", "2001:db8::1", "2001:db8:1::2"] {
        assert!(
            testbed::ping(&t.host, ip, 1),
            "{ip} unreachable after migration"
        );
    }

    // Idempotent.
    let migrated = dumps(&t.host)?;
    let again = in_ns(&t.host, async |nl| {
        bridge::create(
            &nl,
            &ProcSys::default(),
            &spec("eth0", "br_eth0"),
            false,
            &Options::default(),
        )
        .await
    })?;
    assert_eq!(again.changed, 0);
    assert_same(&migrated, &dumps(&t.host)?, "second createbridge");

    // deletebridge puts it all back.
    in_ns(&t.host, async |nl| {
        bridge::delete(&nl, &ProcSys::default(), &spec("eth0", "br_eth0")).await
    })?;
    assert_same(&before, &dumps(&t.host)?, "deletebridge");
    assert!(testbed::ping(&t.host, "10.1.0.2", 1));
    Ok(())
}

#[test]
fn each_injected_failure_rolls_back_to_identical_dumps() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo("10.0.0.1")?;
    let before = dumps(&t.host)?;
    let s = spec("eth0", "br_eth0");
    let plan = in_ns(&t.host, async |nl| bridge::plan_create(&nl, &s).await)?;
    assert!(plan.steps.len() >= 12, "{:?}", plan.steps);
    for (i, st) in plan.steps.iter().enumerate() {
        let r = in_ns(&t.host, async |nl| {
            let failing = FailAt::new(nl, i);
            bridge::create(
                &failing,
                &ProcSys::default(),
                &s,
                false,
                &Options::default(),
            )
            .await
        });
        match r {
            Err(BridgeError::Step { rollback, .. }) => {
                assert!(
                    rollback.is_empty(),
                    "step {i}: rollback errors {rollback:?}"
                )
            }
            other => panic!(
                "step {i} ({}): expected a step failure, got {other:?}",
                st.op
            ),
        }
        assert_same(
            &before,
            &dumps(&t.host)?,
            &format!("failure at step {i} ({})", st.op),
        );
        assert!(
            testbed::ping(&t.host, "10.1.0.2", 1),
            "host lost after failure at step {i}"
        );
    }
    eprintln!(
        "rolled back cleanly from a failure at each of {} steps",
        plan.steps.len()
    );
    Ok(())
}

#[test]
fn silent_gateway_rolls_back() -> Result<()> {
    require_privileged!(Ok(()));
    // Nobody owns 10.0.0.99: ARP for it never gets an answer.
    let t = topo("10.0.0.99")?;
    let before = dumps(&t.host)?;
    let started = Instant::now();
    let r = in_ns(&t.host, async |nl| {
        let o = Options {
            gateway_timeout: Duration::from_millis(500),
        };
        bridge::create(
            &nl,
            &ProcSys::default(),
            &spec("eth0", "br_eth0"),
            false,
            &o,
        )
        .await
    });
    let e = r.unwrap_err();
    assert!(
        matches!(&e, BridgeError::Gateway { rollback, .. } if rollback.is_empty()),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("default gateway 10.0.0.99 did not answer on br_eth0"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_same(&before, &dumps(&t.host)?, "gateway check failure");
    Ok(())
}

#[test]
fn occupied_nic_and_attached_vms_are_refused() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo("10.0.0.1")?;
    testbed::bridge(&t.host, "br_x")?;
    testbed::enslave(&t.host, "eth1", "br_x")?;
    // The kernel gives br_x its IPv6 link-local once it has a carrier.
    assert!(testbed::wait_until(
        Duration::from_secs(3),
        Duration::from_millis(20),
        || {
            t.host
                .sh("ip -6 -o addr show dev br_x")
                .is_ok_and(|o| o.contains("fe80"))
        }
    ));
    let before = dumps(&t.host)?;
    let e = in_ns(&t.host, async |nl| {
        bridge::create(
            &nl,
            &ProcSys::default(),
            &spec("eth1", "br_eth1"),
            false,
            &Options::default(),
        )
        .await
    })
    .unwrap_err();
    assert!(
        matches!(e, BridgeError::Plan(PlanError::Occupied { ref other, .. }) if other == "br_x"),
        "{e}"
    );
    assert_same(&before, &dumps(&t.host)?, "occupied");

    in_ns(&t.host, async |nl| {
        bridge::create(
            &nl,
            &ProcSys::default(),
            &spec("eth0", "br_eth0"),
            false,
            &Options::default(),
        )
        .await
    })?;
    t.host.ip("tuntap add vnet0 mode tap")?;
    testbed::enslave(&t.host, "vnet0", "br_eth0")?;
    let e = in_ns(&t.host, async |nl| {
        bridge::delete(&nl, &ProcSys::default(), &spec("eth0", "br_eth0")).await
    })
    .unwrap_err();
    assert!(e.to_string().contains("VMs attached"), "{e}");
    assert!(
        testbed::ping(&t.host, "10.1.0.2", 1),
        "refused delete must leave the host working"
    );
    t.host.ip("link del vnet0")?;
    in_ns(&t.host, async |nl| {
        bridge::delete(&nl, &ProcSys::default(), &spec("eth0", "br_eth0")).await
    })?;
    Ok(())
}

#[test]
fn vlan_bridge_or_a_clear_error_without_8021q() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo("10.0.0.1")?;
    let before = dumps(&t.host)?;
    let probe = t.host.ip("link add link eth1 name eth1.7 type vlan id 7");
    let r = in_ns(&t.host, async |nl| {
        bridge::create_vlan(
            &nl,
            &ProcSys::default(),
            &spec("eth1", "br_eth1_100"),
            100,
            false,
            &Options::default(),
        )
        .await
    });
    match probe {
        Err(why) => {
            eprintln!(
                "this kernel has no 802.1Q support ({why:#}); checking only the error path of l2vlan/createbridge"
            );
            let e = r.unwrap_err();
            assert!(matches!(e, BridgeError::NoVlanSupport { .. }), "{e}");
            assert!(
                e.to_string().starts_with("kernel has no 802.1Q support: "),
                "{e}"
            );
            assert_same(&before, &dumps(&t.host)?, "failed vlan createbridge");
        }
        Ok(_) => {
            t.host.ip("link del eth1.7")?;
            r?;
            let l = json(t.host.ip("-j -d link show eth1.100")?)?;
            assert_eq!(l[0]["master"], "br_eth1_100");
            assert_eq!(l[0]["linkinfo"]["info_data"]["id"], 100);
            in_ns(&t.host, async |nl| {
                bridge::delete_vlan(&nl, &ProcSys::default(), &spec("eth1", "br_eth1_100"), 100)
                    .await
            })?;
            assert_same(&before, &dumps(&t.host)?, "vlan deletebridge");
        }
    }
    Ok(())
}

/// Make sure the trait object path (what the agent uses) works as well.
#[test]
fn dump_through_a_trait_object() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo("10.0.0.1")?;
    let obs = in_ns(&t.host, async |nl| {
        let dynl: std::sync::Arc<dyn Netlink> = std::sync::Arc::new(nl);
        dynl.dump().await
    })?;
    assert!(obs.link("eth0").is_some_and(|l| l.up && l.mtu == 1500));
    assert_eq!(
        obs.addrs_on("eth0")
            .filter(|a| !a.is_ipv6_link_local())
            .count(),
        3
    );
    Ok(())
}
