//! What vrctl presents to agents that want more than plain HTTP (issue
//! 14): the CA it trusts for the agents' certificates, its own client
//! certificate, and a bearer token. And what a refused connection means,
//! in words an operator can act on.
//!
//! * With a CA, every agent URL is spoken as `https://` (an `http://` URL
//!   is upgraded: router descriptions keep the address and port).
//! * The token is the first of the token file; the file's other tokens are
//!   what vrctl hands to the routers it bootstraps (`agentTokens`), so a
//!   new token can be added before the old is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Where the credentials come from (the global options).
#[derive(Debug, Clone, Default)]
pub struct CredentialFiles {
    /// The CA that signed the agents' server certificates (`--ca`).
    pub ca: Option<PathBuf>,
    /// vrctl's client certificate and key (`--cert`, `--key`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Bearer tokens, one a line (`--token-file`).
    pub token_file: Option<PathBuf>,
}

impl CredentialFiles {
    /// The files of a vrctl PKI directory (`vrctl pki init`): its CA and
    /// vrctl's own client certificate, for what was not given explicitly.
    pub fn with_pki_dir(mut self, dir: &Path) -> CredentialFiles {
        let has = |f: &str| dir.join(f).is_file().then(|| dir.join(f));
        if self.ca.is_none() {
            self.ca = has("ca.pem");
        }
        if self.cert.is_none() && self.key.is_none() {
            self.cert = has(crate::pki::CLIENT_CERT);
            self.key = has(crate::pki::CLIENT_KEY);
        }
        self
    }
}

/// The loaded credentials; cheap to clone. `Default`: none (plain HTTP,
/// ZStack's own mode).
#[derive(Clone, Default)]
pub struct Credentials {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether the TLS configuration presents a client certificate.
    has_certificate: bool,
    /// Every token of the file; the first is sent.
    tokens: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tls", &self.tls.is_some())
            .field("has_certificate", &self.has_certificate)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|e| CredentialsError::File {
        path: path.to_path_buf(),
        reason: format!("cannot read the {what}: {e}"),
    })
}

impl Credentials {
    pub fn load(files: &CredentialFiles) -> Result<Credentials, CredentialsError> {
        let mut c = Credentials::default();
        match (&files.ca, &files.cert, &files.key) {
            (None, None, None) => {}
            (None, _, _) => {
                return Err(CredentialsError::Invalid(
                    "--cert/--key need --ca (the CA that signed the agents' certificates)".into(),
                ));
            }
            (Some(_), Some(_), None) | (Some(_), None, Some(_)) => {
                return Err(CredentialsError::Invalid(
                    "--cert and --key go together".into(),
                ));
            }
            (Some(ca), None, None) => {
                let ca_pem = read(ca, "CA certificate")?;
                let config =
                    common::tls::client_config_without_certificate(&ca_pem).map_err(|e| {
                        CredentialsError::File {
                            path: ca.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                c.tls = Some(Arc::new(config));
            }
            (Some(ca), Some(cert), Some(key)) => {
                let ca_pem = read(ca, "CA certificate")?;
                let cert_pem = read(cert, "client certificate")?;
                let key_pem = read(key, "client key")?;
                // Name the file each part came from.
                common::tls::certificates(&ca_pem, "CA").map_err(|e| CredentialsError::File {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
                common::tls::certificates(&cert_pem, "client certificate").map_err(|e| {
                    CredentialsError::File {
                        path: cert.clone(),
                        reason: e.to_string(),
                    }
                })?;
                common::tls::private_key(&key_pem).map_err(|e| CredentialsError::File {
                    path: key.clone(),
                    reason: e.to_string(),
                })?;
                let config =
                    common::tls::client_config(&ca_pem, &cert_pem, &key_pem).map_err(|e| {
                        CredentialsError::File {
                            path: key.clone(),
                            reason: format!("does not go with {}: {e}", cert.display()),
                        }
                    })?;
                c.tls = Some(Arc::new(config));
                c.has_certificate = true;
            }
        }
        if let Some(f) = &files.token_file {
            let text = read(f, "token file")?;
            c.tokens = common::token::parse(&text).map_err(|e| CredentialsError::File {
                path: f.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(c)
    }

    /// Credentials from PEM text (the lab, tests).
    pub fn from_pem(
        ca: &str,
        certificate: Option<(&str, &str)>,
        tokens: Vec<String>,
    ) -> Result<Credentials, CredentialsError> {
        let invalid = |e: common::tls::TlsError| CredentialsError::Invalid(e.to_string());
        let config = match certificate {
            Some((cert, key)) => common::tls::client_config(ca, cert, key).map_err(invalid)?,
            None => common::tls::client_config_without_certificate(ca).map_err(invalid)?,
        };
        if !tokens.is_empty() {
            common::token::validate(&tokens)
                .map_err(|e| CredentialsError::Invalid(e.to_string()))?;
        }
        Ok(Credentials {
            tls: Some(Arc::new(config)),
            has_certificate: certificate.is_some(),
            tokens,
        })
    }

    /// These credentials without the token (the lab's refusal check).
    pub fn without_token(&self) -> Credentials {
        Credentials {
            tokens: vec![],
            ..self.clone()
        }
    }

    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    pub fn has_certificate(&self) -> bool {
        self.has_certificate
    }

    /// The token sent: the file's first.
    pub fn token(&self) -> Option<&str> {
        self.tokens.first().map(String::as_str)
    }

    /// Every token of the file (what a new router is told to accept).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The URL to speak for `base`: `https://` when TLS is configured.
    pub fn url(&self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        match (self.tls.is_some(), base.strip_prefix("http://")) {
            (true, Some(rest)) => format!("https://{rest}"),
            _ => base.to_string(),
        }
    }

    /// The HTTP client for these credentials.
    pub fn http_client(&self, timeout: std::time::Duration) -> reqwest::Client {
        let mut b = reqwest::Client::builder().no_proxy().timeout(timeout);
        if let Some(tls) = &self.tls {
            b = b.use_preconfigured_tls((**tls).clone());
        }
        b.build().expect("http client")
    }

    /// Why a request that failed with `e` failed, in terms of credentials,
    /// or None when it is not about them (then the agent is unreachable).
    pub fn refusal(&self, url: &str, e: &reqwest::Error) -> Option<String> {
        let chain = error_chain(e);
        if let Some(r) = find_rustls(e) {
            return Some(self.tls_refusal(&r));
        }
        // What the text of the chain says when no rustls error is at hand.
        let text = chain.join(": ");
        if url.starts_with("https://") && self.tls.is_none() {
            return Some(
                "an https:// URL needs --ca (the CA that signed the agent's certificate)".into(),
            );
        }
        if self.tls.is_none()
            && !e.is_connect()
            && !e.is_timeout()
            && (text.contains("connection closed before message completed")
                || text.contains("invalid HTTP")
                || text.contains("connection reset"))
        {
            return Some(format!(
                "the agent closed the connection without an HTTP answer ({text}): it probably \
                 requires TLS (use --ca, --cert and --key)"
            ));
        }
        None
    }

    /// Why the agent at `url` refuses our TLS, learnt by a handshake of
    /// our own, or None when it does not refuse it. Under TLS 1.3 the agent
    /// judges our certificate after our side has finished the handshake: a
    /// request sent at once can fail as a closed or cancelled connection
    /// without the agent's alert in its error (a race in hyper's pool), so
    /// the alert is read here on a connection that sends nothing.
    pub async fn probe_refusal(&self, url: &str) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let tls = self.tls.clone()?;
        let url = reqwest::Url::parse(url).ok()?;
        let host = url.host_str()?.trim_matches(|c| c == '[' || c == ']');
        let port = url.port_or_known_default()?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
        let wait = std::time::Duration::from_secs(2);
        let tcp = tokio::time::timeout(wait, tokio::net::TcpStream::connect((host, port)))
            .await
            .ok()?
            .ok()?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let mut stream = match tokio::time::timeout(wait, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return find_rustls(&e).map(|r| self.tls_refusal(&r)),
            Err(_) => return None,
        };
        let mut byte = [0u8; 1];
        match tokio::time::timeout(wait, stream.read(&mut byte)).await {
            Ok(Err(e)) => find_rustls(&e).map(|r| self.tls_refusal(&r)),
            _ => None,
        }
    }

    fn tls_refusal(&self, e: &rustls::Error) -> String {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        match e {
            E::InvalidCertificate(C::UnknownIssuer) => {
                "the agent's certificate is not signed by --ca (UnknownIssuer)".into()
            }
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                "the agent's certificate is not for this address (its subject alternative \
                 names do not include it)"
                    .into()
            }
            E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                "the agent's certificate has expired".into()
            }
            E::InvalidCertificate(other) => {
                format!("the agent's certificate is refused: {other:?}")
            }
            E::AlertReceived(A::CertificateRequired) => {
                "the agent requires a client certificate (use --cert/--key)".into()
            }
            E::AlertReceived(A::HandshakeFailure) if !self.has_certificate => {
                "the agent requires a client certificate (use --cert/--key)".into()
            }
            E::AlertReceived(A::UnknownCA) => {
                "the agent does not accept our client certificate: it is not signed by the \
                 agent's client CA"
                    .into()
            }
            E::AlertReceived(A::BadCertificate | A::UnsupportedCertificate) => {
                "the agent refuses our client certificate (not a client certificate of its \
                 CA: extended key usage clientAuth?)"
                    .into()
            }
            E::AlertReceived(A::CertificateExpired) => {
                "the agent says our client certificate has expired".into()
            }
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
                "the agent does not speak TLS on this port ({e}): it serves plain HTTP; drop \
                 --ca, or start the agent with --tls-cert/--tls-key/--tls-client-ca"
            ),
            other => format!("TLS: {other}"),
        }
    }
}

/// Every error's text along `e`'s source chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![];
    let mut cur = Some(e);
    while let Some(err) = cur {
        out.push(err.to_string());
        cur = err.source();
    }
    out
}

/// The rustls error somewhere down `e`'s chain: directly, or inside an
/// `io::Error` (hyper and tokio-rustls wrap it, sometimes twice; an
/// `io::Error`'s `source()` skips its inner error, so it is opened here).
fn find_rustls(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_upgraded_only_with_a_ca() {
        let none = Credentials::default();
        assert_eq!(none.url("http://10.0.0.25:7272/"), "http://10.0.0.25:7272");
        let ca = common::pki::Authority::create("t").unwrap();
        let tls = Credentials::from_pem(ca.certificate_pem(), None, vec![]).unwrap();
        assert_eq!(tls.url("http://10.0.0.25:7272"), "https://10.0.0.25:7272");
        assert_eq!(tls.url("https://h:1"), "https://h:1");
        assert!(!tls.has_certificate());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("vrctl-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope.pem");
        let e = Credentials::load(&CredentialFiles {
            ca: Some(missing.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a pem").unwrap();
        let e = Credentials::load(&CredentialFiles {
            ca: Some(garbage.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("garbage.pem") && e.contains("CERTIFICATE"),
            "{e}"
        );
        let e = Credentials::load(&CredentialFiles {
            cert: Some(garbage.clone()),
            key: Some(garbage.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("need --ca"), "{e}");
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, "short\n").unwrap();
        let e = Credentials::load(&CredentialFiles {
            token_file: Some(tokens.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("tokens") && e.contains("32"), "{e}");
        let good = "k".repeat(40);
        std::fs::write(&tokens, format!("# vrctl\n{good}\n{}\n", "m".repeat(33))).unwrap();
        let c = Credentials::load(&CredentialFiles {
            token_file: Some(tokens),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.token(), Some(good.as_str()));
        assert_eq!(c.tokens().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
