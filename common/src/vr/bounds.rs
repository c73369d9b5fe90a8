//! Size bounds of every string of a command (issue 13).

use serde::Serialize;

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
    let v = serde_json::to_value(cmd).map_err(|e| e.to_string())?;
    walk(&v, "", "")
}

fn walk(v: &serde_json::Value, path: &str, key: &str) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::String(s) => check_str(s, path, key),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), key)),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            // Map keys are data: the `certs` map is keyed by certificate
            // uuid, `parms` by parameter name.
            let data_map = matches!(key, "certs" | "parms" | "serviceHealthList");
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if data_map {
                let kind = if key == "certs" { "uuid" } else { key };
                check_str(k, &format!("{path} key"), kind)?;
                walk(x, &format!("{path}[{}]", crate::text::quoted(k)), key)
            } else {
                walk(x, &child, k)
            }
        }),
        _ => Ok(()),
    }
}

fn check_str(s: &str, path: &str, key: &str) -> Result<(), String> {
    let (max, multi_line, what) = bound_for(key);
    let path = if path.is_empty() { "body" } else { path };
    if s.len() > max {
        return Err(format!(
            "{path}: is {} bytes, more than the {max} {what} may have",
            s.len()
        ));
    }
    let bad = |c: char| c.is_control() && !(multi_line && matches!(c, '\n' | '\r' | '\t'));
    if let Some(c) = s.chars().find(|&c| bad(c)) {
        return Err(format!(
            "{path}: contains the control character {:?}, not allowed here",
            c
        ));
    }
    Ok(())
}
