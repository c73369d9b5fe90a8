//! Strict parsing of a request body into a [`Value`]: valid UTF-8, one JSON
//! document, and no key twice in one object at any depth.
//!
//! `serde_json::Value` keeps the last of two equal keys silently, so a body
//! `{"rules":[...],"rules":[]}` would mean whatever the last one says; the
//! node's Gson never writes a key twice, so a repeat is refused with its path.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::text::excerpt;

/// Why a body is not one strict JSON document. Messages quote input only
/// through [`excerpt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("request body is not valid UTF-8: invalid byte at offset {offset}")]
    Utf8 { offset: usize },
    #[error("request body is not valid JSON: {0}")]
    Syntax(String),
}

/// Parses `body` strictly (see the module doc). An empty body, or one of
/// JSON whitespace only, is `Ok(None)`: whether that is acceptable is the
/// caller's choice.
pub fn parse_strict(body: &[u8]) -> Result<Option<Value>, JsonError> {
    let text = std::str::from_utf8(body).map_err(|e| JsonError::Utf8 {
        offset: e.valid_up_to(),
    })?;
    // JSON's whitespace, not Unicode's: U+3000 alone is not an empty body.
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = ValueSeed { path: None }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| JsonError::Syntax(crate::text::excerpt_n(&e.to_string(), 200)))?;
    Ok(Some(v))
}

/// One step of the path from the root to the value being built; a linked
/// list on the stack, so paths are only formatted when an error needs one.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

struct Node<'a> {
    parent: Option<&'a Node<'a>>,
    seg: Seg<'a>,
}

/// `a.b[2].c`, the form serde_path_to_error uses in the other decode errors.
fn path_of(node: &Node<'_>) -> String {
    let mut segs = vec![&node.seg];
    let mut n = node;
    while let Some(p) = n.parent {
        segs.push(&p.seg);
        n = p;
    }
    let mut out = String::new();
    for seg in segs.into_iter().rev() {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&excerpt(k));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    path: Option<&'a Node<'a>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let node = Node {
                parent: self.path,
                seg: Seg::Index(out.len()),
            };
            match seq.next_element_seed(ValueSeed { path: Some(&node) })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let node = Node {
                parent: self.path,
                seg: Seg::Key(&key),
            };
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {}",
                    path_of(&node)
                )));
            }
            let v = map.next_value_seed(ValueSeed { path: Some(&node) })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_documents_parse_as_serde_json_does() {
        let body = br#" {"a":[1,-2,3.5,{"b":null}],"c":"\u00e9\n","d":true} "#;
        let want: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parse_strict(body).unwrap(), Some(want));
        assert_eq!(parse_strict(b"").unwrap(), None);
        assert_eq!(parse_strict(b" \n\t").unwrap(), None);
        assert_eq!(parse_strict(b"[]").unwrap(), Some(Value::Array(vec![])));
        assert!(parse_strict("\u{3000}".as_bytes()).is_err());
        assert!(parse_strict(b"\x0c").is_err());
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let e = parse_strict(b"{\"mac\":\"a\xffb\"}").unwrap_err();
        assert_eq!(e, JsonError::Utf8 { offset: 9 });
        assert!(e.to_string().contains("offset 9"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let e = parse_strict(br#"{"rules":[1],"rules":[]}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key rules"), "{e}");
        let e = parse_strict(br#"{"a":{"b":[{"c":1},{"c":1,"c":2}]}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key a.b[1].c"), "{e}");
        // Equal keys in different objects are not duplicates.
        parse_strict(br#"{"a":{"x":1},"b":{"x":1}}"#).unwrap();
    }

    #[test]
    fn errors_quote_input_bounded() {
        let key = "k\n".repeat(10_000);
        let body = format!(r#"{{"{k}":1,"{k}":2}}"#, k = key.replace('\n', "\\n"));
        let e = parse_strict(body.as_bytes()).unwrap_err().to_string();
        assert!(e.len() < 300, "{}", e.len());
        assert!(!e.contains('\n'), "{e}");
        let e = parse_strict(b"{\"a\":1} trailing").unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }
}
