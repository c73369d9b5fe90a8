//! What a client must present besides coming from an allowed address
//! (issue 14): a client certificate of the configured CA (mutual TLS, in
//! the handshake: [`crate::serve::serve_tls`]) and/or a bearer token (here,
//! per request). Both are optional; ZStack's management node speaks plain
//! HTTP without a token, so neither is on by default.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::tls::{ServerFiles, ServerTls, TlsError};
use crate::token::{TokenError, Tokens};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("bearer tokens: {0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Incomplete(String),
}

/// The agents' `--tls-cert`, `--tls-key`, `--tls-client-ca`: all three or
/// none.
pub fn server_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<ServerFiles>, CredentialsError> {
    match (cert, key, client_ca) {
        (None, None, None) => Ok(None),
        (Some(certificate), Some(private_key), Some(client_ca)) => Ok(Some(ServerFiles {
            certificate,
            private_key,
            client_ca,
        })),
        _ => Err(CredentialsError::Incomplete(
            "--tls-cert, --tls-key and --tls-client-ca go together (mutual TLS needs all three)"
                .into(),
        )),
    }
}

#[derive(Clone, Default)]
pub struct Credentials {
    pub tls: Option<Arc<ServerTls>>,
    pub tokens: Option<Arc<Tokens>>,
}

impl Credentials {
    /// Load the files (an error names the one at fault) and reload them
    /// when they change.
    pub fn from_files(
        tls: Option<ServerFiles>,
        token_file: Option<PathBuf>,
    ) -> Result<Credentials, CredentialsError> {
        let tls = tls.map(ServerTls::from_files).transpose()?;
        let tokens = token_file
            .map(|f| Tokens::from_file(&f).map(Arc::new))
            .transpose()?;
        let c = Credentials { tls, tokens };
        c.watch_files();
        Ok(c)
    }

    fn watch_files(&self) {
        if let Some(tls) = &self.tls
            && let Some(files) = tls.files()
        {
            let t = tls.clone();
            let paths = files.paths().iter().map(|p| p.to_path_buf()).collect();
            crate::reload::watch("TLS certificate", paths, crate::reload::POLL, move || {
                t.reload().map_err(|e| e.to_string())
            });
        }
        if let Some(tokens) = &self.tokens
            && let Some(file) = tokens.file()
        {
            let t = tokens.clone();
            let paths = vec![file.to_path_buf()];
            crate::reload::watch("bearer tokens", paths, crate::reload::POLL, move || {
                t.reload().map_err(|e| e.to_string())
            });
        }
    }

    /// What the startup log says.
    pub fn describe(&self) -> String {
        let tls = match &self.tls {
            Some(t) => format!("mutual TLS as {}", t.subject()),
            None => "plain HTTP".into(),
        };
        let token = match &self.tokens {
            Some(t) => format!("bearer token required ({} accepted)", t.count()),
            None => "no token".into(),
        };
        format!("{tls}, {token}")
    }

    /// The 401 for a request without an accepted token (logged with
    /// `peer`), or None. `GET /healthz` needs nothing: it says only "ok".
    pub fn refusal(
        &self,
        agent: &str,
        peer: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let tokens = self.tokens.as_ref()?;
        if path == "/healthz" {
            return None;
        }
        let why = tokens.refusal(headers)?;
        tracing::warn!(target: "audit", %peer, %path, "refused: {why}");
        let mut rsp =
            (StatusCode::UNAUTHORIZED, format!("{agent}: refused: {why}")).into_response();
        rsp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Some(rsp)
    }
}
