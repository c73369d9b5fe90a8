//! Sending a fixture through an agent's router in-process, as the node's
//! `RESTFacadeImpl` sends it: `asyncJsonPost` with headers `taskuuid`,
//! `callbackurl` and `Content-Type: application/json; charset=utf-8`, the
//! reply POSTed back to the callback URL (a [`CallbackReceiver`] on
//! 127.0.0.1); `syncJsonPost` with `Content-Type: application/json` and the
//! reply in the body.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt;

use super::{Fixture, Mode};
use crate::CallbackReceiver;

/// The node's callback path under its web root (`RESTConstant.CALLBACK_PATH`).
pub const CALLBACK_PATH: &str = "/zstack/asyncrest/callback";

/// How long a fixture waits for its callback.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(60);

fn task_uuid() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    // 32 hex digits, like Platform.getUuid().
    format!(
        "{:016x}{:08x}{:08x}",
        0x5b1b_1e6c_6a0b_4a3f_u64,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// POSTs `body` to `path` of `app`; returns the HTTP status and the reply:
/// the body in sync mode (or when the async ack is not 200), else the body
/// of the callback that carries this call's `taskuuid`. A JSON string `""`
/// is sent as an empty body (the node's echo).
pub async fn exchange(
    app: &axum::Router,
    cb: &CallbackReceiver,
    path: &str,
    mode: Mode,
    body: &Value,
) -> Result<(u16, Value), String> {
    // Gson's output is compact and has no nulls (the fixtures hold none).
    let text = if body.as_str() == Some("") {
        String::new()
    } else {
        body.to_string()
    };
    let task = task_uuid();
    let mut req = Request::post(path).header("Content-Length", text.len());
    req = match mode {
        Mode::Sync => req.header("Content-Type", "application/json"),
        Mode::Async => req
            .header("taskuuid", &task)
            .header("callbackurl", format!("{}{CALLBACK_PATH}", cb.url()))
            .header("Content-Type", "application/json; charset=utf-8"),
    };
    let rsp = app
        .clone()
        .oneshot(req.body(Body::from(text)).expect("a request"))
        .await
        .map_err(|e| format!("router: {e}"))?;
    let status = rsp.status().as_u16();
    let bytes = axum::body::to_bytes(rsp.into_body(), 64 << 20)
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if mode == Mode::Sync || status != 200 {
        return Ok((status, as_json(&bytes)));
    }
    let start = Instant::now();
    loop {
        let got = cb.requests();
        if let Some(r) = got.iter().find(|r| r.header("taskuuid") == Some(&task)) {
            if r.path != CALLBACK_PATH {
                return Err(format!(
                    "the callback went to {}, not the callbackurl",
                    r.path
                ));
            }
            return Ok((status, as_json(r.body.as_bytes())));
        }
        if start.elapsed() > CALLBACK_WAIT {
            return Err(format!(
                "no callback with taskuuid {task} within {CALLBACK_WAIT:?} (the ack was {status} {})",
                String::from_utf8_lossy(&bytes)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes the fixture's files, runs its setup steps (each must succeed),
/// then its own request; returns the status and reply to check. `Err` is
/// the fixture's report.
pub async fn run(
    f: &Fixture,
    app: &axum::Router,
    cb: &CallbackReceiver,
    tmp: &Path,
) -> Result<(u16, Value), String> {
    f.write_files(tmp)
        .map_err(|e| f.report(&[format!("{e:#}")], &Value::Null))?;
    for (i, step) in f.setup.iter().enumerate() {
        let body = super::with_tmp(&step.body, tmp);
        match exchange(app, cb, &step.path, step.mode, &body).await {
            Ok((200, v)) if v.get("success") != Some(&Value::Bool(false)) => {}
            Ok((s, v)) => {
                let what = if s == 200 {
                    "failed (success false)".to_string()
                } else {
                    format!("answered HTTP {s}")
                };
                return Err(f.report(&[format!("setup[{i}] {} {what}", step.path)], &v));
            }
            Err(e) => {
                return Err(f.report(&[format!("setup[{i}] {}: {e}", step.path)], &Value::Null));
            }
        }
    }
    exchange(app, cb, &f.path, f.mode, &f.body(tmp))
        .await
        .map_err(|e| f.report(&[e], &Value::Null))
}

/// Panics with every failed fixture's report, names first.
pub fn assert_all_pass(agent: &str, total: usize, failed: &[(String, String)]) {
    if failed.is_empty() {
        return;
    }
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let reports: Vec<&str> = failed.iter().map(|(_, r)| r.as_str()).collect();
    panic!(
        "{} of {total} {agent} fixtures fail:\n  {}\n\n{}",
        failed.len(),
        names.join("\n  "),
        reports.join("\n")
    );
}
