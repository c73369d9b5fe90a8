//! Privileged: `CreateBridgeCmd.isolated` with real packets, in namespaces.
//!
//! Topology (all namespaces are ours; the root namespace is untouched):
//!   host: eth0 10.5.0.21/24 (becomes br_eth0's uplink), tap1, tap2 (the
//!         "guests'" taps, veth peers)
//!   up:   u0 10.5.0.1/24, the far side of the uplink
//!   g1:   eth0 10.5.0.11/24 (peer of tap1)    g2: eth0 10.5.0.12/24 (tap2)
//!
//! On an isolated bridge the guests reach the uplink side and the host but
//! not each other; after a createbridge with `isolated:false` they do.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::Request;
use kvm_agent::api::{Agent, router};
use kvm_agent::bridge;
use kvm_agent::sys::netlink::RtNetlink;
use kvm_agent::sys::sysctl::ProcSys;
use serde_json::{Value, json};
use testbed::{Netns, addr, ping, require_privileged, veth};
use tower::ServiceExt;

struct Topo {
    host: Netns,
    up: Netns,
    g1: Netns,
    g2: Netns,
}

fn topo() -> Result<Topo> {
    let t = Topo {
        host: Netns::new("kvmih")?,
        up: Netns::new("kvmiu")?,
        g1: Netns::new("kvmi1")?,
        g2: Netns::new("kvmi2")?,
    };
    veth(&t.host, "eth0", &t.up, "u0")?;
    veth(&t.host, "tap1", &t.g1, "eth0")?;
    veth(&t.host, "tap2", &t.g2, "eth0")?;
    addr(&t.host, "eth0", "10.5.0.21/24")?;
    addr(&t.up, "u0", "10.5.0.1/24")?;
    addr(&t.g1, "eth0", "10.5.0.11/24")?;
    addr(&t.g2, "eth0", "10.5.0.12/24")?;
    Ok(t)
}

/// POST `body` to `path` of a kvm-agent router running inside `ns` (real
/// netlink and sysctls of that namespace), sync mode.
fn post(ns: &Netns, state_dir: &Path, path: &str, body: &Value) -> (u16, Value) {
    let (path, body, dir) = (path.to_string(), body.to_string(), state_dir.to_path_buf());
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let nl = RtNetlink::new().expect("rtnetlink socket");
            let agent = Agent::new(Arc::new(nl), Arc::new(ProcSys::default()), dir);
            let rsp = router(Arc::new(agent))
                .oneshot(Request::post(path).body(Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = rsp.status().as_u16();
            let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
        })
    })
}

/// What the VM side calls once libvirt has put a tap on the bridge.
fn guest_port_joined(ns: &Netns, state_dir: &Path, tap: &str) -> Result<bool> {
    let (tap, dir) = (tap.to_string(), state_dir.to_path_buf());
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let nl = RtNetlink::new().expect("rtnetlink socket");
            bridge::isolate_guest_port(&nl, &dir, "br_eth0", &tap, false)
                .await
                .map_err(|e| e.to_string())
        })
    })
    .map_err(anyhow::Error::msg)
}

/// The kernel's own word: `ip -d -j link show <port>`'s bridge_slave data.
fn kernel_isolated(ns: &Netns, port: &str) -> Result<bool> {
    let out = ns.ip(&format!("-d -j link show {port}"))?;
    let v: Value = serde_json::from_slice(&out.stdout).context("ip -j output")?;
    Ok(v[0]["linkinfo"]["info_slave_data"]["isolated"] == true)
}

fn attach(ns: &Netns, tap: &str) -> Result<()> {
    ns.ip(&format!("link set {tap} master br_eth0 up"))?;
    Ok(())
}

fn create(isolated: bool) -> Value {
    json!({"physicalInterfaceName": "eth0", "bridgeName": "br_eth0",
           "l2NetworkUuid": "5a0f0000000000000000000000000001", "mtu": 1500,
           "isolated": isolated})
}

#[test]
fn isolated_bridge_keeps_guests_apart_but_not_from_the_uplink() -> Result<()> {
    require_privileged!(Ok(()));
    let t = topo()?;
    let dir = std::env::temp_dir().join(format!("kvm-agent-isolation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // tap2 is on the bridge before createbridge (a guest already running
    // when the host reconnects); tap1 joins after it (a /vm/start).
    let (s, v) = post(
        &t.host,
        &dir,
        "/network/l2novlan/createbridge",
        &create(true),
    );
    assert_eq!((s, v["success"].clone()), (200, true.into()), "{v}");
    attach(&t.host, "tap2")?;
    let (s, v) = post(
        &t.host,
        &dir,
        "/network/l2novlan/createbridge",
        &create(true),
    );
    assert_eq!((s, v["success"].clone()), (200, true.into()), "{v}");
    attach(&t.host, "tap1")?;
    assert!(guest_port_joined(&t.host, &dir, "tap1")?);
    assert!(kernel_isolated(&t.host, "tap1")?);
    assert!(kernel_isolated(&t.host, "tap2")?);
    assert!(
        !kernel_isolated(&t.host, "eth0")?,
        "the uplink must stay open"
    );

    assert!(
        ping(&t.g1, "10.5.0.1", 2),
        "g1 cannot reach the uplink side"
    );
    assert!(
        ping(&t.g2, "10.5.0.1", 2),
        "g2 cannot reach the uplink side"
    );
    assert!(ping(&t.g1, "10.5.0.21", 2), "g1 cannot reach the host");
    assert!(
        !ping(&t.g1, "10.5.0.12", 2),
        "isolated guests reach each other"
    );
    assert!(
        !ping(&t.g2, "10.5.0.11", 2),
        "isolated guests reach each other"
    );

    // The same bridge for a normal L2 network: the guests meet.
    let (s, v) = post(
        &t.host,
        &dir,
        "/network/l2novlan/createbridge",
        &create(false),
    );
    assert_eq!((s, v["success"].clone()), (200, true.into()), "{v}");
    assert!(!kernel_isolated(&t.host, "tap1")?);
    assert!(!guest_port_joined(&t.host, &dir, "tap1")?);
    assert!(
        ping(&t.g1, "10.5.0.12", 2),
        "guests on a normal bridge cannot meet"
    );
    assert!(ping(&t.g1, "10.5.0.1", 1));

    // A private VLAN is refused, not built open.
    let mut pv = create(true);
    pv["pvlan"] = json!("pvlan://100-i200");
    let (s, v) = post(&t.host, &dir, "/network/l2novlan/createbridge", &pv);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("private VLAN"), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
