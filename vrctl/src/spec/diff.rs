//! What applying a description would change on a router, section by
//! section (`vrctl vr diff`).

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::Serialize;
use vr_model::Model;

/// One line of a diff: `+` to add, `-` to remove, `~` to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub op: char,
    pub section: &'static str,
    pub key: String,
}

fn section<K: Display + Ord, V: PartialEq>(
    out: &mut Vec<Change>,
    name: &'static str,
    have: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) {
    for (k, v) in want {
        match have.get(k) {
            None => out.push(Change {
                op: '+',
                section: name,
                key: k.to_string(),
            }),
            Some(h) if h != v => out.push(Change {
                op: '~',
                section: name,
                key: k.to_string(),
            }),
            _ => {}
        }
    }
    for k in have.keys().filter(|k| !want.contains_key(k)) {
        out.push(Change {
            op: '-',
            section: name,
            key: k.to_string(),
        });
    }
}

/// What applying `want` would change on a router that holds `have`.
/// VIPs are only added by the protocol (`/createvip`), never removed by a
/// resync, so VIPs the spec lacks are not listed as removals.
pub fn diff(have: &Model, want: &Model) -> Vec<Change> {
    let mut out = vec![];
    section(&mut out, "nic", &have.nics, &want.nics);
    section(&mut out, "snat", &have.snats, &want.snats);
    let mut vips = vec![];
    section(&mut vips, "vip", &have.vips, &want.vips);
    out.extend(vips.into_iter().filter(|c| c.op != '-'));
    section(
        &mut out,
        "port_forward",
        &have.port_forwards,
        &want.port_forwards,
    );
    section(&mut out, "eip", &have.eips, &want.eips);
    section(
        &mut out,
        "lb_listener",
        &have.lb.listeners,
        &want.lb.listeners,
    );
    section(
        &mut out,
        "dhcp_server",
        &have.dhcp.servers,
        &want.dhcp.servers,
    );
    let key = |m: &Model| -> BTreeMap<String, _> {
        m.dhcp
            .entries
            .iter()
            .map(|((nic, mac), e)| (format!("{nic}/{mac}"), e.clone()))
            .collect()
    };
    section(&mut out, "dhcp_entry", &key(have), &key(want));
    if have.dhcp.dns != want.dhcp.dns {
        out.push(Change {
            op: '~',
            section: "dns",
            key: "upstreams".into(),
        });
    }
    out
}
