//! The router VM's commands to its host, as the management node builds
//! them for an appliance VM: `/vm/start` (`StartVmCmd`), the NICs `/vm/stop`
//! and `/vm/destroy` carry, and the bootstrap info of
//! `/appliancevm/setbootstrapinfo`.

use std::path::Path;

use common::kvm::vm::{
    Addons, ChannelTo, DirectKernelBootTo, NicTo, SetBootstrapInfoCmd, StartVmCmd, VHostAddOn,
    VmNicInventory, VolumeTo,
};
use common::vr::{ApplianceVmNicTo, BootstrapInfo, NicInfo};
use serde_json::Value;

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

/// The `/vm/start` command for the router (sent as
/// [`crate::client::body`] writes it): `StartVmCmd` as `KVMHost.startVm`
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
/// Fields the node fills from its database (account, SMBIOS serial, NIC
/// metadata and L2 uuid, volume WWN, ...) are left out; see
/// `tests/start_typed.rs` for the list.
pub fn start_cmd(spec: &RouterSpec, vm: &VmSpec, disk: &Path, host: &str) -> StartVmCmd {
    let nics = spec
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| NicTo {
            mac: n.mac.clone(),
            ips: n.ip.iter().cloned().collect(),
            bridge_name: vm.bridges[&n.mac].clone(),
            physical_interface: n.physical_interface.clone().unwrap_or_default(),
            uuid: nic_uuid(spec, i),
            nic_internal_name: format!("vr{}.{i}", &spec.uuid[..8]),
            device_id: i as i64,
            use_virtio: Some(true),
            boot_order: 0,
            // An MTU outside u32 is refused before (`router::vm_spec`).
            mtu: n.mtu.map_or(Some(1500), |m| u32::try_from(m).ok()),
            driver_type: "virtio".into(),
            v_host_add_on: Some(VHostAddOn { queue_num: 1 }),
            kind: Some("VNIC".into()),
            clean_traffic: Some(false),
            isolated: Some(false),
            ..Default::default()
        })
        .collect();
    let addons = Addons {
        channel: Some(ChannelTo {
            socket_path: socket_path(spec, vm),
            target_name: "applianceVm.vport".into(),
        }),
        direct_kernel_boot: vm.kernel.as_ref().map(|kernel| DirectKernelBootTo {
            kernel: kernel.clone(),
            initrd: vm.initrd.clone().unwrap_or_default(),
            cmdline: vm
                .cmdline
                .clone()
                .unwrap_or_else(|| "root=/dev/vda rw console=ttyS0 quiet".into()),
        }),
    };
    let cpu = vm.cpu_num.max(1);
    let memory = vm.memory_mb.max(128) << 20;
    let root = format!("{}root", &spec.uuid[..8]);
    let root_volume = VolumeTo {
        install_path: disk.display().to_string(),
        device_id: 0,
        device_type: "file".into(),
        volume_uuid: root.clone(),
        resource_uuid: root,
        format: "qcow2".into(),
        use_virtio: Some(true),
        use_virtio_scsi: Some(false),
        shareable: false,
        cache_mode: "none".into(),
        aio_native: false,
        boot_order: 0,
        physical_block_size: 0,
        io_thread_id: 0,
        controller_index: 0,
    };
    StartVmCmd {
        vm_instance_uuid: spec.uuid.clone(),
        vm_internal_id: 1,
        vm_name: if vm.name.is_empty() {
            format!("vrouter.{}", spec.uuid)
        } else {
            vm.name.clone()
        },
        image_platform: "Linux".into(),
        image_architecture: "x86_64".into(),
        memory,
        max_memory: i64::try_from(memory).unwrap_or(i64::MAX),
        cpu_num: cpu,
        max_vcpu_num: cpu,
        cpu_speed: 0,
        socket_num: Some(1),
        cpu_on_socket: Some(cpu),
        threads_per_core: Some(1),
        boot_dev: vec!["hd".into()],
        boot_mode: Some("Legacy".into()),
        machine_type: "pc".into(),
        use_boot_menu: false,
        clock: "utc".into(),
        console_mode: "vnc".into(),
        video_type: "virtio".into(),
        sound_type: Some("ich6".into()),
        nested_virtualization: "none".into(),
        host_management_ip: url_host(host).into(),
        timeout: Some(300),
        is_appliance_vm: true,
        root_volume: Some(root_volume),
        data_volumes: vec![],
        cache_volumes: vec![],
        nics,
        addons,
        // The switches, at the node's defaults.
        instance_offering_online_change: false,
        use_numa: false,
        usb_redirect: false,
        enable_security_element: false,
        create_paused: false,
        kvm_hidden_state: false,
        vm_port_off: false,
        emulate_hyper_v: false,
        hyperv_clock: false,
        suspend_to_ram: false,
        suspend_to_disk: false,
        additional_qmp: true,
        secure_boot: false,
        from_foreign_hypervisor: false,
        use_huge_page: false,
        colo_primary: false,
        colo_secondary: false,
        console_log_to_file: false,
        acpi: Some(true),
        x2apic: true,
        cpu_hypervisor_feature: true,
        use_colo_binary: false,
        ..Default::default()
    }
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

/// One NIC of the bootstrap info: `ApplianceVmNicTO` (no
/// `firewallDefaultAction` or `state`: those come by command).
fn appliance_nic(n: &NicInfo, device: String, default_route: bool) -> ApplianceVmNicTo {
    ApplianceVmNicTo {
        ip: n.ip.clone(),
        netmask: n.netmask.clone(),
        gateway: n.gateway.clone(),
        mac: n.mac.clone(),
        device_name: device,
        meta_data: None,
        is_default_route: default_route,
        category: n.category.clone(),
        l2type: n.l2type.clone(),
        vni: n.vni,
        physical_interface: n.physical_interface.clone(),
        mtu: n.mtu,
        ip6: n.ip6.clone(),
        prefix_length: n.prefix_length,
        gateway6: n.gateway6.clone(),
        address_mode: n.address_mode.clone(),
    }
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
    let mut others: Vec<&NicInfo> = spec.nics.iter().filter(|n| n.mac != mgmt.mac).collect();
    if !mgmt.is_default_route {
        // A stable sort keeps the rest in the description's order.
        others.sort_by_key(|n| !n.is_default_route);
    }
    let additional_nics = others
        .iter()
        .enumerate()
        .map(|(i, n)| appliance_nic(n, format!("eth{}", i + 1), n.is_default_route))
        .collect();
    let info = BootstrapInfo::<ApplianceVmNicTo> {
        appliance_vm_sub_type: Some("vrouter".into()),
        management_nic: appliance_nic(&mgmt, "eth0".into(), mgmt.is_default_route),
        additional_nics,
        public_key: Some(vm.public_key.clone().unwrap_or_default()),
        uuid: Some(spec.uuid.clone()),
        management_node_ip: vm.management_node_ip.clone(),
        management_node_cidr: spec.management_node_cidr.clone(),
        vyos_password: Some(VYOS_PASSWORD.into()),
        ssh_port: Some(VR_SSH_PORT),
        enable_vyos_cmd: Some(ENABLE_VYOS_CMD),
        config_tc_for_vip_qos: Some(CONFIG_TC_FOR_VIP_QOS),
        abnormal_file_max_size: Some(ABNORMAL_FILE_MAX_SIZE),
        agent_tls: auth.agent_tls(),
        agent_tokens: auth.agent_tokens(),
        // A half of a pair comes up as backup (its shared NICs down) until
        // keepalived elects it.
        ha_status: spec.ha.as_ref().map(|_| "Backup".into()),
    };
    let Value::Object(info) = crate::client::body(&info) else {
        unreachable!("the info is a struct, written as an object")
    };
    SetBootstrapInfoCmd {
        info,
        socket_path: socket_path(spec, vm),
        boot_strap_info_timeout: Some(300),
    }
}
