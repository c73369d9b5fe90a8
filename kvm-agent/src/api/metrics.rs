//! `GET /metrics`: bridges, domains by state, command latency per path,
//! as Prometheus text (common::prometheus). Read-only; the guard's source
//! and credential checks apply as to every other path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::prometheus::{Exposition, Histogram, Kind};

use super::AppState;

tokio::task_local! {
    /// The path of the request being decoded: commands run in tasks of
    /// their own, so the path is taken with the body (see `guard::Audited`).
    pub static PATH: Arc<str>;
}

/// Seconds per command, by path (a trailing slash folded).
#[derive(Default)]
pub struct Latency(Mutex<BTreeMap<String, Histogram>>);

impl Latency {
    pub fn observe(&self, path: &str, seconds: f64) {
        let path = path.trim_end_matches('/');
        self.0
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .observe(seconds);
    }
}

/// The middleware that makes the request's path known to [`PATH`].
pub async fn track_path(req: Request, next: Next) -> Response {
    let path: Arc<str> = req.uri().path().into();
    PATH.scope(path, next.run(req)).await
}

pub async fn handler(State(a): State<AppState>) -> Response {
    let mut x = Exposition::default();
    x.gauge(
        "kvm_agent_build_info",
        "The agent's version (always 1).",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    match a.netlink.dump().await {
        Ok(o) => {
            let n = o
                .links
                .iter()
                .filter(|l| l.kind.as_deref() == Some("bridge"))
                .count();
            x.gauge(
                "kvm_agent_bridges",
                "Linux bridges on the host.",
                &[],
                n as f64,
            );
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot list links"),
    }
    x.declare(
        "kvm_agent_domains",
        Kind::Gauge,
        "libvirt domains, by state (ZStack's words).",
    );
    if let Some(hv) = a.vm.hypervisor.clone() {
        match tokio::task::spawn_blocking(move || hv.list()).await {
            Ok(Ok(domains)) => {
                let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
                for d in &domains {
                    *by_state.entry(d.state.zstack()).or_default() += 1;
                }
                for (state, n) in by_state {
                    x.gauge(
                        "kvm_agent_domains",
                        "libvirt domains, by state (ZStack's words).",
                        &[("state", state)],
                        n as f64,
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot list domains"),
            Err(e) => tracing::warn!(error = %e, "metrics: domain listing panicked"),
        }
    }
    x.gauge(
        "kvm_agent_libvirt_connected",
        "1 when libvirt was opened at start-up.",
        &[],
        f64::from(u8::from(a.vm.hypervisor.is_some())),
    );
    const HELP: &str = "Time to run one command (its reply or callback), by path.";
    x.declare("kvm_agent_command_duration_seconds", Kind::Histogram, HELP);
    for (path, h) in a.latency.0.lock().unwrap().iter() {
        x.histogram(
            "kvm_agent_command_duration_seconds",
            HELP,
            &[("path", path)],
            h,
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        x.render(),
    )
        .into_response()
}
