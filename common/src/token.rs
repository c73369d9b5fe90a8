//! The bearer-token option of both agents (issue 14): every request but
//! `GET /healthz` must carry `Authorization: Bearer <token>` with one of
//! the accepted tokens.
//!
//! Several tokens may be accepted at once, so a controller can rotate
//! without a gap: add the new one, switch the clients, remove the old.
//! They come from a file (one per line, `#` comments) that is reloaded when
//! it changes, or inside the router from the bootstrap info.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use axum::http::HeaderMap;

/// Shortest token accepted: 128 bits as hex.
pub const MIN_TOKEN: usize = 32;
const MAX_TOKEN: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("token {index}: {reason}")]
    Bad { index: usize, reason: String },
    #[error("no token given")]
    Empty,
}

/// Checks one token's shape: printable ASCII without spaces, 32 to 256
/// characters.
pub fn check_token(t: &str) -> Result<(), String> {
    if t.len() < MIN_TOKEN || t.len() > MAX_TOKEN {
        return Err(format!(
            "must be {MIN_TOKEN} to {MAX_TOKEN} characters, has {}",
            t.len()
        ));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// The tokens of a file's text: one per line, blank lines and `#`
/// comments skipped.
pub fn parse(text: &str) -> Result<Vec<String>, TokenError> {
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    validate(&tokens)?;
    Ok(tokens)
}

pub fn validate(tokens: &[String]) -> Result<(), TokenError> {
    if tokens.is_empty() {
        return Err(TokenError::Empty);
    }
    for (i, t) in tokens.iter().enumerate() {
        check_token(t).map_err(|reason| TokenError::Bad { index: i, reason })?;
    }
    Ok(())
}

/// Equal without a timing difference that depends on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The accepted tokens, swapped whole on reload.
pub struct Tokens {
    accepted: RwLock<Vec<String>>,
    file: Option<PathBuf>,
}

impl Tokens {
    pub fn new(tokens: Vec<String>) -> Result<Tokens, TokenError> {
        validate(&tokens)?;
        Ok(Tokens {
            accepted: RwLock::new(tokens),
            file: None,
        })
    }

    pub fn from_file(path: &Path) -> Result<Tokens, TokenError> {
        let tokens = read(path)?;
        Ok(Tokens {
            accepted: RwLock::new(tokens),
            file: Some(path.to_path_buf()),
        })
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn count(&self) -> usize {
        self.accepted.read().expect("tokens").len()
    }

    /// Replace the accepted set once every token is valid.
    pub fn replace(&self, tokens: Vec<String>) -> Result<(), TokenError> {
        validate(&tokens)?;
        let n = tokens.len();
        *self.accepted.write().expect("tokens") = tokens;
        tracing::info!(target: "audit", tokens = n, "accepted bearer tokens replaced");
        Ok(())
    }

    pub fn reload(&self) -> Result<(), TokenError> {
        match &self.file {
            Some(f) => self.replace(read(f)?),
            None => Ok(()),
        }
    }

    /// Why a request with `headers` is not let in, or None.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<String> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Some("no Authorization header (a bearer token is required)".into());
        };
        let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return Some("the Authorization header is not `Bearer <token>`".into());
        };
        let accepted = self.accepted.read().expect("tokens");
        // Compare with every token, so the time does not say which matched.
        let hit = accepted
            .iter()
            .fold(false, |hit, t| same(t.as_bytes(), given) | hit);
        (!hit).then(|| "the bearer token is not accepted".into())
    }
}

fn read(path: &Path) -> Result<Vec<String>, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse(&text).map_err(|e| match e {
        TokenError::Read { .. } => e,
        other => TokenError::Read {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_checked_and_rotate() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let t = Tokens::new(vec![a.clone()]).unwrap();
        assert!(t.refusal(&headers(&format!("Bearer {a}"))).is_none());
        assert!(t.refusal(&headers(&format!("Bearer {b}"))).is_some());
        assert!(t.refusal(&headers(&format!("bearer {a}"))).is_some());
        assert!(
            t.refusal(&HeaderMap::new())
                .unwrap()
                .contains("no Authorization")
        );
        t.replace(vec![a.clone(), b.clone()]).unwrap();
        assert!(t.refusal(&headers(&format!("Bearer {b}"))).is_none());
        assert!(t.replace(vec!["short".into()]).is_err());
        assert!(t.replace(vec![]).is_err());
        // A refused replacement leaves the set as it was.
        assert!(t.refusal(&headers(&format!("Bearer {a}"))).is_none());
        assert_eq!(parse(&format!("# c\n\n {a} \n{b}\n")).unwrap(), vec![a, b]);
        assert!(parse(&format!("{} x", "c".repeat(32))).is_err());
    }
}
