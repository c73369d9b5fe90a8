//! Per-router credentials (issue 14): with a PKI directory (`--pki-dir`),
//! vrctl gives every router it bootstraps a server certificate of its own
//! for its management IP (`agentTls` in the bootstrap info, with the CA its
//! clients must come from) and the token file's tokens (`agentTokens`), as
//! Octavia's controller does for its amphorae.
//!
//! The router's certificate and key are kept in the state directory
//! (`routers/<uuid>.tls.json`, 0600), so a reboot or a re-creation pushes
//! the same one, and `vrctl vr rotate-cert` can replace it on the running
//! router (`POST /agent/credentials`) and record the new one for the next
//! bootstrap push.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use common::pki::{Authority, Issued};
use common::tls::ServerPem;
use common::vr::AgentTls;

use crate::spec::RouterSpec;

#[derive(Debug, thiserror::Error)]
pub enum RouterTlsError {
    #[error("{0}")]
    Pki(#[from] common::pki::PkiError),
    #[error("{0}")]
    Invalid(String),
}

/// What a router is told to require of its clients.
#[derive(Debug, Clone, Default)]
pub struct AgentAuth {
    pub tls: Option<ServerPem>,
    pub tokens: Vec<String>,
}

impl AgentAuth {
    /// The bootstrap info's `agentTls` (None: plain HTTP).
    pub fn agent_tls(&self) -> Option<AgentTls> {
        self.tls.as_ref().map(agent_tls)
    }

    /// The bootstrap info's `agentTokens` (None when none are required).
    pub fn agent_tokens(&self) -> Option<Vec<String>> {
        (!self.tokens.is_empty()).then(|| self.tokens.clone())
    }
}

/// `agentTls` / `/agent/credentials`' `tls`, as the agent reads it.
pub fn agent_tls(t: &ServerPem) -> AgentTls {
    AgentTls {
        certificate: t.certificate.clone(),
        private_key: t.private_key.clone(),
        client_ca: t.client_ca.clone(),
    }
}

/// One router's certificate as kept on disk.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// The management IP it was issued for.
    pub ip: String,
    pub certificate: String,
    pub private_key: String,
}

fn path(dir: &Path, uuid: &str) -> PathBuf {
    dir.join(format!("{uuid}.tls.json"))
}

pub fn load(dir: &Path, uuid: &str) -> Option<Stored> {
    let text = std::fs::read_to_string(path(dir, uuid)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn save(dir: &Path, uuid: &str, s: &Stored) -> Result<(), RouterTlsError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RouterTlsError::Invalid(format!("{}: {e}", dir.display())))?;
    let text = serde_json::to_string_pretty(s).unwrap_or_default();
    common::pki::write_private(&path(dir, uuid), &text)?;
    Ok(())
}

pub fn remove(dir: &Path, uuid: &str) {
    let _ = std::fs::remove_file(path(dir, uuid));
}

/// The router's management IP (what its certificate names).
pub fn management_ip(spec: &RouterSpec) -> Result<IpAddr, RouterTlsError> {
    spec.management_nic()
        .and_then(|n| n.ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            RouterTlsError::Invalid(
                "the router has no Management NIC with an IP to issue its certificate for".into(),
            )
        })
}

/// A new server certificate for the router.
pub fn issue(ca: &Authority, spec: &RouterSpec, days: u32) -> Result<Stored, RouterTlsError> {
    let ip = management_ip(spec)?;
    let Issued {
        certificate,
        private_key,
    } = ca.issue_server(&format!("vr-{}", spec.uuid), &[ip], &[], days)?;
    Ok(Stored {
        ip: ip.to_string(),
        certificate,
        private_key,
    })
}

/// The stored certificate when it is for the router's current IP, else a
/// new one (stored).
pub fn current_or_issue(
    ca: &Authority,
    dir: &Path,
    spec: &RouterSpec,
) -> Result<Stored, RouterTlsError> {
    let ip = management_ip(spec)?.to_string();
    if let Some(s) = load(dir, &spec.uuid).filter(|s| s.ip == ip) {
        return Ok(s);
    }
    let s = issue(ca, spec, crate::pki::DEFAULT_DAYS)?;
    save(dir, &spec.uuid, &s)?;
    Ok(s)
}

pub use common::tls::serial_of;

/// Serial and subject of the first certificate of a PEM text.
pub fn describe(pem: &str) -> (String, String) {
    match common::tls::certificates(pem, "certificate") {
        Ok(c) => (
            serial_of(c[0].as_ref()).unwrap_or_default(),
            common::tls::subject_of(c[0].as_ref()),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_router_keeps_its_certificate_until_its_address_changes() {
        let dir = std::env::temp_dir().join(format!("vrctl-rtls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ca = Authority::create("t").unwrap();
        let mut spec: RouterSpec = serde_json::from_value(json!({
            "uuid": "0123456789abcdef0123456789abcdef",
            "nics": [{"ip": "10.0.0.25", "mac": "52:54:00:00:00:01", "netmask": "255.255.255.0",
                      "category": "Management"}]}))
        .unwrap();
        let a = current_or_issue(&ca, &dir, &spec).unwrap();
        let b = current_or_issue(&ca, &dir, &spec).unwrap();
        assert_eq!(a.certificate, b.certificate);
        let (serial, subject) = describe(&a.certificate);
        assert_eq!(serial.len(), 32, "{serial}");
        assert!(subject.contains("vr-0123456789abcdef"), "{subject}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&dir, &spec.uuid))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        spec.nics[0].ip = Some("10.0.0.26".into());
        let c = current_or_issue(&ca, &dir, &spec).unwrap();
        assert_ne!(c.certificate, a.certificate);
        assert_eq!(c.ip, "10.0.0.26");
        let auth = AgentAuth {
            tls: Some(ServerPem {
                certificate: c.certificate,
                private_key: c.private_key,
                client_ca: ca.certificate_pem().into(),
            }),
            tokens: vec!["t".repeat(32)],
        };
        let tls = auth.agent_tls().unwrap();
        assert!(tls.private_key.contains("PRIVATE KEY"));
        assert_eq!(tls.client_ca, ca.certificate_pem());
        assert_eq!(auth.agent_tokens(), Some(vec!["t".repeat(32)]));
        assert!(AgentAuth::default().agent_tls().is_none());
        assert!(AgentAuth::default().agent_tokens().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `/agent/credentials` as rotate-cert sends it: `tls` with the
    /// agent's field names, and `tokens` only when there are some.
    #[test]
    fn credentials_body_is_the_tls_and_the_tokens() {
        let pem = ServerPem {
            certificate: "C".into(),
            private_key: "K".into(),
            client_ca: "A".into(),
        };
        let tls = json!({"certificate": "C", "privateKey": "K", "clientCa": "A"});
        assert_eq!(crate::client::body(&agent_tls(&pem)), tls);
        let mut cmd = common::vr::AgentCredentialsCmd {
            tls: Some(agent_tls(&pem)),
            tokens: None,
        };
        assert_eq!(crate::client::body(&cmd), json!({"tls": tls}));
        cmd.tokens = Some(vec!["t".into()]);
        assert_eq!(
            crate::client::body(&cmd),
            json!({"tls": tls, "tokens": ["t"]})
        );
        let auth = AgentAuth {
            tls: Some(pem),
            tokens: vec!["t".into()],
        };
        assert_eq!(crate::client::body(&auth.agent_tls()), tls);
        assert_eq!(auth.agent_tokens(), Some(vec!["t".into()]));
    }
}
