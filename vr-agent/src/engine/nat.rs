//! The NAT table: single PF/EIP entries changed in place (element
//! deltas), whole changes with a fallback to replacing the table, and the
//! stale conntrack flows a change leaves, removed in the background.

use super::*;
use crate::plan::nat;

/// What the NAT reconciler put in force, and where stale flows go.
pub(super) struct NatCache {
    /// What our nft table holds; None when unknown (then the next change
    /// replaces the whole table).
    pub applied: Option<Ruleset>,
    conntrack_tx: mpsc::UnboundedSender<BTreeSet<nat::FlowMatch>>,
    /// Flows the background cleaner removed (for `/metrics`).
    pub conntrack_deleted: Arc<AtomicU64>,
}

impl NatCache {
    pub fn new(
        conntrack_tx: mpsc::UnboundedSender<BTreeSet<nat::FlowMatch>>,
        conntrack_deleted: Arc<AtomicU64>,
    ) -> NatCache {
        NatCache {
            applied: None,
            conntrack_tx,
            conntrack_deleted,
        }
    }
}

impl Engine {
    /// Edits that add or remove single PF/EIP entries change only their own
    /// elements: check the new entries against the rest, apply their element
    /// delta, and edit the model in place. None when the edit needs the
    /// general path.
    pub(super) async fn edit_entries_in_place(
        &mut self,
        edit: &Edit,
    ) -> Option<Result<(), EngineError>> {
        self.nat.applied.as_ref()?;
        let links = match self.sys.netlink.links().await {
            Ok(l) => l,
            Err(e) => return Some(Err(e.into())),
        };
        let m = &self.model;
        let (gone, came): (Vec<&PortForward>, Vec<&PortForward>);
        let (eips_gone, eips_came): (Vec<&Eip>, Vec<&Eip>);
        match edit {
            Edit::CreatePortForwards(rules) => {
                gone = rules
                    .iter()
                    .filter_map(|r| m.port_forwards.get(&r.uuid))
                    .collect();
                came = rules.iter().collect();
                (eips_gone, eips_came) = (vec![], vec![]);
            }
            Edit::RevokePortForwards(uuids) => {
                gone = uuids
                    .iter()
                    .filter_map(|u| m.port_forwards.get(u))
                    .collect();
                came = vec![];
                (eips_gone, eips_came) = (vec![], vec![]);
            }
            Edit::CreateEip(e) => {
                (gone, came) = (vec![], vec![]);
                eips_gone = m.eips.get(&e.vip).into_iter().collect();
                eips_came = vec![e];
            }
            Edit::RemoveEip(vip) => {
                (gone, came) = (vec![], vec![]);
                eips_gone = m.eips.get(vip).into_iter().collect();
                eips_came = vec![];
            }
            _ => return None,
        }
        let elements =
            |pfs: &[&PortForward], eips: &[&Eip]| -> Result<Vec<nat::Element>, EngineError> {
                let mut out = vec![];
                for r in pfs {
                    out.extend(nat::pf_elements(r, &links)?);
                }
                for e in eips {
                    out.extend(nat::eip_elements(e, &links)?);
                }
                Ok(out)
            };
        let prepared = m
            .check_added(edit)
            .map_err(EngineError::Invalid)
            .and_then(|()| Ok((elements(&gone, &eips_gone)?, elements(&came, &eips_came)?)));
        let (gone, came) = match prepared {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        let change = nat::delta(self.nat.applied.as_ref()?, &gone, &came);
        if let Some(c) = change {
            if let Err(e) = self.nft(nat::TABLE, &c.script).await {
                // Our table drifted; the general path replaces it whole.
                tracing::warn!(error = %e, "element change refused; taking the full path");
                self.nat.applied = None;
                self.stats.drift_repairs += 1;
                return None;
            }
            self.defer_conntrack(c.stale);
        }
        if let Some(r) = self.nat.applied.as_mut() {
            r.commit(gone, came);
        }
        // Applied in place with an undo of the few entries it touches: a
        // clone of the model (tens of thousands of entries) cost more than
        // the rest of a one-rule change.
        let undo = EntryUndo::of(&self.model, edit);
        let _ = self.model.apply(edit);
        self.generation += 1;
        if let Err(e) = self.persist(edit) {
            undo.restore(&mut self.model);
            return Some(Err(self.back_in_force(e).await));
        }
        Some(Ok(()))
    }

    /// Apply a change; an incremental change that the kernel refuses means
    /// our table drifted, so replace it whole.
    pub(super) async fn apply_nft(
        &mut self,
        c: &nat::Change,
        ruleset: &Ruleset,
    ) -> Result<(), EngineError> {
        match self.nft(nat::TABLE, &c.script).await {
            Ok(()) => {
                if c.full {
                    self.stats.full_renders += 1;
                }
                Ok(())
            }
            Err(e) if !c.full => {
                tracing::warn!(error = %e, "incremental nft change refused; replacing the table");
                self.stats.drift_repairs += 1;
                self.stats.full_renders += 1;
                Ok(self
                    .nft(nat::TABLE, &nat::full(None, ruleset).script)
                    .await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Hand flows made stale by a change to the cleaner: listing conntrack
    /// walks the kernel's whole table (10-20 ms), which must not hold up
    /// the reply. The cleaner runs within milliseconds of the change.
    pub(super) fn defer_conntrack(&self, stale: BTreeSet<nat::FlowMatch>) {
        if !stale.is_empty() {
            let _ = self.nat.conntrack_tx.send(stale);
        }
    }
}

/// Deletes stale flows in the background, merging what queued meanwhile.
pub(super) async fn conntrack_cleaner(
    ct: Arc<dyn crate::sys::conntrack::Conntrack>,
    mut rx: mpsc::UnboundedReceiver<BTreeSet<nat::FlowMatch>>,
    deleted: Arc<AtomicU64>,
) {
    while let Some(mut stale) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            stale.extend(more);
        }
        match ct.delete(&stale).await {
            Ok(n) => {
                deleted.fetch_add(n as u64, Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(flows = n, "removed stale conntrack entries");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not clean conntrack"),
        }
    }
}
