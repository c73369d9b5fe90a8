//! `/vm/start`: `StartVmCmd` and its `VolumeTO`, `NicTO` and addons
//! (zstackio/zstack 5a29293bd5, `plugin/kvm/src/main/java/org/zstack/kvm/`
//! `KVMAgentCommands.java` and `VolumeTO.java`). Typed are the fields
//! kvm-agent reads and the fields vrctl sends for a router
//! (`vrctl::appliance::start_cmd`), named as Gson writes them and typed as
//! the Java class types them; kvm-agent reads only some of the latter.
//! Every other field the node sends is accepted and ignored, and every
//! typed one may be absent (decoding stays as lenient as the node's bodies
//! need).
//!
//! An empty string stands for Java's null: it is left out when written,
//! as Gson leaves nulls out.

use serde::{Deserialize, Serialize};

use super::DeviceAddress;

/// Java's `x2apic = true` and `cpuHypervisorFeature = true`, for a body
/// that leaves them out.
fn java_true() -> bool {
    true
}

/// `StartVmCmd` (`KVMAgentCommands.java` line 2093; `soundType`, like
/// `consoleMode`, `videoType` and `consolePassword`, is its superclass
/// `vdiCmd`'s). Memory is in bytes, as the MN sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StartVmCmd {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vm_instance_uuid: String,
    pub vm_internal_id: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub vm_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_platform: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image_architecture: String,
    pub cpu_num: u32,
    pub max_vcpu_num: u32,
    /// `long cpuSpeed` (MHz; 0: unset).
    pub cpu_speed: i64,
    pub socket_num: Option<u32>,
    pub cpu_on_socket: Option<u32>,
    pub threads_per_core: Option<u32>,
    pub memory: u64,
    /// `long maxMemory`: the memory hot-plug ceiling, bytes.
    pub max_memory: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nested_virtualization: String,
    pub boot_dev: Vec<String>,
    /// `String bootMode`: `Legacy` or `UEFI`.
    pub boot_mode: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub machine_type: String,
    pub use_boot_menu: bool,
    pub boot_menu_splash_timeout: Option<u32>,
    pub acpi: Option<bool>,
    #[serde(default = "java_true")]
    pub x2apic: bool,
    #[serde(default = "java_true")]
    pub cpu_hypervisor_feature: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub clock: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub console_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub console_password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub video_type: String,
    /// `vdiCmd.soundType` (`vm.soundType`, `ich6` by default).
    pub sound_type: Option<String>,
    /// Seconds to wait for the domain to run (the MN sends 300).
    pub timeout: Option<u64>,
    pub create_paused: bool,
    pub is_appliance_vm: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host_management_ip: String,
    pub root_volume: Option<VolumeTo>,
    pub data_volumes: Vec<VolumeTo>,
    pub cache_volumes: Vec<VolumeTo>,
    pub nics: Vec<NicTo>,
    pub addons: Addons,
    /// The balloon's address from the previous start's `memBalloonInfo`
    /// (the node keeps it so the guest sees the same PCI slot again).
    pub mem_balloon: Option<MemBalloonTo>,
    // The node's switches, each a Java `boolean` (so always written).
    pub instance_offering_online_change: bool,
    pub use_numa: bool,
    pub usb_redirect: bool,
    pub enable_security_element: bool,
    pub kvm_hidden_state: bool,
    pub vm_port_off: bool,
    pub emulate_hyper_v: bool,
    pub hyperv_clock: bool,
    pub suspend_to_ram: bool,
    pub suspend_to_disk: bool,
    pub additional_qmp: bool,
    pub secure_boot: bool,
    pub from_foreign_hypervisor: bool,
    pub use_huge_page: bool,
    pub colo_primary: bool,
    pub colo_secondary: bool,
    pub console_log_to_file: bool,
    pub use_colo_binary: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MemBalloonTo {
    pub resource_uuid: String,
    pub device_address: Option<DeviceAddress>,
}

/// `Map<String, Object> addons`: the entries typed here, others ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Addons {
    /// The bootstrap channel for a VR, the guest-agent channel otherwise.
    pub channel: Option<ChannelTo>,
    /// Our extension (ZStack's `StartVmCmd` has no such field): boot the
    /// kernel and initramfs from host files instead of the disk's boot
    /// loader (libvirt `<os><kernel>/<initrd>/<cmdline>`), for images built
    /// without a boot loader, such as our VR image (`images/`).
    /// `addons.directKernelBoot = {"kernel": "/abs/vmlinuz",
    /// "initrd": "/abs/initrd.img", "cmdline": "root=/dev/vda rw console=ttyS0"}`.
    pub direct_kernel_boot: Option<DirectKernelBootTo>,
}

/// `addons.directKernelBoot` (our extension, see [`Addons`]). `initrd` and
/// `cmdline` are optional; paths must be absolute host paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DirectKernelBootTo {
    pub kernel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub initrd: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ChannelTo {
    pub socket_path: String,
    pub target_name: String,
}

/// `VolumeTO` (`VolumeTO.java` line 20).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeTo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub install_path: String,
    pub device_id: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub device_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub volume_uuid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_uuid: String,
    pub use_virtio: Option<bool>,
    #[serde(rename = "useVirtioSCSI")]
    pub use_virtio_scsi: Option<bool>,
    pub shareable: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cache_mode: String,
    pub aio_native: bool,
    pub boot_order: i32,
    pub physical_block_size: i32,
    pub io_thread_id: i32,
    pub controller_index: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub format: String,
}

/// `NicTO` (`KVMAgentCommands.java` line 1130).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NicTo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac: String,
    pub ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bridge_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub physical_interface: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nic_internal_name: String,
    pub device_id: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub meta_data: String,
    pub use_virtio: Option<bool>,
    pub boot_order: i32,
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver_type: String,
    #[serde(rename = "vHostAddOn")]
    pub v_host_add_on: Option<VHostAddOn>,
    /// `String type`: `VNIC` for a virtio or e1000 NIC.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_uuid: String,
    /// Anti-spoofing on the tap (source MAC, IPs and ARP must be the NIC's
    /// own); see `crate::plan::antispoof`.
    pub clean_traffic: Option<bool>,
    /// Port isolation of the tap (guests on the bridge do not reach each
    /// other); bridges created isolated isolate every guest tap anyway.
    pub isolated: Option<bool>,
}

/// `NicTO.vHostAddOn` (`VHostAddOn`, `KVMAgentCommands.java` line 1100):
/// the virtio queues; its buffer sizes are not typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VHostAddOn {
    pub queue_num: i32,
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn node_request() -> Value {
        let path = format!(
            "{}/../conformance/kvm/vm-start.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["request"].clone()
    }

    /// Every field `typed` writes is the node's, with the node's value
    /// (recursively; lists element by element).
    fn assert_node_values(typed: &Value, node: &Value, at: &str) {
        match (typed, node) {
            (Value::Object(t), Value::Object(n)) => {
                for (k, v) in t.iter().filter(|(_, v)| !v.is_null()) {
                    let theirs = n
                        .get(k)
                        .unwrap_or_else(|| panic!("{at}.{k} is not the node's"));
                    assert_node_values(v, theirs, &format!("{at}.{k}"));
                }
            }
            (Value::Array(t), Value::Array(n)) if t.len() == n.len() => {
                for (i, (v, w)) in t.iter().zip(n).enumerate() {
                    assert_node_values(v, w, &format!("{at}[{i}]"));
                }
            }
            _ => assert_eq!(typed, node, "{at}"),
        }
    }

    /// The node's `/vm/start` (conformance fixture from zstackio/zstack
    /// 5a29293bd5) decodes with exact keys, and the typed fields keep the
    /// node's names, JSON types and values.
    #[test]
    fn the_nodes_start_vm_cmd_decodes_and_keeps_its_values() {
        let node = node_request();
        let bytes = node.to_string().into_bytes();
        let cmd = crate::agent::decode_exact::<StartVmCmd>(&bytes).unwrap();
        assert!(cmd.x2apic && cmd.cpu_hypervisor_feature && cmd.additional_qmp);
        assert_eq!(cmd.boot_mode.as_deref(), Some("Legacy"));
        let nic = &cmd.nics[0];
        assert_eq!(nic.v_host_add_on, Some(VHostAddOn { queue_num: 1 }));
        assert_eq!(nic.kind.as_deref(), Some("VNIC"));
        assert_node_values(&serde_json::to_value(&cmd).unwrap(), &node, "");
    }

    /// Decoding stays lenient: every field may be absent, and Java's
    /// `true` initialisers are the defaults of an absent `x2apic` and
    /// `cpuHypervisorFeature`.
    #[test]
    fn an_almost_empty_body_decodes_with_javas_defaults() {
        let cmd = crate::agent::decode_exact::<StartVmCmd>(br#"{"vmInstanceUuid":"u"}"#).unwrap();
        assert!(cmd.x2apic && cmd.cpu_hypervisor_feature);
        assert!(!cmd.additional_qmp && cmd.cache_volumes.is_empty());
        assert_eq!(cmd.max_memory, 0);
        // Written back: no empty strings for Java's nulls.
        let v = serde_json::to_value(&cmd).unwrap();
        assert!(v.get("consolePassword").is_none() && v.get("vmName").is_none());
    }
}
