//! Mutual TLS for both agents (issue 14), with rustls.
//!
//! * The agent serves HTTPS with its certificate and accepts only clients
//!   that present a certificate chaining to the client CA and meant for
//!   client authentication (extended key usage `clientAuth`: a router's own
//!   server certificate cannot command another router or host).
//! * The material comes from PEM files (`--tls-cert`, `--tls-key`,
//!   `--tls-client-ca`) or, inside the router, from the bootstrap info.
//! * Rotation without a restart: [`ServerTls::replace`] validates new
//!   material completely and only then swaps it in; new handshakes use it,
//!   connections already up keep theirs. Bad material is refused and the
//!   old stays in force.

mod x509;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub use x509::{serial_of, subject_of};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

/// PEM text of an agent's server side: its chain, its key, and the CA its
/// clients' certificates must chain to.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerPem {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: String,
}

impl std::fmt::Debug for ServerPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPem")
            .field("certificate", &self.certificate.len())
            .field("private_key", &"<secret>")
            .field("client_ca", &self.client_ca.len())
            .finish()
    }
}

/// Where [`ServerPem`] lives on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: PathBuf,
}

impl ServerFiles {
    pub fn paths(&self) -> [&Path; 3] {
        [&self.certificate, &self.private_key, &self.client_ca]
    }

    pub fn read(&self) -> Result<ServerPem, TlsError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| TlsError::Read {
                path: p.to_path_buf(),
                reason: e.to_string(),
            })
        };
        Ok(ServerPem {
            certificate: read(&self.certificate)?,
            private_key: read(&self.private_key)?,
            client_ca: read(&self.client_ca)?,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM text (at least one).
pub fn certificates(
    pem: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "private key",
        reason: e.to_string(),
    })
}

fn roots(pem: &str, what: &'static str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(pem, what)? {
        roots.add(c).map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A server configuration that requires client certificates from
/// `pem.client_ca`; every part is checked (the key must match the
/// certificate).
pub fn server_config(pem: &ServerPem) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(&pem.client_ca, "client CA")?),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates(&pem.certificate, "certificate")?,
            private_key(&pem.private_key)?,
        )
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side (vrctl, tests): trust `ca` for the agents' server
/// certificates and present `certificate`/`private_key`.
pub fn client_config(
    ca: &str,
    certificate: &str,
    private_key_pem: &str,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca, "CA")?)
        .with_client_auth_cert(
            certificates(certificate, "client certificate")?,
            private_key(private_key_pem)?,
        )
        .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client that trusts `ca` but has no certificate of its own (to show
/// that the agent refuses it).
pub fn client_config_without_certificate(ca: &str) -> Result<rustls::ClientConfig, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca, "CA")?)
        .with_no_client_auth())
}

/// The server name a client checks for `host` (an address or DNS name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|e| TlsError::Config(format!("{host}: {e}")))
}

/// Who presented a client certificate: the subject of the leaf, for the
/// audit line (in each request's extensions when TLS is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub String);

/// The server configuration in force, swapped whole on rotation.
pub struct ServerTls {
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The subject of our own certificate (logged on each change).
    subject: RwLock<String>,
    /// Where it is reloaded from on change (none: bootstrap info).
    files: Option<ServerFiles>,
}

impl ServerTls {
    pub fn from_pem(pem: &ServerPem) -> Result<Arc<ServerTls>, TlsError> {
        let config = server_config(pem)?;
        Ok(Arc::new(ServerTls {
            current: RwLock::new(config),
            subject: RwLock::new(leaf_subject(&pem.certificate)),
            files: None,
        }))
    }

    pub fn from_files(files: ServerFiles) -> Result<Arc<ServerTls>, TlsError> {
        let pem = files.read()?;
        let config = server_config(&pem)?;
        Ok(Arc::new(ServerTls {
            current: RwLock::new(config),
            subject: RwLock::new(leaf_subject(&pem.certificate)),
            files: Some(files),
        }))
    }

    pub fn files(&self) -> Option<&ServerFiles> {
        self.files.as_ref()
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().expect("tls config").clone()
    }

    pub fn subject(&self) -> String {
        self.subject.read().expect("tls subject").clone()
    }

    /// Swap in `pem` once it is wholly valid; on error nothing changes.
    pub fn replace(&self, pem: &ServerPem) -> Result<(), TlsError> {
        let config = server_config(pem)?;
        let subject = leaf_subject(&pem.certificate);
        *self.current.write().expect("tls config") = config;
        let old = std::mem::replace(&mut *self.subject.write().expect("tls subject"), subject);
        tracing::info!(target: "audit", old = %old, new = %self.subject(), "TLS certificate replaced; new connections use it");
        Ok(())
    }

    /// Re-read the files (after they changed).
    pub fn reload(&self) -> Result<(), TlsError> {
        match &self.files {
            Some(f) => self.replace(&f.read()?),
            None => Ok(()),
        }
    }
}

fn leaf_subject(pem: &str) -> String {
    certificates(pem, "certificate")
        .ok()
        .and_then(|c| c.first().map(|c| subject_of(c.as_ref())))
        .unwrap_or_default()
}
