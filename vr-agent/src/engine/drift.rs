//! Drift: our nft tables compared by content with what the kernel listed
//! right after our own last change, and replaced whole when they differ
//! (a flushed ruleset, a deleted element, a rule rewritten in place).

use super::{Engine, EngineError};
use crate::plan::{lbudp, nat};
use crate::sys::firewall::Fingerprint;

/// What the kernel listed of our tables.
#[derive(Default)]
pub(super) struct Listings {
    /// Digest of each of our nft tables as the kernel listed it right after
    /// our last change to it: the drift check compares content with it.
    pub listed: std::collections::BTreeMap<&'static str, u64>,
    /// Tables changed since they were last listed.
    pub relist: std::collections::BTreeSet<&'static str>,
    /// The NAT table's fingerprint at its last listing (its counts are
    /// compared with the rendering).
    pub nat_counts: Option<Fingerprint>,
}

/// A listing's digest; a missing table has one of its own.
fn digest(f: Option<&Fingerprint>) -> u64 {
    f.map_or(0x6e6f_6e65, |f| f.digest)
}

impl Engine {
    /// Record the kernel's listing of the tables we changed: the content the
    /// drift check expects.
    pub(super) async fn take_listings(&mut self) {
        let mut listed_nat = false;
        for table in std::mem::take(&mut self.tables.relist) {
            listed_nat |= table == nat::TABLE;
            match self.sys.firewall.fingerprint(table).await {
                Ok(f) => {
                    self.tables.listed.insert(table, digest(f.as_ref()));
                    if table == nat::TABLE {
                        self.tables.nat_counts = f;
                    }
                }
                Err(e) => {
                    tracing::warn!(table, error = %e, "cannot list our nft table");
                    self.tables.listed.remove(table);
                }
            }
        }
        // nft's JSON of a large NAT table is read whole from its stdout (18 MB
        // for 200 000 elements); give the heap it took back.
        if listed_nat {
            crate::sys::memory::trim();
        }
    }

    /// The script that puts `table` back as we want it; None while it is
    /// unknown (the next edit replaces it whole anyway).
    fn desired(&self, table: &str) -> Option<String> {
        if table == nat::TABLE {
            self.nat.applied.as_ref().map(|r| nat::full(None, r).script)
        } else {
            self.lb.udp.clone()
        }
    }

    /// Whether the kernel's NAT table, as last listed, has as many elements
    /// per set and rules per chain as the ruleset we applied.
    fn nat_counts_match(&self) -> bool {
        let Some(expected) = &self.nat.applied else {
            return true;
        };
        let Some(listed) = &self.tables.nat_counts else {
            return false;
        };
        let want_sets = expected
            .elements
            .iter()
            .map(|(k, v)| (k.to_string(), v.len()))
            .collect::<std::collections::BTreeMap<_, _>>();
        let want_chains = expected
            .chain_rules
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>();
        listed.sets == want_sets && listed.chains == want_chains
    }

    /// Compare our tables (and routes) in the kernel with what we applied;
    /// replace a table whose content changed. True when one had drifted.
    pub async fn check_drift(&mut self) -> Result<bool, EngineError> {
        self.check_route_drift().await?;
        // Tables changed by element deltas since their last listing: what
        // the kernel holds now is our change (see `Engine::apply`).
        let mut fresh = self.tables.relist.clone();
        self.take_listings().await;
        // A foreign change right after ours would be taken as ours: the
        // NAT table's counts (elements per set, rules per chain) must at
        // least be what we rendered, or it is compared (and replaced).
        if fresh.contains(nat::TABLE) && !self.nat_counts_match() {
            fresh.remove(nat::TABLE);
            self.tables.listed.insert(nat::TABLE, 0);
        }
        let mut drifted = false;
        for table in [nat::TABLE, lbudp::TABLE] {
            let Some(script) = self.desired(table) else {
                continue;
            };
            if fresh.contains(table) {
                continue;
            }
            let have = digest(self.sys.firewall.fingerprint(table).await?.as_ref());
            match self.tables.listed.get(table) {
                Some(want) if *want == have => continue,
                None => {
                    // Listing failed after our change: take this one.
                    self.tables.listed.insert(table, have);
                    continue;
                }
                Some(_) => {}
            }
            tracing::warn!(
                table,
                "our nft table differs from what we applied; replacing it"
            );
            self.stats.drift_repairs += 1;
            self.stats.full_renders += 1;
            drifted = true;
            let r = self.nft(table, &script).await;
            self.take_listings().await;
            self.stats.drift_unrepaired = r.is_err();
            r?;
        }
        if !drifted {
            self.stats.drift_unrepaired = false;
        }
        Ok(drifted)
    }
}
