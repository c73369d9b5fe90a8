//! Per-element counters out of `nft -j list table`.

use std::collections::BTreeMap;

use serde_json::Value;

/// (packets, bytes) of every counted element: set name -> element text,
/// in the form the plan writes it less its quotes (`eth1 . 10.0.0.0/24`).
pub type Counters = BTreeMap<String, BTreeMap<String, (u64, u64)>>;

pub fn counters(listing: &Value) -> Counters {
    let mut out = Counters::new();
    let objects = listing.get("nftables").and_then(Value::as_array);
    for o in objects.into_iter().flatten() {
        let Some(set) = o.get("set").or_else(|| o.get("map")) else {
            continue;
        };
        let name = set.get("name").and_then(Value::as_str).unwrap_or("");
        for e in set
            .get("elem")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(e) = e.get("elem") else { continue };
            let (Some(val), Some(c)) = (e.get("val"), e.get("counter")) else {
                continue;
            };
            let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
            out.entry(name.to_string())
                .or_default()
                .insert(text(val), (n("packets"), n("bytes")));
        }
    }
    out
}

/// An element text of the plan, as [`counters`] keys it.
pub fn key(element: &str) -> String {
    element
        .replace('"', "")
        .split(" . ")
        .map(|p| p.strip_suffix("/32").unwrap_or(p))
        .collect::<Vec<_>>()
        .join(" . ")
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(m) => {
            if let Some(Value::Array(parts)) = m.get("concat") {
                parts.iter().map(text).collect::<Vec<_>>().join(" . ")
            } else if let Some(Value::Array(r)) = m.get("range") {
                format!(
                    "{}-{}",
                    r.first().map(text).unwrap_or_default(),
                    r.get(1).map(text).unwrap_or_default()
                )
            } else if let Some(p) = m.get("prefix") {
                let addr = p.get("addr").map(text).unwrap_or_default();
                let len = p.get("len").map(text).unwrap_or_default();
                format!("{addr}/{len}")
            } else {
                v.to_string()
            }
        }
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes nft 1.0.6 lists (measured: PLATFORM.md).
    #[test]
    fn plain_concatenated_range_and_prefix_elements() {
        let l = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"name": "a", "elem": [
                {"elem": {"val": "172.20.10.101", "counter": {"packets": 6, "bytes": 504}}}]}},
            {"set": {"name": "p", "elem": [
                {"elem": {"val": {"concat": ["172.20.10.100", "udp", {"range": [9000, 9010]}]},
                          "counter": {"packets": 1, "bytes": 2}}},
                {"elem": {"val": {"concat": ["172.20.10.100", "tcp", 80]},
                          "counter": {"packets": 3, "bytes": 4}}}]}},
            {"set": {"name": "s", "elem": [
                {"elem": {"val": {"concat": ["eth1", {"prefix": {"addr": "192.168.100.0", "len": 24}}]},
                          "counter": {"packets": 5, "bytes": 6}}}]}},
            {"set": {"name": "plain", "elem": ["10.0.0.1"]}}
        ]});
        let c = counters(&l);
        assert_eq!(c["a"][&key("172.20.10.101")], (6, 504));
        assert_eq!(c["p"][&key("172.20.10.100 . udp . 9000-9010")], (1, 2));
        assert_eq!(c["p"][&key("172.20.10.100 . tcp . 80")], (3, 4));
        assert_eq!(c["s"][&key("\"eth1\" . 192.168.100.0/24")], (5, 6));
        assert!(!c.contains_key("plain"));
    }
}
