//! Privileged: the real binary inside a host namespace, driven over HTTP from
//! inside that namespace with the reference fixtures (sync and async modes).

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use testbed::{CallbackReceiver, Netns, TempDir, addr, http_post, require_privileged, route, veth};

const F1: &str = r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b","sendCommandUrl":"http://10.0.0.10:8080/zstack/asyncrest/sendcommand","iptablesRules":["-A INPUT -p tcp -m tcp --dport 16509 -j ACCEPT"],"ignoreMsrs":false,"pageTableExtensionDisabled":false,"tcpServerPort":7123,"version":"5.2.0","kvmHostAddons":{"qcow2Options":" -o cluster_size=2097152 "}}"#;
const F2: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","disableIptables":false,"mtu":1500,"isolated":false}"#;
const F4: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0"}"#;

#[test]
fn binary_accepts_the_fixtures_and_migrates_over_http() -> Result<()> {
    require_privileged!(Ok(()));
    let (host, gw) = (Netns::new("kvmah")?, Netns::new("kvmag")?);
    veth(&host, "eth0", &gw, "gw0")?;
    addr(&host, "eth0", "10.0.0.21/24")?;
    addr(&gw, "gw0", "10.0.0.1/24")?;
    route(&host, "default via 10.0.0.1")?;
    let state = TempDir::new("kvm-agent-state")?;
    let state_dir = state.path().to_str().unwrap();
    let agent = host.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "127.0.0.1:7070",
            "--state-dir",
            state_dir,
            // This test is the controller; F1's sendCommandUrl names 10.0.0.10.
            "--allow-from",
            "127.0.0.1,10.0.0.10",
        ],
    )?;
    let url = |p: &str| format!("http://127.0.0.1:7070{p}");
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        http_post(&host, &url("/host/echo"), "", &[]).is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "agent did not answer: {}", agent.log());

    let (s, b) = http_post(&host, &url("/host/ping"), "{}", &[])?;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Value>(&b)?["hostUuid"], "");
    let (s, b) = http_post(&host, &url("/host/connect"), F1, &[])?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(serde_json::from_str::<Value>(&b)?["success"], true);
    let (_, b) = http_post(
        &host,
        &url("/host/ping"),
        r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b"}"#,
        &[],
    )?;
    assert_eq!(
        serde_json::from_str::<Value>(&b)?["hostUuid"],
        "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b"
    );

    // createbridge the way the MN sends it: async, reply by callback.
    let cb = CallbackReceiver::start(Some(&host))?;
    let cb_url = cb.url();
    let task = "5b1b1e6c6a0b4a3f9d7c2a1e8f0d4c11";
    let (s, _) = http_post(
        &host,
        &url("/network/l2novlan/createbridge"),
        F2,
        &[("taskuuid", task), ("callbackurl", cb_url.as_str())],
    )?;
    assert_eq!(s, 200);
    let got = cb.wait_for(1, Duration::from_secs(10))?;
    assert_eq!(got[0].header("taskuuid"), Some(task));
    assert_eq!(
        got[0].json()?,
        serde_json::json!({"success":true,"error":""})
    );
    assert!(
        host.sh("ip -o addr show dev br_eth0")?
            .contains("10.0.0.21/24")
    );
    assert!(testbed::ping(&host, "10.0.0.1", 1));

    let (s, b) = http_post(&host, &url("/network/l2novlan/checkbridge"), F4, &[])?;
    assert_eq!((s, b.as_str()), (200, r#"{"error":"","success":true}"#));
    // A bridge that exists but lacks its NIC is reported, not passed.
    host.ip("link add br_x type bridge")?;
    let (s, b) = http_post(
        &host,
        &url("/network/l2novlan/checkbridge"),
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_x"}"#,
        &[],
    )?;
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains(
            "bridge[br_x] has no uplink: eth0 is not one of its ports (it is a port of br_eth0)"
        ),
        "{b}"
    );
    host.ip("link del br_x")?;
    // Sync for the node (syncJsonPost reads only 2xx bodies): a missing NIC
    // is a 200 naming it.
    let (s, b) = http_post(
        &host,
        &url("/network/checkphysicalnetworkinterface"),
        r#"{"interfaceNames":["eth0","eth9"]}"#,
        &[],
    )?;
    assert_eq!(s, 200, "{b}");
    let v: Value = serde_json::from_str(&b)?;
    assert_eq!(
        (v["success"].clone(), v["failedInterfaceNames"].clone()),
        (false.into(), serde_json::json!(["eth9"]))
    );
    // Async with a body that does not decode: 200, the error by callback
    // (asyncJsonPost keeps only the status line of a non-2xx answer).
    let (s, _) = http_post(
        &host,
        &url("/network/l2vlan/createbridge"),
        r#"{"physicalInterfaceName":"eth0","bridgeName":"br_v","vlan":"x"}"#,
        &[("taskuuid", "t-bad-body"), ("callbackurl", cb_url.as_str())],
    )?;
    assert_eq!(s, 200);
    let got = cb.wait_for(2, Duration::from_secs(10))?;
    assert_eq!(got[1].header("taskuuid"), Some("t-bad-body"));
    let v = got[1].json()?;
    assert_eq!(v["success"], false, "{v}");
    assert!(v["error"].as_str().unwrap().contains("field vlan"), "{v}");
    let (s, b) = http_post(&host, &url("/network/nosuch"), "{}", &[])?;
    assert_eq!(
        (s, b.as_str()),
        (404, "no plugin registered the path[/network/nosuch]")
    );
    let (s, b) = http_post(&host, &url("/network/l2novlan/deletebridge"), F4, &[])?;
    assert_eq!(s, 200, "{b}");
    assert!(
        host.sh("ip -o addr show dev eth0")?
            .contains("10.0.0.21/24")
    );
    assert!(agent.log().contains("createbridge done"), "{}", agent.log());
    Ok(())
}
