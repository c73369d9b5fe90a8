//! kvm-agent: the compute-host agent. Bridges over physical NICs moving the
//! host's addresses and routes make-before-break (DESIGN.md section 5), and
//! the host endpoints of ZStack's kvmagent protocol.

pub mod api;
pub mod bridge;
pub mod netstate;
pub mod paths;
pub mod plan;
pub mod sys;
pub mod vm;
pub mod wire;

use std::future::Future;

/// Serve the agent on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: api::AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer address is what `api::guard` decides on.
    let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
