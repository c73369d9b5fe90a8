//! Size bounds of every string of a command (issue 13).

use serde::Serialize;
use serde::de::DeserializeSeed;

/// Certificates (PEM chains) and public keys: generous for a chain of a few
/// 4096-bit certificates and a key, nothing like the 50 MB that was once
/// persisted and echoed.
pub const MAX_PEM: usize = 64 << 10;
/// Uuids: the node sends 32 hex digits (36 with dashes).
pub const MAX_UUID: usize = 36;
/// A DNS name (RFC 1035: 253 characters in text form).
pub const MAX_NAME: usize = 253;
/// One LB parameter (`key::value`) or redirect rule; ACL and backend lists
/// stay well below this.
pub const MAX_LB_TEXT: usize = 4096;
/// Any other string: addresses, MACs, CIDRs, modes, levels.
pub const MAX_OTHER: usize = 255;

/// How long a string under `key` may be, and whether it may hold line
/// breaks (only PEM text does).
fn bound_for(key: &str) -> (usize, bool, &'static str) {
    match key {
        "certificate" | "certs" | "publicKey" | "privateKey" | "clientCa" => {
            (MAX_PEM, true, "a PEM text")
        }
        "uuid" => (MAX_UUID, false, "a uuid"),
        k if k.ends_with("Uuid") => (MAX_UUID, false, "a uuid"),
        "hostname" | "dnsDomain" | "name" => (MAX_NAME, false, "a DNS name"),
        "parameters" | "redirectRule" | "parms" => (MAX_LB_TEXT, false, "a parameter"),
        _ => (MAX_OTHER, false, "this field"),
    }
}

/// Refuses any string (value or map key) of a command that is longer than
/// its use needs or carries control characters where none belong, naming
/// its JSON path and never quoting it: a 50 MB uuid or a newline in a name
/// never reaches the model, a reply or a log line.
pub fn check_bounds<T: Serialize>(cmd: &T) -> Result<(), String> {
    // Walked as JSON text, not as a `Value`: building and dropping the
    // Value of a 100 000-rule sync took 0.4 s.
    let text = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
    let mut de = serde_json::Deserializer::from_slice(&text);
    let mut found = None;
    let walked = Walk {
        path: None,
        key: "",
        found: &mut found,
    }
    .deserialize(&mut de);
    match (found, walked) {
        (Some(e), _) => Err(e),
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => Err(e.to_string()),
    }
}

/// The JSON path to a value, as a list on the stack: formatted only for an
/// error.
enum Seg<'a> {
    /// An object field: `a.b`.
    Field(&'a str),
    /// An array item: `a[3]`.
    Index(usize),
    /// An entry of a map keyed by data: `a["key"]`.
    DataKey(&'a str),
}

struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

fn path_text(path: Option<&Path<'_>>) -> String {
    let mut segs = vec![];
    let mut at = path;
    while let Some(p) = at {
        segs.push(&p.seg);
        at = p.parent;
    }
    let mut out = String::new();
    for seg in segs.into_iter().rev() {
        match seg {
            Seg::Field(k) if out.is_empty() => out.push_str(k),
            Seg::Field(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::DataKey(k) => out.push_str(&format!("[{}]", crate::text::quoted(k))),
        }
    }
    out
}

/// One value of the command's JSON: every string under it checked by the
/// key it sits under; the first failure is kept in `found` (the walk then
/// stops with an error of its own).
struct Walk<'p, 'f> {
    path: Option<&'p Path<'p>>,
    key: &'p str,
    found: &'f mut Option<String>,
}

impl Walk<'_, '_> {
    fn check<E: serde::de::Error>(&mut self, s: &str) -> Result<(), E> {
        let path = self.path;
        check_str(s, || path_text(path), self.key).map_err(|e| {
            *self.found = Some(e);
            E::custom("bounds")
        })
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a command")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
        self.check(s)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let p = Path {
                parent: self.path,
                seg: Seg::Index(i),
            };
            let item = Walk {
                path: Some(&p),
                key: self.key,
                found: &mut *self.found,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Map keys are data: the `certs` map is keyed by certificate
        // uuid, `parms` by parameter name.
        let data_map = matches!(self.key, "certs" | "parms" | "serviceHealthList");
        while let Some(k) = map.next_key_seed(Key)? {
            if data_map {
                let kind = if self.key == "certs" {
                    "uuid"
                } else {
                    self.key
                };
                let path = self.path;
                check_str(&k, || format!("{} key", path_text(path)), kind).map_err(|e| {
                    *self.found = Some(e);
                    serde::de::Error::custom("bounds")
                })?;
                let p = Path {
                    parent: self.path,
                    seg: Seg::DataKey(&k),
                };
                map.next_value_seed(Walk {
                    path: Some(&p),
                    key: self.key,
                    found: &mut *self.found,
                })?;
            } else {
                let p = Path {
                    parent: self.path,
                    seg: Seg::Field(&k),
                };
                map.next_value_seed(Walk {
                    path: Some(&p),
                    key: &k,
                    found: &mut *self.found,
                })?;
            }
        }
        Ok(())
    }
}

/// A map key, borrowed from the text when it has no escapes (a key per
/// field of 100 000 rules, none of them worth an allocation).
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s.to_string()))
    }
}

fn check_str(s: &str, path: impl FnOnce() -> String, key: &str) -> Result<(), String> {
    let (max, multi_line, what) = bound_for(key);
    let bad = |c: char| c.is_control() && !(multi_line && matches!(c, '\n' | '\r' | '\t'));
    let problem = if s.len() > max {
        format!("is {} bytes, more than the {max} {what} may have", s.len())
    } else if let Some(c) = s.chars().find(|&c| bad(c)) {
        format!("contains the control character {c:?}, not allowed here")
    } else {
        return Ok(());
    };
    let path = path();
    let path = if path.is_empty() { "body".into() } else { path };
    Err(format!("{path}: {problem}"))
}
