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

pub mod exchange;

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

/// The JSON type a Java field needs to deserialise and be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Boolean,
    /// A JSON number without a fraction (Java int/long/Integer/Long).
    Integer,
    Number,
    Object,
    Array,
}

impl JsonType {
    fn parse(s: &str) -> Result<JsonType> {
        Ok(match s {
            "string" => JsonType::String,
            "boolean" => JsonType::Boolean,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            _ => bail!(
                "type {s:?} is not one of string, boolean, integer, number, object, array (optionally with '?')"
            ),
        })
    }

    fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            JsonType::String => v.is_string(),
            JsonType::Boolean => v.is_boolean(),
            JsonType::Integer => {
                v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            JsonType::Number => v.is_number(),
            JsonType::Object => v.is_object(),
            JsonType::Array => v.is_array(),
        }
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    /// `[]`: every element of an array.
    Each,
    /// `{}`: every value of a map.
    Values,
}

/// One line of a fixture's `reply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub path: String,
    pub ty: JsonType,
    /// `"type?"`: the node null-checks it before use.
    pub optional: bool,
    /// `enum:A|B`: the names a Java enum's `valueOf` accepts.
    pub names: Vec<String>,
    /// `integer>0` / `number>0`: the value must be positive.
    pub positive: bool,
    segs: Vec<Seg>,
}

impl FieldSpec {
    pub fn parse(path: &str, ty: &str) -> Result<FieldSpec> {
        let (ty, optional) = match ty.strip_suffix('?') {
            Some(t) => (t, true),
            None => (ty, false),
        };
        let (ty, positive) = match ty.strip_suffix(">0") {
            Some(t) if t == "integer" || t == "number" => (t, true),
            Some(_) => bail!("reply field {path:?}: only integer>0 and number>0 exist"),
            None => (ty, false),
        };
        let (ty, names) = match ty.strip_prefix("enum:") {
            Some(list) => {
                let names: Vec<String> = list.split('|').map(str::to_string).collect();
                if names.iter().any(String::is_empty) {
                    bail!("reply field {path:?}: enum:{list} has an empty name");
                }
                (JsonType::String, names)
            }
            None => (
                JsonType::parse(ty).with_context(|| format!("reply field {path:?}"))?,
                vec![],
            ),
        };
        Ok(FieldSpec {
            path: path.to_string(),
            ty,
            optional,
            names,
            positive,
            segs: parse_path(path)?,
        })
    }
}

fn parse_path(path: &str) -> Result<Vec<Seg>> {
    let mut segs = vec![];
    for part in path.split('.') {
        let cut = part.find(['[', '{']).unwrap_or(part.len());
        let (name, mut rest) = part.split_at(cut);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("reply path {path:?}: {part:?} does not start with a field name");
        }
        segs.push(Seg::Key(name.to_string()));
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[]") {
                segs.push(Seg::Each);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("{}") {
                segs.push(Seg::Values);
                rest = r;
            } else {
                bail!("reply path {path:?}: {rest:?} is neither [] nor {{}}");
            }
        }
    }
    Ok(segs)
}

/// Every problem of `reply` against `spec`, one line each (empty: conforms).
pub fn check_fields(spec: &[FieldSpec], reply: &Value) -> Vec<String> {
    let mut out = vec![];
    if !spec.is_empty() && !reply.is_object() {
        out.push(format!(
            "reply: is {} {reply}, not a JSON object with the {} field(s) the node reads",
            type_of(reply),
            spec.len()
        ));
        return out;
    }
    for f in spec {
        walk(reply, &f.segs, String::new(), f, &mut out);
    }
    out
}

fn walk(v: &Value, segs: &[Seg], here: String, f: &FieldSpec, out: &mut Vec<String>) {
    let want = |s: &str| format!("the node reads {} as {}", f.path, s);
    let Some((seg, rest)) = segs.split_first() else {
        if !f.ty.matches(v) {
            out.push(format!(
                "{here}: is {} {v}, {}",
                type_of(v),
                want(f.ty.name())
            ));
        } else if f.positive && v.as_f64().is_none_or(|x| x <= 0.0) {
            out.push(format!(
                "{here}: is {v}, the fixture's setup makes {} positive",
                f.path
            ));
        } else if !f.names.is_empty() && !f.names.iter().any(|n| v.as_str() == Some(n)) {
            out.push(format!(
                "{here}: is {v}, the node reads {} as one of {}",
                f.path,
                f.names.join("|")
            ));
        }
        return;
    };
    match seg {
        Seg::Key(k) => {
            let path = if here.is_empty() {
                k.clone()
            } else {
                format!("{here}.{k}")
            };
            let Value::Object(m) = v else {
                out.push(format!(
                    "{}: is {}, not an object with {k:?} ({})",
                    if here.is_empty() { "reply" } else { &here },
                    type_of(v),
                    want(f.ty.name())
                ));
                return;
            };
            match m.get(k) {
                None | Some(Value::Null) if f.optional => {}
                None | Some(Value::Null) => out.push(format!(
                    "{path}: missing ({})",
                    want(if rest.is_empty() {
                        f.ty.name()
                    } else {
                        "a path below it"
                    })
                )),
                Some(next) => walk(next, rest, path, f, out),
            }
        }
        Seg::Each => match v {
            Value::Array(a) if a.is_empty() && !f.optional => out.push(format!(
                "{here}: is an empty array, so {} cannot be checked (the fixture must make the agent list one)",
                f.path
            )),
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    walk(e, rest, format!("{here}[{i}]"), f, out);
                }
            }
            _ => out.push(format!("{here}: is {}, not an array ({})", type_of(v), want(f.ty.name()))),
        },
        Seg::Values => match v {
            Value::Object(m) if m.is_empty() && !f.optional => out.push(format!(
                "{here}: is an empty map, so {} cannot be checked (the fixture must make the agent list one)",
                f.path
            )),
            Value::Object(m) => {
                for (k, e) in m {
                    walk(e, rest, format!("{here}{{{k:?}}}"), f, out);
                }
            }
            _ => out.push(format!("{here}: is {}, not a map ({})", type_of(v), want(f.ty.name()))),
        },
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

/// Where `got` differs from `want` (JSON paths), e.g. a map whose keys an
/// agent renamed: `info.EnableVyosCmd: missing`.
pub fn json_diff(want: &Value, got: &Value) -> Vec<String> {
    let mut out = vec![];
    diff_at(want, got, String::new(), &mut out);
    out
}

fn diff_at(want: &Value, got: &Value, here: String, out: &mut Vec<String>) {
    let at = |k: &str| {
        if here.is_empty() {
            k.to_string()
        } else {
            format!("{here}.{k}")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    None => out.push(format!("{}: missing", at(k))),
                    Some(gv) => diff_at(wv, gv, at(k), out),
                }
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("{}: not sent by the node", at(k)));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff_at(wv, gv, format!("{here}[{i}]"), out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!(
            "{}: is {got}, the node sent {want}",
            if here.is_empty() { "(root)" } else { &here }
        )),
    }
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
