//! `/vm/volumesync`: which volume files under a storage path no running
//! domain uses, as ZStack's kvmagent answers it (vm_plugin `volume_sync`):
//! only `file://` paths are looked at, a directory means every entry in it,
//! a file name means entries starting with it (or matching its one `*`),
//! and a path is reported only when it was inactive at the previous call
//! too (the node then garbage-collects it, so one unlucky moment must not
//! count). Unlike kvmagent's grep, a path is whole up to its quote (names
//! with dots included) and a directory holding a used file counts as used:
//! a used volume is never reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::VmError;
use crate::sys::hypervisor::Hypervisor;

/// Volume paths referenced by any domain's live XML under `dir/`.
fn active_under(xmls: &[String], dir: &str) -> BTreeSet<String> {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let mut out = BTreeSet::new();
    for x in xmls {
        let mut rest = x.as_str();
        while let Some(i) = rest.find(&prefix) {
            let tail = &rest[i..];
            // The path ends where the XML attribute or text does.
            let end = tail[prefix.len()..]
                .find(|c: char| "'\"<> \t\n".contains(c))
                .map_or(tail.len(), |e| e + prefix.len());
            out.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

fn matches(name: &str, pattern: &str) -> bool {
    match pattern.split_once('*') {
        Some((a, b)) => name.len() >= a.len() + b.len() && name.starts_with(a) && name.ends_with(b),
        None => name.starts_with(pattern),
    }
}

/// Inactive volume paths under one storage URL now.
fn inactive_now(url: &str, xmls: &[String]) -> BTreeSet<String> {
    let Some(path) = url.strip_prefix("file://") else {
        return BTreeSet::new();
    };
    let p = Path::new(path);
    let (dir, pattern) = if p.is_dir() {
        (path.to_string(), String::new())
    } else {
        let dir = p
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (dir, name)
    };
    let dir = dir.trim_end_matches('/').to_string();
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "/" } else { &dir }) else {
        return BTreeSet::new();
    };
    let active = active_under(xmls, &dir);
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| matches(n, &pattern))
        .map(|n| format!("{dir}/{n}"))
        // A directory holding a used file is in use too.
        .filter(|p| {
            !active.iter().any(|a| {
                a == p
                    || a.strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect()
}

/// Per storage URL, the volume paths found unused.
pub type Inactive = BTreeMap<String, BTreeSet<String>>;

/// One sync round: returns what was unused in this round and the last one
/// (per storage URL, only non-empty), and the state for the next round.
pub fn sync(
    hv: &dyn Hypervisor,
    urls: &[String],
    last: &Inactive,
) -> Result<(BTreeMap<String, Vec<String>>, Inactive), VmError> {
    let mut xmls = Vec::new();
    for d in hv.list()? {
        if let Ok(x) = hv.xml(&d.name, false) {
            xmls.push(x);
        }
    }
    let mut now = BTreeMap::new();
    let mut report = BTreeMap::new();
    for url in urls {
        let cur = inactive_now(url, &xmls);
        if let Some(prev) = last.get(url) {
            let twice: Vec<String> = cur.intersection(prev).cloned().collect();
            if !twice.is_empty() {
                report.insert(url.clone(), twice);
            }
        }
        now.insert(url.clone(), cur);
    }
    Ok((report, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_paths_and_patterns() {
        let xmls =
            vec!["<source file='/ps/root-a.qcow2'/><source file='/ps/vol_b/x'/>".to_string()];
        let a = active_under(&xmls, "/ps/");
        assert!(a.contains("/ps/root-a.qcow2"), "{a:?}");
        assert!(a.contains("/ps/vol_b/x"), "{a:?}");
        assert!(matches("root-a.qcow2", "root"));
        assert!(matches("root-a.qcow2", "r*.qcow2"));
        assert!(!matches("data.raw", "r*.qcow2"));
        assert!(matches("anything", ""));
    }
}
