//! The HTTP server both agents run (issue 14's denial-of-service limits):
//! `axum::serve` has no header-read timeout, no connection cap and no body
//! cap before the body is read.
//!
//! * Headers must arrive within `header_read_timeout`; hyper applies the same
//!   timeout to the wait for the next request on a keep-alive connection, so
//!   idle connections are closed after it too.
//! * At most `max_connections` connections (kept under RLIMIT_NOFILE). At the
//!   cap a new connection closes the one idle longest (no request in
//!   progress: waiting for headers or between requests). When every one is
//!   busy, `priority_reserve` more are taken, but only for
//!   `priority_paths` (the controller's liveness checks, `/echo`, `/ping`);
//!   other paths answer 503 on them.
//! * A body over its path's cap is refused with 413 from its Content-Length
//!   before it is read, or once that many bytes arrived; the whole body must
//!   arrive within `body_timeout` (else 408). Bodies are buffered within a
//!   byte budget ([`body::Budget`]), priority paths apart.
//! * Each request carries `ConnectInfo<SocketAddr>` (the peer) and, under
//!   TLS ([`serve_tls`]), the client certificate's subject
//!   ([`crate::tls::PeerCertificate`]). The TLS handshake must finish within
//!   `header_read_timeout` too.

pub mod body;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

pub use body::BodyCaps;

use crate::tls::{PeerCertificate, ServerTls};

const MIB: usize = 1 << 20;

/// What the server allows; see the module text.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub priority_reserve: usize,
    pub priority_paths: Vec<String>,
    pub body_caps: BodyCaps,
    /// Bytes of small bodies (up to `body_caps.default`) buffered at once.
    pub small_body_budget: usize,
    /// Bytes of larger bodies buffered at once.
    pub large_body_budget: usize,
    /// How long shutdown waits for requests in progress.
    pub shutdown_grace: Duration,
}

/// Fds kept free for everything but connections (state files, netlink,
/// nft, children's pipes, callbacks).
const FD_HEADROOM: usize = 192;

impl Limits {
    /// Defaults for an agent whose priority paths are `priority`.
    pub fn new(priority: &[&str]) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            max_connections: 512,
            priority_reserve: 16,
            priority_paths: priority.iter().map(|p| p.to_string()).collect(),
            // A 1 MiB string in a field must still be refused naming the
            // field (the bad-body corpora), so 2 MiB.
            body_caps: BodyCaps::new(2 * MIB).with(priority, 64 << 10),
            small_body_budget: 32 * MIB,
            large_body_budget: 0,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// vr-agent: the sync commands carry every entry at once. 100 000 port
    /// forwards as the node writes them (compact JSON, every field set,
    /// an allowedCidr) are 32.3 MB, 100 000 EIPs 22.1 MB, 100 000 DHCP
    /// entries (hostname, domain, two DNS servers) 27.6 MB: 48 MiB for
    /// those (1.5 times the largest), 2 MiB for the rest.
    pub fn vr_agent() -> Limits {
        let mut l = Limits::new(&["/echo", "/ping"]);
        l.body_caps = l.body_caps.with(
            &[
                "/syncportforwarding",
                "/synceip",
                "/refreshDhcpServer",
                "/adddhcp",
                "/lb/refresh",
            ],
            48 * MIB,
        );
        l
    }

    fn is_priority(&self, path: &str) -> bool {
        self.priority_paths.iter().any(|p| p == path)
    }

    /// The budget for large bodies: at least one of the largest.
    fn budget(&self) -> body::Budget {
        let largest = self.body_caps.paths.iter().map(|(_, c)| *c).max();
        let large = self
            .large_body_budget
            .max(largest.unwrap_or(0))
            .max(self.body_caps.default);
        body::Budget::new(
            self.small_body_budget.max(self.body_caps.default),
            large,
            self.body_caps.default,
        )
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then let
/// requests in progress finish for up to `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_tls(listener, router, limits, None, shutdown).await
}

/// [`serve`], with mutual TLS when `tls` is given (each handshake takes the
/// configuration in force at that moment, so rotation needs no restart).
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    mut limits: Limits,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let fd_limit = open_files_limit();
    if let Some(fds) = fd_limit {
        let room = fds.saturating_sub(FD_HEADROOM + limits.priority_reserve);
        limits.max_connections = limits.max_connections.min(room.max(8));
    }
    tracing::info!(
        max_connections = limits.max_connections,
        priority_reserve = limits.priority_reserve,
        fd_limit,
        tls = tls.is_some(),
        header_read_timeout = ?limits.header_read_timeout,
        body_timeout = ?limits.body_timeout,
        "serving with limits"
    );
    let shared = Arc::new(Shared {
        budget: limits.budget(),
        conns: Conns::new(limits.max_connections, limits.priority_reserve),
        limits,
        router,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: the connection stays in the backlog;
                // pause rather than spin, and log once a second at most.
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(conn) = shared.conns.admit() else {
            tracing::warn!(%peer, "every connection busy, reserve full: closing the new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, stop) = (shared.clone(), stop_rx.clone());
        match &tls {
            None => {
                tokio::spawn(connection(shared, conn, stream, peer, None, stop));
            }
            Some(tls) => {
                let config = tls.current();
                tokio::spawn(async move {
                    let timeout = shared.limits.header_read_timeout;
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
                        _ = conn.evict.notified() => return shared.conns.remove(conn.id),
                    };
                    match handshake {
                        Ok(Ok(stream)) => {
                            let subject = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| PeerCertificate(crate::tls::subject_of(c.as_ref())));
                            connection(shared, conn, stream, peer, subject, stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "TLS handshake refused");
                            shared.conns.remove(conn.id);
                        }
                        Err(_) => {
                            tracing::warn!(%peer, ?timeout, "TLS handshake not done in time");
                            shared.conns.remove(conn.id);
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + shared.limits.shutdown_grace;
    while shared.conns.count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Shared {
    limits: Limits,
    router: Router,
    budget: body::Budget,
    conns: Conns,
}

/// One admitted connection.
struct Conn {
    id: u64,
    priority_only: bool,
    /// Requests in progress.
    busy: AtomicUsize,
    /// When it last had no request in progress.
    idle_since: Mutex<Instant>,
    evict: Notify,
}

/// The admitted connections, for the cap and the choice of whom to close.
struct Conns {
    table: Mutex<Table>,
    max: usize,
    reserve: usize,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Arc<Conn>>,
}

impl Conns {
    fn new(max: usize, reserve: usize) -> Conns {
        Conns {
            table: Mutex::new(Table::default()),
            max,
            reserve,
        }
    }

    fn count(&self) -> usize {
        self.table.lock().expect("conns").open.len()
    }

    /// A slot for a new connection: a regular one (closing the connection
    /// idle longest when at the cap), else one of the reserve.
    fn admit(&self) -> Option<Arc<Conn>> {
        let mut t = self.table.lock().expect("conns");
        let priority_only = loop {
            let reserved = t.open.values().filter(|c| c.priority_only).count();
            if t.open.len() - reserved < self.max {
                break false;
            }
            let victim = t
                .open
                .values()
                .filter(|c| c.busy.load(Ordering::SeqCst) == 0)
                .min_by_key(|c| *c.idle_since.lock().expect("idle"))
                .cloned();
            match victim {
                Some(v) => {
                    t.open.remove(&v.id);
                    v.evict.notify_one();
                    tracing::debug!(conn = v.id, "connection cap: closing the longest idle");
                }
                None if reserved < self.reserve => break true,
                None => return None,
            }
        };
        t.next += 1;
        let c = Arc::new(Conn {
            id: t.next,
            priority_only,
            busy: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evict: Notify::new(),
        });
        t.open.insert(c.id, c.clone());
        Some(c)
    }

    fn remove(&self, id: u64) {
        self.table.lock().expect("conns").open.remove(&id);
    }
}

/// A request in progress on `conn` (not idle) until dropped.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().expect("idle") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection<S>(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    stream: S,
    peer: SocketAddr,
    subject: Option<PeerCertificate>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let (shared, conn) = (shared.clone(), conn.clone());
        hyper::service::service_fn(move |req| {
            let (shared, conn, subject) = (shared.clone(), conn.clone(), subject.clone());
            async move { Ok::<_, Infallible>(request(&shared, &conn, peer, subject, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .keep_alive(true);
    let http = builder.serve_connection(TokioIo::new(stream), svc);
    let mut http = std::pin::pin!(http);
    tokio::select! {
        r = http.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        // Dropping the connection closes it (it had no request in progress).
        _ = conn.evict.notified() => {}
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(shared.limits.shutdown_grace, http).await;
        }
    }
    shared.conns.remove(conn.id);
}

async fn request(
    shared: &Shared,
    conn: &Arc<Conn>,
    peer: SocketAddr,
    subject: Option<PeerCertificate>,
    req: Request<Incoming>,
) -> Response<axum::body::Body> {
    let busy = Busy::new(conn);
    let limits = &shared.limits;
    let path = req.uri().path().to_string();
    let priority = limits.is_priority(&path);
    if conn.priority_only && !priority {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "connection limit reached: only {} are served until connections free up",
                limits.priority_paths.join(", ")
            ),
        );
    }
    let cap = limits.body_caps.cap(&path);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        tracing::warn!(%peer, %path, declared, cap, "request body over the cap refused unread");
        return too_large(&path, cap);
    }
    let _room = if priority {
        None
    } else {
        let bytes = declared.map_or(cap, |n| n as usize);
        match shared.budget.reserve(bytes, cap, limits.body_timeout).await {
            Some(p) => Some(p),
            None => {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many request bodies in progress; retry".to_string(),
                );
            }
        }
    };
    let cut = Arc::new(body::Violation::default());
    let (parts, incoming) = req.into_parts();
    let guarded = body::Guarded::new(incoming, cap, limits.body_timeout, cut.clone());
    let mut req = Request::from_parts(parts, axum::body::Body::new(guarded));
    req.extensions_mut().insert(ConnectInfo(peer));
    if let Some(s) = subject {
        req.extensions_mut().insert(s);
    }
    let rsp = match shared.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    match cut.get() {
        Some(body::Cut::TooLarge) => {
            tracing::warn!(%peer, %path, cap, "request body over the cap refused");
            too_large(&path, cap)
        }
        Some(body::Cut::TooSlow) => {
            tracing::warn!(%peer, %path, timeout = ?limits.body_timeout, "request body too slow");
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} s",
                    limits.body_timeout.as_secs()
                ),
            )
        }
        // Busy until the answer is written, not only produced: a
        // connection writing a long answer is not idle.
        None => rsp.map(|b| axum::body::Body::new(body::Holding::new(b, busy))),
    }
}

fn too_large(path: &str, cap: usize) -> Response<axum::body::Body> {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body too large: {path} takes at most {}",
            body::human(cap)
        ),
    )
}

/// A plain-text refusal that closes the connection (its body may be
/// unread).
fn refuse(status: StatusCode, text: String) -> Response<axum::body::Body> {
    let mut rsp = Response::new(axum::body::Body::from(text));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

/// The soft RLIMIT_NOFILE, from /proc/self/limits.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;

// The TLS tests start the server: they sit here so that `tls` (which
// `serve` uses) does not name `serve` back.
#[cfg(test)]
#[path = "serve_tls_tests.rs"]
mod tls_tests;
