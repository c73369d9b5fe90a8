//! The nft transactions that move the kernel's table to a new ruleset: an
//! element-level change when the skeleton is the same, else a full replace.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::elements::Element;
use super::{FAMILY, FlowMatch, Ruleset, TABLE};

/// An element-level change of `applied`: remove `gone`, add `came`. Returns
/// the transaction, or None when the elements cancel out. `applied` is not
/// touched; call [`Ruleset::commit`] once the kernel took the change.
pub fn delta(applied: &Ruleset, gone: &[Element], came: &[Element]) -> Option<Change> {
    let came_keys: BTreeSet<(&str, &str)> = came.iter().map(|(s, e, _)| (*s, e.as_str())).collect();
    let gone_keys: BTreeSet<(&str, &str)> = gone.iter().map(|(s, e, _)| (*s, e.as_str())).collect();
    let present = |set: &str, el: &str| {
        applied
            .elements
            .get(set)
            .is_some_and(|m| m.contains_key(el))
    };
    let mut by_set: BTreeMap<(&str, &str), Vec<&String>> = BTreeMap::new();
    let mut stale = BTreeSet::new();
    for (set, el, f) in gone {
        if !came_keys.contains(&(*set, el.as_str())) && present(set, el) {
            by_set.entry(("delete", set)).or_default().push(el);
            stale.extend(*f);
        }
    }
    for (set, el, f) in came {
        if !gone_keys.contains(&(*set, el.as_str())) && !present(set, el) {
            by_set.entry(("add", set)).or_default().push(el);
            stale.extend(*f);
        }
    }
    if by_set.is_empty() {
        return None;
    }
    let mut script = String::new();
    // Deletes first: a changed element is removed, then added back.
    for verb in ["delete", "add"] {
        for ((v, set), items) in by_set.iter().filter(|((v, _), _)| *v == verb) {
            element_cmd(&mut script, v, set, items.iter().copied());
        }
    }
    Some(Change {
        script,
        full: false,
        stale,
    })
}

/// One transaction that moves the table from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// nft text for `nft -f -`.
    pub script: String,
    /// True when the whole table is replaced.
    pub full: bool,
    /// Flows to remove from conntrack once the change is in.
    pub stale: BTreeSet<FlowMatch>,
}

/// The change from `old` (what the kernel has, None if unknown) to `new`.
/// None when nothing changes.
pub fn change(old: Option<&Ruleset>, new: &Ruleset) -> Option<Change> {
    let Some(old) = old.filter(|o| o.skeleton == new.skeleton) else {
        return Some(full(old, new));
    };
    let mut dels = String::new();
    let mut adds = String::new();
    let mut stale = BTreeSet::new();
    for (set, new_el) in &new.elements {
        let empty = BTreeMap::new();
        let old_el = old.elements.get(set).unwrap_or(&empty);
        let gone: Vec<&String> = old_el.keys().filter(|k| !new_el.contains_key(*k)).collect();
        let came: Vec<&String> = new_el.keys().filter(|k| !old_el.contains_key(*k)).collect();
        stale.extend(gone.iter().filter_map(|k| old_el[*k]));
        stale.extend(came.iter().filter_map(|k| new_el[*k]));
        element_cmd(&mut dels, "delete", set, gone.into_iter());
        element_cmd(&mut adds, "add", set, came.into_iter());
    }
    if dels.is_empty() && adds.is_empty() {
        return None;
    }
    Some(Change {
        script: dels + &adds,
        full: false,
        stale,
    })
}

/// Replace the whole table: declare it (so delete cannot fail), delete it,
/// then add it back with every element, all in one transaction.
pub fn full(old: Option<&Ruleset>, new: &Ruleset) -> Change {
    let mut s = format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n");
    s.push_str(&new.skeleton);
    let mut stale = BTreeSet::new();
    for (set, el) in &new.elements {
        element_cmd(&mut s, "add", set, el.keys());
        if let Some(old) = old {
            let empty = BTreeMap::new();
            let old_el = old.elements.get(set).unwrap_or(&empty);
            stale.extend(
                old_el
                    .iter()
                    .filter(|(k, _)| !el.contains_key(*k))
                    .filter_map(|(_, f)| *f),
            );
            stale.extend(
                el.iter()
                    .filter(|(k, _)| !old_el.contains_key(*k))
                    .filter_map(|(_, f)| *f),
            );
        }
    }
    Change {
        script: s,
        full: true,
        stale,
    }
}

fn element_cmd<'a>(
    out: &mut String,
    verb: &str,
    set: &str,
    items: impl Iterator<Item = &'a String>,
) {
    let mut first = true;
    for item in items {
        if first {
            let _ = write!(out, "{verb} element {FAMILY} {TABLE} {set} {{ ");
            first = false;
        } else {
            out.push_str(", ");
        }
        out.push_str(item);
    }
    if !first {
        out.push_str(" }\n");
    }
}

/// A script that removes our table (used when the agent is told to stop NAT
/// entirely, and by tests).
pub fn delete_table() -> String {
    format!("table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n")
}
