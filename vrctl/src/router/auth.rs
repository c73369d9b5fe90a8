//! What the router is told to require (its certificate, tokens), and a new
//! certificate for a running router.

use common::vr::{AgentCredentialsCmd, AgentTls};
use serde::Serialize;

use super::{Ctx, RouterError};
use crate::client::Client;
use crate::router_tls::{self, AgentAuth, RouterTlsError};
use crate::spec::RouterSpec;

/// A certificate replaced on a running router.
#[derive(Debug, Serialize)]
pub struct Rotated {
    pub uuid: String,
    pub old_serial: String,
    pub serial: String,
    pub subject: String,
}

impl Ctx<'_> {
    fn authority(&self) -> Result<Option<common::pki::Authority>, RouterError> {
        let Some(dir) = &self.pki else {
            return Ok(None);
        };
        if !self.credentials.has_certificate() {
            return Err(RouterError::Config(format!(
                "--pki-dir {} gives routers mutual TLS, but vrctl has no client certificate \
                 (--cert/--key, or {}/{} from `vrctl pki init`)",
                dir.display(),
                dir.display(),
                crate::pki::CLIENT_CERT
            )));
        }
        Ok(Some(
            common::pki::Authority::load(dir).map_err(RouterTlsError::from)?,
        ))
    }

    /// What the router is told to require: its own certificate when vrctl
    /// has a CA, the token file's tokens.
    pub fn agent_auth(&self, spec: &RouterSpec) -> Result<AgentAuth, RouterError> {
        let tls = match self.authority()? {
            None => None,
            Some(ca) => {
                let s = router_tls::current_or_issue(&ca, self.records.dir(), spec)?;
                Some(common::tls::ServerPem {
                    certificate: s.certificate,
                    private_key: s.private_key,
                    client_ca: ca.certificate_pem().to_string(),
                })
            }
        };
        Ok(AgentAuth {
            tls,
            tokens: self.credentials.tokens().to_vec(),
        })
    }

    /// A new certificate for the running router, without a restart: issued,
    /// sent with `/agent/credentials` (with the token file's tokens, when
    /// there is one), then recorded so the next bootstrap push carries it.
    pub async fn rotate_cert(&self, spec: &RouterSpec) -> Result<Rotated, RouterError> {
        let ca = self.authority()?.ok_or_else(|| {
            RouterError::Config("rotate-cert needs the CA: --pki-dir (or VRCTL_PKI_DIR)".into())
        })?;
        let old = router_tls::load(self.records.dir(), &spec.uuid);
        let new = router_tls::issue(&ca, spec, crate::pki::DEFAULT_DAYS)?;
        let tokens = self.credentials.tokens();
        let cmd = AgentCredentialsCmd {
            tls: Some(AgentTls {
                certificate: new.certificate.clone(),
                private_key: new.private_key.clone(),
                client_ca: ca.certificate_pem().to_string(),
            }),
            tokens: (!tokens.is_empty()).then(|| tokens.to_vec()),
        };
        // Sync: the reply says the new certificate is in force.
        Client::with(&spec.agent_url()?, None, &self.credentials)
            .send(&cmd)
            .await?;
        router_tls::save(self.records.dir(), &spec.uuid, &new)?;
        let (serial, subject) = router_tls::describe(&new.certificate);
        Ok(Rotated {
            uuid: spec.uuid.clone(),
            old_serial: old
                .map(|o| router_tls::describe(&o.certificate).0)
                .unwrap_or_default(),
            serial,
            subject,
        })
    }
}
