//! The router commands' bodies, built from common::vr's typed commands
//! (issue 16), against (1) the bodies the hand-written `json!` builders
//! sent, captured as golden files before they went (`tests/golden/*.commands.json`,
//! as the client sends them: nulls left out), and (2) the fields of the
//! node's Java classes as the conformance fixtures show them
//! (`conformance/vr`): a field the types gain that the Java class lacks,
//! or one they lose, fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use vrctl::lab::{Names, router_spec};
use vrctl::spec::RouterSpec;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The description that sets every field of every entry (its first entry
/// of each list), plus a few entries that leave fields out.
fn full_spec() -> RouterSpec {
    RouterSpec::load(&golden_dir().join("full-spec.json")).unwrap()
}

fn commands_json(spec: &RouterSpec) -> Value {
    Value::Array(
        spec.commands()
            .into_iter()
            .map(|(p, b)| Value::Array(vec![p.into(), b]))
            .collect(),
    )
}

/// No deliberate difference: the typed bodies are the hand-written ones,
/// command for command and field for field.
#[test]
fn typed_bodies_are_the_hand_written_ones() {
    let specs = [
        (
            "lab",
            router_spec(&Names::new("vrbodies"), Path::new("/images")),
        ),
        ("full", full_spec()),
        (
            "sparse",
            RouterSpec::load(&golden_dir().join("sparse-spec.json")).unwrap(),
        ),
        (
            "unit",
            RouterSpec::load(&golden_dir().join("unit-spec.toml")).unwrap(),
        ),
    ];
    for (name, spec) in specs {
        let file = golden_dir().join(format!("{name}.commands.json"));
        let want: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let got = commands_json(&spec);
        let (want, got) = (want.as_array().unwrap(), got.as_array().unwrap());
        assert_eq!(got.len(), want.len(), "{name}: commands");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{name}: {}", w[0]);
        }
    }
}

/// The full description really sets every field: serialised (where every
/// field is written, a None as null), its first entry of each list has no
/// null and no empty list, so a field a common::vr type gains shows here
/// first (set it in `full-spec.json`; the fixture test then says whether
/// the node sends it).
#[test]
fn the_full_spec_sets_every_field() {
    fn walk(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(at.into()),
            Value::Array(a) if a.is_empty() => out.push(at.into()),
            Value::Array(a) => walk(&a[0], &format!("{at}[0]"), out),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, v)| walk(v, &format!("{at}.{k}"), out)),
            _ => {}
        }
    }
    let mut spec = serde_json::to_value(full_spec()).unwrap();
    // The VM part is not a wire type; only its `managementNodeIp` goes.
    spec.as_object_mut().unwrap().remove("vm");
    // Nor is the pair's (its `/enableVyosha` body is pinned field for
    // field by spec's `a_pair_half_is_paired_last...` and sent to real
    // agents by tests/pair.rs).
    spec.as_object_mut().unwrap().remove("ha");
    let mut unset = vec![];
    walk(&spec, "", &mut unset);
    assert!(unset.is_empty(), "full-spec.json leaves unset: {unset:?}");
}

/// Key paths of a body (`.nics[].ip`), with the maps of keys of the user's
/// choosing (`certs`, `parms`) as one field each.
fn key_paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = format!("{at}.{k}");
                out.insert(p.clone());
                if p != ".certs" && p != ".parms" {
                    key_paths(v, &p, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| key_paths(v, &format!("{at}[]"), out)),
        _ => {}
    }
}

/// Fields of the Java classes that no fixture of the path shows (the
/// node leaves them null there) but that a description may set, so vrctl
/// sends them; each is a field of the named class (zstackio/zstack
/// 5a29293bd5).
fn java_fields_no_fixture_shows(path: &str) -> &'static [&'static str] {
    match path {
        // VirtualRouterCommands.DhcpInfo: VyosDhcpBackend's refresh sets
        // only ip, mac, hostname and isDefaultL3Network.
        "/refreshDhcpServer" => &[
            ".dhcpServers[].dhcpInfos[].netmask",
            ".dhcpServers[].dhcpInfos[].gateway",
            ".dhcpServers[].dhcpInfos[].dns",
            ".dhcpServers[].dhcpInfos[].vrNicMac",
            ".dhcpServers[].dhcpInfos[].dnsDomain",
            ".dhcpServers[].dhcpInfos[].mtu",
        ],
        // VirtualRouterLoadBalancerBackend.LbTO: the fixture's listener is
        // IPv4, plain HTTP and without redirect rules (LbTO.RedirectRule).
        "/lb/refresh" => &[
            ".lbs[].vip6",
            ".lbs[].certificateUuid",
            ".lbs[].redirectRules[].redirectRuleUuid",
            ".lbs[].redirectRules[].aclUuid",
            ".lbs[].redirectRules[].redirectRule",
            ".lbs[].redirectRules[].serverGroupUuid",
        ],
        _ => &[],
    }
}

/// For each command vrctl sends, the fields of the full description's body
/// are exactly those of the node's bodies for the path (every fixture of
/// it, special cases included) and the Java fields listed above.
#[test]
fn each_body_has_exactly_the_fields_of_the_nodes_bodies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/vr");
    let mut theirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        // Files only (`ha/` holds the HA pair's).
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        if let (Some(p), Some(req)) = (v["path"].as_str(), v.get("request")) {
            key_paths(req, "", theirs.entry(p.to_string()).or_default());
        }
    }
    let spec = full_spec();
    let cmds = spec.commands();
    assert_eq!(cmds.len(), 11, "the full description sends every command");
    for (path, body) in cmds {
        let mut mine = BTreeSet::new();
        key_paths(&body, "", &mut mine);
        let mut want = theirs
            .get(path)
            .unwrap_or_else(|| panic!("{path}: no fixture in conformance/vr"))
            .clone();
        want.extend(
            java_fields_no_fixture_shows(path)
                .iter()
                .map(|s| s.to_string()),
        );
        let extra: Vec<_> = mine.difference(&want).collect();
        let missing: Vec<_> = want.difference(&mine).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{path}: not the node's fields; extra {extra:?}, missing {missing:?}"
        );
    }
}

/// The agent's decode type of each path (vr-agent's router) reads every
/// body of the full description back to the same body: nothing it would
/// drop, nothing of another type.
#[test]
fn the_agents_types_read_every_body_back() {
    use common::vr;
    fn back<T: serde::de::DeserializeOwned + serde::Serialize>(b: &Value) -> Value {
        vrctl::client::body(&serde_json::from_value::<T>(b.clone()).unwrap())
    }
    for (path, b) in full_spec().commands() {
        let again = match path {
            "/init" => back::<vr::InitCmd>(&b),
            "/configurenic" | "/configurenicdefaultaction" => back::<vr::NicsCmd>(&b),
            "/setdns" => back::<vr::DnsCmd>(&b),
            "/refreshDhcpServer" => back::<vr::DhcpServersCmd>(&b),
            "/syncsnat" => back::<vr::SyncSnatCmd>(&b),
            "/createvip" => back::<vr::CreateVipCmd>(&b),
            "/syncportforwarding" => back::<vr::PortForwardingCmd>(&b),
            "/synceip" => back::<vr::SyncEipCmd>(&b),
            "/certificates/create" => back::<vr::CertificatesCmd>(&b),
            "/lb/refresh" => back::<vr::LbCmd>(&b),
            p => panic!("{p}: no decode type named here"),
        };
        assert_eq!(again, b, "{path}");
    }
}
