//! Talking to an agent like the management node does: POST with `taskuuid`
//! and `callbackurl`, a 200 ack at once, the reply later on our callback
//! receiver; or sync mode (the reply in the response) for quick calls.
//!
//! What goes on the wire is what the node's own code sends (zstackio/zstack
//! 5a29293bd5): `core/.../rest/RESTFacadeImpl.java` `asyncJson` sends
//! `taskuuid`, `callbackurl` (`http://<node>:<port>/zstack/asyncrest/callback`)
//! and `Content-Type: application/json; charset=utf-8`; `syncJson` sends
//! only `Content-Type: application/json`. Bodies are Gson's
//! (`JSONObjectUtil`): null fields are left out. Commands to a host go
//! through `KVMHost.Http`, which appends `"kvmHostAddons":{...}` to every
//! async body and sends `X-Resource-UUID: <host uuid>`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::command::Command;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::credentials::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: cannot reach the agent: {reason}")]
    Unreachable { url: String, reason: String },
    /// The TLS handshake failed, or the agent wants TLS and we spoke plain
    /// HTTP: the reason names what to change.
    #[error("{url}: {reason}")]
    Tls { url: String, reason: String },
    /// HTTP 401: no bearer token, or not one the agent accepts.
    #[error("{url}: {reason}")]
    Unauthorized { url: String, reason: String },
    #[error(
        "{url}: the agent does not know this command (HTTP 404: {body}); is it the wrong version?"
    )]
    UnknownCommand { url: String, body: String },
    #[error("{url}: HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: no reply on the callback within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: {error}")]
    Failed { url: String, error: String },
    #[error("callback receiver: {0}")]
    Receiver(String),
    /// A successful reply that is not the command's reply type.
    #[error("{url}: the reply is not the command's: {reason}")]
    BadReply { url: String, reason: String },
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// Where the node receives async replies (`RESTConstant.CALLBACK_PATH`
/// under the node's web application path `zstack`).
pub const CALLBACK_PATH: &str = "/zstack/asyncrest/callback";
/// `RESTFacadeImpl.asyncJson`'s content type; `syncJson` sends plain
/// `application/json`.
pub const ASYNC_CONTENT_TYPE: &str = "application/json; charset=utf-8";
pub const SYNC_CONTENT_TYPE: &str = "application/json";

/// Receives async replies: POST [`CALLBACK_PATH`] with header `taskuuid`.
pub struct CallbackReceiver {
    pending: Pending,
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

async fn receive(State(p): State<Pending>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let task = headers
        .get("taskuuid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(tx) = p.lock().unwrap().remove(task) else {
        // Like the management node: an unknown task is 404, so the agent stops retrying.
        return StatusCode::NOT_FOUND;
    };
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = tx.send(v);
    StatusCode::OK
}

impl CallbackReceiver {
    /// Listen on `bind` (port 0 picks one); the agent reaches us at `advertise`.
    pub async fn start(
        bind: SocketAddr,
        advertise: IpAddr,
    ) -> Result<CallbackReceiver, ClientError> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| ClientError::Receiver(format!("cannot listen on {bind}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| ClientError::Receiver(e.to_string()))?
            .port();
        let pending: Pending = Arc::default();
        let app = Router::new()
            .route(CALLBACK_PATH, axum::routing::post(receive))
            .with_state(pending.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CallbackReceiver {
            pending,
            url: format!("http://{advertise}:{port}{CALLBACK_PATH}"),
            _server: server,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The local address this host uses to reach `agent` (no packet is sent).
pub fn local_addr_towards(agent: IpAddr) -> Option<IpAddr> {
    let s = UdpSocket::bind((if agent.is_ipv4() { "0.0.0.0" } else { "::" }, 0)).ok()?;
    s.connect((agent, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

pub struct Client {
    base: String,
    http: reqwest::Client,
    credentials: Credentials,
    callbacks: Option<Arc<CallbackReceiver>>,
    /// A compute host's kvm-agent: `Some(host uuid)` (possibly empty when
    /// unknown); async bodies carry `kvmHostAddons` like `KVMHost.Http`'s.
    kvm_host: Option<String>,
    /// How long an async command may take before we give up.
    pub timeout: Duration,
}

/// A body as Gson writes it: null fields (and null map values) left out.
pub fn gson(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), gson(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(gson).collect()),
        v => v.clone(),
    }
}

/// A typed command's body as Gson writes it (null fields left out).
pub fn body<C: serde::Serialize>(cmd: &C) -> Value {
    // The wire types are structs with string keys: serialising cannot fail.
    gson(&serde_json::to_value(cmd).expect("a wire type serialises to JSON"))
}

/// One request as the node sends it: the body (Gson, plus `kvmHostAddons`
/// for an async host command) and the headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Client {
    /// A client for the agent at `base` (e.g. `http://10.0.0.25:7272`).
    /// With a receiver, commands go in async mode like the management node's.
    pub fn new(base: &str, callbacks: Option<Arc<CallbackReceiver>>) -> Client {
        Client::with(base, callbacks, &Credentials::default())
    }

    /// A client that presents `credentials` (with TLS, `http://` in `base`
    /// is spoken as `https://`).
    pub fn with(
        base: &str,
        callbacks: Option<Arc<CallbackReceiver>>,
        credentials: &Credentials,
    ) -> Client {
        Client {
            base: credentials.url(base),
            http: credentials.http_client(Duration::from_secs(30)),
            credentials: credentials.clone(),
            callbacks,
            kvm_host: None,
            timeout: Duration::from_secs(300),
        }
    }

    /// A client for a compute host's kvm-agent (`uuid`: the host's, or
    /// empty when the caller does not know it).
    pub fn host(base: &str, callbacks: Option<Arc<CallbackReceiver>>, uuid: &str) -> Client {
        Client::host_with(base, callbacks, uuid, &Credentials::default())
    }

    pub fn host_with(
        base: &str,
        callbacks: Option<Arc<CallbackReceiver>>,
        uuid: &str,
        credentials: &Credentials,
    ) -> Client {
        let mut c = Client::with(base, callbacks, credentials);
        c.kvm_host = Some(uuid.to_string());
        c
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The error of a request that got no HTTP answer.
    async fn unanswered(&self, url: &str, e: &reqwest::Error) -> ClientError {
        let mut refusal = self.credentials.refusal(url, e);
        // Connected, but no alert in the error: ask the agent ourselves.
        if refusal.is_none() && url.starts_with("https://") && !e.is_connect() && !e.is_timeout() {
            refusal = self.credentials.probe_refusal(url).await;
        }
        match refusal {
            Some(reason) => ClientError::Tls {
                url: url.to_string(),
                reason,
            },
            None => ClientError::Unreachable {
                url: url.to_string(),
                reason: full_text(e),
            },
        }
    }

    /// HTTP 401 in words.
    fn unauthorized(&self, url: String, body: &str) -> ClientError {
        let reason = match self.credentials.token() {
            None => format!(
                "the agent requires a bearer token (--token-file): {}",
                body.trim()
            ),
            Some(_) => format!(
                "the agent refuses our bearer token (the first of --token-file): {}",
                body.trim()
            ),
        };
        ClientError::Unauthorized { url, reason }
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.credentials.token() {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The body and headers of one command in this client's mode (`task`:
    /// the task uuid of an async call).
    pub fn request(&self, body: &Value, task: Option<&str>) -> Request {
        let mut body = gson(body);
        let mut headers = vec![];
        match (task, &self.callbacks) {
            (Some(task), Some(cb)) => {
                headers.push(("taskuuid", task.to_string()));
                headers.push(("callbackurl", cb.url().to_string()));
                headers.push(("content-type", ASYNC_CONTENT_TYPE.to_string()));
                if let Some(host) = &self.kvm_host {
                    if !host.is_empty() {
                        headers.push(("x-resource-uuid", host.clone()));
                    }
                    if let Value::Object(o) = &mut body {
                        o.entry("kvmHostAddons")
                            .or_insert_with(|| Value::Object(Default::default()));
                    }
                }
            }
            _ => headers.push(("content-type", SYNC_CONTENT_TYPE.to_string())),
        }
        Request { body, headers }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One command; the reply's fields on success, an error naming the
    /// command otherwise.
    pub async fn call(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut waiter = None;
        let mut task = None;
        if let Some(cb) = &self.callbacks {
            let t = task_uuid();
            let (tx, rx) = oneshot::channel();
            cb.pending.lock().unwrap().insert(t.clone(), tx);
            task = Some(t.clone());
            waiter = Some((t, rx));
        }
        let sent = self.request(body, task.as_deref());
        let mut req = self.authorize(self.http.post(&url).body(sent.body.to_string()));
        for (k, v) in &sent.headers {
            req = req.header(*k, v);
        }
        let forget = || {
            if let (Some(cb), Some(t)) = (&self.callbacks, &task) {
                cb.pending.lock().unwrap().remove(t);
            }
        };
        let rsp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                forget();
                return Err(self.unanswered(&url, &e).await);
            }
        };
        let status = rsp.status().as_u16();
        let text = rsp.text().await.unwrap_or_default();
        if status == 401 {
            forget();
            return Err(self.unauthorized(url, &text));
        }
        let reply = match (status, waiter) {
            (404, _) => return Err(ClientError::UnknownCommand { url, body: text }),
            // An agent that ignored `callbackurl` and answered in the
            // response (sync only): take that answer rather than wait.
            (200, Some((task, _)))
                if serde_json::from_str::<Value>(&text)
                    .is_ok_and(|v| v.get("success").is_some()) =>
            {
                if let Some(cb) = &self.callbacks {
                    cb.pending.lock().unwrap().remove(&task);
                }
                serde_json::from_str(&text).unwrap_or_default()
            }
            (200, Some((task, rx))) => match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(v)) => v,
                _ => {
                    if let Some(cb) = &self.callbacks {
                        cb.pending.lock().unwrap().remove(&task);
                    }
                    return Err(ClientError::Timeout {
                        url,
                        secs: self.timeout.as_secs(),
                    });
                }
            },
            (_, Some(_)) => {
                return Err(ClientError::Http {
                    url,
                    status,
                    body: text,
                });
            }
            // kvm-agent's /host/echo answers 200 with an empty body, like ZStack's.
            (200, None) if text.trim().is_empty() => Value::Object(Default::default()),
            (_, None) => serde_json::from_str(&text).map_err(|_| ClientError::Http {
                url: url.clone(),
                status,
                body: text.clone(),
            })?,
        };
        // A missing `success` means success (Java's default), as the controller reads it.
        if reply.get("success").and_then(Value::as_bool) == Some(false) {
            let error = reply
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return Err(ClientError::Failed { url, error });
        }
        Ok(reply)
    }

    /// One typed command: its body POSTed to its path, the reply decoded
    /// as its reply type.
    pub async fn send<C: Command>(&self, cmd: &C) -> Result<C::Reply, ClientError> {
        let reply = self.call(C::PATH, &body(cmd)).await?;
        serde_json::from_value(reply).map_err(|e| ClientError::BadReply {
            url: format!("{}{}", self.base, C::PATH),
            reason: e.to_string(),
        })
    }

    /// A GET of one of our extensions (`/state`, `/metrics`, `/healthz`).
    pub async fn get(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let rsp = match self.authorize(self.http.get(&url)).send().await {
            Ok(r) => r,
            Err(e) => return Err(self.unanswered(&url, &e).await),
        };
        let status = rsp.status().as_u16();
        let body = rsp.text().await.unwrap_or_default();
        if status == 401 {
            return Err(self.unauthorized(url, &body));
        }
        if status != 200 {
            return Err(ClientError::Http { url, status, body });
        }
        Ok(body)
    }
}

/// An error with its causes ("error sending request ...: connection refused").
fn full_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let t = err.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn task_uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:016x}{:016x}",
        t as u64,
        N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id())
    )
}

#[cfg(test)]
#[path = "client_tls_tests.rs"]
mod tls_tests;
