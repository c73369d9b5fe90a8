//! The engine's routes: the management node's networks (see
//! `plan::routes`), put in force, undone with a failed edit, and repaired
//! when someone changes them.

use std::collections::{BTreeMap, BTreeSet};

use common::net::{IfName, Mac};

use super::{Engine, EngineError};
use crate::plan::links::{self, LinkOp};
use crate::plan::routes::{self, Route};
use crate::sys::netlink::{Netlink, Snapshot};
use vr_model::Model;

/// What the routes reconciler put in force.
#[derive(Default)]
pub(super) struct RoutesCache {
    /// Our static routes (management node networks) in force; None when
    /// unknown.
    pub in_force: Option<BTreeSet<Route>>,
}

impl RoutesCache {
    /// Make our routes in the kernel those `model` wants: remove ours that
    /// it does not want, add (or replace) the missing ones.
    pub async fn sync(
        &mut self,
        nl: &dyn Netlink,
        model: &Model,
        links: &BTreeMap<Mac, IfName>,
    ) -> Result<(), EngineError> {
        let want = routes::resolve(&routes::mgmt_routes(model), links)?;
        self.in_force = None;
        let have: BTreeSet<Route> = nl.owned_routes().await?.into_iter().collect();
        for r in have.difference(&want) {
            nl.del_route(r).await?;
            tracing::info!(dst = %r.dst, via = %r.gateway, dev = %r.ifname, "route removed");
        }
        for r in want.difference(&have) {
            nl.replace_route(r).await?;
            tracing::info!(dst = %r.dst, via = %r.gateway, dev = %r.ifname, "route to the management node added");
        }
        self.in_force = Some(want);
        Ok(())
    }
}

impl Engine {
    /// Our routes as the model in force wants them.
    pub(super) async fn sync_routes(
        &mut self,
        links: &BTreeMap<Mac, IfName>,
    ) -> Result<(), EngineError> {
        let nl = self.sys.netlink.as_ref();
        self.routes.sync(nl, &self.model, links).await
    }

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
                    if let Err(e) = self.sync_routes(links).await {
                        tracing::error!(error = %e, "restoring routes after a failed edit failed");
                    }
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "putting the links back as they were failed; replaying the plan backwards")
                }
            }
        }
        match links::plan(Some(next), &self.model, None, links) {
            Ok(ops) => {
                if let Err(e) = self.run_link_ops(&ops).await {
                    tracing::error!(error = %e, "undoing a failed edit's links failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot plan the undo of a failed edit"),
        }
        if let Err(e) = self.sync_routes(links).await {
            tracing::error!(error = %e, "restoring routes after a failed edit failed");
        }
    }

    /// Our routes: someone deleted or changed one -> put them back.
    pub(super) async fn check_route_drift(&mut self) -> Result<(), EngineError> {
        let Some(want) = &self.routes.in_force else {
            return Ok(());
        };
        let have: BTreeSet<Route> = self.sys.netlink.owned_routes().await?.into_iter().collect();
        if have != *want {
            tracing::warn!("our routes differ from the desired state; putting them back");
            self.stats.drift_repairs += 1;
            let links = self.sys.netlink.links().await?;
            self.sync_routes(&links).await?;
        }
        Ok(())
    }
}
