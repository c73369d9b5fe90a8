//! VM plugin wire types (reference sections 4 and 5): `/vm/*` and
//! `/appliancevm/setbootstrapinfo`. `/vm/start`'s command is in `start`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod ops;
mod start;
pub use ops::*;
pub use start::*;

/// A PCI (or drive) address as the MN reads it (`DeviceAddress`): hex
/// strings, all optional. Absent fields are left out (the envelope does not
/// strip nulls inside arrays).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct DeviceAddress {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// `VmNicInfo`. The MN calls `getDeviceAddress().toString()` on every NIC
/// whose MAC it knows (KVMHost.startVm), so the address is always an object,
/// empty when libvirt gave none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct NicInfo {
    pub mac_address: String,
    pub device_address: DeviceAddress,
}

/// `VirtualDeviceInfo`: the MN keeps entries whose `resourceUuid` and
/// `deviceAddress` are both set (`isValid`), and dereferences
/// `memBalloonInfo.deviceAddress` unconditionally.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualDeviceInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_uuid: Option<String>,
    pub device_address: DeviceAddress,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualizerInfo {
    pub uuid: String,
    pub virtualizer: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct StartVmResponse {
    pub nic_infos: Vec<NicInfo>,
    pub virtual_device_info_list: Vec<VirtualDeviceInfo>,
    /// Read by VirtualPciDeviceKvmExtensionPoint whenever the two lists are
    /// set: `getMemBalloonInfo().getDeviceAddress().toString()`.
    pub mem_balloon_info: VirtualDeviceInfo,
    pub virtualizer_info: Option<VirtualizerInfo>,
    /// Our addition: where the serial console is logged.
    pub console_log_path: Option<String>,
}

/// `StopVmCmd` (zstackio/zstack 000da2ca16,
/// `plugin/kvm/src/main/java/org/zstack/kvm/KVMAgentCommands.java`: `uuid`,
/// `type`, `long timeout`, `List<VmNicInventory> vmNics`; its
/// `ignoreNotFoundError` is not typed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StopVmCmd {
    pub uuid: String,
    /// `grace` (default), `cold` or `force`.
    #[serde(rename = "type")]
    pub kind: String,
    pub timeout: Option<u64>,
    /// The VM's NICs; kvm-agent does not read them (None: left out).
    pub vm_nics: Option<Vec<VmNicInventory>>,
}

/// `DestroyVmCmd` (same file: `uuid`, `List<VmNicInventory> vmNics`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DestroyVmCmd {
    pub uuid: String,
    /// The VM's NICs; kvm-agent does not read them (None: left out).
    pub vm_nics: Option<Vec<VmNicInventory>>,
}

/// `/vm/vmsync` (`VmSyncCmd`: no fields of its own; every VM is reported).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VmSyncCmd {}

/// One NIC of `vmNics` (`org.zstack.header.vm.VmNicInventory`), the fields
/// vrctl fills; the inventory's others (`l3NetworkUuid`, `usedIps`, dates,
/// ...) are accepted and ignored. Absent strings are left out, as Gson
/// leaves out nulls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VmNicInventory {
    pub uuid: String,
    pub vm_instance_uuid: String,
    pub ip: Option<String>,
    pub mac: String,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub device_id: i64,
    pub internal_name: String,
    pub hypervisor_type: String,
    pub driver_type: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RebootVmCmd {
    pub uuid: String,
    pub timeout: Option<u64>,
    pub boot_dev: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct RebootVmResponse {
    pub virtualizer_info: Option<VirtualizerInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VmSyncResponse {
    pub states: BTreeMap<String, String>,
    pub vm_in_shutdowns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetBootstrapInfoCmd {
    pub info: serde_json::Map<String, serde_json::Value>,
    pub socket_path: String,
    pub boot_strap_info_timeout: Option<u64>,
}

/// Our addition: `/vm/console/tail`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsoleTailCmd {
    pub uuid: String,
    /// Bytes from the end of the log; default 8 KiB.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsoleTailResponse {
    pub path: String,
    pub tail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_request(name: &str) -> serde_json::Value {
        let path = format!("{}/../conformance/kvm/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["request"].clone()
    }

    /// The node's `/vm/stop` and `/vm/destroy` (fixtures from
    /// zstackio/zstack 5a29293bd5, their `vmNics` whole `VmNicInventory`s)
    /// still decode, and the typed NIC fields keep the node's values.
    #[test]
    fn node_bodies_with_vm_nics_decode() {
        for name in ["vm-stop.json", "vm-destroy.json"] {
            let req = fixture_request(name);
            let bytes = req.to_string().into_bytes();
            let nics = match name {
                "vm-stop.json" => crate::agent::decode_exact::<StopVmCmd>(&bytes)
                    .unwrap()
                    .vm_nics
                    .unwrap(),
                _ => crate::agent::decode_exact::<DestroyVmCmd>(&bytes)
                    .unwrap()
                    .vm_nics
                    .unwrap(),
            };
            let typed = serde_json::to_value(&nics[0]).unwrap();
            for (k, v) in typed.as_object().unwrap() {
                assert_eq!(&req["vmNics"][0][k], v, "{name}: vmNics[0].{k}");
            }
        }
    }
}
