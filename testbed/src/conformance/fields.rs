//! The reply specs of the fixtures: a field path and the JSON type the
//! node's Java type needs (see the parent module's doc), and the check of a
//! reply against them.

use anyhow::{Context, Result, bail};
use serde_json::Value;

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
