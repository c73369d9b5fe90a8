//! HTTP routes on `common::agent`: one handler per endpoint,
//! validate -> lock -> act -> map the error.

mod bootstrap;
pub mod guard;
mod host;
pub mod metrics;
mod network;
pub mod vm;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;
use common::command::Command;

use crate::bridge;
use crate::plan::domain::{DomainOptions, DomainType};
use crate::sys::hostinfo::HostProbe;
use crate::sys::hypervisor::Hypervisor;
use crate::sys::netlink::Netlink;
use crate::sys::sysctl::Sysctl;

/// What `/host/connect` told us; lives in memory only (see `host::connect`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub host_uuid: String,
    pub send_command_url: String,
    pub version: String,
}

pub struct Agent {
    pub netlink: Arc<dyn Netlink>,
    pub sysctl: Arc<dyn Sysctl>,
    pub host: HostProbe,
    pub state_dir: PathBuf,
    pub bridge_options: bridge::Options,
    /// ZStack's process-wide `bridge` lock: bridge commands run one at a time.
    pub bridge_lock: tokio::sync::Mutex<()>,
    pub session: std::sync::Mutex<Session>,
    pub vm: VmSide,
    /// Who may send commands (see `guard`); open in `Agent::new`.
    pub peers: guard::Peers,
    /// Client certificate and bearer token requirements (none in
    /// `Agent::new`).
    pub credentials: common::credentials::Credentials,
    /// Command latency per path (`GET /metrics`).
    pub latency: metrics::Latency,
}

/// The VM half of the agent: libvirt (absent when it could not be opened at
/// start-up, so host and bridge endpoints still work) and domain options.
pub struct VmSide {
    pub hypervisor: Option<Arc<dyn Hypervisor>>,
    /// Why `hypervisor` is None.
    pub problem: String,
    pub options: DomainOptions,
    /// Anti-spoofing rules for `cleanTraffic` NICs (nft by default).
    pub guard: Arc<dyn crate::sys::antispoof::NicGuard>,
    /// `/vm/volumesync`'s previous round (a path must be unused twice).
    pub volume_sync: std::sync::Mutex<crate::vm::volumes::Inactive>,
    pub locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Directories request paths must be in (`--socket-dir`, ...).
    pub dirs: crate::paths::HostDirs,
    /// One pending `/appliancevm/setbootstrapinfo` per socket.
    pub bootstraps: bootstrap::Pending,
}

impl VmSide {
    pub fn new(hypervisor: Option<Arc<dyn Hypervisor>>, options: DomainOptions) -> Self {
        VmSide {
            hypervisor,
            problem: "not configured".into(),
            options,
            guard: Arc::new(crate::sys::antispoof::NftGuard),
            volume_sync: Default::default(),
            locks: Default::default(),
            dirs: Default::default(),
            bootstraps: Default::default(),
        }
    }
    pub fn with_dirs(mut self, dirs: crate::paths::HostDirs) -> Self {
        self.dirs = dirs;
        self
    }
    pub fn with_guard(mut self, guard: Arc<dyn crate::sys::antispoof::NicGuard>) -> Self {
        self.guard = guard;
        self
    }
    pub fn libvirt_problem(&self) -> &str {
        &self.problem
    }
}

impl Default for VmSide {
    fn default() -> Self {
        VmSide::new(
            None,
            DomainOptions {
                domain_type: DomainType::Kvm,
                console_log_dir: PathBuf::from("/var/log/kvm-agent/console"),
                vnc_listen: "0.0.0.0".into(),
            },
        )
    }
}

impl Agent {
    pub fn new(netlink: Arc<dyn Netlink>, sysctl: Arc<dyn Sysctl>, state_dir: PathBuf) -> Self {
        Agent {
            netlink,
            sysctl,
            host: HostProbe::default(),
            state_dir,
            bridge_options: bridge::Options::default(),
            bridge_lock: tokio::sync::Mutex::new(()),
            session: std::sync::Mutex::new(Session::default()),
            vm: VmSide::default(),
            peers: guard::Peers::open(),
            credentials: Default::default(),
            latency: Default::default(),
        }
    }

    pub fn with_vm(mut self, vm: VmSide) -> Self {
        self.vm = vm;
        self
    }

    pub fn with_peers(mut self, peers: guard::Peers) -> Self {
        self.peers = peers;
        self
    }

    pub fn with_credentials(mut self, credentials: common::credentials::Credentials) -> Self {
        self.credentials = credentials;
        self
    }
}

pub type AppState = Arc<Agent>;

/// ZStack registers every path with and without a trailing slash.
fn both(r: Router<AppState>, path: &str, m: MethodRouter<AppState>) -> Router<AppState> {
    r.route(path, m.clone()).route(&format!("{path}/"), m)
}

/// A path the node posts with `asyncJsonPost` (ZStack's async URIs): keys
/// exactly as sent, every error in the callback; without a callback (curl,
/// vrctl) errors keep their HTTP status.
fn command<Req, Rsp, F, Fut>(f: F) -> MethodRouter<AppState>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Rsp: serde::Serialize + Send + 'static,
    F: Fn(AppState, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Rsp, common::agent::ApiError>> + Send + 'static,
{
    common::agent::command_with(common::agent::Options::ZSTACK_ASYNC, audited(f))
}

/// `f` with the audit line written when its result is known.
#[allow(clippy::type_complexity)]
fn audited<Req, Rsp, F, Fut>(
    f: F,
) -> impl Fn(
    AppState,
    guard::Audited<Req>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Rsp, common::agent::ApiError>> + Send>,
> + Clone
+ Send
+ Sync
+ 'static
where
    Req: Send + 'static,
    Rsp: Send + 'static,
    F: Fn(AppState, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Rsp, common::agent::ApiError>> + Send + 'static,
{
    move |state: AppState, req: guard::Audited<Req>| {
        let timer = req
            .path
            .map(|p| (state.clone(), p, std::time::Instant::now()));
        let fut = f(state, req.inner);
        let ctx = req.ctx;
        Box::pin(async move {
            let r = fut.await;
            if let Some((state, path, t)) = timer {
                state.latency.observe(&path, t.elapsed().as_secs_f64());
            }
            guard::audit_result(ctx, &r);
            r
        })
    }
}

/// `f` as a [`command`] at `path`, which must be the path of `f`'s
/// request type (`C::PATH`): the compiler ties the request type to its
/// reply type, and a path that is not the type's stops the router's
/// construction (every test of the agent builds it).
fn at<C, F, Fut>(r: Router<AppState>, path: &str, f: F) -> Router<AppState>
where
    C: Command + serde::de::DeserializeOwned + Send + 'static,
    C::Reply: serde::Serialize + Send + 'static,
    F: Fn(AppState, C) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<C::Reply, common::agent::ApiError>> + Send + 'static,
{
    assert_eq!(path, C::PATH, "{path} routed to the handler of {}", C::PATH);
    both(r, path, command(f))
}

/// A path the node posts with `syncJsonPost`: errors are 200 with
/// `success:false`, as the node reads no other status.
fn sync_command<Req, Rsp, F, Fut>(f: F) -> MethodRouter<AppState>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Rsp: serde::Serialize + Send + 'static,
    F: Fn(AppState, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Rsp, common::agent::ApiError>> + Send + 'static,
{
    common::agent::command_with(common::agent::Options::ZSTACK_SYNC, audited(f))
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    r = both(r, "/host/echo", axum::routing::post(host::echo));
    r = both(r, "/host/connect", sync_command(host::connect));
    r = at(r, "/host/ping", host::ping);
    r = both(r, "/host/capacity", command(host::capacity));
    r = both(r, "/host/fact", command(host::fact));
    r = at(r, "/host/update/configuration", host::update_configuration);
    r = at(r, "/host/updatedependency", host::update_dependency);
    r = both(
        r,
        "/network/checkphysicalnetworkinterface",
        axum::routing::post(host::check_physical_interfaces),
    );
    // The VLAN paths take the plain paths' bodies.
    r = at(r, "/network/l2novlan/createbridge", network::create_novlan);
    r = both(
        r,
        "/network/l2vlan/createbridge",
        command(network::create_vlan),
    );
    r = at(r, "/network/l2novlan/checkbridge", network::check_novlan);
    r = both(
        r,
        "/network/l2vlan/checkbridge",
        command(network::check_vlan),
    );
    r = at(r, "/network/l2novlan/deletebridge", network::delete_novlan);
    r = both(
        r,
        "/network/l2vlan/deletebridge",
        command(network::delete_vlan),
    );
    r = at(r, "/network/bridge/addif", network::add_if);
    r = at(r, "/vm/start", vm::start);
    r = at(r, "/vm/stop", vm::stop);
    r = at(r, "/vm/destroy", vm::destroy);
    r = at(r, "/vm/reboot", vm::reboot);
    r = both(r, "/vm/vmsync", command(vm::vmsync));
    r = at(r, "/vm/console/tail", vm::console_tail);
    r = at(r, "/vm/checkstate", vm::check_state);
    r = at(r, "/vm/getvncport", vm::get_vnc_port);
    r = at(r, "/vm/volumesync", vm::volume_sync);
    r = at(r, "/vm/attachnic", vm::attach_nic);
    r = at(r, "/vm/detachnic", vm::detach_nic);
    r = at(r, "/vm/getvirtualizerinfo", vm::get_virtualizer_info);
    r = at(
        r,
        "/appliancevm/setbootstrapinfo",
        bootstrap::set_bootstrap_info,
    );
    r = r.route("/healthz", axum::routing::get(|| async { "ok" }));
    r = r.route("/metrics", axum::routing::get(metrics::handler));
    let r = r
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::layer,
        ))
        .layer(axum::middleware::from_fn(metrics::track_path));
    common::agent::finish(r, state)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_vm;

#[cfg(test)]
mod tests_paths;

#[cfg(test)]
mod tests_metrics;
