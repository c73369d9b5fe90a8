//! The bodies and headers vrctl sends, against what the management node's
//! Java classes send (zstackio/zstack 5a29293bd5). One test per family: the
//! bootstrap info (`ApplianceVmFacadeImpl.prepareBootstrapInformation` and
//! `VyosVmBaseFactory.applianceVmPrepareBootstrapInfo`), `/init`
//! (`VyosConnectFlow`), the router commands (`VirtualRouterCommands`), the
//! VM commands (`KVMAgentCommands`, `KVMHost`), and the headers
//! (`RESTFacadeImpl`, `KVMHost.Http`). When the conformance fixtures of the
//! node's request bodies exist (`conformance/vr`, `conformance/kvm`), the
//! field names vrctl sends must be among theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use vrctl::client::{CallbackReceiver, Client, body};
use vrctl::host;
use vrctl::lab::{Names, router_spec};
use vrctl::router::{bootstrap_info, start_cmd};
use vrctl::spec::RouterSpec;

fn lab_spec() -> RouterSpec {
    router_spec(&Names::new("vrbodies"), Path::new("/images"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Gson never writes a null.
fn assert_no_nulls(v: &Value, at: &str) {
    match v {
        Value::Null => panic!("{at} is null (Gson leaves nulls out)"),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| assert_no_nulls(v, &format!("{at}.{k}"))),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| assert_no_nulls(v, &format!("{at}[{i}]"))),
        _ => {}
    }
}

fn command(spec: &RouterSpec, path: &str) -> Value {
    spec.commands()
        .into_iter()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .1
}

#[test]
fn bootstrap_info_is_the_vrouter_document_of_the_java_classes() {
    let spec = lab_spec();
    let body = body(&bootstrap_info(
        &spec,
        spec.vm.as_ref().unwrap(),
        &Default::default(),
    ));
    assert_no_nulls(&body, "setbootstrapinfo");
    assert_eq!(
        body["bootStrapInfoTimeout"], 300,
        "applianceVm.bootstrapinfo.timeout"
    );
    let info = &body["info"];
    for (k, want) in [
        ("applianceVmSubType", json!("vrouter")),
        ("uuid", json!(spec.uuid)),
        ("managementNodeIp", json!("10.1.0.10")),
        ("managementNodeCidr", json!("10.1.0.0/24")),
        ("sshPort", json!(22)),
        ("vyosPassword", json!("vrouter12#")),
        ("EnableVyosCmd", json!(true)),
        ("ConfigTcForVipQos", json!(true)),
        ("abnormalFileMaxSize", json!(100)),
    ] {
        assert_eq!(info[k], want, "info.{k}");
    }
    assert!(info.get("publicKey").is_some(), "publicKey");
    // SkipVyosIptables is only put when the private L3 says so (default false).
    assert!(info.get("SkipVyosIptables").is_none());
    // ApplianceVmNicTO: eth0 the management NIC, eth1 the default-route
    // NIC, then the rest; its fields only.
    let nic_fields: BTreeSet<String> = [
        "ip",
        "netmask",
        "gateway",
        "mac",
        "deviceName",
        "metaData",
        "isDefaultRoute",
        "category",
        "l2type",
        "vni",
        "physicalInterface",
        "mtu",
        "ip6",
        "prefixLength",
        "gateway6",
        "addressMode",
    ]
    .map(String::from)
    .into();
    let mgmt = &info["managementNic"];
    assert_eq!(mgmt["deviceName"], "eth0");
    assert_eq!(mgmt["isDefaultRoute"], false);
    assert_eq!(mgmt["ip"], "10.0.0.25");
    let extra = info["additionalNics"].as_array().unwrap();
    assert_eq!(extra[0]["deviceName"], "eth1");
    assert_eq!(extra[0]["isDefaultRoute"], true);
    assert_eq!(extra[0]["category"], "Public");
    assert_eq!(extra[1]["deviceName"], "eth2");
    assert_eq!(extra[1]["isDefaultRoute"], false);
    for n in std::iter::once(mgmt).chain(extra) {
        let k = keys(n);
        assert!(k.is_subset(&nic_fields), "not ApplianceVmNicTO: {k:?}");
        assert!(k.contains("isDefaultRoute"), "a boolean is always written");
    }
}

#[test]
fn init_carries_what_vyos_connect_flow_sets() {
    let spec = lab_spec();
    let init = command(&spec, "/init");
    assert_eq!(
        keys(&init),
        [
            "logLevel",
            "mgtCidr",
            "parms",
            "restartDnsmasqAfterNumberOfSIGUSER1",
            "timeServers",
            "uuid"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(init["mgtCidr"], "10.1.0.0/24");
    assert_eq!(init["restartDnsmasqAfterNumberOfSIGUSER1"], 0);
    assert_eq!(init["logLevel"], "info");
    // The router has a load balancer: the port range goes too.
    assert_eq!(init["parms"]["ipv4LocalPortRange"], "0-0");
}

#[test]
fn router_commands_have_the_java_classes_fields() {
    let spec = lab_spec();
    for (path, body) in spec.commands() {
        assert_no_nulls(&body, path);
    }
    // VirtualRouterCommands.NicInfo has no deviceName; the attach-NIC body
    // has no firewallDefaultAction, which goes by /configurenicdefaultaction.
    let nics = command(&spec, "/configurenic");
    for n in nics["nics"].as_array().unwrap() {
        assert!(n.get("deviceName").is_none(), "{n}");
        assert!(n.get("firewallDefaultAction").is_none(), "{n}");
        assert!(n.get("isDefaultRoute").is_some(), "{n}");
    }
    let actions = command(&spec, "/configurenicdefaultaction");
    assert_eq!(
        actions["nics"],
        json!([{"ip": "192.168.100.1", "isDefaultRoute": false, "gateway": "192.168.100.1",
                "mac": "52:54:00:7e:00:02", "netmask": "255.255.255.0",
                "firewallDefaultAction": "reject"}])
    );
    // VyosDhcpBackend's refresh entries: ip, mac, hostname, isDefaultL3Network.
    let dhcp = command(&spec, "/refreshDhcpServer");
    let entry = &dhcp["dhcpServers"][0]["dhcpInfos"][0];
    assert_eq!(
        keys(entry),
        ["hostname", "ip", "isDefaultL3Network", "mac"]
            .map(String::from)
            .into(),
        "{entry}"
    );
    // VipTO: int prefixLength and boolean isSystem always written.
    let vips = command(&spec, "/createvip");
    assert_eq!(vips["syncVip"], true);
    for v in vips["vips"].as_array().unwrap() {
        assert_eq!(v["prefixLength"], 0, "{v}");
        assert_eq!(v["isSystem"], false, "{v}");
    }
    assert_eq!(vips["nicIps"].as_array().unwrap().len(), 3);
    let snat = command(&spec, "/syncsnat");
    assert_eq!(snat["enable"], true);
    // RefreshLbCmd.enableHaproxyLog (vyos.enable.haproxy.log, true); LbTO's
    // boolean enableFullLog.
    let lb = command(&spec, "/lb/refresh");
    assert_eq!(lb["enableHaproxyLog"], true);
    assert_eq!(lb["lbs"][0]["enableFullLog"], false);
    // No certificates: no /certificates/create (refreshCertsAndListeners).
    assert!(
        spec.commands()
            .iter()
            .all(|(p, _)| *p != "/certificates/create")
    );
}

#[test]
fn start_vm_carries_every_primitive_of_start_vm_cmd() {
    let spec = lab_spec();
    let vm = spec.vm.clone().unwrap();
    let body = body(&start_cmd(
        &spec,
        &vm,
        Path::new("/disks/vr.qcow2"),
        "http://10.0.0.21:7070",
    ));
    assert_no_nulls(&body, "/vm/start");
    // KVMHost.startVm: five minutes, the node's video default, the host's
    // management IP, the appliance VM's channel.
    assert_eq!(body["timeout"], 300);
    assert_eq!(body["videoType"], "virtio");
    // vm.bootMenu off for the router: no splash timeout then.
    assert_eq!(body["useBootMenu"], false);
    assert!(body.get("bootMenuSplashTimeout").is_none());
    assert_eq!(body["hostManagementIp"], "10.0.0.21");
    assert_eq!(body["isApplianceVm"], true);
    assert_eq!(body["addons"]["channel"]["targetName"], "applianceVm.vport");
    for k in [
        "vmInternalId",
        "maxMemory",
        "maxVcpuNum",
        "cpuSpeed",
        "socketNum",
        "cpuOnSocket",
        "threadsPerCore",
        "instanceOfferingOnlineChange",
        "useNuma",
        "usbRedirect",
        "enableSecurityElement",
        "createPaused",
        "kvmHiddenState",
        "vmPortOff",
        "emulateHyperV",
        "hypervClock",
        "suspendToRam",
        "suspendToDisk",
        "additionalQmp",
        "secureBoot",
        "fromForeignHypervisor",
        "useHugePage",
        "coloPrimary",
        "coloSecondary",
        "consoleLogToFile",
        "acpi",
        "x2apic",
        "cpuHypervisorFeature",
        "useColoBinary",
        "dataVolumes",
        "cacheVolumes",
        "bootMode",
        "imageArchitecture",
    ] {
        assert!(body.get(k).is_some(), "StartVmCmd.{k} missing");
    }
    assert_eq!(body["nics"].as_array().unwrap().len(), 3);
    for n in body["nics"].as_array().unwrap() {
        for k in ["deviceId", "bootOrder", "useVirtio", "cleanTraffic", "uuid"] {
            assert!(n.get(k).is_some(), "NicTO.{k} missing: {n}");
        }
    }
}

#[tokio::test]
async fn headers_are_rest_facade_impls() {
    let rx = Arc::new(
        CallbackReceiver::start("127.0.0.1:0".parse().unwrap(), "127.0.0.1".parse().unwrap())
            .await
            .unwrap(),
    );
    assert!(
        rx.url().ends_with("/zstack/asyncrest/callback"),
        "{}",
        rx.url()
    );
    let header = |r: &vrctl::client::Request, k: &str| {
        r.headers
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
    };
    // asyncJson: taskuuid, callbackurl, the JSON content type with charset.
    let vr = Client::new("http://10.0.0.25:7272", Some(rx.clone()));
    let r = vr.request(&json!({"uuid": "u", "gone": null}), Some("t1"));
    assert_eq!(header(&r, "taskuuid").as_deref(), Some("t1"));
    assert_eq!(header(&r, "callbackurl").as_deref(), Some(rx.url()));
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.body, json!({"uuid": "u"}), "Gson leaves nulls out");
    // A router command carries no kvmHostAddons.
    assert!(r.body.get("kvmHostAddons").is_none());
    // KVMHost.Http: kvmHostAddons in every async body, X-Resource-UUID.
    let host = Client::host("http://10.0.0.21:7070", Some(rx.clone()), "h1");
    let r = host.request(&json!({"uuid": "vm"}), Some("t2"));
    assert_eq!(r.body["kvmHostAddons"], json!({}));
    assert_eq!(header(&r, "x-resource-uuid").as_deref(), Some("h1"));
    // syncJson: plain application/json, no task headers.
    let sync = Client::host("http://10.0.0.21:7070", None, "h1");
    let r = sync.request(&json!({"hostUuid": "h1"}), None);
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/json")
    );
    assert!(header(&r, "taskuuid").is_none());
    assert!(r.body.get("kvmHostAddons").is_none());
}

/// Field names of every object in a JSON document, by key path without
/// indexes, with the JSON type of the value.
fn field_names(v: &Value, at: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let p = format!("{at}.{k}");
                out.insert(p.clone(), kind(v));
                field_names(v, &p, out);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|v| field_names(v, &format!("{at}[]"), out)),
        _ => {}
    }
}

/// When the node's request fixtures exist, each body vrctl sends for the
/// same path uses only field names the node's body has too (opaque maps,
/// our extensions and the primitives a fixture leaves out aside), each of
/// the node's JSON type. Without fixtures the test says so and passes.
#[test]
fn bodies_use_the_field_names_of_the_conformance_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let spec = lab_spec();
    let vm = spec.vm.clone().unwrap();
    let mut ours: Vec<(String, Value)> = spec
        .commands()
        .into_iter()
        .map(|(p, b)| (format!("vr{p}"), b))
        .collect();
    ours.push((
        "kvm/appliancevm/setbootstrapinfo".into(),
        body(&bootstrap_info(&spec, &vm, &Default::default())),
    ));
    ours.push((
        "kvm/vm/start".into(),
        body(&start_cmd(
            &spec,
            &vm,
            Path::new("/d"),
            "http://10.0.0.21:7070",
        )),
    ));
    for (p, b) in [
        (
            "host/connect",
            body(&host::connect_cmd(
                "h1",
                &host::send_command_url("10.1.0.10"),
            )),
        ),
        (
            "network/checkphysicalnetworkinterface",
            body(&host::check_interface_cmd("eth0")),
        ),
        (
            "network/l2novlan/createbridge",
            body(&host::create_bridge_cmd(
                "eth0", "br_eth0", "a1", 1500, None,
            )),
        ),
        (
            "network/l2vlan/createbridge",
            body(&host::create_bridge_cmd(
                "eth0",
                "br_eth0_10",
                "a1",
                1500,
                Some(10),
            )),
        ),
        (
            "network/l2novlan/checkbridge",
            body(&host::check_bridge_cmd("eth0", "br_eth0", None)),
        ),
        (
            "network/l2novlan/deletebridge",
            body(&host::delete_bridge_cmd("eth0", "br_eth0", "a1", None)),
        ),
        (
            "network/bridge/addif",
            body(&host::add_interface_cmd("tap0", "br_eth1")),
        ),
        ("vm/stop", body(&vrctl::router::stop_cmd(&spec, 30))),
        ("vm/reboot", body(&host::reboot_vm_cmd(&spec.uuid, 10))),
        ("vm/destroy", body(&vrctl::router::destroy_cmd(&spec))),
        ("vm/vmsync", body(&host::vm_sync_cmd())),
    ] {
        ours.push((format!("kvm/{p}"), b));
    }
    let mut compared = 0;
    for (path, body) in ours {
        let Some(fixture) = find_fixture(&root, &path) else {
            continue;
        };
        let mut theirs = BTreeMap::new();
        field_names(&fixture, "", &mut theirs);
        let mut mine = BTreeMap::new();
        field_names(&body, "", &mut mine);
        let mistyped: Vec<_> = mine
            .iter()
            .filter(|(k, t)| theirs.get(*k).is_some_and(|u| u != *t))
            .map(|(k, t)| format!("{k}: {t}, the node's is {}", theirs[k]))
            .collect();
        assert!(mistyped.is_empty(), "{path}: {mistyped:?}");
        let extra: Vec<_> = mine
            .keys()
            .filter(|k| !theirs.contains_key(*k))
            // Opaque maps and our extensions.
            .filter(|k| !gson_primitives(&path).contains(&k.as_str()))
            .filter(|k| {
                !k.starts_with(".info.")
                    && !k.starts_with(".addons.directKernelBoot")
                    && !k.starts_with(".certs.")
                    && !k.starts_with(".parms.")
            })
            .collect();
        assert!(
            extra.is_empty(),
            "{path}: fields the node's body does not have: {extra:?}"
        );
        compared += 1;
    }
    eprintln!("compared {compared} bodies with the conformance fixtures");
    if root.join("vr").is_dir() {
        assert!(compared >= 20, "only {compared} bodies had a fixture");
    }
}

/// Fields `KVMHost.startVm` always sets (zstackio/zstack 5a29293bd5:
/// `setSocketNum`, `setCpuOnSocket`, `setSoundType`), so Gson writes them,
/// that a fixture may leave out.
fn gson_primitives(path: &str) -> &'static [&'static str] {
    match path {
        // `Integer`s and the sound model `KVMHost.startVm` always sets.
        "kvm/vm/start" => &[".cpuOnSocket", ".socketNum", ".soundType"],
        _ => &[],
    }
}

/// The request fixture of `kind/path` (e.g. `vr/init`), if there is one:
/// the fixture under `conformance/<kind>` whose `path` is the command's and
/// that names no special `case`.
fn find_fixture(root: &Path, path: &str) -> Option<Value> {
    let (kind, cmd) = path.split_once('/')?;
    let cmd = format!("/{cmd}");
    let mut found = None;
    for e in std::fs::read_dir(root.join(kind)).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v["path"] == cmd.as_str() && v.get("case").is_none() {
            found = v.get("request").cloned();
        }
    }
    found
}

/// With credentials, the bootstrap info carries `agentTls` and
/// `agentTokens` as the agent reads them (`common::vr::BootstrapInfo`),
/// and nothing of the kind without.
#[test]
fn bootstrap_info_carries_the_routers_credentials_as_the_agent_reads_them() {
    let spec = lab_spec();
    let vm = spec.vm.clone().unwrap();
    let plain = body(&bootstrap_info(&spec, &vm, &Default::default()));
    assert!(plain["info"].get("agentTls").is_none());
    assert!(plain["info"].get("agentTokens").is_none());
    let ca = common::pki::Authority::create("bodies CA").unwrap();
    let issued = ca
        .issue_server("vr", &["10.0.0.25".parse().unwrap()], &[], 30)
        .unwrap();
    let auth = vrctl::router_tls::AgentAuth {
        tls: Some(common::tls::ServerPem {
            certificate: issued.certificate.clone(),
            private_key: issued.private_key.clone(),
            client_ca: ca.certificate_pem().to_string(),
        }),
        tokens: vec!["t".repeat(40)],
    };
    let body = body(&bootstrap_info(&spec, &vm, &auth));
    let info: common::vr::BootstrapInfo = serde_json::from_value(body["info"].clone()).unwrap();
    let tls = info.agent_tls.expect("agentTls");
    assert_eq!(tls.certificate, issued.certificate);
    assert_eq!(tls.private_key, issued.private_key);
    assert_eq!(tls.client_ca, ca.certificate_pem());
    assert_eq!(info.agent_tokens, Some(vec!["t".repeat(40)]));
}
