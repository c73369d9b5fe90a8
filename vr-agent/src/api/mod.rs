//! HTTP routes: ZStack's VR paths plus `/healthz` and `/state`.
//!
//! Every mutating handler converts the protocol body into an [`Edit`]
//! (a malformed entry is a 400 naming the entry and field), then hands it
//! to the engine, which applies it under its lock.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::routing::MethodRouter;
use axum::routing::get;
use common::agent::{self, ApiError, Ok, command_with};
use common::vr;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::engine::Engine;
use vr_model::lb::{self, LbEdit};
use vr_model::{CidrSource, Edit, from_wire};

mod dhcp_dns;
mod errors;
pub mod guard;
mod ha;
mod lb_certs;

use dhcp_dns::*;
use lb_certs::*;

pub use common::vr::ZVR_VERSION;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Mutex<Engine>>,
    /// Set by `/init`; `/ping` reads it without waiting for the engine.
    pub uuid: Arc<RwLock<String>>,
    /// Who may send commands (see `guard`).
    pub sources: Arc<guard::Sources>,
    /// Client certificate and token requirements, and their rotation.
    pub credentials: Arc<crate::credentials::Live>,
    /// The HA pair (`crate::ha`); None in tests that run without a state
    /// directory.
    pub ha: Option<Arc<crate::ha::Ha>>,
}

/// The node posts `/echo` and `/type` with `syncJsonPost`/`echo` (any
/// non-2xx is a transport failure, the body is never read) and every other
/// command with `asyncJsonPost` (a non-2xx fails with its status line only):
/// errors go in a 200 body or the callback. Keys are decoded exactly as Gson
/// writes them. Without a callback (curl, vrctl) the status codes stay.
const SYNC: agent::Options = agent::Options::ZSTACK_SYNC;
const ASYNC: agent::Options = agent::Options::ZSTACK_ASYNC;

pub fn router(state: AppState) -> Router {
    let r = Router::new()
        .route("/echo", cmd(SYNC, echo))
        .route("/type", cmd(SYNC, type_))
        .route("/test", cmd(SYNC, test))
        .route("/init", cmd(ASYNC, init))
        .route("/ping", cmd(ASYNC, ping))
        .route("/configurenic", cmd(ASYNC, configure_nic))
        .route("/removenic", cmd(ASYNC, remove_nic))
        .route("/configurenicdefaultaction", cmd(ASYNC, nic_default_action))
        .route("/changeDefaultNic", cmd(ASYNC, change_default_nic))
        .route("/setsnat", cmd(ASYNC, set_snat))
        .route("/removesnat", cmd(ASYNC, remove_snat))
        .route("/syncsnat", cmd(ASYNC, sync_snat))
        .route("/setsnatservicestate", cmd(ASYNC, set_snat_state))
        .route("/createvip", cmd(ASYNC, create_vip))
        .route("/removevip", cmd(ASYNC, remove_vip))
        .route("/createportforwarding", cmd(ASYNC, create_pf))
        .route("/revokeportforwarding", cmd(ASYNC, revoke_pf))
        .route("/syncportforwarding", cmd(ASYNC, sync_pf))
        .route("/createeip", cmd(ASYNC, create_eip))
        .route("/removeeip", cmd(ASYNC, remove_eip))
        .route("/synceip", cmd(ASYNC, sync_eip))
        .route("/adddhcp", cmd(ASYNC, add_dhcp))
        .route("/removedhcp", cmd(ASYNC, remove_dhcp))
        .route("/refreshDhcpServer", cmd(ASYNC, refresh_dhcp))
        .route("/startDhcpServer", cmd(ASYNC, start_dhcp))
        .route("/stopDhcpServer", cmd(ASYNC, stop_dhcp))
        .route("/setdns", cmd(ASYNC, set_dns))
        .route("/removedns", cmd(ASYNC, remove_dns))
        .route("/setvpcdns", cmd(ASYNC, set_vpc_dns))
        .route("/lb/refresh", cmd(ASYNC, lb_refresh))
        .route("/lb/delete", cmd(ASYNC, lb_delete))
        .route("/lb/log/level", cmd(ASYNC, lb_log_level))
        .route("/certificate/create", cmd(ASYNC, certificate_create))
        .route("/certificates/create", cmd(ASYNC, certificates_create))
        .route("/certificate/delete", cmd(ASYNC, certificate_delete))
        .route("/agent/credentials", cmd(ASYNC, agent_credentials))
        .route(common::vr_ha::ENABLE_HA_PATH, cmd(ASYNC, ha::enable_ha))
        .route(common::vr_ha::SYNC_HA_PATH, cmd(ASYNC, ha::sync_ha))
        .route(
            common::vr_ha::RESTART_KEEPALIVED_PATH,
            cmd(ASYNC, ha::restart_keepalived),
        )
        .route(common::vr_ha::GARP_PATH, axum::routing::post(ha::garp))
        .route("/ha", get(ha::status))
        .route("/healthz", get(healthz))
        .route("/state", get(state_json))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/metrics/zstack", get(metrics_zstack));
    let r = r.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        guard::layer,
    ));
    agent::finish(r, state)
}

/// A protocol command whose line is audited (see `guard`).
fn cmd<Req, Rsp, F, Fut>(opts: agent::Options, f: F) -> MethodRouter<AppState>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    F: Fn(AppState, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Rsp, ApiError>> + Send + 'static,
{
    command_with(opts, move |state, req: guard::Audited<Req>| {
        guard::run_audited(req.ctx, f(state, req.inner))
    })
}

fn bad(e: from_wire::FieldError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// Every command's strings within what their use needs (common::vr's
/// bounds), before anything quotes or keeps them.
fn bounded<T: Serialize>(cmd: &T) -> Result<(), ApiError> {
    vr::check_bounds(cmd).map_err(ApiError::bad_request)
}

/// Hands an edit to the engine, under its lock; the audit line gets the
/// generation it made.
async fn submit(s: &AppState, edit: Edit) -> Result<Ok, ApiError> {
    let mut e = s.engine.lock().await;
    let r = e.apply(edit).await;
    guard::note_generation(e.generation());
    r?;
    Result::Ok(Ok {})
}

async fn echo(_: AppState, _: serde_json::Value) -> Result<Ok, ApiError> {
    Result::Ok(Ok {})
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypeRsp {
    is_vyos: bool,
}

async fn type_(_: AppState, _: vr::UuidCmd) -> Result<TypeRsp, ApiError> {
    Result::Ok(TypeRsp { is_vyos: false })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestRsp {
    zvr_version: &'static str,
}

async fn test(_: AppState, _: vr::UuidCmd) -> Result<TestRsp, ApiError> {
    Result::Ok(TestRsp {
        zvr_version: ZVR_VERSION,
    })
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn init(s: AppState, cmd: vr::InitCmd) -> Result<vr::InitRsp, ApiError> {
    bounded(&cmd)?;
    let cidr = from_wire::mgmt_cidr("mgtCidr", &cmd.mgt_cidr).map_err(bad)?;
    // haproxy's log level (virtualRouter.haproxy.logLevel), as /lb/log/level.
    let log_level = match cmd.log_level.trim() {
        "" => None,
        l => Some(
            lb::log_level(l)
                .map_err(|e| ApiError::bad_request(format!("logLevel: {}", e.reason)))?,
        ),
    };
    if let Some(range) = cmd.parms.get("ipv4LocalPortRange") {
        let sysctl = s.engine.lock().await.sysctl();
        set_local_port_range(sysctl.as_ref(), range)?;
    }
    // The management node's network, routed via the management gateway
    // (zvr's initHandler does the same).
    submit(
        &s,
        Edit::SetMgmtCidr {
            source: CidrSource::Init,
            cidr,
        },
    )
    .await?;
    if let Some(level) = log_level {
        submit(&s, Edit::Lb(LbEdit::LogLevel(level))).await?;
    }
    *s.uuid.write().unwrap() = cmd.uuid.clone();
    tracing::info!(uuid = %cmd.uuid, "initialised by the controller");
    Result::Ok(vr::InitRsp {
        uuid: cmd.uuid,
        zvr_version: ZVR_VERSION.into(),
        vyos_version: String::new(),
        kernel_version: kernel_version(),
        ipsec_current_version: String::new(),
        ipsec_latest_version: String::new(),
    })
}

/// `ipv4LocalPortRange` ("1024-65000"); like zvr, values with a zero are
/// ignored, and the low end must be at least 1024.
fn set_local_port_range(
    sysctl: &dyn crate::sys::sysctl::Sysctl,
    range: &str,
) -> Result<(), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "parms.ipv4LocalPortRange: {} is not LOW-HIGH with 1024 <= LOW < HIGH <= 65535",
            common::text::quoted(range)
        ))
    };
    let (lo, hi) = range.split_once('-').ok_or_else(bad)?;
    let (lo, hi): (u32, u32) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo == 0 || hi == 0 {
        return Result::Ok(());
    }
    if lo < 1024 || hi > 65535 || lo >= hi {
        return Err(bad());
    }
    sysctl
        .write("net/ipv4/ip_local_port_range", &format!("{lo} {hi}"))
        .map_err(|e| ApiError::internal(format!("cannot set ip_local_port_range: {e}")))
}

async fn ping(s: AppState, _: vr::UuidCmd) -> Result<vr::PingRsp, ApiError> {
    let mut services = std::collections::BTreeMap::new();
    services.insert("IPsec".to_string(), Default::default());
    Result::Ok(vr::PingRsp {
        uuid: s.uuid.read().unwrap().clone(),
        version: ZVR_VERSION.into(),
        ha_status: s
            .ha
            .as_deref()
            .map(|h| h.role().wire())
            .unwrap_or_default()
            .as_str()
            .into(),
        healthy: true,
        health_detail: String::new(),
        service_health_list: services,
    })
}

/// How long `/configurenic` waits for a hot-plugged NIC to appear: the
/// node sends it right after attaching the NIC on the host, and the guest
/// kernel may register the link a little later (zvr retries 5 x 1 s).
pub const NIC_APPEAR_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn configure_nic(s: AppState, c: vr::NicsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let nics = from_wire::nics(&c.nics).map_err(bad)?;
    let netlink = s.engine.lock().await.netlink();
    let macs: Vec<_> = nics.iter().map(|n| n.mac).collect();
    wait_for_nics(netlink.as_ref(), &macs, NIC_APPEAR_WAIT).await?;
    submit(&s, Edit::ConfigureNics(nics)).await
}

/// Wait (without the engine lock) until every MAC is a link of the box.
async fn wait_for_nics(
    netlink: &dyn crate::sys::netlink::Netlink,
    macs: &[common::net::Mac],
    wait: std::time::Duration,
) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let links = netlink
            .links()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let missing: Vec<String> = macs
            .iter()
            .filter(|m| !links.contains_key(m))
            .map(|m| m.to_string())
            .collect();
        if missing.is_empty() {
            return Result::Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::conflict(format!(
                "nics: mac {} matches no NIC on this router after waiting {} s for it to appear \
                 (is the NIC attached to the VM?)",
                missing.join(", "),
                wait.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn remove_nic(s: AppState, c: vr::NicsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::RemoveNics(from_wire::nic_macs(&c.nics).map_err(bad)?),
    )
    .await
}

async fn nic_default_action(s: AppState, c: vr::NicsCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::SetDefaultActions(from_wire::default_actions(&c.nics).map_err(bad)?),
    )
    .await
}

async fn change_default_nic(s: AppState, c: vr::ChangeDefaultNicCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(&s, from_wire::change_default_nic(&c).map_err(bad)?).await
}

async fn set_snat(s: AppState, c: vr::SetSnatCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::SetSnat(from_wire::snat("snat", &c.snat).map_err(bad)?),
    )
    .await
}

async fn remove_snat(s: AppState, c: vr::RemoveSnatCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::RemoveSnats(from_wire::snats("natInfo", &c.nat_info).map_err(bad)?),
    )
    .await
}

async fn sync_snat(s: AppState, c: vr::SyncSnatCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let snats = from_wire::snats("snats", &c.snats).map_err(bad)?;
    submit(
        &s,
        Edit::SyncSnats {
            snats,
            enable: c.enable,
        },
    )
    .await
}

async fn set_snat_state(
    s: AppState,
    c: vr::SetSnatServiceStateCmd,
) -> Result<vr::SnatServiceStateRsp, ApiError> {
    bounded(&c)?;
    let snats = from_wire::snats("snats", &c.snats).map_err(bad)?;
    submit(
        &s,
        Edit::SetSnatState {
            snats,
            enabled: c.enabled,
        },
    )
    .await?;
    Result::Ok(vr::SnatServiceStateRsp {
        service_status: if c.enabled { "enable" } else { "disable" }.into(),
    })
}

async fn create_vip(s: AppState, c: vr::CreateVipCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let vips = from_wire::vips(&c.vips).map_err(bad)?;
    let primaries = if c.sync_vip {
        from_wire::nic_ips(&c.nic_ips).map_err(bad)?
    } else {
        vec![]
    };
    submit(&s, Edit::CreateVips { vips, primaries }).await
}

async fn remove_vip(s: AppState, c: vr::RemoveVipCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::RemoveVips(from_wire::vip_ips(&c.vips).map_err(bad)?),
    )
    .await
}

async fn create_pf(s: AppState, c: vr::PortForwardingCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::CreatePortForwards(from_wire::port_forwards(&c.rules).map_err(bad)?),
    )
    .await
}

async fn revoke_pf(s: AppState, c: vr::PortForwardingCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let uuids = c.rules.iter().map(|r| r.uuid.trim().to_string()).collect();
    submit(&s, Edit::RevokePortForwards(uuids)).await
}

async fn sync_pf(s: AppState, c: vr::PortForwardingCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let edit = Edit::SyncPortForwards(from_wire::port_forwards(&c.rules).map_err(bad)?);
    // The wire form of 100 000 rules is tens of MB: freed before the
    // apply, whose heap trim then returns it.
    drop(c);
    submit(&s, edit).await
}

async fn create_eip(s: AppState, c: vr::EipCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    submit(
        &s,
        Edit::CreateEip(from_wire::eip("eip", &c.eip).map_err(bad)?),
    )
    .await
}

async fn remove_eip(s: AppState, c: vr::EipCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let vip = from_wire::eip("eip", &c.eip).map_err(bad)?.vip;
    submit(&s, Edit::RemoveEip(vip)).await
}

async fn sync_eip(s: AppState, c: vr::SyncEipCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let edit = Edit::SyncEips(from_wire::eips(&c.eips).map_err(bad)?);
    drop(c); // as in sync_pf
    submit(&s, edit).await
}

/// Our extension: new TLS material and/or tokens, in force for the next
/// connection (see `crate::credentials`).
async fn agent_credentials(s: AppState, c: vr::AgentCredentialsCmd) -> Result<Ok, ApiError> {
    use crate::credentials::CredentialError as E;
    bounded(&c)?;
    match s.credentials.rotate(&c) {
        Result::Ok(what) => {
            tracing::info!(target: "audit", changed = %what, "agent credentials replaced");
            Result::Ok(Ok {})
        }
        Err(E::Invalid(m)) => Err(ApiError::bad_request(m)),
        Err(E::Conflict(m)) => Err(ApiError::conflict(m)),
        Err(E::Store(m)) => Err(ApiError::internal(m)),
    }
}

async fn healthz(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let initialised = !s.uuid.read().unwrap().is_empty();
    axum::Json(serde_json::json!({"status": "ok", "initialised": initialised}))
}

async fn state_json(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let e = s.engine.lock().await;
    axum::Json(serde_json::json!({
        "generation": e.generation(),
        "model": e.model(),
        "stats": e.stats(),
    }))
}

/// `/readyz`: 200 when the data plane is as applied, else 503 naming
/// what is wrong (`/healthz` only says the agent answers).
async fn readyz(State(s): State<AppState>) -> axum::response::Response {
    use crate::metrics::ready;
    use axum::response::IntoResponse;
    let (stats, dnsmasq, haproxy) = {
        let e = s.engine.lock().await;
        (e.stats(), e.dnsmasq(), e.haproxy())
    };
    let r = ready::judge(&ready::Facts {
        last_apply_error: stats.last_apply_error.as_deref(),
        drift_unrepaired: stats.drift_unrepaired,
        dnsmasq_healthy: dnsmasq.healthy().await,
        haproxy_healthy: haproxy.healthy().await,
    });
    let code = if r.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(r)).into_response()
}

/// What one scrape reads: clones under the engine lock, then the kernel
/// and the children without it.
async fn scrape(s: &AppState) -> crate::metrics::Scrape {
    let (model, stats, generation, netlink, firewall, haproxy, dnsmasq) = {
        let e = s.engine.lock().await;
        (
            e.model().clone(),
            e.stats(),
            e.generation(),
            e.netlink(),
            e.firewall(),
            e.haproxy(),
            e.dnsmasq(),
        )
    };
    let links = netlink.links().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "metrics: cannot list links");
        Default::default()
    });
    let nat = match firewall.list(crate::plan::nat::TABLE).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list the nft table");
            None
        }
    };
    let listeners: Vec<String> = model.lb.proxied().map(|l| l.uuid.clone()).collect();
    let mut rows = vec![];
    if !listeners.is_empty() {
        match haproxy.stats().await {
            Ok(Some(csv)) => {
                let names: Vec<&str> = listeners.iter().map(String::as_str).collect();
                rows = crate::sys::haproxy::stat_rows(&csv, &names);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read haproxy statistics"),
        }
    }
    crate::metrics::Scrape {
        model,
        stats,
        generation,
        links,
        nat,
        haproxy: rows,
        dhcp_leases: dnsmasq.leases().len(),
        conntrack: crate::metrics::read_conntrack(),
    }
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus text (see `crate::metrics`).
async fn metrics(State(s): State<AppState>) -> impl axum::response::IntoResponse {
    let text = crate::metrics::render(&scrape(&s).await);
    ([(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text)
}

/// The counters under ZStack's zvr names (see `crate::metrics::zstack`).
async fn metrics_zstack(State(s): State<AppState>) -> impl axum::response::IntoResponse {
    let text = crate::metrics::zstack::render(&scrape(&s).await);
    ([(axum::http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text)
}
