//! Who may talk to kvm-agent, where it may call back, and the audit line.
//!
//! Policy (DESIGN: the controller is ZStack's management node):
//! * `--allow-from ADDR|CIDR` (repeatable) names controller addresses;
//! * the address a successful `/host/connect` came from is pinned as the
//!   controller and persisted (`<state-dir>/controller`), so a restart keeps
//!   it; an operator resets it by deleting that file or `--forget-controller`;
//! * before any controller is pinned and with nothing configured, only
//!   `/host/connect` is accepted (from anyone: first contact, as the node
//!   deploys the agent and connects at once); every other command is 403;
//! * afterwards only the pinned and the configured addresses are served;
//!   a `/host/connect` from elsewhere is 403 (no silent re-pinning);
//! * `/host/echo` and `/healthz` answer anyone: they change and disclose
//!   nothing, and a new management node (HA failover) probes with echo;
//! * `callbackurl` and `sendCommandUrl` must name the requesting peer or a
//!   controller address (no POSTs into other networks).
//! * With `--auth-token-file`, every request but `GET /healthz` needs the
//!   bearer token first (401); with `--tls-*` the handshake already
//!   demanded a client certificate, whose subject the audit line names.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::net::Ipv4Net;

use super::AppState;

tokio::task_local! {
    /// The audit record of the request being decoded (see [`Audited`]).
    static AUDIT: Arc<AuditCtx>;
}

/// Who sent a command and what it touched; the line is written once the
/// command's result is known (in async mode, when the callback is made).
pub struct AuditCtx {
    peer: String,
    /// The client certificate's subject (mutual TLS).
    certificate: Option<String>,
    path: String,
    uuids: Vec<String>,
    /// The body decoded into the command (the handler will run).
    decoded: AtomicBool,
    /// The line was written.
    logged: AtomicBool,
}

impl AuditCtx {
    fn log(&self, result: &str) {
        self.logged.store(true, Ordering::SeqCst);
        tracing::info!(
            target: "audit",
            peer = %self.peer,
            path = %self.path,
            result = %result,
            uuids = ?self.uuids,
            certificate = self.certificate.as_deref().unwrap_or("-"),
            "command"
        );
    }
}

/// A command's body plus the audit record of the request it came in
/// (taken while the body is decoded, which happens in the request's task;
/// the command itself runs in its own task).
pub struct Audited<R> {
    pub inner: R,
    pub ctx: Option<Arc<AuditCtx>>,
    /// The request's path, for the latency histogram (`metrics::PATH`).
    pub path: Option<Arc<str>>,
}

impl<'de, R: serde::Deserialize<'de>> serde::Deserialize<'de> for Audited<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let inner = R::deserialize(d)?;
        let ctx = AUDIT.try_with(Arc::clone).ok();
        if let Some(c) = &ctx {
            c.decoded.store(true, Ordering::SeqCst);
        }
        let path = super::metrics::PATH.try_with(Arc::clone).ok();
        Ok(Audited { inner, ctx, path })
    }
}

/// The audit line of a finished command.
pub fn audit_result<T>(ctx: Option<Arc<AuditCtx>>, r: &Result<T, common::agent::ApiError>) {
    if let Some(c) = ctx {
        match r {
            Ok(_) => c.log("success"),
            Err(e) => c.log(&format!(
                "error: {}",
                common::text::excerpt_n(&e.message, 200)
            )),
        }
    }
}

/// Largest connect / update-configuration body read here (they are small).
const CONNECT_BODY: usize = 1 << 20;

pub struct Peers {
    /// Everyone is served (in-process tests build routers without a peer).
    open: bool,
    configured: Vec<Ipv4Net>,
    pinned: Mutex<Option<Ipv4Addr>>,
    file: Option<PathBuf>,
}

impl Peers {
    /// No restriction: for routers driven in-process (tests).
    pub fn open() -> Self {
        Peers {
            open: true,
            configured: Vec::new(),
            pinned: Mutex::new(None),
            file: None,
        }
    }

    /// The agent's policy: `configured` plus the controller pinned in
    /// `file` (read now; `forget` removes it first).
    pub fn load(configured: Vec<Ipv4Net>, file: PathBuf, forget: bool) -> std::io::Result<Self> {
        if forget {
            match std::fs::remove_file(&file) {
                Ok(()) => tracing::warn!(file = %file.display(), "pinned controller forgotten"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let pinned = match std::fs::read_to_string(&file) {
            Ok(t) => Some(t.trim().parse::<Ipv4Addr>().map_err(|e| {
                std::io::Error::other(format!(
                    "{}: {e} (delete it or start with --forget-controller)",
                    file.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(p) = pinned {
            tracing::info!(controller = %p, "pinned controller");
        }
        Ok(Peers {
            open: false,
            configured,
            pinned: Mutex::new(pinned),
            file: Some(file),
        })
    }

    pub fn pinned(&self) -> Option<Ipv4Addr> {
        *self.pinned.lock().unwrap()
    }

    /// A controller address: configured or pinned.
    pub fn is_controller(&self, ip: Ipv4Addr) -> bool {
        self.open || self.pinned() == Some(ip) || self.configured.iter().any(|n| n.contains(ip))
    }

    /// Events go to `url` only when its address is a controller's (a host
    /// name was resolved and checked when connect set it).
    pub fn may_receive_events(&self, url: &str) -> bool {
        let Some(host) = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
        else {
            return self.open;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.open || v4(ip).is_some_and(|ip| self.is_controller(ip)),
            Err(_) => true,
        }
    }

    fn allowed_text(&self) -> String {
        let mut v: Vec<String> = self.configured.iter().map(|n| n.to_string()).collect();
        if let Some(p) = self.pinned() {
            v.push(format!("{p} (pinned by /host/connect)"));
        }
        if v.is_empty() {
            "none yet".into()
        } else {
            v.join(", ")
        }
    }

    /// Why `peer` may not send `path`, or None.
    fn refusal(&self, peer: Option<Ipv4Addr>, path: &str) -> Option<String> {
        if self.open {
            return None;
        }
        let Some(ip) = peer else {
            return Some("kvm-agent: refused: the peer address is unknown or not IPv4".into());
        };
        if self.is_controller(ip) {
            return None;
        }
        let first_contact = self.pinned().is_none() && self.configured.is_empty();
        if first_contact && path == "/host/connect" {
            return None;
        }
        Some(if first_contact {
            format!(
                "kvm-agent: refused {ip}: no controller yet; send /host/connect first or start the agent with --allow-from"
            )
        } else {
            format!(
                "kvm-agent: refused {ip}: not a controller address (allowed: {}); add --allow-from {ip}, or delete the pinned controller file to re-pin",
                self.allowed_text()
            )
        })
    }

    fn pin(&self, ip: Ipv4Addr) -> std::io::Result<()> {
        if self.open || self.pinned() == Some(ip) {
            return Ok(());
        }
        if let Some(f) = &self.file {
            common::files::write_private(f, format!("{ip}\n").as_bytes())?;
        }
        *self.pinned.lock().unwrap() = Some(ip);
        tracing::warn!(controller = %ip, "controller pinned by /host/connect");
        Ok(())
    }

    /// A URL the agent will POST to must name `peer` or a controller.
    async fn check_target(
        &self,
        field: &str,
        url: &str,
        peer: Option<Ipv4Addr>,
    ) -> Result<(), String> {
        if self.open || url.is_empty() {
            return Ok(());
        }
        let bad = |why: &str| {
            format!(
                "kvm-agent: refused: {field} {} {why}; allowed: the requesting peer or {}",
                common::text::excerpt(url),
                self.allowed_text()
            )
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("is not http(s)"));
        }
        let Some(host) = parsed.host_str() else {
            return Err(bad("names no host"));
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
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
        for ip in ips {
            let ok = v4(ip).is_some_and(|ip| Some(ip) == peer || self.is_controller(ip));
            if !ok {
                return Err(bad(&format!("points at {ip}, not a controller address")));
            }
        }
        Ok(())
    }
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip.to_canonical() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

fn forbidden(why: String) -> Response {
    tracing::warn!(target: "audit", "{why}");
    (StatusCode::FORBIDDEN, why).into_response()
}

/// Paths that change nothing on the host (no audit line).
fn read_only(path: &str) -> bool {
    matches!(
        path,
        "/host/echo"
            | "/healthz"
            | "/metrics"
            | "/host/ping"
            | "/host/capacity"
            | "/host/fact"
            | "/vm/vmsync"
            | "/vm/checkstate"
            | "/vm/getvncport"
            | "/vm/console/tail"
            | "/vm/volumesync"
            | "/vm/getvirtualizerinfo"
            | "/network/checkphysicalnetworkinterface"
            | "/network/l2novlan/checkbridge"
            | "/network/l2vlan/checkbridge"
    )
}

/// Up to 8 uuid-looking values of keys named `*uuid` (any depth), escaped
/// and bounded, for the audit line.
pub fn uuids_of(body: &[u8]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        if out.len() >= 8 {
            return;
        }
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k.to_ascii_lowercase().ends_with("uuid")
                        && let Some(s) = v.as_str()
                        && !s.is_empty()
                        && out.len() < 8
                    {
                        out.push(common::text::excerpt_n(s, 40));
                    }
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// The axum middleware: peer check, callback target check, connect
/// pinning, audit line.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let peer_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let peer = peer_addr.and_then(|a| v4(a.ip()));
    let path = req.uri().path().trim_end_matches('/').to_string();
    let path = if path.is_empty() { "/".into() } else { path };
    let who = peer_addr.map_or("unknown".into(), |a| a.to_string());
    if let Some(refused) = state
        .credentials
        .refusal("kvm-agent", &who, &path, req.headers())
    {
        return refused;
    }
    if path == "/host/echo" || path == "/healthz" {
        return next.run(req).await;
    }
    let peers = &state.peers;
    if let Some(why) = peers.refusal(peer, &path) {
        return forbidden(why);
    }
    let callback = req
        .headers()
        .get(common::agent::HEADER_CALLBACK_URL)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let async_mode = callback.is_some();
    if let Some(cb) = &callback
        && let Err(why) = peers.check_target("callbackurl", cb, peer).await
    {
        return forbidden(why);
    }
    let audited = !read_only(&path);
    let (parts, body) = req.into_parts();
    // Known to be small (Content-Length, or the body's own exact size).
    let small = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(&body).upper())
        .is_some_and(|n| n <= CONNECT_BODY as u64);
    let sets_target = matches!(
        path.as_str(),
        "/host/connect" | "/host/update/configuration"
    );
    if sets_target && !small && !peers.open {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("kvm-agent: {path} needs a Content-Length of at most {CONNECT_BODY} bytes"),
        )
            .into_response();
    }
    let (body, uuids) = if audited && small {
        let bytes = match axum::body::to_bytes(body, CONNECT_BODY).await {
            Ok(b) => b,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("kvm-agent: body: {e}")).into_response();
            }
        };
        if sets_target {
            let url = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("sendCommandUrl")?.as_str().map(String::from))
                .unwrap_or_default();
            if let Err(why) = peers.check_target("sendCommandUrl", &url, peer).await {
                return forbidden(why);
            }
        }
        let u = uuids_of(&bytes);
        (Body::from(bytes), u)
    } else {
        (body, Vec::new())
    };
    let req = Request::from_parts(parts, body);
    if !audited {
        return next.run(req).await;
    }
    let certificate = req
        .extensions()
        .get::<common::tls::PeerCertificate>()
        .map(|c| c.0.clone());
    let ctx = Arc::new(AuditCtx {
        peer: who,
        certificate,
        path: path.clone(),
        uuids,
        decoded: AtomicBool::new(false),
        logged: AtomicBool::new(false),
    });
    let rsp = AUDIT.scope(ctx.clone(), next.run(req)).await;
    let status = rsp.status();
    let decoded = ctx.decoded.load(Ordering::SeqCst);
    if async_mode && decoded && status == StatusCode::OK {
        // The command runs on; its line comes with its result.
        return rsp;
    }
    // Sync replies say success in the body.
    let (rsp, ok) = if status != StatusCode::OK || async_mode {
        (rsp, false)
    } else {
        let (parts, body) = rsp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .unwrap_or_default();
        let ok = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("success")?.as_bool())
            .unwrap_or(true);
        (Response::from_parts(parts, Body::from(bytes)), ok)
    };
    if path == "/host/connect"
        && ok
        && let Some(ip) = peer
        && let Err(e) = peers.pin(ip)
    {
        tracing::error!(error = %e, "cannot persist the pinned controller");
    }
    if !ctx.logged.load(Ordering::SeqCst) {
        ctx.log(&if ok {
            "success".to_string()
        } else if async_mode && !decoded {
            "error: undecodable body (reported in the callback)".to_string()
        } else {
            format!("error ({status})")
        });
    }
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_bounded_and_escaped() {
        let body = br#"{"vmInstanceUuid":"7c0d\nforged","nics":[{"uuid":"a"},{"uuid":"b"}],"x":{"hostUuid":"h"}}"#;
        let u = uuids_of(body);
        assert_eq!(u.len(), 4);
        assert!(u.iter().all(|s| !s.contains('\n')), "{u:?}");
        let many: String = format!(
            "{{\"l\":[{}]}}",
            (0..100)
                .map(|i| format!("{{\"uuid\":\"{i}\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(uuids_of(many.as_bytes()).len(), 8);
    }

    #[test]
    fn first_contact_then_pinned() {
        let dir = std::env::temp_dir().join(format!("kvm-agent-peers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("controller");
        let p = Peers::load(vec![], f.clone(), false).unwrap();
        let a: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.6".parse().unwrap();
        assert!(p.refusal(Some(a), "/host/connect").is_none());
        assert!(
            p.refusal(Some(a), "/vm/start")
                .unwrap()
                .contains("no controller yet")
        );
        p.pin(a).unwrap();
        assert!(p.refusal(Some(a), "/vm/start").is_none());
        assert!(
            p.refusal(Some(b), "/host/connect")
                .unwrap()
                .contains("not a controller")
        );
        let again = Peers::load(vec![], f.clone(), false).unwrap();
        assert_eq!(again.pinned(), Some(a));
        let reset = Peers::load(vec![], f.clone(), true).unwrap();
        assert_eq!(reset.pinned(), None);
        assert!(p.may_receive_events("http://10.0.0.5:8080/zstack/asyncrest/sendcommand"));
        assert!(!p.may_receive_events("http://10.0.0.6:8080/x"));
        let cfg = Peers::load(vec!["10.0.1.0/24".parse().unwrap()], f, false).unwrap();
        assert!(
            cfg.refusal(Some(a), "/host/connect").is_some(),
            "configured: no first contact"
        );
        assert!(
            cfg.refusal(Some("10.0.1.9".parse().unwrap()), "/vm/start")
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
