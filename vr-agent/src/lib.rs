//! vr-agent: the agent inside the virtual router.
//!
//! * `api/`    HTTP routes (ZStack's VR protocol) -> model edits
//! * `model/`  the desired state and the edits commands make to it
//! * `engine`  the single writer that applies edits to the box
//! * `plan/`   pure functions: desired state -> nft text, link operations
//! * `sys/`    side effects, one trait each (nft, netlink, conntrack, store)

/// What `--version` prints: the package version, the git commit of a
/// release build (see common/build_commit.rs) and the protocol spoken.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AGENTS_BUILD_COMMIT"),
    "; ZStack virtual-router protocol, zvrVersion 5.2.0.0)"
);

pub mod api;
pub mod boot;
pub mod credentials;
pub mod engine;
pub mod ha;
pub mod metrics;
pub mod plan;
pub mod sys;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::engine::Engine;
use crate::sys::Sys;

pub struct Config {
    /// None: the management IP from the bootstrap info, port 7272.
    pub listen: Option<SocketAddr>,
    /// Read the bootstrap info here and configure the NICs before serving.
    pub bootstrap: Option<PathBuf>,
    pub bootstrap_timeout: Duration,
    pub state_dir: PathBuf,
    /// How often our nft table is compared with the desired state.
    pub drift_check: Duration,
    /// Controller addresses besides the bootstrap info's management node
    /// (and loopback).
    pub allow_from: Vec<common::net::Ipv4Net>,
    /// No source check at all (a lab without a bootstrap file).
    pub allow_any_source: bool,
    /// `--tls-cert`, `--tls-key`, `--tls-client-ca` (the bootstrap info's
    /// `agentTls` wins).
    pub tls_files: Option<common::tls::ServerFiles>,
    /// `--auth-token-file` (the bootstrap info's `agentTokens` wins).
    pub token_file: Option<PathBuf>,
    /// `--console`: where the serving line is said (warnings and errors
    /// reach it through the log set-up).
    pub console: Option<common::logging::Console>,
    /// `--ha-advert-ms`: the HA pair's VRRP advertisement interval, in
    /// centiseconds (master-down after about 3.6 of them).
    pub ha_advert_cs: u16,
}

/// 100 ms: a failover (master-down) in about 0.36 s.
pub const DEFAULT_HA_ADVERT_CS: u16 = 10;

/// The real side-effect implementations.
pub fn real_sys(state_dir: &std::path::Path) -> anyhow::Result<Sys> {
    Ok(Sys {
        firewall: Arc::new(sys::firewall::Nft),
        netlink: Arc::new(sys::netlink::RtNetlink::new()?),
        conntrack: Arc::new(sys::conntrack::ConntrackTool),
        store: Arc::new(sys::store::FileStore::new(state_dir)?),
        dnsmasq: Arc::new(sys::dnsmasq::DnsmasqProcess::new(
            state_dir.join("dnsmasq"),
        )?),
        haproxy: Arc::new(sys::haproxy::HaproxyProcess::new(
            state_dir.join("haproxy"),
            state_dir.join("certificates"),
        )?),
        sysctl: Arc::new(sys::sysctl::ProcSys),
    })
}

/// Routing is the router's job; a new network namespace starts with it off.
fn enable_forwarding(sysctl: &dyn sys::sysctl::Sysctl) {
    if let Err(e) = sysctl.write("net/ipv4/ip_forward", "1") {
        tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
    }
}

/// Re-apply the persisted state, then serve until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    sys: Sys,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    enable_forwarding(sys.sysctl.as_ref());
    let port = cfg.listen.map_or(boot::AGENT_PORT, |l| l.port());
    vr_model::checks::set_agent_port(port);
    let ha_paths = ha::Ha::paths(&cfg.state_dir);
    let ha_before = ha::Ha::persisted(&ha_paths);
    let hold = ha_before.as_ref().map(|(_, hold)| hold.clone());
    if hold.is_some() {
        tracing::info!("an HA pair was enabled before: starting as backup");
    }
    let mut engine = Engine::start_held(sys, port, hold).await?;
    let mut mgmt_ip = None;
    let mut sources = if cfg.allow_any_source {
        api::guard::Sources::any()
    } else {
        api::guard::Sources::only(cfg.allow_from.clone())
    };
    let mut bootstrap_info = None;
    if let Some(path) = &cfg.bootstrap {
        let document = boot::read_or_recall(path, cfg.bootstrap_timeout, &cfg.state_dir).await?;
        let info = &document.info;
        if info.in_ha_pair() && engine.ha_hold().is_none() {
            // A new half of a pair (re-created, or never enabled): its
            // shared NICs stay down until /enableVyosha and the election,
            // or it would answer for the master's addresses meanwhile.
            tracing::info!(ha_status = ?info.ha_status, "bootstrap info says HA pair: shared NICs held down until elected");
            let hold = engine::HaHold {
                keep_up: Default::default(),
                standby: true,
            };
            // The bootstrap's own edits hold the NICs down even if this
            // first pass fails; serving matters more than the error.
            if let Err(e) = engine.set_ha_hold(Some(hold)).await {
                tracing::error!(error = %e, "cannot set the shared NICs down");
            }
        }
        sources.add_management_node(info.management_node_ip.as_deref(), boot::node_cidr(info));
        let (edits, ip) = boot::plan(info)?;
        let (prelude, dropped) = boot::prelude(info, engine.model());
        if !dropped.is_empty() {
            tracing::warn!(
                ?dropped,
                "the persisted state disagrees with the bootstrap info (NICs gone or the management NIC changed, entries on the management IP); forgetting these"
            );
        }
        for edit in prelude.into_iter().chain(edits) {
            engine
                .apply(edit)
                .await
                .map_err(|e| anyhow::anyhow!("bootstrap info from {}: {e}", path.display()))?;
        }
        tracing::info!(path = %path.display(), management_ip = ?ip, "NICs configured from the bootstrap info");
        mgmt_ip = ip;
        document.keep(&cfg.state_dir);
        bootstrap_info = Some(document.info);
    }
    let credentials = credentials::start(
        bootstrap_info.as_ref(),
        cfg.tls_files.clone(),
        cfg.token_file.clone(),
        sys::credentials::CredentialFile::in_dir(&cfg.state_dir),
    )?;
    tracing::info!(credentials = %credentials.credentials.describe(), "client authentication");
    let tls = credentials.credentials.tls.clone();
    let listen = boot::listen_addr(cfg.listen, mgmt_ip);
    let engine = Arc::new(Mutex::new(engine));
    let uuid = Arc::new(RwLock::new(String::new()));
    let ha = match ha::Ha::new(engine.clone(), ha_paths, uuid.clone(), cfg.ha_advert_cs) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "HA unavailable");
            None
        }
    };
    if let (Some(ha), Some((cmd, _))) = (ha.clone(), ha_before) {
        tokio::spawn(async move {
            match ha.enable(&cmd).await {
                Ok(role) => tracing::info!(?role, "HA pair started again"),
                Err(e) => tracing::error!(error = %e, "cannot start the HA pair again"),
            }
        });
    }
    let state = api::AppState {
        engine: engine.clone(),
        uuid,
        sources: Arc::new(sources),
        credentials: Arc::new(credentials),
        ha: ha.clone(),
    };
    let drift = tokio::spawn(drift_loop(engine.clone(), cfg.drift_check));
    let health = tokio::spawn(health_loop(engine));
    let (listener, device) = boot::bind_listener(listen)?;
    if device.is_none() {
        tracing::warn!(%listen, "listening on every interface (--listen names the unspecified address): only the nft guard keeps tenants away from the agent");
    }
    tracing::info!(%listen, device = ?device, state_dir = %cfg.state_dir.display(), "vr-agent serving");
    if let Some(console) = &cfg.console {
        console.line(&format!("vr-agent serving on {listen}"));
    }
    if let Err(e) = common::systemd::notify_ready() {
        tracing::warn!(error = %e, "cannot tell systemd we are ready");
    }
    // The peer address is what `api::guard` decides on: common::serve puts
    // it (ConnectInfo) into every request.
    common::serve::serve_tls(
        listener,
        api::router(state),
        common::serve::Limits::vr_agent(),
        tls,
        shutdown,
    )
    .await?;
    drift.abort();
    health.abort();
    if let Some(ha) = ha {
        ha.stop().await;
    }
    Ok(())
}

/// Repair drift within moments of an `nft monitor` event, and poll every
/// `every` as the backstop (events can be missed, routes have none here).
async fn drift_loop(engine: Arc<Mutex<Engine>>, every: Duration) {
    if every.is_zero() {
        return;
    }
    let changed = Arc::new(tokio::sync::Notify::new());
    sys::monitor::watch(changed.clone());
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = changed.notified() => {
                // Let a burst of events (one transaction) finish.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if let Err(e) = engine.lock().await.check_drift().await {
            tracing::warn!(error = %e, "drift check failed");
        }
    }
}

/// Probe the children every [`HEALTH_EVERY`]; a hung one is restarted.
async fn health_loop(engine: Arc<Mutex<Engine>>) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        tick.tick().await;
        // Probed without the lock: a hung child must not stall commands.
        let (d, h) = {
            let e = engine.lock().await;
            (e.dnsmasq(), e.haproxy())
        };
        let (d_ok, h_ok) = tokio::join!(d.healthy(), h.healthy());
        engine.lock().await.children_probed(d_ok, h_ok).await;
    }
}

const HEALTH_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod version_tests {
    #[test]
    fn version_line_names_the_protocol_level_we_report() {
        assert!(
            crate::VERSION_LINE.contains(crate::api::ZVR_VERSION),
            "{}",
            crate::VERSION_LINE
        );
    }
}
