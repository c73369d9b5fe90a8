//! The router HA pair (issue 17): `/enableVyosha` starts keepalived (the
//! election, VRRPv3 unicast to the peer over the heartbeat NIC) and
//! conntrackd (the connection-state sync); keepalived's transitions come
//! back on a FIFO and move the shared NICs (`engine/ha.rs`), and each is
//! reported to the node's `callbackUrl` as zvr's notify scripts do.
//!
//! validate (`config.rs`) -> lock (`current`) -> write the configs and
//! the body (so a restarted agent starts the same pair) -> (re)start or
//! reload the daemons -> wait for the first role.

pub mod config;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::vr_ha::{self, EnableVyosHaCmd, HaStatus, HaStatusReport};
use serde::Serialize;
use tokio::sync::{Mutex, watch};

use crate::engine::{Engine, HaHold};
use crate::plan::{conntrackd, keepalived};
use crate::sys::ha::{HaDaemons, HaPaths, HaSysError};
use config::{ConfigError, HaConfig};

/// How long `/enableVyosha` waits for keepalived's first role (zvr: 5
/// tries, `keepalive` seconds apart).
const FIRST_ROLE_WAIT: Duration = Duration::from_secs(5);

/// What keepalived says this router is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// No pair configured.
    Off,
    /// Configured, keepalived has not said yet.
    Starting,
    Backup,
    Master,
    /// keepalived's FAULT (the heartbeat NIC down): acts as a backup.
    Fault,
}

impl Role {
    /// The node's `ApplianceVmHaStatus` has no Fault (its `valueOf` would
    /// throw): a fault is reported as Backup, as zvr does.
    pub fn wire(self) -> HaStatus {
        match self {
            Role::Off => HaStatus::NoHa,
            Role::Master => HaStatus::Master,
            Role::Starting | Role::Backup | Role::Fault => HaStatus::Backup,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Sys(#[from] HaSysError),
    #[error("{0}")]
    Render(#[from] keepalived::HaSpecError),
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("cannot keep the HA body: {0}")]
    Persist(String),
    #[error("keepalived gave no role within {0:?}")]
    NoRole(Duration),
}

/// A keepalived FIFO line (`INSTANCE "vr_ha" MASTER 100`) -> the role it
/// names; other lines (groups, other instances) are None.
pub fn parse_fifo_line(line: &str) -> Option<Role> {
    let mut w = line.split_whitespace();
    if w.next() != Some("INSTANCE") || w.next() != Some(&format!("\"{}\"", keepalived::INSTANCE)) {
        return None;
    }
    match w.next()? {
        "MASTER" => Some(Role::Master),
        "BACKUP" => Some(Role::Backup),
        "FAULT" | "STOP" => Some(Role::Fault),
        _ => None,
    }
}

pub struct Ha {
    engine: Arc<Mutex<Engine>>,
    daemons: HaDaemons,
    role: watch::Sender<Role>,
    current: Mutex<Option<HaConfig>>,
    /// The router's uuid from `/init`, for the status report.
    uuid: Arc<RwLock<String>>,
    advert_cs: u16,
}

impl Ha {
    /// The HA files' directory under the state directory.
    pub fn paths(state_dir: &std::path::Path) -> HaPaths {
        HaPaths {
            dir: state_dir.join("ha"),
        }
    }

    /// The persisted body, if a pair was enabled before a restart, and
    /// the hold the engine must start with for it.
    pub fn persisted(paths: &HaPaths) -> Option<(EnableVyosHaCmd, HaHold)> {
        let text = std::fs::read(paths.enabled()).ok()?;
        let cmd: EnableVyosHaCmd = match serde_json::from_slice(&text) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, path = %paths.enabled().display(), "unreadable HA body; HA stays off");
                return None;
            }
        };
        let mac = cmd.heartbeat_nic.as_deref()?.trim().parse().ok()?;
        let hold = HaHold {
            keep_up: BTreeSet::from([mac]),
            standby: true,
        };
        Some((cmd, hold))
    }

    pub fn new(
        engine: Arc<Mutex<Engine>>,
        paths: HaPaths,
        uuid: Arc<RwLock<String>>,
        advert_cs: u16,
    ) -> Result<Arc<Ha>, HaError> {
        let daemons = HaDaemons::new(paths.dir)?;
        let lines = daemons.fifo_lines()?;
        let exits = daemons.keepalived_exits();
        let ha = Arc::new(Ha {
            engine,
            daemons,
            role: watch::channel(Role::Off).0,
            current: Mutex::new(None),
            uuid,
            advert_cs,
        });
        tokio::spawn(transitions(Arc::downgrade(&ha), lines, exits));
        Ok(ha)
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// `/enableVyosha`: a repeat of the same body changes nothing; a
    /// changed one is reloaded into the running keepalived (its role kept).
    pub async fn enable(&self, cmd: &EnableVyosHaCmd) -> Result<Role, HaError> {
        let (links, mgmt_mac) = {
            let engine = self.engine.lock().await;
            let links = engine
                .netlink()
                .links()
                .await
                .map_err(|e| HaError::Engine(crate::engine::EngineError::from(e)))?;
            let mgmt = engine
                .model()
                .nics
                .values()
                .find(|n| n.category == vr_model::NicCategory::Management)
                .map(|n| n.mac);
            (links, mgmt)
        };
        let router_id = router_id(&self.uuid.read().unwrap());
        let cfg = config::from_wire(
            cmd,
            &links,
            mgmt_mac,
            &self.daemons.paths,
            &router_id,
            self.advert_cs,
        )?;
        let keepalived_conf = keepalived::render(&cfg.keepalived)?;
        let conntrackd_conf = conntrackd::render(&cfg.conntrackd)?;
        let mut current = self.current.lock().await;
        if current.as_ref() == Some(&cfg) && self.daemons.keepalived_pid().is_some() {
            return Ok(self.role());
        }
        let body = serde_json::to_vec(cmd).map_err(|e| HaError::Persist(e.to_string()))?;
        let paths = &self.daemons.paths;
        self.daemons
            .write(&paths.keepalived_conf(), &keepalived_conf)?;
        self.daemons
            .write(&paths.conntrackd_conf(), &conntrackd_conf)?;
        common::files::write_private(&paths.enabled(), &body)
            .map_err(|e| HaError::Persist(e.to_string()))?;
        let running = self.daemons.keepalived_pid();
        if current.is_none() || running.is_none() {
            // A new pair: nothing shared is answered until keepalived
            // says master.
            let hold = HaHold {
                keep_up: BTreeSet::from([cfg.heartbeat_mac]),
                standby: true,
            };
            self.engine.lock().await.set_ha_hold(Some(hold)).await?;
            self.role.send_replace(Role::Starting);
            self.daemons.start_conntrackd().await?;
            self.daemons.start_keepalived().await?;
        } else {
            self.daemons.start_conntrackd().await?;
            self.daemons.reload_keepalived();
        }
        tracing::info!(
            heartbeat = %cfg.keepalived.heartbeat,
            local = %cfg.keepalived.local,
            peer = %cfg.keepalived.peer,
            vips = cfg.vips.len(),
            advert_ms = u32::from(self.advert_cs) * 10,
            "HA pair configured"
        );
        *current = Some(cfg);
        drop(current);
        let mut rx = self.role.subscribe();
        let first = tokio::time::timeout(
            FIRST_ROLE_WAIT,
            rx.wait_for(|r| !matches!(r, Role::Starting | Role::Off)),
        )
        .await;
        match first {
            Ok(Ok(r)) => Ok(*r),
            _ => Err(HaError::NoRole(FIRST_ROLE_WAIT)),
        }
    }

    /// `/restartKeepalived`: the node's answer to two masters. The new
    /// keepalived starts as backup, so this router gives the addresses up
    /// at once and wins them back only if the peer is gone.
    pub async fn restart_keepalived(&self) -> Result<Role, HaError> {
        if self.current.lock().await.is_none() {
            return Ok(Role::Off);
        }
        self.engine.lock().await.ha_standby().await?;
        self.set_role(Role::Backup).await;
        self.daemons.start_keepalived().await?;
        Ok(self.role())
    }

    /// `/keepalived/garp`, from the peer when it turns backup: announce
    /// every shared address again if this router is master.
    pub async fn garp(&self) -> Result<(), HaError> {
        if self.role() != Role::Master {
            return Ok(());
        }
        let vips = self.vips().await;
        self.engine.lock().await.ha_bring_up(&vips).await?;
        Ok(())
    }

    async fn vips(&self) -> Vec<crate::engine::PairVip> {
        self.current
            .lock()
            .await
            .as_ref()
            .map(|c| c.vips.clone())
            .unwrap_or_default()
    }

    /// Act on a role keepalived announced: move the shared NICs, then
    /// tell the node.
    async fn on_role(&self, role: Role) {
        if self.current.lock().await.is_none() {
            return;
        }
        let before = self.role();
        let vips = self.vips().await;
        let t = std::time::Instant::now();
        let moved = {
            let mut e = self.engine.lock().await;
            match role {
                Role::Master => e.ha_bring_up(&vips).await,
                _ => e.ha_standby().await,
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match moved {
            Ok(()) => tracing::info!(?before, ?role, ms, "HA role changed"),
            Err(e) => {
                tracing::error!(?before, ?role, error = %e, "HA role changed but moving the shared NICs failed")
            }
        }
        if before.wire() != role.wire() || before == Role::Starting {
            self.report(role).await;
        }
        self.role.send_replace(role);
    }

    async fn set_role(&self, role: Role) {
        let before = self.role.send_replace(role);
        if before.wire() != role.wire() {
            self.report(role).await;
        }
    }

    /// The status report zvr's notify scripts POST (`commandpath:
    /// /vpc/hastatus`), through the bounded callback queue.
    async fn report(&self, role: Role) {
        let Some(url) = self
            .current
            .lock()
            .await
            .as_ref()
            .and_then(|c| c.callback.clone())
        else {
            return;
        };
        let body = HaStatusReport {
            virtual_router_uuid: self.uuid.read().unwrap().clone(),
            ha_status: role.wire(),
        };
        let Ok(body) = serde_json::to_value(&body) else {
            return;
        };
        common::callback::enqueue_with(
            url,
            (
                vr_ha::COMMAND_PATH_HEADER,
                vr_ha::HA_STATUS_REPORT_PATH.to_string(),
            ),
            body,
        );
    }

    /// Stop the daemons (agent shutdown); the shared NICs stay as they are.
    pub async fn stop(&self) {
        self.daemons.stop().await;
    }
}

/// keepalived's `router_id`: the router's uuid when `/init` gave one.
fn router_id(uuid: &str) -> String {
    let id: String = uuid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect();
    if id.is_empty() {
        "vr-agent".into()
    } else {
        format!("vr-{id}")
    }
}

/// keepalived's roles as it writes them to the FIFO, and its deaths: a
/// keepalived killed on the master leaves the shared addresses up while
/// the peer takes over, so a death is a fault (NICs down) at once, until
/// the restarted keepalived says its role.
async fn transitions(
    ha: std::sync::Weak<Ha>,
    mut lines: tokio::sync::mpsc::Receiver<String>,
    mut exits: watch::Receiver<u64>,
) {
    loop {
        let role = tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { return };
                tracing::debug!(line, "keepalived");
                parse_fifo_line(&line)
            }
            changed = exits.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::warn!("keepalived died: the shared NICs are held down until it is back");
                Some(Role::Fault)
            }
        };
        let Some(ha) = ha.upgrade() else {
            return;
        };
        if let Some(role) = role {
            ha.on_role(role).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_lines_name_the_role() {
        assert_eq!(
            parse_fifo_line("INSTANCE \"vr_ha\" MASTER 100"),
            Some(Role::Master)
        );
        assert_eq!(
            parse_fifo_line("INSTANCE \"vr_ha\" BACKUP 100"),
            Some(Role::Backup)
        );
        assert_eq!(
            parse_fifo_line("INSTANCE \"vr_ha\" FAULT 100"),
            Some(Role::Fault)
        );
        assert_eq!(parse_fifo_line("INSTANCE \"other\" MASTER 100"), None);
        assert_eq!(parse_fifo_line("GROUP \"vr_ha\" MASTER"), None);
        assert_eq!(parse_fifo_line(""), None);
    }

    #[test]
    fn fault_is_backup_on_the_wire() {
        assert_eq!(Role::Fault.wire(), HaStatus::Backup);
        assert_eq!(Role::Off.wire(), HaStatus::NoHa);
        assert_eq!(Role::Master.wire(), HaStatus::Master);
    }

    #[test]
    fn router_ids_are_what_keepalived_reads() {
        assert_eq!(router_id("4d8c-1c0e"), "vr-4d8c1c0e");
        assert_eq!(router_id("\n}"), "vr-agent");
    }
}
