//! The lab with mutual TLS and a bearer token on (issue 14): its CA and
//! credentials under `<state>/pki`, and the checks that the agents refuse
//! a client without them and that a router's certificate rotates without
//! a restart.
//!
//! `<state>/pki` is a vrctl PKI directory (`vrctl pki init`) plus
//! kvm-agent's server certificate (`kvm-agent.pem`, `.key`, for the hosts'
//! lab IPs) and the token file (`token`): `VRCTL_PKI_DIR=<state>/pki
//! VRCTL_TOKEN_FILE=<state>/pki/token` lets any vrctl command drive the lab.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::LabError;
use super::addresses::{HOST_IP, HOST2_IP, KVM, VR_AGENT, VR_MGMT_IP};
use crate::client::{Client, ClientError};
use crate::credentials::{CredentialFiles, Credentials};
use crate::router::Ctx;
use crate::router_tls;

/// The lab's PKI directory.
pub fn pki_dir(state: &Path) -> PathBuf {
    state.join("pki")
}

pub fn token_file(state: &Path) -> PathBuf {
    pki_dir(state).join("token")
}

/// kvm-agent's `--tls-*` and `--auth-token-file` arguments.
pub fn kvm_agent_args(state: &Path) -> Vec<String> {
    let p = |f: &str| pki_dir(state).join(f).display().to_string();
    vec![
        "--tls-cert".into(),
        p("kvm-agent.pem"),
        "--tls-key".into(),
        p("kvm-agent.key"),
        "--tls-client-ca".into(),
        p("ca.pem"),
        "--auth-token-file".into(),
        token_file(state).display().to_string(),
    ]
}

/// A new CA, vrctl's client certificate, kvm-agent's server certificate
/// and a token.
pub fn create(state: &Path) -> Result<(), LabError> {
    let dir = pki_dir(state);
    let err = |e: &dyn std::fmt::Display| LabError::Other(format!("lab PKI: {e}"));
    crate::pki::init(&dir, "vrctl lab CA", true).map_err(|e| err(&e))?;
    // One certificate for both hosts of `--ha` (a lab, not a cloud).
    let ips = [HOST_IP, HOST2_IP]
        .iter()
        .map(|ip| ip.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&e))?;
    let ca = common::pki::Authority::load(&dir).map_err(|e| err(&e))?;
    let kvm = ca
        .issue_server("kvm-agent lab host", &ips, &[], 30)
        .map_err(|e| err(&e))?;
    common::pki::write_private(&dir.join("kvm-agent.pem"), &kvm.certificate)
        .map_err(|e| err(&e))?;
    common::pki::write_private(&dir.join("kvm-agent.key"), &kvm.private_key)
        .map_err(|e| err(&e))?;
    let token = crate::pki::new_token().map_err(|e| err(&e))?;
    common::pki::write_private(&token_file(state), &format!("{token}\n")).map_err(|e| err(&e))?;
    Ok(())
}

/// What the lab's controller presents.
pub fn credentials(state: &Path) -> Result<Credentials, LabError> {
    let files = CredentialFiles {
        token_file: Some(token_file(state)),
        ..Default::default()
    }
    .with_pki_dir(&pki_dir(state));
    Credentials::load(&files).map_err(|e| LabError::Other(format!("lab credentials: {e}")))
}

fn read(state: &Path, f: &str) -> Result<String, String> {
    let p = pki_dir(state).join(f);
    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The one check of both agents: `refused` must give the error `want`
/// names (`what` for the report).
async fn refused_by_both(
    creds: &Credentials,
    want: impl Fn(&ClientError) -> bool,
) -> Result<String, String> {
    let mut seen = vec![];
    for (url, path) in [(KVM, "/host/echo"), (VR_AGENT, "/echo")] {
        let c = Client::with(url, None, creds);
        match c.call(path, &json!({})).await {
            Ok(_) => return Err(format!("{url}{path} answered")),
            Err(e) if want(&e) => seen.push(e.to_string()),
            Err(e) => return Err(format!("{url}{path}: unexpected error: {e}")),
        }
    }
    Ok(seen.join("; "))
}

/// kvm-agent and vr-agent refuse a client without a certificate, and one
/// without the token.
pub async fn refusals(
    state: &Path,
    creds: &Credentials,
) -> (Result<String, String>, Result<String, String>) {
    let no_cert = match read(state, "ca.pem") {
        Ok(ca) => match Credentials::from_pem(&ca, None, creds.tokens().to_vec()) {
            Ok(c) => {
                refused_by_both(&c, |e| {
                    matches!(e, ClientError::Tls { reason, .. }
                        if reason.contains("requires a client certificate"))
                })
                .await
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    let no_token = refused_by_both(&creds.without_token(), |e| {
        matches!(e, ClientError::Unauthorized { reason, .. }
            if reason.contains("requires a bearer token"))
    })
    .await;
    (no_cert, no_token)
}

/// One TLS connection to the router's agent (blocking: a raw stream, so it
/// can be kept across the rotation).
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Conn {
    fn open(config: &Arc<rustls::ClientConfig>, ip: &str, port: u16) -> Result<Conn, String> {
        let name = common::tls::server_name(ip).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect((ip, port)).map_err(|e| format!("{ip}:{port}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        Ok(Conn { tls })
    }

    /// The serial of the agent's certificate on this connection.
    fn serial(&self) -> String {
        self.tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| router_tls::serial_of(c.as_ref()))
            .unwrap_or_default()
    }

    /// `POST /ping` on this connection (kept alive): the status line.
    fn ping(&mut self, token: Option<&str>) -> Result<String, String> {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!(
            "POST /ping HTTP/1.1\r\nHost: {VR_MGMT_IP}\r\nContent-Type: application/json\r\n\
             {auth}Content-Length: 2\r\n\r\n{{}}"
        );
        self.tls
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut got = vec![];
        let mut buf = [0u8; 4096];
        // Headers, then Content-Length bytes of body.
        loop {
            let n = self.tls.read(&mut buf).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the agent closed the connection".into());
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return Ok(head.lines().next().unwrap_or("").to_string());
                }
            }
        }
    }
}

/// Rotation without a restart: a connection opened before keeps working
/// on the old certificate, a new one sees the new serial, commands go on.
pub async fn rotation(ctx: &Ctx<'_>, spec: &crate::spec::RouterSpec) -> Result<String, String> {
    let creds = &ctx.credentials;
    let config = creds.tls().ok_or("the lab has no TLS credentials")?;
    let mut before = Conn::open(config, VR_MGMT_IP, 7272)?;
    let old = before.serial();
    let r = ctx.rotate_cert(spec).await.map_err(|e| e.to_string())?;
    if r.old_serial != old {
        return Err(format!(
            "the agent presented serial {old}, vrctl's record says {}",
            r.old_serial
        ));
    }
    let after = Conn::open(config, VR_MGMT_IP, 7272)?;
    if after.serial() != r.serial || r.serial == old {
        return Err(format!(
            "after rotation a new connection sees serial {}, expected {} (old {old})",
            after.serial(),
            r.serial
        ));
    }
    let kept = before.ping(creds.token())?;
    if !kept.contains(" 200") {
        return Err(format!("the connection from before the rotation: {kept}"));
    }
    let agent = ctx.client(VR_AGENT);
    let ping = agent
        .call("/ping", &json!({}))
        .await
        .map_err(|e| format!("/ping after the rotation: {e}"))?;
    if ping["uuid"].as_str().unwrap_or("").is_empty() {
        return Err(format!("/ping after the rotation: {ping}"));
    }
    Ok(format!(
        "serial {old} -> {} ({}); the connection opened before still answers, /ping works",
        r.serial, r.subject
    ))
}
