//! The single writer: owns the desired state and every side effect.
//!
//! Each command is one [`Edit`]: applied to a copy of the model, validated as
//! a whole, rendered, applied to the box (nft transaction, then links), and
//! only then kept and persisted. A failure anywhere leaves the previous state
//! in force; nothing of a bad batch is applied.
//!
//! The transaction (clone, edit, validate, prepare, commit in order, roll
//! back, persist) is this file; each service's part of it is its own file:
//! `nat` (the NAT table and stale flows), `links` and `routes_sync`
//! (addresses, routes), `dhcp` (dnsmasq), `lb` (haproxy, certificates);
//! `drift` compares our tables with the kernel's.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::plan::dnsmasq::Files;
use crate::plan::links::LinkOp;
use crate::plan::nat::{Observed, Ruleset};
use crate::plan::routes;
use vr_model::dhcp::DnsmasqState;
use vr_model::lb::{LbEdit, LbMode, LbState};
use vr_model::{Edit, Eip, Model, PortForward};

mod dhcp;
mod drift;
mod entry_undo;
mod ha;
mod lb;
mod links;
mod nat;
mod redo;
mod routes_sync;

use crate::plan::PlanError;
use crate::plan::{self, haproxy, lbudp};
use crate::sys::Sys;

use crate::sys::dnsmasq::DnsmasqError;
use crate::sys::firewall::FirewallError;
use crate::sys::haproxy::HaproxyError;
use crate::sys::netlink::NetlinkError;
use crate::sys::store::StoreError;
pub use dhcp::update_dnsmasq;
use entry_undo::EntryUndo;
pub use ha::{HaHold, PairVip};
use vr_model::Invalid;

/// Why an edit is not in force, by cause; the API maps each cause to its
/// status in one place (`api::errors`).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The router cannot take the edit (the model's verdict).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The edit cannot be rendered for this box.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// haproxy's own check refuses the configuration the edit leads to.
    #[error("{0}")]
    Refused(#[source] HaproxyError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Dnsmasq(#[from] DnsmasqError),
    #[error(transparent)]
    Haproxy(#[from] HaproxyError),
    /// The state dir: loading it at start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state dir: keeping a change (a full or read-only disk).
    #[error("cannot persist the change: {0}")]
    Persist(#[source] StoreError),
    /// The change failed part-way and was taken back; `undo_failed` is
    /// why the previous state is not wholly in force again, if it is not.
    #[error("{cause} ({})", undo_outcome(.undo_failed.as_deref()))]
    NotApplied {
        cause: Box<EngineError>,
        undo_failed: Option<Box<EngineError>>,
    },
}

fn undo_outcome(undo_failed: Option<&EngineError>) -> String {
    match undo_failed {
        None => "not applied; the previous state is in force".into(),
        Some(e) => format!(
            "not applied, and putting the previous state back failed ({e}): the router may hold part of the change"
        ),
    }
}

impl EngineError {
    /// The first cause, under any undo.
    pub fn cause(&self) -> &EngineError {
        match self {
            EngineError::NotApplied { cause, .. } => cause.cause(),
            e => e,
        }
    }
}

/// Failed probes in a row before a child is restarted.
pub const PROBES_BEFORE_RESTART: u32 = 3;

pub struct Engine {
    sys: Sys,
    model: Model,
    generation: u64,
    agent_port: u16,
    /// The links (MAC -> name) the NAT table and dnsmasq's files were
    /// rendered with; None when unknown.
    links_seen: Option<std::collections::BTreeMap<common::net::Mac, common::net::IfName>>,
    /// Each reconciler's memory of what it put in force, in its own file.
    nat: nat::NatCache,
    dhcp: dhcp::DhcpCache,
    lb: lb::LbCache,
    routes: routes_sync::RoutesCache,
    tables: drift::Listings,
    /// An HA pair's hold on the shared NICs (`ha.rs`); None without HA.
    ha: Option<HaHold>,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    pub applies: u64,
    pub failures: u64,
    pub full_renders: u64,
    pub drift_repairs: u64,
    pub conntrack_deleted: u64,
    pub dnsmasq_restarts: u64,
    pub haproxy_reloads: u64,
    pub haproxy_restarts: u64,
    /// Children restarted because they stopped answering their probe.
    pub hung_restarts: u64,
    /// haproxy reloads (or starts) that failed.
    pub haproxy_reload_failures: u64,
    /// Seconds per applied edit, by section (`Edit::section`).
    pub apply_seconds: std::collections::BTreeMap<&'static str, common::prometheus::Histogram>,
    /// The last edit's error, None when it was applied (`/readyz`).
    pub last_apply_error: Option<String>,
    /// A drifted table whose repair failed (`/readyz`).
    pub drift_unrepaired: bool,
}

impl Engine {
    /// Load the persisted state and put it back on the box, so a restarted
    /// agent serves its networks before the controller says anything.
    pub async fn start(sys: Sys, agent_port: u16) -> Result<Engine, EngineError> {
        Engine::start_held(sys, agent_port, None).await
    }

    /// [`Engine::start`] for one router of an HA pair: the hold stands
    /// before the persisted state is put back, so a restarted backup never
    /// brings the shared NICs up, not even for a moment.
    pub async fn start_held(
        sys: Sys,
        agent_port: u16,
        hold: Option<HaHold>,
    ) -> Result<Engine, EngineError> {
        let (generation, model) =
            crate::sys::blocking::run(|| sys.store.load())?.unwrap_or_default();
        let (conntrack_tx, rx) = mpsc::unbounded_channel();
        let conntrack_deleted = Arc::new(AtomicU64::new(0));
        tokio::spawn(nat::conntrack_cleaner(
            sys.conntrack.clone(),
            rx,
            conntrack_deleted.clone(),
        ));
        let mut engine = Engine {
            sys,
            model,
            generation,
            agent_port,
            links_seen: None,
            nat: nat::NatCache::new(conntrack_tx, conntrack_deleted),
            dhcp: dhcp::DhcpCache::default(),
            lb: lb::LbCache::new(crate::sys::haproxy::host()),
            routes: routes_sync::RoutesCache::default(),
            tables: drift::Listings::default(),
            ha: hold,
            stats: Stats::default(),
        };
        if engine.ha.is_some() {
            // Down before the reconcile below adds their addresses.
            if let Err(e) = engine.ha_standby().await {
                tracing::error!(error = %e, "cannot set the shared NICs down");
            }
        }
        let t = Instant::now();
        let r = engine.reconcile().await;
        engine.take_listings().await;
        match r {
            Ok(()) => tracing::info!(
                generation,
                ms = t.elapsed().as_millis() as u64,
                "persisted state re-applied"
            ),
            // Keep serving: the controller's resync will fix or report it.
            Err(e) => tracing::error!(generation, error = %e, "re-applying persisted state failed"),
        }
        Ok(engine)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The sysctl side, for `/init`'s settings without the engine lock.
    pub fn sysctl(&self) -> Arc<dyn crate::sys::sysctl::Sysctl> {
        self.sys.sysctl.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub async fn apply(&mut self, edit: Edit) -> Result<(), EngineError> {
        let t = Instant::now();
        let r = self.put_in_force(&edit).await;
        // Listing a NAT table of 20 000 elements costs ~0.4 s (50x a
        // one-entry edit, 2x a 10 000-entry sync): after a successful change
        // its listing is left to the drift check that our own change wakes
        // through `nft monitor` moments later, which also compares its counts
        // with the rendering (see `check_drift`). The small LB table, and
        // everything after a failure, is listed at once.
        let defer_nat = r.is_ok() && self.tables.relist.remove(plan::nat::TABLE);
        self.take_listings().await;
        if defer_nat {
            self.tables.relist.insert(plan::nat::TABLE);
        }
        if edit.is_bulk() || edit.is_sync() {
            crate::sys::memory::trim();
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        self.stats
            .apply_seconds
            .entry(edit.section())
            .or_default()
            .observe(ms / 1000.0);
        self.stats.last_apply_error = r.as_ref().err().map(|e| e.to_string());
        match &r {
            Ok(()) => {
                self.stats.applies += 1;
                tracing::info!(
                    edit = edit_name(&edit),
                    generation = self.generation,
                    ms,
                    "applied"
                );
            }
            Err(e) => {
                self.stats.failures += 1;
                tracing::warn!(edit = edit_name(&edit), error = %e, ms, "not applied");
            }
        }
        r
    }

    /// Every change to one of our tables goes through here, so the table is
    /// listed again afterwards.
    pub(super) async fn nft(
        &mut self,
        table: &'static str,
        script: &str,
    ) -> Result<(), FirewallError> {
        self.tables.relist.insert(table);
        self.sys.firewall.apply(script).await
    }

    fn persist(&self, edit: &Edit) -> Result<(), EngineError> {
        crate::sys::blocking::run(|| self.sys.store.record(self.generation, edit, &self.model))
            .map_err(EngineError::Persist)
    }

    /// An edit went (partly) onto the box but cannot be kept (a service
    /// refused it, the disk is full): put `prev` back in force, so the
    /// reply's "not applied" is what the router does.
    async fn roll_back(
        &mut self,
        prev: Model,
        links: &std::collections::BTreeMap<common::net::Mac, common::net::IfName>,
        snap: Option<&crate::sys::netlink::Snapshot>,
        cause: EngineError,
    ) -> EngineError {
        let next = std::mem::replace(&mut self.model, prev);
        self.undo_links(&next, links, snap).await;
        self.back_in_force(cause).await
    }

    /// The previous model is `self.model` again (its links too): put the
    /// rest of the box back to it.
    async fn back_in_force(&mut self, cause: EngineError) -> EngineError {
        self.generation -= 1;
        let undo_failed = match self.reconcile().await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "putting the previous state back failed");
                Some(Box::new(e))
            }
        };
        EngineError::NotApplied {
            cause: Box::new(cause),
            undo_failed,
        }
    }

    async fn put_in_force(&mut self, edit: &Edit) -> Result<(), EngineError> {
        if let Some(r) = self.edit_entries_in_place(edit).await {
            return r;
        }
        let next = self.model.edited(edit)?;
        let links = self.sys.netlink.links().await?;
        let obs = Observed {
            links: &links,
            agent_port: self.agent_port,
        };
        let redo = self.to_redo(&next, &links);
        let ruleset = match redo.nat {
            true => Some(plan::nat::render(&next, &obs)?),
            false => None,
        };
        let ops = plan::links::plan(Some(&self.model), &next, Some(edit), &links)?;
        let dhcp_files = match redo.dhcp {
            true => Some(dhcp::DhcpCache::render(
                self.sys.dnsmasq.as_ref(),
                &next.dhcp,
                &links,
            )?),
            false => None,
        };
        let lb_plan = match redo.lb {
            true => Some(self.prepare_lb(&next.lb).await?),
            false => None,
        };

        let change = ruleset
            .as_ref()
            .and_then(|r| plan::nat::change(self.nat.applied.as_ref(), r));
        if let (Some(c), Some(r)) = (&change, &ruleset) {
            self.apply_nft(c, r).await?;
        }
        let routes_change = self.routes.in_force.is_none()
            || routes::mgmt_routes(&self.model) != routes::mgmt_routes(&next);
        let snap = if ops.is_empty() && !routes_change {
            None
        } else {
            self.link_snapshot(&ops).await
        };
        let mut put = self.run_link_ops_towards(&ops, Some(&next)).await;
        if put.is_ok() && routes_change {
            let nl = self.sys.netlink.as_ref();
            put = self.routes.sync(nl, &next, &links).await;
        }
        if let Err(e) = put {
            // Put links, routes and the firewall back as they were.
            self.undo_links(&next, &links, snap.as_ref()).await;
            if change.is_some() {
                let old = plan::nat::render(&self.model, &obs).ok();
                let restored = match &old {
                    Some(o) => self
                        .nft(plan::nat::TABLE, &plan::nat::full(None, o).script)
                        .await
                        .is_ok(),
                    None => false,
                };
                self.nat.applied = if restored { old } else { None };
            }
            return Err(e);
        }
        if let Some(r) = ruleset {
            self.nat.applied = Some(r);
        }
        if let Some(c) = change {
            self.defer_conntrack(c.stale);
        }
        let mut r = Ok(());
        if let Some(files) = dhcp_files {
            r = self
                .dhcp
                .sync(
                    self.sys.dnsmasq.as_ref(),
                    &self.model.dhcp,
                    &next.dhcp,
                    files,
                    &links,
                )
                .await;
        }
        if let (Ok(()), Some(plan)) = (&r, lb_plan) {
            r = self.sync_lb(&self.model.lb.clone(), &next.lb, plan).await;
        }
        let prev = std::mem::replace(&mut self.model, next);
        self.generation += 1;
        if r.is_ok() {
            r = self.persist(edit);
        }
        if let Err(e) = r {
            return Err(self.roll_back(prev, &links, snap.as_ref(), e).await);
        }
        self.links_seen = Some(links);
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.conntrack_deleted = self.nat.conntrack_deleted.load(Ordering::Relaxed);
        s.dnsmasq_restarts = self.sys.dnsmasq.restarts();
        s.haproxy_restarts = self.sys.haproxy.restarts();
        s
    }

    /// The netlink side, for waiting on links without the engine lock.
    pub fn netlink(&self) -> Arc<dyn crate::sys::netlink::Netlink> {
        self.sys.netlink.clone()
    }

    /// The dnsmasq side, for probing without the engine lock.
    pub fn dnsmasq(&self) -> Arc<dyn crate::sys::dnsmasq::Dnsmasq> {
        self.sys.dnsmasq.clone()
    }

    /// Count a round of child probes; a child that failed
    /// [`PROBES_BEFORE_RESTART`] in a row is restarted.
    pub async fn children_probed(&mut self, dnsmasq_ok: bool, haproxy_ok: bool) {
        let d = &mut self.dhcp.failed_probes;
        *d = if dnsmasq_ok { 0 } else { *d + 1 };
        let h = &mut self.lb.failed_probes;
        *h = if haproxy_ok { 0 } else { *h + 1 };
        if self.dhcp.failed_probes >= PROBES_BEFORE_RESTART {
            self.dhcp.failed_probes = 0;
            tracing::error!("dnsmasq does not answer DNS on loopback; restarting it");
            self.stats.hung_restarts += 1;
            if let Err(e) = self.sys.dnsmasq.restart().await {
                tracing::error!(error = %e, "restarting dnsmasq failed");
            }
        }
        if self.lb.failed_probes >= PROBES_BEFORE_RESTART {
            self.lb.failed_probes = 0;
            tracing::error!(
                "haproxy (master or worker) does not answer on its socket; restarting it"
            );
            self.stats.hung_restarts += 1;
            let h = self.sys.haproxy.clone();
            let r = match h.stop().await {
                Ok(()) => h.reload().await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "restarting haproxy failed");
                self.lb.files = None;
            }
        }
    }

    /// The nft side, for reading counters without the engine lock.
    pub fn firewall(&self) -> Arc<dyn crate::sys::firewall::Firewall> {
        self.sys.firewall.clone()
    }

    /// The haproxy side, for reading statistics without the engine lock.
    pub fn haproxy(&self) -> Arc<dyn crate::sys::haproxy::Haproxy> {
        self.sys.haproxy.clone()
    }

    /// Put the whole desired state on the box (start, drift repair).
    pub async fn reconcile(&mut self) -> Result<(), EngineError> {
        self.links_seen = None;
        let links = self.sys.netlink.links().await?;
        let obs = Observed {
            links: &links,
            agent_port: self.agent_port,
        };
        let ops = plan::links::plan(None, &self.model, None, &links)?;
        self.run_link_ops(&ops).await?;
        self.sync_routes(&links).await?;
        let ruleset = plan::nat::render(&self.model, &obs)?;
        self.nat.applied = None;
        self.lb.udp = None;
        // Both tables replaced whole in one transaction, whatever the kernel
        // holds (a killed agent's last change, a foreign edit).
        let lb_script = lbudp::render(&self.model.lb);
        let script = format!("{}{lb_script}", plan::nat::full(None, &ruleset).script);
        self.nft(plan::nat::TABLE, &script).await?;
        self.tables.relist.insert(lbudp::TABLE);
        self.stats.full_renders += 1;
        self.nat.applied = Some(ruleset);
        self.lb.udp = Some(lb_script);
        let dnsmasq = self.sys.dnsmasq.as_ref();
        let files = dhcp::DhcpCache::render(dnsmasq, &self.model.dhcp, &links)?;
        self.dhcp.files = None;
        let state = &self.model.dhcp;
        self.dhcp.sync(dnsmasq, state, state, files, &links).await?;
        self.lb.files = None;
        let lb = self.model.lb.clone();
        let plan = self.prepare_lb(&lb).await?;
        self.sync_lb(&LbState::default(), &lb, plan).await?;
        self.links_seen = Some(links);
        Ok(())
    }
}

fn edit_name(e: &Edit) -> &'static str {
    match e {
        Edit::ConfigureNics(_) => "configure-nics",
        Edit::RemoveNics(_) => "remove-nics",
        Edit::SetDefaultActions(_) => "nic-default-actions",
        Edit::SetSnat(_) => "set-snat",
        Edit::RemoveSnats(_) => "remove-snats",
        Edit::SyncSnats { .. } => "sync-snats",
        Edit::SetSnatState { .. } => "snat-service-state",
        Edit::CreateVips { .. } => "create-vips",
        Edit::RemoveVips(_) => "remove-vips",
        Edit::CreatePortForwards(_) => "create-port-forwards",
        Edit::RevokePortForwards(_) => "revoke-port-forwards",
        Edit::SyncPortForwards(_) => "sync-port-forwards",
        Edit::CreateEip(_) => "create-eip",
        Edit::RemoveEip(_) => "remove-eip",
        Edit::SyncEips(_) => "sync-eips",
        Edit::Dhcp(_) => "dhcp-dns",
        Edit::Lb(LbEdit::Refresh { .. }) => "lb-refresh",
        Edit::Lb(LbEdit::Delete(_)) => "lb-delete",
        Edit::Lb(LbEdit::Certs(_)) => "certificates-create",
        Edit::Lb(LbEdit::DeleteCert(_)) => "certificate-delete",
        Edit::Lb(LbEdit::LogLevel(_)) => "lb-log-level",
        Edit::SetMgmtCidr { .. } => "management-cidr",
        Edit::ChangeDefaultNic { .. } => "change-default-nic",
        Edit::ForgetNics(_) => "forget-nics",
        Edit::ClearManagementPlane(_) => "clear-management-plane",
    }
}
