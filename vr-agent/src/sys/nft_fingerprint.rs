//! What the drift check compares of one of our nft tables, read from
//! `nft -j list table` as a stream: a content digest and a census.

use std::collections::BTreeMap;

use serde::de::DeserializeSeed;

/// What the drift check compares of a table: a digest of its content and
/// the number of elements in each set/map and rules in each chain (to
/// compare with what we rendered).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Equal digests: same rules, same elements. Rule handles, the order
    /// the kernel lists set elements in, element counters and nft's
    /// version are left out: they change without a change of content.
    pub digest: u64,
    pub sets: BTreeMap<String, usize>,
    pub chains: BTreeMap<String, usize>,
}

/// The fingerprint of a `nft -j list table` answer, read in two streaming
/// passes (digest, census) without building its JSON: the `Value` of a
/// 600 000-element table took gigabytes.
pub fn fingerprint_of(json: &str) -> Result<Fingerprint, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let digest = Hashed(Context::Root)
        .deserialize(&mut de)
        .and_then(|h| de.end().map(|()| h))?;
    let top: Listing = serde_json::from_str(json)?;
    let mut sets = BTreeMap::new();
    let mut chains = BTreeMap::new();
    for o in top.nftables {
        for s in [o.set, o.map].into_iter().flatten() {
            sets.insert(s.name, s.elem.0);
        }
        if let Some(c) = o.chain {
            chains.entry(c.name).or_insert(0);
        }
        if let Some(r) = o.rule {
            *chains.entry(r.chain).or_insert(0) += 1;
        }
    }
    Ok(Fingerprint {
        digest,
        sets,
        chains,
    })
}

/// The parts of a listing the census reads; the rest is skipped unread.
#[derive(serde::Deserialize)]
struct Listing {
    #[serde(default)]
    nftables: Vec<ListedObject>,
}

#[derive(serde::Deserialize)]
struct ListedObject {
    set: Option<ListedSet>,
    map: Option<ListedSet>,
    chain: Option<ListedChain>,
    rule: Option<ListedRule>,
}

#[derive(serde::Deserialize)]
struct ListedSet {
    name: String,
    #[serde(default)]
    elem: Count,
}

#[derive(serde::Deserialize)]
struct ListedChain {
    name: String,
}

#[derive(serde::Deserialize)]
struct ListedRule {
    chain: String,
}

/// The length of a JSON array, its items skipped.
#[derive(Default)]
struct Count(usize);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Where a value sits, for what the digest leaves out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    /// An item of the top-level `nftables` list (a metainfo one is skipped).
    TopItem,
    /// The items of an `elem` list: their order is the kernel's, not ours.
    Elements,
    Other,
}

/// A value's hash: objects and lists in order, except an `elem` list's
/// items (summed, so their order does not count), `handle` fields and an
/// element's `counter`.
struct Hashed(Context);

fn hash_of(tag: u8, parts: &[u64]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    parts.hash(&mut h);
    h.finish()
}

fn hash_str(tag: u8, s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    s.hash(&mut h);
    h.finish()
}

impl<'de> serde::de::DeserializeSeed<'de> for Hashed {
    type Value = u64;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Hashed {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("nft JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<u64, E> {
        Ok(hash_of(1, &[v as u64]))
    }
    fn visit_i64<E>(self, v: i64) -> Result<u64, E> {
        Ok(hash_str(2, &v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
        Ok(hash_str(2, &v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<u64, E> {
        Ok(hash_str(2, &v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<u64, E> {
        Ok(hash_of(3, &[]))
    }
    fn visit_str<E>(self, v: &str) -> Result<u64, E> {
        Ok(hash_str(4, v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<u64, A::Error> {
        let item = match self.0 {
            Context::Root => Context::TopItem,
            _ => Context::Other,
        };
        if self.0 == Context::Elements {
            let mut sum = 0u64;
            while let Some(h) = a.next_element_seed(Hashed(Context::Other))? {
                sum = sum.wrapping_add(h);
            }
            return Ok(hash_of(5, &[sum]));
        }
        let mut parts = vec![];
        while let Some(h) = a.next_element_seed(Hashed(item))? {
            // The metainfo object names nft's version, not our content.
            if h != METAINFO {
                parts.push(h);
            }
        }
        Ok(hash_of(6, &parts))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<u64, A::Error> {
        let mut parts = vec![];
        // An element's counter (beside its `val`, in either order) moves
        // with traffic, not content.
        let (mut has_val, mut counter) = (false, None);
        while let Some(k) = a.next_key::<std::borrow::Cow<'de, str>>()? {
            if k == "metainfo" && self.0 == Context::TopItem {
                a.next_value::<serde::de::IgnoredAny>()?;
                return Ok(METAINFO);
            }
            if k == "handle" {
                a.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            has_val |= k == "val";
            if k == "counter" {
                counter = Some(a.next_value_seed(Hashed(Context::Other))?);
                continue;
            }
            let ctx = if k == "elem" {
                Context::Elements
            } else if self.0 == Context::Root && k == "nftables" {
                Context::Root
            } else {
                Context::Other
            };
            let v = a.next_value_seed(Hashed(ctx))?;
            parts.push(hash_str(7, &k));
            parts.push(v);
        }
        if let (Some(c), false) = (counter, has_val) {
            parts.push(hash_str(7, "counter"));
            parts.push(c);
        }
        Ok(hash_of(8, &parts))
    }
}

/// The hash a metainfo item stands for: left out of its list.
const METAINFO: u64 = 0x6d65_7461_696e_666f;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn digest_ignores_handles_and_element_order_but_not_content() {
        let digest = |v: &Value| fingerprint_of(&v.to_string()).unwrap().digest;
        let a = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"name": "pf", "handle": 3, "elem": ["b", "a"]}},
            {"rule": {"chain": "in", "handle": 7, "expr": [{"accept": null}]}}]});
        let b = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.9"}},
            {"set": {"name": "pf", "handle": 9, "elem": ["a", "b"]}},
            {"rule": {"chain": "in", "handle": 2, "expr": [{"accept": null}]}}]});
        let c = serde_json::json!({"nftables": [
            {"set": {"name": "pf", "elem": ["a", "b"]}},
            {"rule": {"chain": "in", "expr": [{"drop": null}]}}]});
        assert_eq!(digest(&a), digest(&b));
        let counted = |p: u64| {
            serde_json::json!({"nftables": [{"set": {"name": "c", "elem": [
                {"elem": {"val": "1.2.3.4", "counter": {"packets": p, "bytes": p * 60}}}]}}]})
        };
        assert_eq!(digest(&counted(0)), digest(&counted(7)));
        assert_ne!(digest(&a), digest(&c));
        // Two elements swapped between sets are a change.
        let d = serde_json::json!({"nftables": [
            {"set": {"name": "x", "elem": ["a"]}}, {"set": {"name": "y", "elem": ["b"]}}]});
        let e = serde_json::json!({"nftables": [
            {"set": {"name": "x", "elem": ["b"]}}, {"set": {"name": "y", "elem": ["a"]}}]});
        assert_ne!(digest(&d), digest(&e));
    }

    #[test]
    fn the_census_counts_elements_and_rules() {
        let l = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "vragent"}},
            {"set": {"name": "s", "elem": ["a", "b", "c"]}},
            {"map": {"name": "m", "type": "ipv4_addr", "map": "ipv4_addr"}},
            {"chain": {"name": "empty"}},
            {"chain": {"name": "in"}},
            {"rule": {"chain": "in", "expr": []}},
            {"rule": {"chain": "in", "expr": []}}]});
        let f = fingerprint_of(&l.to_string()).unwrap();
        let want = |v: &[(&str, usize)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        assert_eq!(f.sets, want(&[("s", 3), ("m", 0)]));
        assert_eq!(f.chains, want(&[("empty", 0), ("in", 2)]));
        assert!(fingerprint_of("{").is_err());
    }
}
