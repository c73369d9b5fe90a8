//! A certificate upload haproxy refuses leaves the live PEMs as they were:
//! the check runs on staged copies, and only a passing upload is swapped
//! in. The next haproxy start (here: the agent's restart) still serves.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::json;
use testbed::TcpServer;

const VIP: &str = "172.20.10.100";

/// A self-signed certificate and its key, as PEM text.
fn keypair(dir: &Path, name: &str) -> (String, String) {
    let (key, crt) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=lb.test",
            "-addext",
            "subjectAltName=DNS:lb.test",
            "-keyout",
        ])
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
    (
        std::fs::read_to_string(&crt).unwrap(),
        std::fs::read_to_string(&key).unwrap(),
    )
}

fn pem_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn https_get(lab: &Lab, ca: &Path) -> anyhow::Result<String> {
    lab.public.sh(&format!(
        "curl -sS -m 5 --cacert {} --resolve lb.test:443:{VIP} https://lb.test/",
        ca.display()
    ))
}

#[test]
fn a_refused_certificate_leaves_the_live_pem_and_the_listener_serves() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip(VIP)]}));
    let _web = TcpServer::start(&lab.tenant, "0.0.0.0:80").unwrap();
    let tmp = testbed::TempDir::new("stagecert").unwrap();
    let (crt_a, key_a) = keypair(tmp.path(), "a");
    let (_, key_b) = keypair(tmp.path(), "b");
    let ca = tmp.path().join("a.crt");
    lab.ok(
        "/certificate/create",
        json!({"uuid": "cert-1", "certificate": format!("{crt_a}{key_a}")}),
    );
    lab.ok(
        "/lb/refresh",
        json!({"lbs": [{"lbUuid": "lb-1", "listenerUuid": "tls", "vip": VIP, "publicNic": PUB_MAC,
            "nicIps": ["192.168.100.10"], "instancePort": 80, "loadBalancerPort": 443,
            "mode": "https", "parameters": [], "serverGroups": [], "redirectRules": [],
            "certificateUuid": "cert-1"}]}),
    );
    https_get(&lab, &ca).unwrap_or_else(|e| panic!("{e:#}\n{}", lab.log()));
    let certs = lab.state.path().join("certificates");
    let before = pem_dir(&certs);

    // A PEM that parses but whose key is not the certificate's: haproxy
    // refuses it.
    let (code, v) = lab
        .post(
            "/certificate/create",
            json!({"uuid": "cert-1", "certificate": format!("{crt_a}{key_b}")}),
        )
        .unwrap();
    assert_eq!(code, 400, "{v}");
    assert_eq!(pem_dir(&certs), before, "the refused PEM went live");
    https_get(&lab, &ca).unwrap();

    // haproxy starts again from the files on disk.
    lab.kill_agent();
    lab.start_agent().unwrap();
    let served = testbed::wait_until(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(100),
        || https_get(&lab, &ca).is_ok(),
    );
    assert!(served, "listener down after restart:\n{}", lab.log());
    // And a good upload still goes through.
    lab.ok(
        "/certificate/create",
        json!({"uuid": "cert-1", "certificate": format!("{crt_a}{key_a}")}),
    );
}
