//! Drift: our nft tables compared by content with what the kernel listed
//! right after our own last change, and replaced whole when they differ
//! (a flushed ruleset, a deleted element, a rule rewritten in place).

use super::{Engine, EngineError, apply_err};
use crate::plan::{lbudp, nat};
use crate::sys::firewall::{FirewallError, digest};

impl Engine {
    /// Every change to one of our tables goes through here, so the table is
    /// listed again afterwards.
    pub(super) async fn nft(
        &mut self,
        table: &'static str,
        script: &str,
    ) -> Result<(), FirewallError> {
        self.relist.insert(table);
        self.sys.firewall.apply(script).await
    }

    /// Record the kernel's listing of the tables we changed: the content the
    /// drift check expects.
    pub(super) async fn take_listings(&mut self) {
        for table in std::mem::take(&mut self.relist) {
            match self.sys.firewall.list(table).await {
                Ok(l) => {
                    self.listed.insert(table, digest(l.as_ref()));
                }
                Err(e) => {
                    tracing::warn!(table, error = %e, "cannot list our nft table");
                    self.listed.remove(table);
                }
            }
        }
    }

    /// The script that puts `table` back as we want it; None while it is
    /// unknown (the next edit replaces it whole anyway).
    fn desired(&self, table: &str) -> Option<String> {
        if table == nat::TABLE {
            self.applied.as_ref().map(|r| nat::full(None, r).script)
        } else {
            self.lb_udp.clone()
        }
    }

    /// Compare our tables (and routes) in the kernel with what we applied;
    /// replace a table whose content changed. True when one had drifted.
    pub async fn check_drift(&mut self) -> Result<bool, EngineError> {
        self.check_route_drift().await?;
        // Tables changed by element deltas since their last listing: what
        // the kernel holds now is our change (see `Engine::apply`).
        let fresh = self.relist.clone();
        self.take_listings().await;
        let mut drifted = false;
        for table in [nat::TABLE, lbudp::TABLE] {
            let Some(script) = self.desired(table) else {
                continue;
            };
            if fresh.contains(table) {
                continue;
            }
            let listing = self.sys.firewall.list(table).await.map_err(apply_err)?;
            let have = digest(listing.as_ref());
            match self.listed.get(table) {
                Some(want) if *want == have => continue,
                None => {
                    // Listing failed after our change: take this one.
                    self.listed.insert(table, have);
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
            r.map_err(apply_err)?;
        }
        Ok(drifted)
    }
}
