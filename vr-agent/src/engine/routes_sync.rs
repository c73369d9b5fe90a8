//! The engine's routes: the management node's networks (see
//! `plan::routes`), put in force, undone with a failed edit, and repaired
//! when someone changes them.

use std::collections::{BTreeMap, BTreeSet};

use common::net::{IfName, Mac};

use super::{Engine, EngineError};
use crate::plan::links::{self, LinkOp};
use crate::plan::routes::{self, Route};
use crate::sys::netlink::Snapshot;
use vr_model::Model;

impl Engine {
    /// Make our routes in the kernel those `model` wants: remove ours that
    /// it does not want, add (or replace) the missing ones.
    pub(super) async fn sync_routes(
        &mut self,
        model: &Model,
        links: &BTreeMap<Mac, IfName>,
    ) -> Result<(), EngineError> {
        let want = routes::resolve(&routes::mgmt_routes(model), links)?;
        self.routes = None;
        let nl = &self.sys.netlink;
        let have: BTreeSet<Route> = nl.owned_routes().await?.into_iter().collect();
        for r in have.difference(&want) {
            nl.del_route(r).await?;
            tracing::info!(dst = %r.dst, via = %r.gateway, dev = %r.ifname, "route removed");
        }
        for r in want.difference(&have) {
            nl.replace_route(r).await?;
            tracing::info!(dst = %r.dst, via = %r.gateway, dev = %r.ifname, "route to the management node added");
        }
        self.routes = Some(want);
        Ok(())
    }

    /// What the kernel holds for the links `ops` touch and the main routing
    /// table; None (logged) when it cannot be read: the undo then replays
    /// the plan backwards.
    pub(super) async fn link_snapshot(&self, ops: &[LinkOp]) -> Option<Snapshot> {
        let ifnames: BTreeSet<IfName> = ops.iter().map(|op| op.ifname().clone()).collect();
        match self.sys.netlink.snapshot(&ifnames).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the links before changing them");
                None
            }
        }
    }

    /// After a failed edit: take the links and routes from `next` (partly
    /// applied) back to the model in force: the kernel's snapshot from
    /// before the edit when there is one, else the plan from `next` back.
    /// Best effort; what fails is logged.
    pub(super) async fn undo_links(
        &mut self,
        next: &Model,
        links: &BTreeMap<Mac, IfName>,
        snap: Option<&Snapshot>,
    ) {
        if let Some(snap) = snap {
            match self.sys.netlink.restore(snap).await {
                Ok(()) => {
                    // Our routes came back with the snapshot; relearn them.
                    let model = self.model.clone();
                    if let Err(e) = self.sync_routes(&model, links).await {
                        tracing::error!(error = %e, "restoring routes after a failed edit failed");
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "putting the links back as they were failed; replaying the plan backwards")
                }
            }
        }
        match links::plan(Some(next), &self.model.clone(), None, links) {
            Ok(ops) => {
                if let Err(e) = self.run_link_ops(&ops).await {
                    tracing::error!(error = %e, "undoing a failed edit's links failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot plan the undo of a failed edit"),
        }
        let model = self.model.clone();
        if let Err(e) = self.sync_routes(&model, links).await {
            tracing::error!(error = %e, "restoring routes after a failed edit failed");
        }
    }

    /// Our routes: someone deleted or changed one -> put them back.
    pub(super) async fn check_route_drift(&mut self) -> Result<(), EngineError> {
        let Some(want) = &self.routes else {
            return Ok(());
        };
        let have: BTreeSet<Route> = self.sys.netlink.owned_routes().await?.into_iter().collect();
        if have != *want {
            tracing::warn!("our routes differ from the desired state; putting them back");
            self.stats.drift_repairs += 1;
            let links = self.sys.netlink.links().await?;
            let model = self.model.clone();
            self.sync_routes(&model, &links).await?;
        }
        Ok(())
    }
}
