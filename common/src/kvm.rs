//! ZStack kvmagent wire types (reference sections 2 and 7): camelCase,
//! missing fields default, unknown fields ignored, nulls omitted on output.
//! Java boxed types (`Integer`, `Boolean`) are `Option`s.

use serde::{Deserialize, Serialize};

pub mod bounds;
pub mod vm;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectCmd {
    pub host_uuid: String,
    pub send_command_url: String,
    pub iptables_rules: Vec<String>,
    pub ignore_msrs: Option<bool>,
    pub page_table_extension_disabled: Option<bool>,
    pub tcp_server_port: Option<i64>,
    pub version: String,
}

/// The node parses both with `VersionComparator` (KVMHost.connectToAgent),
/// so both are always present and dotted numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ConnectResponse {
    pub libvirt_version: String,
    pub qemu_version: String,
}

/// `UpdateHostConfigurationCmd`: sent when ping's `sendCommandUrl` differs
/// from the node's (KVMHost.doUpdateHostConfiguration).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpdateHostConfigurationCmd {
    pub host_uuid: String,
    pub send_command_url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PingCmd {
    pub host_uuid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct PingResponse {
    /// "" until `/host/connect` since this agent started (the MN reconnects).
    pub host_uuid: String,
    pub send_command_url: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Empty {}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct HostCapacityResponse {
    pub cpu_num: u64,
    pub cpu_sockets: u64,
    pub cpu_speed: Option<u64>,
    pub used_cpu: u64,
    /// Bytes.
    pub total_memory: u64,
    /// Bytes.
    pub used_memory: u64,
}

/// `VirtualizerInfoTO`. The node sets `uuid` itself and stores the rest in
/// `KvmHypervisorInfoVO`, whose `hypervisor` and `version` are NOT NULL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualizerInfo {
    pub uuid: Option<String>,
    pub virtualizer: String,
    pub version: String,
}

/// `UpdateDependencyCmd`: sent on every reconnect while the node's
/// `updatePkgWhenConnect` is on (its default), KVMHost's
/// update-kvmagent-dependencies flow.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpdateDependencyCmd {
    pub host_uuid: String,
    pub enable_exp_repo: bool,
    pub exclude_packages: Option<String>,
    pub update_packages: Option<String>,
    pub zstack_repo: Option<String>,
}

/// Only what this host can tell; everything else stays absent. The fields
/// the node dereferences in KVMHost.createCollectHostFactsFlow are not
/// Options: `libvirtVersion` (`compareTo`), `virtualizerInfo` (`setUuid`),
/// `cpuModelName` (a query parameter), `libvirtCapabilities`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct HostFactResponse {
    pub os_distribution: Option<String>,
    pub os_version: Option<String>,
    pub os_release: Option<String>,
    pub qemu_img_version: Option<String>,
    pub libvirt_version: String,
    pub libvirt_capabilities: Vec<String>,
    pub virtualizer_info: VirtualizerInfo,
    pub hvm_cpu_flag: Option<String>,
    pub ept_flag: Option<String>,
    pub cpu_architecture: Option<String>,
    /// The libvirt CPU model (capabilities `host/cpu/model`).
    pub cpu_model_name: String,
    pub host_cpu_model_name: Option<String>,
    #[serde(rename = "cpuGHz")]
    pub cpu_ghz: Option<String>,
    pub cpu_processor_num: Option<String>,
    pub cpu_cache: Option<String>,
    pub system_product_name: Option<String>,
    pub system_serial_number: Option<String>,
    pub system_manufacturer: Option<String>,
    #[serde(rename = "systemUUID")]
    pub system_uuid: Option<String>,
    pub bios_vendor: Option<String>,
    pub bios_version: Option<String>,
    pub bios_release_date: Option<String>,
    pub uptime: Option<String>,
    pub ip_addresses: Vec<String>,
    pub iscsi_initiator_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckPhysicalNetworkInterfaceCmd {
    pub interface_names: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckPhysicalNetworkInterfaceResponse {
    pub failed_interface_names: Vec<String>,
}

/// `CreateBridgeCmd`, and `CreateVlanBridgeCmd` with `vlan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateBridgeCmd {
    pub physical_interface_name: String,
    pub bridge_name: String,
    pub l2_network_uuid: String,
    pub disable_iptables: Option<bool>,
    pub mtu: Option<i64>,
    pub isolated: Option<bool>,
    pub pvlan: Option<String>,
    pub vlan: Option<i64>,
}

/// `CheckBridgeCmd` / `CheckVlanBridgeCmd`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckBridgeCmd {
    pub physical_interface_name: String,
    pub bridge_name: String,
    pub vlan: Option<i64>,
}

/// `DeleteBridgeCmd` / `DeleteVlanBridgeCmd`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeleteBridgeCmd {
    pub physical_interface_name: String,
    pub bridge_name: String,
    pub l2_network_uuid: String,
    pub vlan: Option<i64>,
}

/// `CreateVlanBridgeCmd` (`/network/l2vlan/createbridge`): the body of
/// [`CreateBridgeCmd`] with `vlan` set, under its own path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CreateVlanBridgeCmd(pub CreateBridgeCmd);

/// `CheckVlanBridgeCmd` (`/network/l2vlan/checkbridge`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckVlanBridgeCmd(pub CheckBridgeCmd);

/// `DeleteVlanBridgeCmd` (`/network/l2vlan/deletebridge`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeleteVlanBridgeCmd(pub DeleteBridgeCmd);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AddInterfaceToBridgeCmd {
    pub physical_interface_name: String,
    pub bridge_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::decode;

    /// Reference section 7, F1.
    const F1: &str = r#"{"hostUuid":"3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b",
 "sendCommandUrl":"http://10.0.0.10:8080/zstack/asyncrest/sendcommand",
 "iptablesRules":["-A INPUT -p tcp -m tcp --dport 16509 -j ACCEPT"],
 "ignoreMsrs":false,"pageTableExtensionDisabled":false,"tcpServerPort":7123,"version":"5.2.0",
 "kvmHostAddons":{"qcow2Options":" -o cluster_size=2097152 "}}"#;
    /// F2 and F3.
    const F2: &str = r#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0",
 "l2NetworkUuid":"a1b2c3d4e5f60718293a4b5c6d7e8f90","disableIptables":false,"mtu":1500,"isolated":false}"#;
    const F3: &str = r#"{"physicalInterfaceName":"eth1","bridgeName":"br_eth1_100","vlan":100,
 "l2NetworkUuid":"0f9e8d7c6b5a49382716a5b4c3d2e1f0","disableIptables":false,"mtu":1500,"isolated":false}"#;

    #[test]
    fn fixtures_decode() {
        let c: ConnectCmd = decode(F1.as_bytes()).unwrap();
        assert_eq!(c.host_uuid, "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b");
        assert_eq!(c.version, "5.2.0");
        assert_eq!(c.tcp_server_port, Some(7123));
        assert_eq!(c.iptables_rules.len(), 1);
        let b: CreateBridgeCmd = decode(F2.as_bytes()).unwrap();
        assert_eq!(
            (b.physical_interface_name.as_str(), b.bridge_name.as_str()),
            ("eth0", "br_eth0")
        );
        assert_eq!(
            (b.mtu, b.vlan, b.disable_iptables),
            (Some(1500), None, Some(false))
        );
        let v: CreateBridgeCmd = decode(F3.as_bytes()).unwrap();
        assert_eq!(v.vlan, Some(100));
        let d: DeleteBridgeCmd = decode(
            br#"{"physicalInterfaceName":"eth0","bridgeName":"br_eth0","l2NetworkUuid":"x"}"#,
        )
        .unwrap();
        assert_eq!(d.bridge_name, "br_eth0");
        let p: PingCmd = decode(b"{}").unwrap();
        assert_eq!(p.host_uuid, "");
    }

    #[test]
    fn replies_are_camel_case_without_nulls() {
        let v = crate::agent::envelope(&Ok(PingResponse::default()));
        assert_eq!(
            v,
            serde_json::json!({"hostUuid":"","success":true,"error":""})
        );
        let v = serde_json::to_value(HostFactResponse {
            cpu_ghz: Some("2.5".into()),
            system_uuid: Some("u".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["cpuGHz"], "2.5");
        assert_eq!(v["systemUUID"], "u");
        let v = serde_json::to_value(CheckPhysicalNetworkInterfaceResponse {
            failed_interface_names: vec!["eth9".into()],
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"failedInterfaceNames":["eth9"]}));
    }
}
