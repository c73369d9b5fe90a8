//! The error for a key the description does not have: where it is (the
//! line, the entry) and the closest key that place has.

use super::{RouterSpec, SpecError};

/// `path:LINE` when the unknown key occurs on exactly one line of `text`
/// (as a TOML key or table header, or a JSON object key), else `path`.
pub(super) fn with_line(path: &str, text: &str, dotted: &str, json: bool) -> String {
    let key = dotted.rsplit('.').next().unwrap_or_default();
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            if json {
                l.contains(&format!("\"{key}\""))
            } else {
                let name = l.trim_start_matches('[').trim_start();
                name.strip_prefix(key).is_some_and(|rest| {
                    let rest = rest.trim_start();
                    rest.starts_with('=') || rest.starts_with(']') || rest.starts_with('.')
                })
            }
        })
        .map(|(i, _)| i + 1)
        .collect();
    match lines.as_slice() {
        [n] => format!("{path}:{n}"),
        _ => path.to_string(),
    }
}

/// The error for the ignored key at `dotted` (serde_ignored's path,
/// `portForwards.0.privateIP`), with the closest key the place has.
pub(super) fn unknown_key(spec: &RouterSpec, dotted: &str, path: &str) -> SpecError {
    // `?` is serde_ignored's step into an `Option`'s `Some`.
    let mut parts: Vec<&str> = dotted.split('.').filter(|p| *p != "?").collect();
    let key = parts.pop().unwrap_or_default().to_string();
    let mut at = String::new();
    for p in &parts {
        if p.parse::<usize>().is_ok() {
            at.push_str(&format!("[{p}]"));
        } else {
            if !at.is_empty() {
                at.push('.');
            }
            at.push_str(p);
        }
    }
    // The keys of that place are those of the parsed value there (every
    // field serialises, defaults included, once the fields skipped when
    // empty are filled).
    let mut here = serde_json::to_value(every_field_written(spec)).unwrap_or_default();
    for p in &parts {
        here = match p.parse::<usize>() {
            Ok(i) => here.get(i).cloned().unwrap_or_default(),
            Err(_) => here.get(*p).cloned().unwrap_or_default(),
        };
    }
    let known: Vec<String> = here
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let hint = known
        .iter()
        .map(|k| (edit_distance(&key.to_lowercase(), &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_else(|| {
            if known.is_empty() {
                String::new()
            } else {
                format!(" (keys there: {})", known.join(", "))
            }
        });
    SpecError::Unknown {
        path: path.to_string(),
        key,
        at: if at.is_empty() {
            "at the top level".into()
        } else {
            format!("in {at}")
        },
        hint,
    }
}

/// The description with the fields common::vr skips on serialise when
/// empty (those the node may leave null) set, so that they count as keys
/// of their place.
fn every_field_written(spec: &RouterSpec) -> RouterSpec {
    let mut spec = spec.clone();
    let fill = |s: &mut String| {
        if s.is_empty() {
            s.push('?');
        }
    };
    for v in &mut spec.vips {
        fill(&mut v.ip);
        fill(&mut v.netmask);
    }
    for d in spec.dhcp_servers.iter_mut().flat_map(|s| &mut s.dhcp_infos) {
        fill(&mut d.vr_nic_mac);
        if d.dns.is_empty() {
            d.dns.push(String::new());
        }
    }
    spec
}

/// Levenshtein distance, for the "did you mean" of an unknown key.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
