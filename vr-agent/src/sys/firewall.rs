//! nftables: apply one transaction to our tables, read our tables back.

#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

pub use super::nft_fingerprint::Fingerprint;
use super::nft_fingerprint::fingerprint_of;
use super::runner::{self, RunError};
use super::{blocking, nft_elements};
use crate::plan::nat::FAMILY;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("nft rejected the change: {0}")]
    Rejected(String),
    #[error(transparent)]
    Run(RunError),
    #[error("cannot parse nft output: {0}")]
    Parse(String),
    #[error(transparent)]
    Netlink(super::nft_elements::SendError),
}

#[async_trait]
pub trait Firewall: Send + Sync {
    /// Apply an nft text script as one transaction (all or nothing).
    async fn apply(&self, script: &str) -> Result<(), FirewallError>;
    /// One of our tables (`vragent`, `vragent_lb`) as nft JSON, or None
    /// when it does not exist.
    async fn list(&self, table: &str) -> Result<Option<Value>, FirewallError>;
    /// What the drift check compares of one of our tables (None: no
    /// table), read from nft's listing without building it in memory.
    async fn fingerprint(&self, table: &str) -> Result<Option<Fingerprint>, FirewallError>;
}

pub struct Nft;

#[async_trait]
impl Firewall for Nft {
    async fn apply(&self, script: &str) -> Result<(), FirewallError> {
        // Element changes of the NAT table (every one-rule change, most
        // syncs) go straight to the kernel; the rest to nft.
        match nft_elements::encode(script) {
            Ok(Some(batch)) => {
                return blocking::run(|| nft_elements::send(&batch)).map_err(|e| match e {
                    nft_elements::SendError::Refused(e) => FirewallError::Rejected(e.to_string()),
                    e => FirewallError::Netlink(e),
                });
            }
            Ok(None) => {}
            // nft has the last word on what the plan rendered.
            Err(e) => tracing::warn!(error = %e, "element change left to nft"),
        }
        match runner::run("nft", &["-f", "-"], Some(script)).await {
            Ok(_) => Ok(()),
            Err(RunError::Failed { stderr, .. }) => Err(FirewallError::Rejected(stderr)),
            Err(e) => Err(FirewallError::Run(e)),
        }
    }

    async fn list(&self, table: &str) -> Result<Option<Value>, FirewallError> {
        let Some(out) = listing(table).await? else {
            return Ok(None);
        };
        serde_json::from_str(&out)
            .map(Some)
            .map_err(|e| FirewallError::Parse(e.to_string()))
    }

    async fn fingerprint(&self, table: &str) -> Result<Option<Fingerprint>, FirewallError> {
        let Some(out) = listing(table).await? else {
            return Ok(None);
        };
        blocking::run(|| fingerprint_of(&out))
            .map(Some)
            .map_err(|e| FirewallError::Parse(e.to_string()))
    }
}

/// `nft -j list table` of one of our tables; None when there is none.
async fn listing(table: &str) -> Result<Option<String>, FirewallError> {
    match runner::run("nft", &["-j", "list", "table", FAMILY, table], None).await {
        Ok(out) => Ok(Some(out)),
        Err(RunError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
            Ok(None)
        }
        Err(e) => Err(FirewallError::Run(e)),
    }
}

#[cfg(any(test, feature = "fakes"))]
/// Records scripts; `fail_next` makes the next apply fail.
#[derive(Default)]
pub struct FakeFirewall {
    pub applied: Mutex<Vec<String>>,
    pub fail_next: Mutex<bool>,
}

#[cfg(any(test, feature = "fakes"))]
#[async_trait]
impl Firewall for FakeFirewall {
    async fn apply(&self, script: &str) -> Result<(), FirewallError> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(FirewallError::Rejected("injected failure".into()));
        }
        self.applied.lock().unwrap().push(script.to_string());
        Ok(())
    }
    async fn list(&self, _table: &str) -> Result<Option<Value>, FirewallError> {
        Ok(None)
    }
    async fn fingerprint(&self, _table: &str) -> Result<Option<Fingerprint>, FirewallError> {
        Ok(None)
    }
}
