//! The router VM's commands to its host, as the management node builds
//! them for an appliance VM: `/vm/start` (`StartVmCmd`), the NICs `/vm/stop`
//! and `/vm/destroy` carry, and the bootstrap info of
//! `/appliancevm/setbootstrapinfo`.

use std::path::Path;

use common::kvm::vm::{SetBootstrapInfoCmd, VmNicInventory};
use serde_json::{Value, json};

use crate::router_tls::AgentAuth;
use crate::spec::{RouterSpec, VmSpec};

/// The router's channel socket on its host.
pub fn socket_path(spec: &RouterSpec, vm: &VmSpec) -> String {
    format!(
        "{}/applianceVm.{}",
        vm.socket_dir.trim_end_matches('/'),
        spec.uuid
    )
}

/// The address in an agent URL (`http://10.0.0.21:7070` -> `10.0.0.21`).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split([':', '/']).next().unwrap_or("")
}

/// The `/vm/start` body for the router: `StartVmCmd` as `KVMHost.startVm`
/// fills it for an appliance VM (zstackio/zstack 5a29293bd5,
/// `plugin/kvm/.../KVMHost.java`, `KVMAgentCommands.StartVmCmd`), with the
/// node's global-config defaults (`conf/globalConfig/{vm,kvm}.xml`: video
/// `virtio`, sound `ich6`, cpu mode `none`, additional QMP on, timeout 5
/// minutes) and every primitive field, as Gson writes them. The boot menu
/// (`vm.bootMenu`, a per-VM resource config, on by default with a 3000 ms
/// splash) is off: a router booted straight into its kernel has nothing to
/// choose, and the splash would only delay every boot; the node then sends
/// no `bootMenuSplashTimeout`. `addons` carries the appliance VM's channel
/// (`ApplianceVmKvmBackend`) and, our extension, a direct kernel boot.
pub fn start_cmd(spec: &RouterSpec, vm: &VmSpec, disk: &Path, host: &str) -> Value {
    let nics: Vec<Value> = spec
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"mac": n.mac, "ips": n.ip.iter().collect::<Vec<_>>(),
                   "bridgeName": vm.bridges[&n.mac],
                   "physicalInterface": n.physical_interface,
                   "uuid": nic_uuid(spec, i),
                   "nicInternalName": format!("vr{}.{i}", &spec.uuid[..8]),
                   "deviceId": i, "useVirtio": true, "bootOrder": 0,
                   "mtu": n.mtu.unwrap_or(1500), "driverType": "virtio",
                   "vHostAddOn": {"queueNum": 1}, "type": "VNIC",
                   "cleanTraffic": false, "isolated": false})
        })
        .collect();
    let mut addons = json!({"channel": {"socketPath": socket_path(spec, vm),
                                        "targetName": "applianceVm.vport"}});
    if let Some(kernel) = &vm.kernel {
        addons["directKernelBoot"] = json!({"kernel": kernel, "initrd": vm.initrd,
            "cmdline": vm.cmdline.clone().unwrap_or_else(|| "root=/dev/vda rw console=ttyS0 quiet".into())});
    }
    let cpu = vm.cpu_num.max(1);
    let memory = vm.memory_mb.max(128) << 20;
    let root = format!("{}root", &spec.uuid[..8]);
    let mut cmd = json!({
        "vmInstanceUuid": spec.uuid, "vmInternalId": 1,
        "vmName": if vm.name.is_empty() { format!("vrouter.{}", spec.uuid) } else { vm.name.clone() },
        "imagePlatform": "Linux", "imageArchitecture": "x86_64",
        "memory": memory, "maxMemory": memory, "cpuNum": cpu, "maxVcpuNum": cpu, "cpuSpeed": 0,
        "socketNum": 1, "cpuOnSocket": cpu, "threadsPerCore": 1,
        "bootDev": ["hd"], "bootMode": "Legacy", "machineType": "pc",
        "useBootMenu": false,
        "clock": "utc", "consoleMode": "vnc", "videoType": "virtio", "soundType": "ich6",
        "nestedVirtualization": "none", "hostManagementIp": url_host(host),
        "timeout": 300, "isApplianceVm": true,
    });
    let devices = json!({
        "rootVolume": {"installPath": disk, "deviceId": 0, "deviceType": "file",
                       "volumeUuid": root, "resourceUuid": root, "format": "qcow2",
                       "useVirtio": true, "useVirtioSCSI": false, "shareable": false,
                       "cacheMode": "none", "aioNative": false, "bootOrder": 0,
                       "physicalBlockSize": 0, "ioThreadId": 0, "controllerIndex": 0},
        "dataVolumes": [], "cacheVolumes": [],
        "nics": nics, "addons": addons,
    });
    // The boolean switches, at the node's defaults.
    let flags = json!({
        "instanceOfferingOnlineChange": false, "useNuma": false, "usbRedirect": false,
        "enableSecurityElement": false, "createPaused": false, "kvmHiddenState": false,
        "vmPortOff": false, "emulateHyperV": false, "hypervClock": false,
        "suspendToRam": false, "suspendToDisk": false, "additionalQmp": true,
        "secureBoot": false, "fromForeignHypervisor": false, "useHugePage": false,
        "coloPrimary": false, "coloSecondary": false, "consoleLogToFile": false,
        "acpi": true, "x2apic": true, "cpuHypervisorFeature": true, "useColoBinary": false,
    });
    for part in [devices, flags] {
        if let (Value::Object(c), Value::Object(f)) = (&mut cmd, part) {
            c.extend(f);
        }
    }
    cmd
}

/// The uuid of the router's NIC `i` (the description names NICs by MAC).
fn nic_uuid(spec: &RouterSpec, i: usize) -> String {
    format!("{}{i:0>24}", &spec.uuid[..8])
}

/// The router's NICs as `VmNicInventory` (what `/vm/stop` and
/// `/vm/destroy` carry in `vmNics`).
pub fn vm_nics(spec: &RouterSpec) -> Vec<VmNicInventory> {
    spec.nics
        .iter()
        .enumerate()
        .map(|(i, n)| VmNicInventory {
            uuid: nic_uuid(spec, i),
            vm_instance_uuid: spec.uuid.clone(),
            ip: n.ip.clone(),
            mac: n.mac.clone(),
            netmask: n.netmask.clone(),
            gateway: n.gateway.clone(),
            device_id: i as i64,
            internal_name: format!("vr{}.{i}", &spec.uuid[..8]),
            hypervisor_type: "KVM".into(),
            driver_type: "virtio".into(),
            kind: "VNIC".into(),
            state: "enable".into(),
        })
        .collect()
}

/// `vyos.configure.firewall.with.iptables`, `vyos.enable.vyos.cmd`,
/// `virtualRouter.tc.for.vipqos`, `applianceVm.abnormalFileMaxSize`,
/// `virtualRouter.ssh.port` and `virtualRouter.vrouter.password` at the
/// node's defaults.
const ENABLE_VYOS_CMD: bool = true;
const CONFIG_TC_FOR_VIP_QOS: bool = true;
const ABNORMAL_FILE_MAX_SIZE: i64 = 100;
const VR_SSH_PORT: i64 = 22;
const VYOS_PASSWORD: &str = "vrouter12#";

/// One NIC of the bootstrap info: `ApplianceVmNicTO`'s fields only (no
/// `firewallDefaultAction` or `state`: those come by command).
fn appliance_nic(n: &common::vr::NicInfo, device: String, default_route: bool) -> Value {
    json!({"ip": n.ip, "netmask": n.netmask, "gateway": n.gateway, "mac": n.mac,
           "deviceName": device, "isDefaultRoute": default_route, "category": n.category,
           "l2type": n.l2type, "vni": n.vni, "physicalInterface": n.physical_interface,
           "mtu": n.mtu, "ip6": n.ip6, "prefixLength": n.prefix_length,
           "gateway6": n.gateway6, "addressMode": n.address_mode})
}

/// The `/appliancevm/setbootstrapinfo` body: `PrepareBootstrapInfoCmd` as
/// `ApplianceVmKvmBootstrapFlow` sends it (`bootStrapInfoTimeout`:
/// `applianceVm.bootstrapinfo.timeout`, 300 s), its `info` the map of
/// `ApplianceVmFacadeImpl.prepareBootstrapInformation` plus the vrouter
/// keys of `VyosVmBaseFactory.applianceVmPrepareBootstrapInfo`, capitalised
/// ones included (zstackio/zstack 5a29293bd5). The management NIC is
/// `eth0`; when it is not the default-route NIC, the default-route NIC
/// comes next as `eth1`, then the others. Our extension: `auth`'s
/// `agentTls` (the router's certificate, key and client CA: its agent then
/// speaks mutual TLS only) and `agentTokens` (bearer tokens required).
pub fn bootstrap_info(spec: &RouterSpec, vm: &VmSpec, auth: &AgentAuth) -> SetBootstrapInfoCmd {
    let mgmt = spec.management_nic().cloned().unwrap_or_default();
    let mut others: Vec<&common::vr::NicInfo> =
        spec.nics.iter().filter(|n| n.mac != mgmt.mac).collect();
    if !mgmt.is_default_route {
        // A stable sort keeps the rest in the description's order.
        others.sort_by_key(|n| !n.is_default_route);
    }
    let additional: Vec<Value> = others
        .iter()
        .enumerate()
        .map(|(i, n)| appliance_nic(n, format!("eth{}", i + 1), n.is_default_route))
        .collect();
    let mut info = json!({
        "applianceVmSubType": "vrouter",
        "managementNic": appliance_nic(&mgmt, "eth0".into(), mgmt.is_default_route),
        "additionalNics": additional,
        "publicKey": vm.public_key.clone().unwrap_or_default(),
        "uuid": spec.uuid,
        "managementNodeIp": vm.management_node_ip,
        "managementNodeCidr": spec.management_node_cidr,
        "vyosPassword": VYOS_PASSWORD,
        "sshPort": VR_SSH_PORT,
        "EnableVyosCmd": ENABLE_VYOS_CMD,
        "ConfigTcForVipQos": CONFIG_TC_FOR_VIP_QOS,
        "abnormalFileMaxSize": ABNORMAL_FILE_MAX_SIZE,
    });
    if let Value::Object(o) = &mut info {
        o.extend(auth.bootstrap_keys());
    }
    let Value::Object(info) = crate::client::gson(&info) else {
        unreachable!("the info is built as an object")
    };
    SetBootstrapInfoCmd {
        info,
        socket_path: socket_path(spec, vm),
        boot_strap_info_timeout: Some(300),
    }
}
