//! Who may command the router, where it may call back, and the audit line
//! (issue 14).
//!
//! Policy:
//! * commands come from the management node: `managementNodeIp` and
//!   `managementNodeCidr` of the bootstrap info, plus `--allow-from`, plus
//!   loopback (local checks, vrctl on the router itself); everyone else gets
//!   403 naming their address. That includes `/echo`: the node's echo comes
//!   from the node too. `GET /healthz` answers anyone (it says only "ok").
//! * `--allow-any-source` switches the source check off (a lab without a
//!   bootstrap file); without it and without any allowed address, loopback
//!   only.
//! * A `callbackurl` must name an allowed controller address or the
//!   requesting peer (no POSTs into a tenant's network): 400 otherwise, before
//!   the command runs.
//! * Every mutating command writes one line (target `audit`): peer, path,
//!   result, and the engine generation in force after it.
//!
//! * With a token (bootstrap `agentTokens` or `--auth-token-file`), every
//!   request but `GET /healthz` needs `Authorization: Bearer` (401); with
//!   mutual TLS the handshake already demanded a client certificate, whose
//!   subject the audit line names.
//!
//! The listener is bound to the management NIC (`boot::bind_listener`): this
//! check is on top of that, not instead.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::net::Ipv4Net;

use super::AppState;

/// The addresses commands may come from.
#[derive(Debug, Clone)]
pub struct Sources {
    any: bool,
    allowed: Vec<Ipv4Net>,
}

impl Sources {
    /// No source check (`--allow-any-source`, in-process tests).
    pub fn any() -> Self {
        Sources {
            any: true,
            allowed: Vec::new(),
        }
    }

    /// Loopback plus `allowed`.
    pub fn only(allowed: Vec<Ipv4Net>) -> Self {
        Sources {
            any: false,
            allowed,
        }
    }

    /// The management node of the bootstrap info: its address and CIDR.
    pub fn add_management_node(&mut self, ip: Option<&str>, cidr: Option<Ipv4Net>) {
        if let Some(ip) = ip.and_then(|s| s.trim().parse::<Ipv4Addr>().ok()) {
            self.allowed.push(Ipv4Net::containing(ip, 32));
        }
        self.allowed.extend(cidr);
    }

    pub fn is_any(&self) -> bool {
        self.any
    }

    /// A controller address (loopback always is).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.any || ip.is_loopback() {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => self.allowed.iter().any(|n| n.contains(v4)),
            IpAddr::V6(_) => false,
        }
    }

    fn allowed_text(&self) -> String {
        let mut v: Vec<String> = vec!["loopback".into()];
        v.extend(self.allowed.iter().map(|n| n.to_string()));
        v.join(", ")
    }

    /// Why `peer` may not send commands, or None.
    pub fn refusal(&self, peer: Option<IpAddr>) -> Option<String> {
        if self.any {
            return None;
        }
        match peer {
            None => Some("vr-agent: refused: the peer address is unknown".into()),
            Some(ip) if self.allows(ip) => None,
            Some(ip) => Some(format!(
                "vr-agent: refused {}: not the management node (allowed: {}; the bootstrap info's managementNodeIp/managementNodeCidr, or --allow-from)",
                ip.to_canonical(),
                self.allowed_text()
            )),
        }
    }

    /// A callback URL must point at the requesting peer or a controller
    /// address (`any`: the peer, when it is known).
    pub async fn check_callback(&self, url: &str, peer: Option<IpAddr>) -> Result<(), String> {
        if self.any && peer.is_none() {
            return Ok(());
        }
        let bad = |why: &str| {
            format!(
                "vr-agent: refused: callbackurl {} {why}; allowed: the requesting peer or {}",
                common::text::excerpt(url),
                if self.any {
                    "nothing else (--allow-any-source)".to_string()
                } else {
                    self.allowed_text()
                }
            )
        };
        let parsed: axum::http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        let https = match parsed.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("is not http(s)")),
        };
        let Some(host) = parsed.host() else {
            return Err(bad("names no host"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default(),
        };
        if ips.is_empty() {
            return Err(bad("does not resolve"));
        }
        let canon = |ip: IpAddr| ip.to_canonical();
        for ip in ips {
            let is_peer = peer.is_some_and(|p| canon(p) == canon(ip));
            if !(is_peer || (!self.any && self.allows(ip))) {
                return Err(bad(&format!(
                    "points at {}, not a controller address",
                    canon(ip)
                )));
            }
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The audit record of the request being decoded, then of the command
    /// running (see [`Audited`]).
    static AUDIT: Arc<AuditCtx>;
}

/// Who sent a command; the line is written once its result is known (in
/// async mode, in the command's own task).
pub struct AuditCtx {
    peer: String,
    /// The client certificate's subject (mutual TLS).
    certificate: Option<String>,
    path: String,
    generation: Mutex<Option<u64>>,
    /// The body decoded into the command (its handler logs the line).
    decoded: std::sync::atomic::AtomicBool,
}

impl AuditCtx {
    fn log(&self, result: &str) {
        let generation = *self.generation.lock().unwrap();
        tracing::info!(
            target: "audit",
            peer = %self.peer,
            path = %self.path,
            result = %result,
            generation = ?generation,
            certificate = self.certificate.as_deref().unwrap_or("-"),
            "command"
        );
    }
}

/// The engine generation the running command left in force (called by
/// `api::submit` under the engine's lock).
pub fn note_generation(g: u64) {
    let _ = AUDIT.try_with(|c| *c.generation.lock().unwrap() = Some(g));
}

/// A command body with the audit record of its request, taken while the
/// body is decoded (in the request's task; the command may run in another).
pub struct Audited<R> {
    pub inner: R,
    pub ctx: Option<Arc<AuditCtx>>,
}

impl<'de, R: serde::Deserialize<'de>> serde::Deserialize<'de> for Audited<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let inner = R::deserialize(d)?;
        let ctx = AUDIT.try_with(Arc::clone).ok();
        if let Some(c) = &ctx {
            c.decoded.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(Audited { inner, ctx })
    }
}

/// Run a decoded command with its audit record in scope, then write its
/// line.
pub async fn run_audited<T, F>(
    ctx: Option<Arc<AuditCtx>>,
    fut: F,
) -> Result<T, common::agent::ApiError>
where
    F: std::future::Future<Output = Result<T, common::agent::ApiError>>,
{
    let Some(ctx) = ctx else {
        return fut.await;
    };
    let r = AUDIT.scope(ctx.clone(), fut).await;
    match &r {
        Ok(_) => ctx.log("success"),
        Err(e) => ctx.log(&format!(
            "error {}: {}",
            e.status().as_u16(),
            common::text::excerpt_n(&e.message, 200)
        )),
    }
    r
}

/// Paths that change nothing (no audit line).
fn read_only(path: &str) -> bool {
    matches!(
        path,
        "/echo"
            | "/type"
            | "/test"
            | "/ping"
            | "/healthz"
            | "/readyz"
            | "/state"
            | "/metrics"
            | "/metrics/zstack"
    )
}

fn refuse(status: StatusCode, why: String) -> Response {
    tracing::warn!(target: "audit", "{why}");
    (status, why).into_response()
}

/// The axum middleware: source check, callback check, audit record.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let peer_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let peer = peer_addr.map(|a| a.ip());
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return next.run(req).await;
    }
    let sources = &state.sources;
    if let Some(why) = sources.refusal(peer) {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let who = peer_addr.map_or("in-process".into(), |a| a.to_string());
    if let Some(refused) =
        state
            .credentials
            .credentials
            .refusal("vr-agent", &who, &path, req.headers())
    {
        return refused;
    }
    if let Some(cb) = req.headers().get(common::agent::HEADER_CALLBACK_URL) {
        let cb = String::from_utf8_lossy(cb.as_bytes()).into_owned();
        if !cb.is_empty()
            && let Err(why) = sources.check_callback(&cb, peer).await
        {
            return refuse(StatusCode::BAD_REQUEST, why);
        }
    }
    if read_only(&path) {
        return next.run(req).await;
    }
    let certificate = req
        .extensions()
        .get::<common::tls::PeerCertificate>()
        .map(|c| c.0.clone());
    let ctx = Arc::new(AuditCtx {
        peer: who,
        certificate,
        path,
        generation: Mutex::new(None),
        decoded: Default::default(),
    });
    let rsp = AUDIT.scope(ctx.clone(), next.run(req)).await;
    if !ctx.decoded.load(std::sync::atomic::Ordering::SeqCst) {
        // Refused before the command ran (a bad body: in async mode the
        // error went to the callback behind a 200; an unknown path).
        ctx.log(&format!(
            "refused before running (HTTP {})",
            rsp.status().as_u16()
        ));
    }
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sources_and_callbacks() {
        let mut s = Sources::only(vec![]);
        let node: IpAddr = "10.0.0.2".parse().unwrap();
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(s.refusal(Some(node)).unwrap().contains("10.0.0.2"));
        assert!(s.refusal(Some("127.0.0.1".parse().unwrap())).is_none());
        s.add_management_node(Some("10.0.0.2"), Some("10.9.0.0/16".parse().unwrap()));
        assert!(s.refusal(Some(node)).is_none());
        assert!(s.refusal(Some("10.9.3.4".parse().unwrap())).is_none());
        assert!(s.refusal(Some(other)).unwrap().contains("10.0.0.3"));
        assert!(s.refusal(None).is_some());
        let ok = "http://10.0.0.2:8080/zstack/asyncrest/callback";
        s.check_callback(ok, Some(node)).await.unwrap();
        let e = s
            .check_callback("http://192.168.100.10/x", Some(node))
            .await
            .unwrap_err();
        assert!(e.contains("192.168.100.10"), "{e}");
        assert!(
            s.check_callback("file:///etc/passwd", Some(node))
                .await
                .is_err()
        );
        let any = Sources::any();
        assert!(any.refusal(Some(other)).is_none());
        any.check_callback("http://10.0.0.3:1/cb", Some(other))
            .await
            .unwrap();
        assert!(any.check_callback(ok, Some(other)).await.is_err());
    }
}
