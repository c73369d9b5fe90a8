//! The router's client authentication (issue 14): mutual TLS and bearer
//! tokens, from the bootstrap info (per-router certificates the controller
//! issues), from files (`--tls-*`, `--auth-token-file`), or replaced on a
//! running agent with `POST /agent/credentials`.
//!
//! Which material is in force at start ([`choose`], pure):
//! * the bootstrap info's `agentTls`/`agentTokens` win over the files;
//! * material a rotation installed is persisted (`credentials.json`, 0600)
//!   with the bootstrap certificate it replaced. A VR that reboots gets its
//!   bootstrap info again, possibly still with that old certificate: then
//!   the rotated material stays in force. A bootstrap with a different
//!   certificate is a new delivery and wins.
//! * a bootstrap without `agentTls` turns TLS off (the controller decides).

use std::sync::Arc;

use common::credentials::Credentials;
use common::tls::{ServerPem, ServerTls};
use common::token::Tokens;
use common::vr::{AgentCredentialsCmd, AgentTls, BootstrapInfo};

use crate::sys::credentials::CredentialFile;
pub use crate::sys::credentials::Persisted;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Store(String),
}

pub fn pem(t: &AgentTls) -> ServerPem {
    ServerPem {
        certificate: t.certificate.clone(),
        private_key: t.private_key.clone(),
        client_ca: t.client_ca.clone(),
    }
}

/// The bootstrap-delivered material in force at start, and what to
/// persist (None: leave the file as it is).
pub fn choose(
    info: &BootstrapInfo,
    persisted: Option<Persisted>,
) -> (Option<AgentTls>, Option<Vec<String>>) {
    let delivered = info
        .agent_tls
        .as_ref()
        .map_or("", |t| t.certificate.as_str());
    match persisted {
        Some(p) if !delivered.is_empty() && p.delivered_certificate == delivered => (
            p.tls.or_else(|| info.agent_tls.clone()),
            p.tokens.or_else(|| info.agent_tokens.clone()),
        ),
        _ => (info.agent_tls.clone(), info.agent_tokens.clone()),
    }
}

/// The credentials of a running agent and where a rotation is kept.
pub struct Live {
    pub credentials: Credentials,
    /// None: the material came from files (rotate by replacing them) or
    /// there is none.
    pub store: Option<CredentialFile>,
    /// The bootstrap certificate that started this run.
    pub delivered: String,
}

/// Start-up: the bootstrap info's credentials (see [`choose`]), else the
/// files'.
pub fn start(
    info: Option<&BootstrapInfo>,
    files: Option<common::tls::ServerFiles>,
    token_file: Option<std::path::PathBuf>,
    store: CredentialFile,
) -> Result<Live, CredentialError> {
    let bad = |e: &dyn std::fmt::Display| CredentialError::Invalid(e.to_string());
    let from_bootstrap = info.is_some_and(|i| i.agent_tls.is_some() || i.agent_tokens.is_some());
    if !from_bootstrap {
        if info.is_some() && store.load().ok().flatten().is_some() {
            // The controller no longer delivers credentials.
            let _ = store.remove();
        }
        let credentials = Credentials::from_files(files, token_file).map_err(|e| bad(&e))?;
        return Ok(Live {
            credentials,
            store: None,
            delivered: String::new(),
        });
    }
    let info = info.expect("from_bootstrap");
    if files.is_some() || token_file.is_some() {
        tracing::warn!(
            "the bootstrap info carries agentTls/agentTokens: --tls-* and --auth-token-file are ignored"
        );
    }
    let persisted = match store.load() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable credentials.json: using the bootstrap info's");
            None
        }
    };
    let (tls, tokens) = choose(info, persisted);
    let delivered = info
        .agent_tls
        .as_ref()
        .map_or(String::new(), |t| t.certificate.clone());
    let credentials = Credentials {
        tls: tls
            .as_ref()
            .map(|t| ServerTls::from_pem(&pem(t)))
            .transpose()
            .map_err(|e| bad(&format!("bootstrap info agentTls: {e}")))?,
        tokens: tokens
            .map(|t| Tokens::new(t).map(Arc::new))
            .transpose()
            .map_err(|e| bad(&format!("bootstrap info agentTokens: {e}")))?,
    };
    Ok(Live {
        credentials,
        store: Some(store),
        delivered,
    })
}

impl Live {
    /// No client authentication (in-process tests).
    pub fn none() -> Live {
        Live {
            credentials: Credentials::default(),
            store: None,
            delivered: String::new(),
        }
    }

    /// `POST /agent/credentials`: everything is checked before anything
    /// changes; the new material is persisted, then swapped in.
    pub fn rotate(&self, cmd: &AgentCredentialsCmd) -> Result<String, CredentialError> {
        if cmd.tls.is_none() && cmd.tokens.is_none() {
            return Err(CredentialError::Invalid(
                "agent/credentials: give tls, tokens or both".into(),
            ));
        }
        let Some(store) = &self.store else {
            return Err(CredentialError::Conflict(
                "agent/credentials: this agent's credentials come from files (--tls-*, --auth-token-file) or are off; replace the files instead".into(),
            ));
        };
        let live_tls = match (&cmd.tls, &self.credentials.tls) {
            (Some(_), None) => {
                return Err(CredentialError::Conflict(
                    "agent/credentials: TLS is off on this agent; it is turned on by the bootstrap info's agentTls at start".into(),
                ));
            }
            (Some(t), Some(live)) => {
                common::tls::server_config(&pem(t)).map_err(|e| {
                    CredentialError::Invalid(format!("agent/credentials: tls: {e}"))
                })?;
                Some((t, live))
            }
            _ => None,
        };
        let live_tokens = match (&cmd.tokens, &self.credentials.tokens) {
            (Some(_), None) => {
                return Err(CredentialError::Conflict(
                    "agent/credentials: tokens are off on this agent; they are turned on by the bootstrap info's agentTokens at start".into(),
                ));
            }
            (Some(t), Some(live)) => {
                common::token::validate(t).map_err(|e| {
                    CredentialError::Invalid(format!("agent/credentials: tokens: {e}"))
                })?;
                Some((t, live))
            }
            _ => None,
        };
        let mut persisted = store.load().ok().flatten().unwrap_or_default();
        persisted.delivered_certificate = self.delivered.clone();
        if let Some((t, _)) = live_tls {
            persisted.tls = Some(t.clone());
        }
        if let Some((t, _)) = live_tokens {
            persisted.tokens = Some(t.clone());
        }
        store.save(&persisted).map_err(|e| {
            CredentialError::Store(format!("agent/credentials: {e}; nothing changed"))
        })?;
        let mut changed = Vec::new();
        if let Some((t, live)) = live_tls {
            live.replace(&pem(t))
                .map_err(|e| CredentialError::Invalid(e.to_string()))?;
            changed.push(format!("certificate {}", live.subject()));
        }
        if let Some((t, live)) = live_tokens {
            live.replace(t.clone())
                .map_err(|e| CredentialError::Invalid(e.to_string()))?;
            changed.push(format!("{} tokens", t.len()));
        }
        Ok(changed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(c: &str) -> AgentTls {
        AgentTls {
            certificate: c.into(),
            private_key: "k".into(),
            client_ca: "ca".into(),
        }
    }

    #[test]
    fn a_rotation_outlives_a_reboot_with_the_old_bootstrap_but_not_a_new_delivery() {
        let info = BootstrapInfo {
            agent_tls: Some(tls("old")),
            agent_tokens: Some(vec!["t-old".into()]),
            ..Default::default()
        };
        let rotated = Persisted {
            delivered_certificate: "old".into(),
            tls: Some(tls("rotated")),
            tokens: None,
        };
        let (t, k) = choose(&info, Some(rotated.clone()));
        assert_eq!(t.unwrap().certificate, "rotated");
        assert_eq!(k.unwrap(), vec!["t-old".to_string()]);
        let new = BootstrapInfo {
            agent_tls: Some(tls("new")),
            ..Default::default()
        };
        assert_eq!(choose(&new, Some(rotated)).0.unwrap().certificate, "new");
        assert_eq!(choose(&new, None).0.unwrap().certificate, "new");
        let off = BootstrapInfo::default();
        assert!(choose(&off, None).0.is_none());
    }
}
