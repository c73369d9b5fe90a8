//! Privileged: kvm-agent's client authentication with real packets (issue
//! 14). One management network (a bridge in `sw`): the controller 10.7.0.1,
//! the host 10.7.0.2, a second host 10.7.0.3. Both are allowed by address
//! (`--allow-from 10.7.0.0/24`), so what refuses the second host here is
//! the missing certificate or token. The certificate and the token rotate
//! by replacing their files, without a restart.

use std::time::Duration;

use anyhow::Result;
use testbed::pki::{Client, Credentials};
use testbed::{Netns, Proc, TempDir, addr, bridge, enslave, require_privileged, veth};

const AGENT: &str = "10.7.0.2:7070";

fn start(host: &Netns, ctl: &Netns, state: &TempDir, c: &Credentials) -> Result<Proc> {
    let p = |n: &str| c.path(n).display().to_string();
    let (cert, key, ca, token) = (p("server.pem"), p("server.key"), p("ca.pem"), p("token"));
    let agent = host.spawn(
        env!("CARGO_BIN_EXE_kvm-agent"),
        &[
            "--listen",
            "10.7.0.2:7070",
            "--state-dir",
            state.path().to_str().unwrap(),
            "--libvirt-uri",
            "test:///default",
            "--allow-from",
            "10.7.0.0/24",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
            "--auth-token-file",
            &token,
        ],
    )?;
    let to: std::net::SocketAddr = AGENT.parse()?;
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        ctl.run(|| std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok())
    });
    assert!(up, "agent did not listen: {}", agent.log());
    Ok(agent)
}

const CREATEBRIDGE: &str = r#"{"physicalInterfaceName":"nosuchnic","bridgeName":"br_nosuchnic","l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","mtu":1500}"#;

#[test]
fn the_second_host_needs_the_certificate_and_the_token_which_rotate_by_file() -> Result<()> {
    require_privileged!(Ok(()));
    let (sw, ctl, host, other) = (
        Netns::new("kvmas")?,
        Netns::new("kvmac")?,
        Netns::new("kvmah")?,
        Netns::new("kvmao")?,
    );
    bridge(&sw, "br0")?;
    for (ns, port) in [(&ctl, "p1"), (&host, "p2"), (&other, "p3")] {
        veth(ns, "eth0", &sw, port)?;
        enslave(&sw, port, "br0")?;
    }
    addr(&ctl, "eth0", "10.7.0.1/24")?;
    addr(&host, "eth0", "10.7.0.2/24")?;
    addr(&other, "eth0", "10.7.0.3/24")?;
    let c = Credentials::new("host-a", "10.7.0.2")?;
    let state = TempDir::new("kvm-auth-state")?;
    let mut agent = start(&host, &ctl, &state, &c)?;
    let token = c.token.clone();

    for path in ["/host/echo", "/network/l2novlan/createbridge"] {
        for (client, tok, want) in [
            (Client::PlainHttp, Some(token.as_str()), 0),
            (Client::NoCertificate, Some(token.as_str()), 0),
            (Client::ForeignCertificate, Some(token.as_str()), 0),
            (Client::Controller, None, 401),
            (
                Client::Controller,
                Some("0123456789abcdef0123456789abcdef"),
                401,
            ),
        ] {
            let got = c.curl(&other, client, AGENT, path, Some(CREATEBRIDGE), tok)?;
            assert_eq!(
                got.status,
                want,
                "{path} {client:?} {tok:?}: {got:?}\n{}",
                agent.log()
            );
            if want == 401 {
                assert!(got.body.contains("token"), "{got:?}");
            }
        }
    }
    // With both, the second host is served (createbridge then fails on
    // the missing NIC, in its reply: it ran).
    let got = c.curl(
        &other,
        Client::Controller,
        AGENT,
        "/host/echo",
        Some("{}"),
        Some(&token),
    )?;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(
        got.server_subject().unwrap_or_default().contains("host-a"),
        "{got:?}"
    );
    let got = c.curl(
        &ctl,
        Client::Controller,
        AGENT,
        "/network/l2novlan/createbridge",
        Some(CREATEBRIDGE),
        Some(&token),
    )?;
    assert!(got.body.contains("nosuchnic"), "{got:?}");
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("audit") && l.contains("createbridge") && l.contains("result"))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(line.contains("CN=controller"), "{line}");

    // Rotation by file: a key that does not match first (refused, the old
    // stays), then the matching pair; a second token, then only it.
    let b = c.server("host-b", "10.7.0.2")?;
    let a_key = std::fs::read_to_string(c.path("server.key"))?;
    c.write("server.pem", &b.certificate)?;
    std::thread::sleep(Duration::from_secs(3));
    let got = c.curl(
        &ctl,
        Client::Controller,
        AGENT,
        "/host/echo",
        Some("{}"),
        Some(&token),
    )?;
    assert!(
        got.server_subject().unwrap_or_default().contains("host-a"),
        "{got:?}"
    );
    assert_ne!(a_key, b.private_key);
    c.write("server.key", &b.private_key)?;
    let new_token = "n".repeat(48);
    c.write("token", &format!("{token}\n{new_token}\n"))?;
    let rotated = testbed::wait_until(Duration::from_secs(6), Duration::from_millis(200), || {
        c.curl(
            &ctl,
            Client::Controller,
            AGENT,
            "/host/echo",
            Some("{}"),
            Some(&new_token),
        )
        .is_ok_and(|a| a.status == 200 && a.server_subject().unwrap_or_default().contains("host-b"))
    });
    assert!(rotated, "not rotated within 6 s:\n{}", agent.log());
    let old = c.curl(
        &ctl,
        Client::Controller,
        AGENT,
        "/host/echo",
        Some("{}"),
        Some(&token),
    )?;
    assert_eq!(old.status, 200, "both tokens while the controller switches");
    c.write("token", &format!("{new_token}\n"))?;
    let dropped = testbed::wait_until(Duration::from_secs(6), Duration::from_millis(200), || {
        c.curl(
            &ctl,
            Client::Controller,
            AGENT,
            "/host/echo",
            Some("{}"),
            Some(&token),
        )
        .is_ok_and(|a| a.status == 401)
    });
    assert!(dropped, "the old token is still accepted");
    assert!(agent.is_running(), "no restart");
    Ok(())
}
