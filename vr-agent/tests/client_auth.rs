//! Client authentication on the router (issue 14), with real packets
//! between namespaces: the router's certificate and token come in the
//! bootstrap info; a second host on the management network (inside the
//! allowed CIDR, so the source check lets it through) needs the controller's
//! certificate and the token; credentials rotate without a restart, and the
//! rotation outlives a restart that gets the old bootstrap info again.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{Value, json};
use testbed::pki::{Client, Credentials};
use testbed::{Netns, Proc, TempDir};

const AGENT: &str = "10.0.0.25:7272";

fn tls(c: &Credentials, cert: &common::pki::Issued) -> Value {
    json!({"certificate": cert.certificate, "privateKey": cert.private_key,
        "clientCa": c.ca.certificate_pem()})
}

fn bootstrap(agent_tls: Value, tokens: &[&str]) -> String {
    json!({
        "managementNic": {"ip": "10.0.0.25", "netmask": "255.255.255.0", "gateway": "10.0.0.1",
            "mac": "fa:26:9c:aa:00:01", "deviceName": "eth0", "isDefaultRoute": true,
            "category": "Management", "mtu": 1500},
        "additionalNics": [],
        "uuid": "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11",
        "managementNodeIp": "10.0.0.2", "managementNodeCidr": "10.0.0.0/24",
        "agentTls": agent_tls, "agentTokens": tokens,
    })
    .to_string()
}

struct Router {
    vr: Netns,
    ctl: Netns,
    state: TempDir,
    file: std::path::PathBuf,
    agent: Option<Proc>,
}

impl Router {
    fn new(doc: &str) -> Router {
        let vr = Netns::new("authvr").unwrap();
        let ctl = Netns::new("authctl").unwrap();
        testbed::veth(&vr, "eth0", &ctl, "eth0").unwrap();
        testbed::set_mac(&vr, "eth0", "fa:26:9c:aa:00:01").unwrap();
        // The controller and a second host of the management network.
        testbed::addr(&ctl, "eth0", "10.0.0.2/24").unwrap();
        ctl.sh("ip addr add 10.0.0.3/24 dev eth0").unwrap();
        let state = TempDir::new("authstate").unwrap();
        let file = state.path().join("bootstrap.json");
        let mut r = Router {
            vr,
            ctl,
            file,
            state,
            agent: None,
        };
        r.start(doc);
        r
    }

    fn start(&mut self, doc: &str) {
        std::fs::write(&self.file, doc).unwrap();
        let dir = self.state.path().join("agent");
        let mut cmd = self.vr.command(
            env!("CARGO_BIN_EXE_vr-agent"),
            &[
                "--bootstrap",
                self.file.to_str().unwrap(),
                "--state-dir",
                dir.to_str().unwrap(),
                "--bootstrap-timeout-secs",
                "5",
                "--drift-check-secs",
                "0",
            ],
        );
        cmd.env("VR_AGENT_LOG", "info");
        let p = Proc::start(cmd).unwrap();
        // Without a certificate no HTTP answer comes: wait for the port.
        let to: std::net::SocketAddr = AGENT.parse().unwrap();
        let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            self.ctl.run(|| {
                std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok()
            })
        });
        assert!(up, "the agent did not come up:\n{}", p.log());
        self.agent = Some(p);
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.agent.take() {
            p.kill();
        }
    }

    fn log(&self) -> String {
        self.agent.as_ref().map(|p| p.log()).unwrap_or_default()
    }
}

/// The second host (10.0.0.3) posts `/echo` as `client`.
fn echo_from_second_host(
    r: &Router,
    c: &Credentials,
    client: Client,
    token: Option<&str>,
) -> testbed::pki::Answer {
    c.curl_from(
        &r.ctl,
        Some("10.0.0.3"),
        client,
        AGENT,
        "/echo",
        Some("{}"),
        token,
    )
    .unwrap()
}

#[test]
fn a_second_host_needs_the_controller_certificate_and_the_token() {
    testbed::require_privileged!();
    let c = Credentials::new("router-a", "10.0.0.25").unwrap();
    let a = c.server("router-a", "10.0.0.25").unwrap();
    let r = Router::new(&bootstrap(tls(&c, &a), &[&c.token]));
    for (client, token, want) in [
        (Client::PlainHttp, Some(c.token.as_str()), 0),
        (Client::NoCertificate, Some(c.token.as_str()), 0),
        (Client::ForeignCertificate, Some(c.token.as_str()), 0),
        (Client::Controller, None, 401),
        (
            Client::Controller,
            Some("0123456789abcdef0123456789abcdef"),
            401,
        ),
        (Client::Controller, Some(c.token.as_str()), 200),
    ] {
        let got = echo_from_second_host(&r, &c, client, token);
        assert_eq!(
            got.status,
            want,
            "{client:?} with token {token:?}: {got:?}\n{}",
            r.log()
        );
        if want == 401 {
            assert!(got.body.contains("token"), "{got:?}");
        }
    }
    // /healthz needs the certificate but not the token.
    let h = c
        .curl(&r.ctl, Client::Controller, AGENT, "/healthz", None, None)
        .unwrap();
    assert_eq!(h.status, 200, "{h:?}");
    assert!(
        h.server_subject().unwrap_or_default().contains("router-a"),
        "{h:?}"
    );
    // A mutating command's audit line names the client certificate.
    let cfg = c
        .curl(
            &r.ctl,
            Client::Controller,
            AGENT,
            "/setsnatservicestate",
            Some(r#"{"snats":[],"enabled":false}"#),
            Some(&c.token),
        )
        .unwrap();
    assert_eq!(cfg.status, 200, "{cfg:?}");
    let log = r.log();
    let line = log
        .lines()
        .find(|l| l.contains("audit") && l.contains("/setsnatservicestate"))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(line.contains("CN=controller"), "{line}");
}

#[test]
fn credentials_rotate_without_a_restart_and_outlive_one() {
    testbed::require_privileged!();
    let c = Credentials::new("router-a", "10.0.0.25").unwrap();
    let a = c.server("router-a", "10.0.0.25").unwrap();
    let b = c.server("router-b", "10.0.0.25").unwrap();
    let first = bootstrap(tls(&c, &a), &[&c.token]);
    let mut r = Router::new(&first);
    let subject = |r: &Router, token: &str| {
        let got = c
            .curl(
                &r.ctl,
                Client::Controller,
                AGENT,
                "/echo",
                Some("{}"),
                Some(token),
            )
            .unwrap();
        (got.status, got.server_subject().unwrap_or_default())
    };
    assert!(subject(&r, &c.token).1.contains("router-a"));
    let new_token = "f".repeat(40);
    // A key that does not match its certificate: refused, nothing changes.
    let mut bad = tls(&c, &b);
    bad["privateKey"] = json!(a.private_key);
    let body = json!({"tls": bad, "tokens": [new_token]}).to_string();
    let refused = c
        .curl(
            &r.ctl,
            Client::Controller,
            AGENT,
            "/agent/credentials",
            Some(&body),
            Some(&c.token),
        )
        .unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(subject(&r, &c.token).0, 200, "the old token still works");
    assert!(subject(&r, &c.token).1.contains("router-a"));

    let body = json!({"tls": tls(&c, &b), "tokens": [new_token]}).to_string();
    let ok = c
        .curl(
            &r.ctl,
            Client::Controller,
            AGENT,
            "/agent/credentials",
            Some(&body),
            Some(&c.token),
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{ok:?}\n{}", r.log());
    let pid = r.agent.as_ref().unwrap().pid();
    let (status, now) = subject(&r, &new_token);
    assert_eq!(status, 200);
    assert!(
        now.contains("router-b"),
        "the new certificate is in force: {now}"
    );
    assert_eq!(
        subject(&r, &c.token).0,
        401,
        "the old token is no longer accepted"
    );
    assert_eq!(r.agent.as_ref().unwrap().pid(), pid, "no restart");
    let saved = r.state.path().join("agent/credentials.json");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // kill -9 and the same (old) bootstrap info again: the rotation holds.
    r.kill();
    r.start(&first);
    assert!(
        subject(&r, &new_token).1.contains("router-b"),
        "{}",
        r.log()
    );
    // A new delivery (another certificate in the bootstrap info) wins.
    let d = c.server("router-d", "10.0.0.25").unwrap();
    r.kill();
    r.start(&bootstrap(tls(&c, &d), &[&c.token]));
    assert!(subject(&r, &c.token).1.contains("router-d"), "{}", r.log());
}
