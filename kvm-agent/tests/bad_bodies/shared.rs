//! What both bad-body tests share: the corpus (`corpus.jsonl`, written by
//! `gen.py`), sending a body as the node does, judging the answer, and the
//! loop that checks each case in both modes against a snapshot of the host.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use testbed::CallbackReceiver;
use testbed::conformance::Mode;
use tower::ServiceExt;

/// Every file under `dir` (symlinks not followed), sorted, with contents.
pub fn files(dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("-> {:?}", std::fs::read_link(&p).unwrap())
        } else if m.is_dir() {
            files(&p, out);
            format!(
                "dir {:o}",
                std::os::unix::fs::PermissionsExt::mode(&m.permissions())
            )
        } else if m.is_file() {
            format!("{:?}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()))
        } else {
            "special".into()
        };
        out.push(format!("{}: {what}", p.display()));
    }
}

/// The bytes to send: `$TMP` is the test's directory, `{{1MiB}}` 1 MiB of
/// "a", `{{xff}}` and `{{xe9}}` the bytes that make a body not UTF-8.
pub fn expand(text: &str, tmp: &Path) -> Vec<u8> {
    let text = text
        .replace("$TMP", &tmp.display().to_string())
        .replace("{{1MiB}}", &"a".repeat(1 << 20));
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("{{x") {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let byte = u8::from_str_radix(&rest[i + 3..i + 5], 16).unwrap();
        out.push(byte);
        rest = &rest[i + 7..];
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// How long one command may take to be refused.
pub const WAIT: Duration = Duration::from_secs(10);

/// POSTs `body` as the node does in `mode`; the HTTP status and the reply
/// (the body, or the callback carrying this call's `taskuuid`; a path that
/// answers inline even with a callback header gives its body).
pub async fn exchange(
    app: &axum::Router,
    cb: &CallbackReceiver,
    path: &str,
    mode: Mode,
    body: Vec<u8>,
    task: &str,
) -> Result<(u16, Value), String> {
    let mut req = Request::post(path).header("Content-Length", body.len());
    req = match mode {
        Mode::Sync => req.header("Content-Type", "application/json"),
        Mode::Async => req
            .header("taskuuid", task)
            .header(
                "callbackurl",
                format!("{}/zstack/asyncrest/callback", cb.url()),
            )
            .header("Content-Type", "application/json; charset=utf-8"),
    };
    let call = app.clone().oneshot(req.body(Body::from(body)).unwrap());
    let rsp = tokio::time::timeout(WAIT, call)
        .await
        .map_err(|_| format!("no answer within {WAIT:?}"))?
        .map_err(|e| e.to_string())?;
    let status = rsp.status().as_u16();
    let bytes = axum::body::to_bytes(rsp.into_body(), 256 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let json = |b: &[u8]| {
        serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
    };
    if mode == Mode::Sync || status != 200 || &bytes[..] != b"\"\"" {
        return Ok((status, json(&bytes)));
    }
    let start = Instant::now();
    loop {
        if let Some(r) = cb
            .requests()
            .into_iter()
            .find(|r| r.header("taskuuid") == Some(task))
        {
            return Ok((status, json(r.body.as_bytes())));
        }
        if start.elapsed() > WAIT {
            return Err(format!("no callback within {WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Paths the node posts with `syncJsonPost`: it reads only a 200 body.
pub fn node_sync(path: &str) -> bool {
    matches!(
        path,
        "/host/connect" | "/network/checkphysicalnetworkinterface"
    )
}

/// What is wrong with the answer to a bad body, if anything.
pub fn judge(path: &str, expect: &str, mode: Mode, status: u16, reply: &Value) -> Option<String> {
    let text = reply.to_string();
    let err = reply["error"].as_str().unwrap_or("");
    let ok_status = match mode {
        Mode::Sync if node_sync(path) => status == 200,
        Mode::Sync => (400..500).contains(&status),
        Mode::Async => status == 200,
    };
    if !ok_status || reply["success"] != false {
        return Some(format!(
            "accepted or wrong status {status}: {}",
            common::text::excerpt_n(&text, 300)
        ));
    }
    if !err.contains(expect) {
        return Some(format!(
            "error does not name {expect:?}: {}",
            common::text::excerpt_n(err, 300)
        ));
    }
    if text.len() > 2048 || err.contains('\n') {
        return Some(format!(
            "reply is {} bytes or multi-line: {}",
            text.len(),
            common::text::excerpt_n(err, 300)
        ));
    }
    None
}

pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/kvm")
        .join(format!("{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["request"].clone()
}

pub struct Case {
    pub name: String,
    pub path: String,
    pub text: String,
    pub expect: String,
}

/// The corpus, or the cases whose path starts with one of `prefixes`.
pub fn corpus(prefixes: &[&str]) -> Vec<Case> {
    include_str!("corpus.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Case {
                name: s("name"),
                path: s("path"),
                text: match v.get("raw") {
                    Some(r) => r.as_str().unwrap().to_string(),
                    None => v["body"].to_string(),
                },
                expect: s("expect"),
            }
        })
        .filter(|c: &Case| prefixes.is_empty() || prefixes.iter().any(|p| c.path.starts_with(p)))
        .collect()
}

/// Sends each setup body; each must succeed.
pub async fn run_setup(
    app: &axum::Router,
    cb: &CallbackReceiver,
    tmp: &Path,
    steps: Vec<(&str, Mode, Value)>,
) {
    for (i, (path, mode, body)) in steps.into_iter().enumerate() {
        let bytes = expand(&body.to_string(), tmp);
        let (status, v) = exchange(app, cb, path, mode, bytes, &format!("setup-{i}"))
            .await
            .unwrap();
        assert_eq!(
            (status, &v["success"]),
            (200, &Value::Bool(true)),
            "setup {path}: {v}"
        );
    }
}

/// Sends every case in both modes; returns what went wrong: a case
/// accepted, refused without naming its problem, answered unbounded, or
/// one after which `snapshot()` differs.
pub async fn run_corpus(
    app: &axum::Router,
    cb: &CallbackReceiver,
    tmp: &Path,
    cases: &[Case],
    snapshot: impl Fn() -> String,
) -> Vec<String> {
    let mut before = snapshot();
    let mut failures = vec![];
    // BAD_BODIES_DUMP=<file>: every case's status and error, to review
    // what the `expect` words match.
    let dump_to = std::env::var_os("BAD_BODIES_DUMP");
    let mut dump = String::new();
    for (n, c) in cases.iter().enumerate() {
        for mode in [Mode::Sync, Mode::Async] {
            let body = expand(&c.text, tmp);
            let task = format!("{:032x}", n * 2 + (mode == Mode::Async) as usize);
            match exchange(app, cb, &c.path, mode, body, &task).await {
                Ok((status, reply)) => {
                    let err = reply["error"].as_str().unwrap_or("");
                    let err = common::text::excerpt_n(err, 300);
                    dump.push_str(&format!("{} ({mode:?}) {status}: {err}\n", c.name));
                    if let Some(why) = judge(&c.path, &c.expect, mode, status, &reply) {
                        failures.push(format!("{} ({mode:?}): {why}", c.name));
                    }
                }
                Err(e) => failures.push(format!("{} ({mode:?}): {e}", c.name)),
            }
            let now = snapshot();
            if now != before {
                failures.push(format!(
                    "{} ({mode:?}): changed the host: {}",
                    c.name,
                    first_difference(&before, &now)
                ));
                before = now;
            }
        }
    }
    if let Some(path) = dump_to {
        std::fs::write(path, dump).unwrap();
    }
    failures
}

/// Where the snapshots first differ, with some context.
pub fn first_difference(before: &str, now: &str) -> String {
    let i = before
        .bytes()
        .zip(now.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let around = |s: &str| {
        let mut from = i.saturating_sub(120);
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        common::text::excerpt_n(&s[from..], 300)
    };
    format!("was ...{} now ...{}", around(before), around(now))
}
