//! nftables: apply one transaction to our tables, read our tables back.

#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

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
        match runner::run("nft", &["-j", "list", "table", FAMILY, table], None).await {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| FirewallError::Parse(e.to_string())),
            Err(RunError::Failed { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(None)
            }
            Err(e) => Err(FirewallError::Run(e)),
        }
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
}

/// Number of elements in each set/map and rules in each chain of a
/// `nft -j list table` answer, for comparing with what we rendered.
pub fn census(
    listing: &Value,
) -> (
    std::collections::BTreeMap<String, usize>,
    std::collections::BTreeMap<String, usize>,
) {
    let mut sets = std::collections::BTreeMap::new();
    let mut chains = std::collections::BTreeMap::new();
    let objects = listing
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for o in objects {
        for kind in ["set", "map"] {
            if let Some(s) = o.get(kind) {
                let name = s
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let n = s.get("elem").and_then(Value::as_array).map_or(0, Vec::len);
                sets.insert(name, n);
            }
        }
        if let Some(c) = o.get("chain") {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            chains.entry(name).or_insert(0);
        }
        if let Some(r) = o.get("rule") {
            let name = r
                .get("chain")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            *chains.entry(name).or_insert(0) += 1;
        }
    }
    (sets, chains)
}

/// A digest of a `nft -j list table` answer (None: no table) that ignores
/// what changes without a change of content: rule handles and the order
/// the kernel lists set elements in. Equal digests: same rules, same
/// elements.
pub fn digest(listing: Option<&Value>) -> u64 {
    use std::hash::{Hash, Hasher};
    fn normalise(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "handle")
                    // An element's counter moves with traffic, not content.
                    .filter(|(k, _)| !(k.as_str() == "counter" && m.contains_key("val")))
                    .map(|(k, v)| {
                        let v = match (k.as_str(), v) {
                            ("elem", Value::Array(a)) => {
                                let mut a: Vec<Value> = a.iter().map(normalise).collect();
                                a.sort_by_cached_key(|e| e.to_string());
                                Value::Array(a)
                            }
                            _ => normalise(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
            _ => v.clone(),
        }
    }
    let text = listing.map(|l| {
        // The metainfo object names the nft version, not our content.
        let objects: Vec<Value> = l
            .get("nftables")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|o| o.get("metainfo").is_none())
                    .map(normalise)
                    .collect()
            })
            .unwrap_or_default();
        Value::Array(objects).to_string()
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_handles_and_element_order_but_not_content() {
        let a = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"name": "pf", "handle": 3, "elem": ["b", "a"]}},
            {"rule": {"chain": "in", "handle": 7, "expr": [{"accept": null}]}}]});
        let b = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.9"}},
            {"set": {"name": "pf", "handle": 9, "elem": ["a", "b"]}},
            {"rule": {"chain": "in", "handle": 2, "expr": [{"accept": null}]}}]});
        let c = serde_json::json!({"nftables": [
            {"set": {"name": "pf", "elem": ["a", "b"]}},
            {"rule": {"chain": "in", "expr": [{"drop": null}]}}]});
        assert_eq!(digest(Some(&a)), digest(Some(&b)));
        let counted = |p: u64| {
            serde_json::json!({"nftables": [{"set": {"name": "c", "elem": [
                {"elem": {"val": "1.2.3.4", "counter": {"packets": p, "bytes": p * 60}}}]}}]})
        };
        assert_eq!(digest(Some(&counted(0))), digest(Some(&counted(7))));
        assert_ne!(digest(Some(&a)), digest(Some(&c)));
        assert_ne!(digest(Some(&a)), digest(None));
    }
}
