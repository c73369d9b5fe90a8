//! The HTTP protocol layer both agents share (DESIGN.md section 3).
//!
//! `command(f)` turns `async fn(State, Request) -> Result<Reply, ApiError>`
//! into an axum POST handler that:
//! * decodes the body leniently (missing fields take defaults, unknown fields
//!   are ignored, Go-style capitalised keys are accepted) and answers 400 naming
//!   the JSON path when a value has the wrong type; the body itself must be
//!   strict: valid UTF-8, one JSON object, no key twice (see [`crate::json`]),
//!   else 400 naming the byte offset or the repeated key's path;
//! * with `callbackurl` + `taskuuid` headers (async mode, what ZStack sends)
//!   answers 200 at once, runs `f`, and POSTs the reply to the callback;
//! * without `callbackurl` (sync mode) answers with the reply itself:
//!   200, or 400/409/500 by the error's kind.
//!
//! `command_with(options, f)` chooses per route where that differs from what
//! a caller needs (see [`Options`]): kvm-agent's callers, the Java node, send
//! exact keys and read errors only from 200 bodies.
//!
//! `f` always runs in its own task, so a client that disconnects cannot
//! cancel an apply half-way.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{callback, json, text};

pub use crate::callback::{HEADER_CALLBACK_URL, HEADER_TASK_UUID};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names something that does not exist.
    BadRequest,
    /// The request contradicts the current state (e.g. a VIP already used).
    Conflict,
    /// Applying failed on the box.
    Internal,
}

/// A failed command: the message goes into the reply's `error` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::BadRequest,
            message: m.into(),
        }
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::Conflict,
            message: m.into(),
        }
    }
    pub fn internal(m: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::Internal,
            message: m.into(),
        }
    }
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An empty successful reply (`{"success":true,"error":""}`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ok {}

/// The reply envelope: the reply's own fields plus `success` and `error`,
/// which are always present (a failure is never reported as success).
pub fn envelope<R: Serialize>(result: &Result<R, ApiError>) -> Value {
    let mut obj = Map::new();
    match result {
        Result::Ok(r) => {
            if let Ok(Value::Object(fields)) = serde_json::to_value(r) {
                obj = fields;
            }
            obj.insert("success".into(), Value::Bool(true));
            obj.insert("error".into(), Value::String(String::new()));
        }
        Err(e) => {
            obj.insert("success".into(), Value::Bool(false));
            obj.insert("error".into(), Value::String(e.message.clone()));
        }
    }
    strip_nulls(&mut obj);
    Value::Object(obj)
}

fn strip_nulls(obj: &mut Map<String, Value>) {
    obj.retain(|_, v| !v.is_null());
    for v in obj.values_mut() {
        if let Value::Object(o) = v {
            strip_nulls(o);
        }
    }
}

/// Go's encoding/json matches keys case-insensitively and some zvr structs
/// use capitalised keys (`Mac`, `Ip6`); accept those by lowering the first
/// letter of every key that starts with an uppercase one.
fn normalize_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map
                .keys()
                .any(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
            {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    normalize_keys(&mut val);
                    let mut chars = k.chars();
                    let key = match chars.next() {
                        Some(c) if c.is_ascii_uppercase() => {
                            c.to_ascii_lowercase().to_string() + chars.as_str()
                        }
                        _ => k,
                    };
                    // An exact camelCase key wins over a case variant.
                    map.entry(key).or_insert(val);
                }
            } else {
                map.values_mut().for_each(normalize_keys);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize_keys),
        _ => {}
    }
}

/// How one route decodes its body and reports errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Lower the capitalised first letter of every key (zvr's Go structs
    /// match keys case-insensitively). Off, keys reach the handler exactly as
    /// sent, opaque maps included.
    pub fold_key_case: bool,
    /// Sync mode: a failure answers HTTP 200 with `success:false`. The node's
    /// `syncJsonPost` (RESTFacadeImpl.syncRawJson) retries any non-2xx as a
    /// transport error and never reads its body.
    pub sync_errors_in_body: bool,
    /// Async mode: a body that does not decode still answers 200 and its
    /// error goes to the callback. The node's `asyncJsonPost` fails a non-2xx
    /// answer with the status line only, dropping the body's message.
    pub async_decode_errors_to_callback: bool,
}

impl Options {
    /// What `command` does: lenient keys, HTTP status codes for errors.
    pub const LENIENT: Options = Options {
        fold_key_case: true,
        sync_errors_in_body: false,
        async_decode_errors_to_callback: false,
    };
    /// A path the node posts with `asyncJsonPost`: exact keys, every error
    /// in the callback. Sync mode (no ZStack caller: curl, vrctl) keeps the
    /// HTTP status codes.
    pub const ZSTACK_ASYNC: Options = Options {
        fold_key_case: false,
        sync_errors_in_body: false,
        async_decode_errors_to_callback: true,
    };
    /// A path the node posts with `syncJsonPost`: exact keys, errors always in
    /// a 200 body.
    pub const ZSTACK_SYNC: Options = Options {
        fold_key_case: false,
        sync_errors_in_body: true,
        async_decode_errors_to_callback: true,
    };
}

/// Decode a command body; the error names the JSON path of the bad value.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    decode_with(body, true)
}

/// Decode without touching key case: what the Java node (Gson) sends.
pub fn decode_exact<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    decode_with(body, false)
}

fn decode_with<T: DeserializeOwned>(body: &[u8], fold_key_case: bool) -> Result<T, ApiError> {
    let parsed = json::parse_strict(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut v = match parsed {
        Some(Value::Object(map)) => Value::Object(map),
        // Not an object: only a command that takes any JSON (`Value`, the
        // VR's /echo, which the node's RESTFacadeImpl.echo posts `""` to)
        // may have it. A struct must not turn `[]`, `null` or nothing into
        // its defaults: on a sync command that is "delete everything".
        other => {
            let (what, v) = match other {
                None => ("empty", Value::Null),
                Some(v) => (json_kind(&v), v),
            };
            return T::deserialize(AnyOnly { value: v, what }).map_err(|e| {
                ApiError::bad_request(text::excerpt_n(&e.to_string(), MESSAGE_CHARS))
            });
        }
    };
    if fold_key_case {
        normalize_keys(&mut v);
    }
    serde_path_to_error::deserialize(crate::objects_only::ObjectsOnly(v)).map_err(|e| {
        let path = text::excerpt_n(&e.path().to_string(), MESSAGE_CHARS);
        let inner = text::excerpt_n(&e.into_inner().to_string(), MESSAGE_CHARS);
        ApiError::bad_request(format!("field {path}: {inner}"))
    })
}

/// How much of a decode error's path and message reaches the reply: serde's
/// messages quote the offending value (`invalid type: string "..."`).
const MESSAGE_CHARS: usize = 200;

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a JSON boolean",
        Value::Number(_) => "a JSON number",
        Value::String(_) => "a JSON string",
        Value::Array(_) => "a JSON array",
        Value::Object(_) => "a JSON object",
    }
}

/// A top-level body that is not an object: handed to a type that asks for
/// any value (`deserialize_any`, as `Value` does), refused for any other
/// (a struct, a map, an option...).
struct AnyOnly {
    value: Value,
    what: &'static str,
}

impl AnyOnly {
    fn refuse(&self) -> serde_json::Error {
        serde::de::Error::custom(format!(
            "request body is {}: this command needs one JSON object",
            self.what
        ))
    }
}

macro_rules! refuse_all {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method<V: serde::de::Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value, Self::Error> {
            Err(self.refuse())
        })*
    };
}

impl<'de> serde::Deserializer<'de> for AnyOnly {
    type Error = serde_json::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_any(self.value, v)
    }
    refuse_all! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(),
        deserialize_i64(), deserialize_u8(), deserialize_u16(), deserialize_u32(),
        deserialize_u64(), deserialize_f32(), deserialize_f64(), deserialize_char(),
        deserialize_str(), deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_unit_struct(&'static str),
        deserialize_newtype_struct(&'static str), deserialize_seq(), deserialize_tuple(usize),
        deserialize_tuple_struct(&'static str, usize), deserialize_map(),
        deserialize_struct(&'static str, &'static [&'static str]),
        deserialize_enum(&'static str, &'static [&'static str]), deserialize_identifier(),
        deserialize_ignored_any(),
    }
}

/// An axum POST route for one protocol command ([`Options::LENIENT`]).
pub fn command<S, Req, Rsp, F, Fut>(f: F) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    F: Fn(S, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Rsp, ApiError>> + Send + 'static,
{
    command_with(Options::LENIENT, f)
}

/// An axum POST route for one protocol command, decoded and answered as
/// `opts` says.
pub fn command_with<S, Req, Rsp, F, Fut>(opts: Options, f: F) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    F: Fn(S, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Rsp, ApiError>> + Send + 'static,
{
    post(
        move |State(state): State<S>, uri: Uri, headers: HeaderMap, body: Bytes| {
            let f = f.clone();
            async move {
                let path = uri.path().to_string();
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .filter(|s| !s.is_empty())
                };
                let callback = header(HEADER_CALLBACK_URL);
                let task = header(HEADER_TASK_UUID);
                if callback.is_some() && task.is_none() {
                    return (
                        StatusCode::BAD_REQUEST,
                        "callbackurl given without taskuuid header",
                    )
                        .into_response();
                }
                let status_of = move |e: &ApiError| {
                    if opts.sync_errors_in_body {
                        StatusCode::OK
                    } else {
                        e.status()
                    }
                };
                let req: Req = match decode_with(&body, opts.fold_key_case) {
                    Result::Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "rejected request body");
                        let reply = envelope::<Ok>(&Err(e.clone()));
                        if let (Some(url), Some(task)) = (&callback, &task)
                            && opts.async_decode_errors_to_callback
                        {
                            callback::enqueue(url.clone(), task.clone(), reply);
                            return (StatusCode::OK, "\"\"").into_response();
                        }
                        let status = if callback.is_some() {
                            e.status()
                        } else {
                            status_of(&e)
                        };
                        return (status, axum::Json(reply)).into_response();
                    }
                };
                // A sync body is tens of MB at scale: not kept while it runs.
                drop(body);
                let run = tokio::spawn(async move {
                    let result = f(state, req).await;
                    if let Err(e) = &result {
                        tracing::warn!(%path, error = %e, "command failed");
                    }
                    (result.as_ref().err().map(status_of), envelope(&result))
                });
                match (callback, task) {
                    (Some(url), Some(task)) => {
                        tokio::spawn(async move {
                            if let Result::Ok((_, body)) = run.await {
                                callback::enqueue(url, task, body);
                            }
                        });
                        (StatusCode::OK, "\"\"").into_response()
                    }
                    _ => match run.await {
                        Result::Ok((status, body)) => {
                            (status.unwrap_or(StatusCode::OK), axum::Json(body)).into_response()
                        }
                        Err(e) => {
                            let e = ApiError::internal(format!("command task failed: {e}"));
                            (status_of(&e), axum::Json(envelope::<Ok>(&Err(e)))).into_response()
                        }
                    },
                }
            }
        },
    )
}

/// Unknown paths answer 404 with a text body, as zvr does; controllers use it
/// to detect agents that lack a feature.
pub async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no plugin registered the path[{}]", uri.path()),
    )
        .into_response()
}

/// Finish a router: unknown paths 404. Body sizes are capped per path by
/// the server ([`crate::serve`], before and while reading), so axum's own
/// 2 MB default limit is off: one mechanism, one 413 text.
pub fn finish<S: Clone + Send + Sync + 'static>(router: Router<S>, state: S) -> Router {
    router
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde::Deserialize;
    use tower::ServiceExt;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Cmd {
        mac: String,
        is_default_route: bool,
        mtu: Option<i64>,
    }

    #[test]
    fn decode_is_lenient() {
        let c: Cmd = decode(br#"{"Mac":"aa","isDefaultRoute":true,"extra":1}"#).unwrap();
        assert_eq!(c.mac, "aa");
        assert!(c.is_default_route);
        assert_eq!(c.mtu, None);
        let c: Cmd = decode(b"{}").unwrap();
        assert_eq!(c.mac, "");
        let e = decode::<Cmd>(br#"{"mtu":"x"}"#).unwrap_err();
        assert!(e.message.contains("field mtu"), "{}", e.message);
    }

    #[test]
    fn envelope_always_has_success_and_error() {
        #[derive(Serialize)]
        struct R {
            uuid: String,
            gone: Option<String>,
        }
        let v = envelope(&Result::Ok(R {
            uuid: "u".into(),
            gone: None,
        }));
        assert_eq!(v, serde_json::json!({"uuid":"u","success":true,"error":""}));
        let v = envelope::<Ok>(&Err(ApiError::conflict("boom")));
        assert_eq!(v, serde_json::json!({"success":false,"error":"boom"}));
    }

    fn app() -> Router {
        async fn h(_: (), c: Cmd) -> Result<Ok, ApiError> {
            if c.mac == "bad" {
                Err(ApiError::conflict("mac bad"))
            } else {
                Result::Ok(Ok {})
            }
        }
        finish(Router::new().route("/x", command(h)), ())
    }

    async fn call(req: Request<Body>) -> (StatusCode, String) {
        let rsp = app().oneshot(req).await.unwrap();
        let status = rsp.status();
        let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&b).to_string())
    }

    /// The Java node's view: errors in 200 bodies, exact keys, a bad body of
    /// an async call reported through the callback.
    #[tokio::test]
    async fn zstack_options_answer_as_the_node_reads() {
        #[derive(Debug, Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct Boot {
            mac: String,
            info: Map<String, Value>,
        }
        #[derive(Serialize)]
        struct Echo {
            keys: Vec<String>,
        }
        async fn h(_: (), c: Boot) -> Result<Echo, ApiError> {
            if c.mac == "bad" {
                return Err(ApiError::conflict("mac bad"));
            }
            Result::Ok(Echo {
                keys: c.info.keys().cloned().collect(),
            })
        }
        let app = finish(
            Router::new()
                .route("/sync", command_with(Options::ZSTACK_SYNC, h))
                .route("/async", command_with(Options::ZSTACK_ASYNC, h)),
            (),
        );
        let call = |path: &str, body: &str, cb: Option<&str>| {
            let mut r = Request::post(path.to_string());
            if let Some(cb) = cb {
                r = r.header("callbackurl", cb).header("taskuuid", "t1");
            }
            let req = r.body(Body::from(body.to_string())).unwrap();
            let app = app.clone();
            async move {
                let rsp = app.oneshot(req).await.unwrap();
                let s = rsp.status();
                let b = axum::body::to_bytes(rsp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (
                    s,
                    serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
                )
            }
        };
        let (s, v) = call("/sync", r#"{"mac":"bad"}"#, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"success":false,"error":"mac bad"}));
        let (s, v) = call("/sync", "{nope", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["success"], false);
        // Opaque maps keep their keys.
        let (_, v) = call("/sync", r#"{"info":{"EnableVyosCmd":true,"x":1}}"#, None).await;
        assert_eq!(v["keys"], serde_json::json!(["EnableVyosCmd", "x"]));
        // No ZStack caller posts /async without a callback: HTTP codes stay.
        let (s, _) = call("/async", r#"{"mac":"bad"}"#, None).await;
        assert_eq!(s, StatusCode::CONFLICT);
        // A bad body with a callback: 200 now, the error in the callback.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let cb = Router::new().route(
            "/cb",
            post(move |b: Bytes| {
                let tx = tx.clone();
                async move {
                    tx.send(serde_json::from_slice(&b).unwrap()).unwrap();
                    ""
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, cb).await });
        let (s, _) = call("/async", r#"{"mac":7}"#, Some(&url)).await;
        assert_eq!(s, StatusCode::OK);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got["success"], false);
        assert!(
            got["error"].as_str().unwrap().contains("field mac"),
            "{got}"
        );
    }

    #[tokio::test]
    async fn sync_mode_status_codes() {
        let ok = Request::post("/x")
            .body(Body::from(r#"{"mac":"a"}"#))
            .unwrap();
        assert_eq!(call(ok).await.0, StatusCode::OK);
        let conflict = Request::post("/x")
            .body(Body::from(r#"{"mac":"bad"}"#))
            .unwrap();
        let (s, b) = call(conflict).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert!(b.contains("mac bad"));
        let bad = Request::post("/x").body(Body::from("{nope")).unwrap();
        assert_eq!(call(bad).await.0, StatusCode::BAD_REQUEST);
        let missing = Request::post("/nosuchpath").body(Body::empty()).unwrap();
        let (s, b) = call(missing).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(b, "no plugin registered the path[/nosuchpath]");
        let half = Request::post("/x")
            .header("callbackurl", "http://127.0.0.1:1/cb")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(half).await.0, StatusCode::BAD_REQUEST);
    }
}

#[cfg(test)]
#[path = "agent_strict_tests.rs"]
mod strict_tests;
