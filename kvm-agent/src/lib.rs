//! kvm-agent: the compute-host agent. Bridges over physical NICs moving the
//! host's addresses and routes make-before-break (DESIGN.md section 5), and
//! the host endpoints of ZStack's kvmagent protocol.

/// What `--version` prints: the package version, the git commit of a
/// release build (see common/build_commit.rs) and the protocol spoken.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AGENTS_BUILD_COMMIT"),
    "; ZStack kvmagent protocol as of zstackio/zstack 5a29293b)"
);

pub mod api;
pub mod bridge;
pub mod netstate;
pub mod paths;
pub mod plan;
pub mod sys;
pub mod vm;
/// The kvmagent wire types live in `common::kvm` (vrctl sends them too);
/// this name stays while the agent's paths move.
pub use common::kvm as wire;

use std::future::Future;

/// Serve the agent on `listener` until `shutdown` resolves, under
/// [`limits`]. Each request carries the peer address (`ConnectInfo`), which
/// `api::guard` decides on.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: api::AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = state.credentials.tls.clone();
    common::serve::serve_tls(listener, api::router(state), limits(), tls, shutdown).await
}

/// The node's liveness checks stay served at the connection cap. Every
/// body is small (the largest, a `/vm/start` with its NICs, disks and
/// addons, is some KB; `/vm/checkstate` lists a host's VMs): the default
/// 2 MiB cap, which a 1 MiB string in a field stays under, so it is refused
/// naming the field.
pub fn limits() -> common::serve::Limits {
    common::serve::Limits::new(&["/host/echo", "/host/ping"])
}
