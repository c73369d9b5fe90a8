//! The conformance suite's fixtures (see `conformance/README.md`): one JSON
//! file per command and case, naming the ZStack class and commit it comes
//! from, the request body the management node sends and the reply fields its
//! code reads. This module loads them and checks a reply against them; the
//! agents' `tests/conformance.rs` run them through the real routers.
//!
//! Reply specs map a field path to the JSON type the node's Java type needs:
//! `a.b` (object member), `a[]` (every element of a non-empty array), `a{}`
//! (every value of a non-empty map), e.g. `nicInfos[].macAddress`. A type
//! ending in `?` (`"string?"`) is a field the node reads but null-checks
//! first: absent is fine, present must have the type. `enum:A|B` is a
//! string the node turns into a Java enum (`valueOf`): one of those names.
//! `integer>0` is a count the fixture's setup makes non-zero (e.g. the CPUs
//! of running VMs): a 0 there is a wrong answer the node would act on.

mod diff;
pub mod exchange;
mod fields;

pub use diff::json_diff;
pub use fields::{FieldSpec, JsonType, check_fields};

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// How the node sends the command: `RESTFacadeImpl.asyncJsonPost` (headers
/// `taskuuid` + `callbackurl`, reply by callback) or `syncJsonPost` (reply
/// in the HTTP body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Async,
    Sync,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode> {
        match s {
            "async" => Ok(Mode::Async),
            "sync" => Ok(Mode::Sync),
            _ => bail!("mode {s:?} is neither \"async\" nor \"sync\""),
        }
    }
}

/// Where a fixture's facts come from.
#[derive(Debug, Clone)]
pub struct Source {
    pub repo: String,
    pub commit: String,
    /// `file Class` of the request (or why there is none).
    pub request: String,
    pub reply: String,
    /// The caller's lines that read the reply.
    pub readers: Vec<String>,
}

/// A command run before the fixture's own (e.g. `/vm/start` before
/// `/vm/getvncport`); it must succeed.
#[derive(Debug, Clone)]
pub struct Step {
    pub path: String,
    pub mode: Mode,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Fixture {
    /// `conformance/kvm/host-fact.json`
    pub name: String,
    pub path: String,
    pub mode: Mode,
    pub source: Source,
    /// Files written before the setup: path (under `$TMP`) and content, e.g.
    /// a console log the command reads.
    pub files: Vec<(String, String)>,
    pub setup: Vec<Step>,
    pub request: Value,
    /// HTTP status: of the reply in sync mode, of the acknowledgement in
    /// async mode (the node fails a call whose ack is not 2xx).
    pub http: u16,
    /// `success` the node must see (None: not checked).
    pub success: Option<bool>,
    pub reply: Vec<FieldSpec>,
    /// The whole file, for agent-specific keys (e.g. `channel`).
    pub raw: Value,
}

const KEYS: &[&str] = &[
    "path", "mode", "case", "note", "source", "files", "setup", "request", "expect", "reply",
    "channel",
];

fn str_of<'a>(m: &'a Map<String, Value>, k: &str, what: &str) -> Result<&'a str> {
    m.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{what}: {k:?} must be a string"))
}

impl Fixture {
    /// Parses one fixture; `name` is used in every message about it.
    pub fn parse(name: &str, text: &str) -> Result<Fixture> {
        let raw: Value = serde_json::from_str(text).with_context(|| format!("{name}: not JSON"))?;
        let m = raw
            .as_object()
            .ok_or_else(|| anyhow!("{name}: not a JSON object"))?;
        if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
            bail!("{name}: unknown key {k:?} (known: {KEYS:?})");
        }
        let path = str_of(m, "path", name)?.to_string();
        if !path.starts_with('/') {
            bail!("{name}: path {path:?} must start with /");
        }
        let mode = Mode::parse(str_of(m, "mode", name)?).with_context(|| name.to_string())?;
        let s = m
            .get("source")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{name}: \"source\" must be an object"))?;
        let what = format!("{name}: source");
        let source = Source {
            repo: str_of(s, "repo", &what)?.to_string(),
            commit: str_of(s, "commit", &what)?.to_string(),
            request: str_of(s, "request", &what)?.to_string(),
            reply: str_of(s, "reply", &what)?.to_string(),
            readers: match s.get("readers") {
                None => vec![],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|r| r.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| anyhow!("{what}: readers must be strings"))?,
                Some(_) => bail!("{what}: readers must be an array of strings"),
            },
        };
        let mut files = vec![];
        for (p, text) in m
            .get("files")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
        {
            let text = text
                .as_str()
                .ok_or_else(|| anyhow!("{name}: files.{p} must be a string"))?;
            if !p.starts_with("$TMP/") || p.contains("..") {
                bail!("{name}: files.{p} must lie under $TMP/");
            }
            files.push((p, text.to_string()));
        }
        let steps = match m.get("setup") {
            None => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(_) => bail!("{name}: \"setup\" must be an array"),
        };
        let mut setup = vec![];
        for (i, st) in steps.iter().enumerate() {
            let what = format!("{name}: setup[{i}]");
            let o = st
                .as_object()
                .ok_or_else(|| anyhow!("{what}: not an object"))?;
            setup.push(Step {
                path: str_of(o, "path", &what)?.to_string(),
                mode: Mode::parse(o.get("mode").and_then(Value::as_str).unwrap_or("async"))?,
                body: o.get("body").cloned().unwrap_or(Value::Object(Map::new())),
            });
        }
        let request = m
            .get("request")
            .cloned()
            .ok_or_else(|| anyhow!("{name}: \"request\" is missing"))?;
        // Gson leaves null fields out; a body with a null is not the node's.
        for (what, body) in std::iter::once(("request", &request))
            .chain(setup.iter().map(|s| ("setup body", &s.body)))
        {
            if let Some(at) = null_at(body, String::new()) {
                bail!("{name}: {what} has null at {at:?}; Gson omits null fields");
            }
        }
        let expect = m
            .get("expect")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(k) = expect.keys().find(|k| *k != "http" && *k != "success") {
            bail!("{name}: unknown expect.{k} (known: http, success)");
        }
        let http = match expect.get("http") {
            None => 200,
            Some(v) => v
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .ok_or_else(|| anyhow!("{name}: expect.http must be a status code"))?,
        };
        let success = match expect.get("success") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => bail!("{name}: expect.success must be a boolean"),
        };
        let mut reply = vec![];
        for (k, v) in m
            .get("reply")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{name}: \"reply\" must be an object"))?
        {
            let ty = v
                .as_str()
                .ok_or_else(|| anyhow!("{name}: reply {k:?} must name a type"))?;
            reply.push(FieldSpec::parse(k, ty).with_context(|| name.to_string())?);
        }
        Ok(Fixture {
            name: name.to_string(),
            path,
            mode,
            source,
            files,
            setup,
            request,
            http,
            success,
            reply,
            raw,
        })
    }

    /// Writes [`Fixture::files`] under `tmp`.
    pub fn write_files(&self, tmp: &Path) -> Result<()> {
        for (p, text) in &self.files {
            let path = tmp.join(p.trim_start_matches("$TMP/"));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// The body to send: the request with `$TMP` in strings replaced by
    /// `tmp` (paths the agent must create stay under the test's directory).
    pub fn body(&self, tmp: &Path) -> Value {
        with_tmp(&self.request, tmp)
    }

    /// Every problem of one answer: HTTP status, `success`, reply fields.
    /// `reply` is the sync body or the callback body.
    pub fn problems(&self, http: u16, reply: &Value) -> Vec<String> {
        let mut out = vec![];
        if http != self.http {
            out.push(format!("HTTP status {http}, the node needs {}", self.http));
        }
        if let Some(want) = self.success {
            // Java's AgentResponse.success defaults to true when absent.
            let got = reply.get("success").map(|v| v.as_bool());
            match got {
                Some(Some(b)) if b == want => {}
                None if want => {}
                _ => out.push(format!(
                    "success: is {}, the node needs {want}",
                    reply
                        .get("success")
                        .map_or("absent".into(), Value::to_string)
                )),
            }
        }
        out.extend(check_fields(&self.reply, reply));
        out
    }

    /// `Err` with a report naming the fixture, its source and every problem.
    pub fn check(&self, http: u16, reply: &Value) -> Result<(), String> {
        let problems = self.problems(http, reply);
        if problems.is_empty() {
            return Ok(());
        }
        Err(self.report(&problems, reply))
    }

    /// A failure report for `problems` (also used for harness failures).
    pub fn report(&self, problems: &[String], reply: &Value) -> String {
        let mut s = String::new();
        let mode = match self.mode {
            Mode::Async => "async",
            Mode::Sync => "sync",
        };
        let _ = writeln!(s, "{}: POST {} ({mode})", self.name, self.path);
        let short = self.source.commit.get(..8).unwrap_or(&self.source.commit);
        let _ = writeln!(s, "  source: {}@{short}", self.source.repo);
        let _ = writeln!(s, "    request: {}", self.source.request);
        let _ = writeln!(s, "    reply:   {}", self.source.reply);
        for r in &self.source.readers {
            let _ = writeln!(s, "    read by: {r}");
        }
        for p in problems {
            let _ = writeln!(s, "  - {p}");
        }
        let mut text = reply.to_string();
        if text.len() > 2000 {
            text.truncate(2000);
            text.push_str("...");
        }
        let _ = writeln!(s, "  reply was: {text}");
        s
    }
}

fn null_at(v: &Value, here: String) -> Option<String> {
    match v {
        Value::Null => Some(here),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, e)| null_at(e, format!("{here}[{i}]"))),
        Value::Object(m) => m
            .iter()
            .find_map(|(k, e)| null_at(e, format!("{here}.{k}"))),
        _ => None,
    }
}

/// `v` with `$TMP` in every string replaced by `tmp`.
pub fn with_tmp(v: &Value, tmp: &Path) -> Value {
    match v {
        Value::String(s) if s.contains("$TMP") => {
            Value::String(s.replace("$TMP", &tmp.display().to_string()))
        }
        Value::Array(a) => Value::Array(a.iter().map(|e| with_tmp(e, tmp)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, e)| (k.clone(), with_tmp(e, tmp)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `conformance/<agent>` of the workspace.
pub fn fixture_dir(agent: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance")
        .join(agent)
}

/// Every `*.json` of `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Fixture>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let agent = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    files
        .iter()
        .map(|p| {
            let name = format!(
                "conformance/{agent}/{}",
                p.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            );
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Fixture::parse(&name, &text)
        })
        .collect()
}

/// The paths of `served` that no fixture covers.
pub fn uncovered<'a>(served: &'a [String], fixtures: &[Fixture]) -> Vec<&'a str> {
    let covered: BTreeSet<&str> = fixtures.iter().map(|f| f.path.as_str()).collect();
    served
        .iter()
        .map(String::as_str)
        .filter(|p| !covered.contains(p))
        .collect()
}

/// `pub fn router(...)` route literals of an agent's `api/mod.rs`: every
/// `"/..."` string, less our own GET endpoints.
pub fn routes_in(source: &str) -> Vec<String> {
    // Our additions: no ZStack sender to pin them to.
    let ours = [
        "/healthz",
        "/readyz",
        "/state",
        "/metrics",
        "/metrics/zstack",
        "/agent/credentials",
        "/ha",
    ];
    let body = source
        .find("pub fn router(")
        .map(|i| &source[i..])
        .unwrap_or(source);
    let body = body.find("\n}").map(|i| &body[..i]).unwrap_or(body);
    let mut out = BTreeSet::new();
    for piece in body.split('"').skip(1).step_by(2) {
        let p = piece.trim_end_matches('/');
        if piece.starts_with('/')
            && !p.is_empty()
            && !piece.contains(' ')
            && !piece.contains('{')
            && !ours.contains(&p)
        {
            out.insert(p.to_string());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests;
