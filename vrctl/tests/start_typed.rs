//! The `/vm/start` and `/appliancevm/setbootstrapinfo` bodies vrctl builds
//! from typed values (`common::kvm::vm::StartVmCmd`,
//! `common::vr::BootstrapInfo<ApplianceVmNicTo>`), against the bodies the
//! earlier hand-built `json!` versions sent (`tests/golden/start-typed/`,
//! captured from them before the change) for the lab's router and the
//! routers of the other tests, and the sent `/vm/start` field set against
//! the node's (`conformance/kvm/vm-start.json`, from `StartVmCmd`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::kvm::vm::StartVmCmd;

use serde_json::{Value, json};
use vrctl::client::{CallbackReceiver, Client, body};
use vrctl::lab::{Names, router_spec};
use vrctl::router::{bootstrap_info, start_cmd};
use vrctl::router_tls::AgentAuth;
use vrctl::spec::RouterSpec;

const HOST: &str = "http://10.0.0.21:7070";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/start-typed")
}

fn spec(v: Value) -> RouterSpec {
    serde_json::from_value(v).unwrap()
}

/// Fake credentials: only their placement in the info matters here.
fn auth() -> AgentAuth {
    AgentAuth {
        tls: Some(common::tls::ServerPem {
            certificate: "CERT".into(),
            private_key: "KEY".into(),
            client_ca: "CA".into(),
        }),
        tokens: vec!["t".repeat(40)],
    }
}

/// The routers: the lab's, `tests/diagnose.rs`' (one NIC, no kernel),
/// `tests/apply.rs`' (no NIC, no name), and one with a default-route
/// management NIC, a public key, no initrd or cmdline, no MTU.
fn cases() -> Vec<(&'static str, RouterSpec, AgentAuth)> {
    let lab = router_spec(&Names::new("vrbodies"), Path::new("/images"));
    let diagnose = spec(json!({
        "uuid": "d1a6000000000000000000000000f001",
        "nics": [{"ip": "10.0.0.25", "mac": "52:54:00:d1:00:01", "netmask": "255.255.255.0",
                  "category": "Management"}],
        "vm": {"hosts": [HOST], "cpuNum": 1, "memoryMb": 64u64 << 20,
               "image": "/s/img.qcow2", "diskDir": "/s/disks", "socketDir": "/s/sock",
               "bridges": {"52:54:00:d1:00:01": "br_eth0"}}
    }));
    let apply = spec(json!({
        "uuid": "c0e50000000000000000000000000001",
        "vm": {"hosts": [HOST], "image": "/x", "diskDir": "/x", "socketDir": "/x"}
    }));
    let mgmt_default = spec(json!({
        "uuid": "aa11bb22cc33dd44ee55ff6600778899",
        "managementNodeCidr": "10.1.0.0/24",
        "nics": [
            {"ip": "10.0.0.30", "mac": "52:54:00:aa:00:01", "netmask": "255.255.255.0",
             "gateway": "10.0.0.1", "isDefaultRoute": true, "category": "Management",
             "l2type": "L2VlanNetwork", "vni": 100, "physicalInterface": "eth0"},
            {"ip": "192.168.7.1", "mac": "52:54:00:aa:00:02", "netmask": "255.255.255.0",
             "category": "Private", "mtu": 1450, "ip6": "fd00::1", "prefixLength": 64,
             "gateway6": "fd00::1", "addressMode": "SLAAC",
             "firewallDefaultAction": "accept", "state": "enable"}],
        "vm": {"hosts": [HOST], "name": "vr-two", "cpuNum": 2, "memoryMb": 100,
               "image": "/i/vr.qcow2", "diskDir": "/d", "socketDir": "/sock/",
               "kernel": "/i/vmlinuz", "publicKey": "ssh-ed25519 AAAA node",
               "managementNodeIp": "10.1.0.10",
               "bridges": {"52:54:00:aa:00:01": "br_eth0_100", "52:54:00:aa:00:02": "br_eth1"}}
    }));
    vec![
        ("lab", lab.clone(), AgentAuth::default()),
        ("lab-credentials", lab, auth()),
        ("diagnose", diagnose, AgentAuth::default()),
        ("apply", apply, AgentAuth::default()),
        ("mgmt-default", mgmt_default, auth()),
    ]
}

/// The two bodies of one case, as vrctl writes them (Gson: no nulls).
fn bodies(spec: &RouterSpec, auth: &AgentAuth) -> Value {
    let vm = spec.vm.clone().unwrap();
    let disk = vrctl::router::disk_path(spec, &vm);
    json!({
        "vmStart": body(&start_cmd(spec, &vm, &disk, HOST)),
        "setBootstrapInfo": body(&bootstrap_info(spec, &vm, auth)),
    })
}

/// Where `a` and `b` differ, by JSON path.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in keys(a).union(&keys(b)) {
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => differences(v, w, &format!("{at}.{k}"), out),
                    (v, w) => out.push(format!("{at}.{k}: {v:?} vs {w:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, &format!("{at}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

/// The typed builders write, for every router, exactly the bodies the
/// `json!` builders wrote (captured in `tests/golden/start-typed/`),
/// values and JSON types alike.
#[test]
fn typed_bodies_are_the_json_builders_bodies() {
    for (name, spec, auth) in cases() {
        let path = golden_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let old: Value = serde_json::from_str(&text).unwrap();
        let mut diff = vec![];
        differences(&old, &bodies(&spec, &auth), "", &mut diff);
        assert!(diff.is_empty(), "{name}: old vs typed: {diff:#?}");
    }
}

/// The field paths of a document (indexes dropped: `.nics[].mac`).
fn paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = format!("{at}.{k}");
                out.insert(p.clone());
                paths(v, &p, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| paths(v, &format!("{at}[]"), out)),
        _ => {}
    }
}

/// Fields of the node's `/vm/start` (the fixture) that vrctl does not
/// send, each for a reason: the node fills them from its database or
/// per-host facts a router description does not have, and kvm-agent reads
/// them as absent.
const NODE_ONLY: &[&str] = &[
    // Accounting, SMBIOS and placement facts of the node's inventory.
    ".accountUuid",
    ".systemSerialNumber",
    ".chassisAssetTag",
    ".priorityConfigStruct",
    ".priorityConfigStruct.vmUuid",
    ".priorityConfigStruct.cpuShares",
    ".priorityConfigStruct.oomScoreAdj",
    ".reservedMemory",
    ".MemAccess",
    ".predefinedPciBridgeNum",
    // vm.bootMenu is off for the router: no splash (see start_cmd).
    ".bootMenuSplashTimeout",
    // VDI settings of a desktop VM; a router has none.
    ".VDIMonitorNumber",
    ".spiceStreamingMode",
    ".vendorId",
    ".oemStrings",
    ".cdRoms",
    // A first start has no balloon address to keep.
    ".memBalloon",
    ".memBalloon.resourceUuid",
    // The volume's database facts.
    ".rootVolume.type",
    ".rootVolume.wwn",
    ".rootVolume.primaryStorageType",
    // The NIC's database facts: L3 metadata, L2 uuid, resource uuid, state.
    ".nics[].metaData",
    ".nics[].l2NetworkUuid",
    ".nics[].resourceUuid",
    ".nics[].state",
];

/// The `/vm/start` body vrctl sends (the client adds `kvmHostAddons`, as
/// `KVMHost.Http` does) has the node's field set, recursively (`rootVolume`,
/// `nics[]`, `addons`): every field it sends is one the node's `StartVmCmd`
/// has (so a name Java lacks fails), and every field of the node's it does
/// not send is named in [`NODE_ONLY`]. Our extension
/// `addons.directKernelBoot` is the one addition.
#[tokio::test]
async fn vm_start_field_set_is_the_nodes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/kvm/vm-start.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let mut node = BTreeSet::new();
    paths(&fixture["request"], "", &mut node);
    let rx = Arc::new(
        CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), "127.0.0.1".parse().unwrap())
            .await
            .unwrap(),
    );
    let client = Client::host(HOST, Some(rx), "h1");
    // What some router sends: a NIC without a physicalInterface leaves it out.
    let mut sent_by_some = BTreeSet::new();
    for (name, spec, _) in cases() {
        let vm = spec.vm.clone().unwrap();
        let cmd = body(&start_cmd(&spec, &vm, Path::new("/d/vr.qcow2"), HOST));
        let sent = client.request(&cmd, Some("t1")).body;
        let mut ours = BTreeSet::new();
        paths(&sent, "", &mut ours);
        let extra: Vec<_> = ours
            .iter()
            .filter(|p| !node.contains(*p) && !p.starts_with(".addons.directKernelBoot"))
            .collect();
        assert!(extra.is_empty(), "{name}: not in StartVmCmd: {extra:?}");
        sent_by_some.extend(ours);
    }
    let missing: Vec<_> = node
        .iter()
        .filter(|p| !sent_by_some.contains(*p) && !NODE_ONLY.contains(&p.as_str()))
        .collect();
    assert!(missing.is_empty(), "the node's, never sent: {missing:?}");
    // Each NODE_ONLY entry is a field of the node's (no stale names).
    for p in NODE_ONLY {
        assert!(node.contains(*p), "{p} is not in the fixture");
    }
}

/// kvm-agent decodes the body as the node's route does (exact keys), and
/// what it decodes is what was sent: no field is lost or renamed.
#[test]
fn kvm_agent_decodes_the_sent_vm_start_body() {
    for (name, spec, _) in cases() {
        let vm = spec.vm.clone().unwrap();
        let sent = body(&start_cmd(&spec, &vm, Path::new("/d/vr.qcow2"), HOST));
        let bytes = sent.to_string().into_bytes();
        let cmd: StartVmCmd =
            common::agent::decode_exact(&bytes).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let mut diff = vec![];
        differences(&sent, &body(&cmd), "", &mut diff);
        assert!(diff.is_empty(), "{name}: sent vs decoded: {diff:#?}");
    }
}

/// The info the router reads (`common::vr::BootstrapInfo`, its NICs as
/// `NicInfo`) has what the controller wrote, the capitalised keys included,
/// and decoding it as written loses no key.
#[test]
fn the_router_reads_the_typed_info() {
    for (name, spec, auth) in cases() {
        let vm = spec.vm.clone().unwrap();
        let sent = Value::Object(bootstrap_info(&spec, &vm, &auth).info);
        let read: common::vr::BootstrapInfo = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(
            read.management_nic.device_name.as_deref(),
            Some("eth0"),
            "{name}"
        );
        assert_eq!(read.enable_vyos_cmd, Some(true), "{name}");
        assert_eq!(read.config_tc_for_vip_qos, Some(true), "{name}");
        assert_eq!(
            read.additional_nics.len(),
            spec.nics.len().saturating_sub(1)
        );
        let written: common::vr::BootstrapInfo<common::vr::ApplianceVmNicTo> =
            serde_json::from_value(sent.clone()).unwrap();
        let mut diff = vec![];
        differences(&sent, &body(&written), "", &mut diff);
        assert!(diff.is_empty(), "{name}: {diff:#?}");
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}
