//! The compute-host commands as the management node builds them
//! (zstackio/zstack 5a29293bd5, `plugin/kvm/.../KVMAgentCommands.java` and
//! their callers). Gson writes every primitive field (`int`, `boolean`)
//! whatever its value, and leaves out null objects; the bodies here carry
//! the same fields with the values the node's defaults give. Commands with
//! a wire type in `common::kvm` are built as that type (sent with
//! `Client::send`, which writes them as Gson does: nulls left out).

use common::kvm::vm::{DestroyVmCmd, RebootVmCmd, StopVmCmd, VmSyncCmd};
use common::kvm::{
    AddInterfaceToBridgeCmd, CheckBridgeCmd, CheckPhysicalNetworkInterfaceCmd, ConnectCmd,
    CreateBridgeCmd, DeleteBridgeCmd,
};

/// `KvmAgent.tcpServerPort` (`KVMGlobalProperty.TCP_SERVER_PORT`).
pub const TCP_SERVER_PORT: u16 = 7123;
/// What `/host/connect` tells the agent the node's version is
/// (`DatabaseFacade.getDbVersion()` of a 5.2 node).
pub const NODE_VERSION: &str = "5.2.0";
/// The node's port and web application (`RESTFacade.port`, path `zstack`).
pub const NODE_PORT: u16 = 8080;

/// `RESTFacadeImpl.sendCommandUrl` of a node at `ip`: where hosts report
/// VM events (`RESTConstant.COMMAND_CHANNEL_PATH`).
pub fn send_command_url(ip: &str) -> String {
    format!("http://{ip}:{NODE_PORT}/zstack/asyncrest/sendcommand")
}

/// `/host/connect` (`ConnectCmd`, built in `KVMHost.connectToAgent`, sent
/// with `syncJsonPost`): the iptables rules of `KvmHost.iptables.rule.*`
/// (none by default), `ignoreMsrs` (global config, false), the page-table
/// extension flag (false on a host with EPT).
pub fn connect_cmd(host_uuid: &str, send_command_url: &str) -> ConnectCmd {
    ConnectCmd {
        host_uuid: host_uuid.into(),
        send_command_url: send_command_url.into(),
        iptables_rules: vec![],
        ignore_msrs: Some(false),
        page_table_extension_disabled: Some(false),
        tcp_server_port: Some(TCP_SERVER_PORT.into()),
        version: NODE_VERSION.into(),
    }
}

/// `/network/checkphysicalnetworkinterface` (sync), sent for each L2
/// network before its bridge.
pub fn check_interface_cmd(nic: &str) -> CheckPhysicalNetworkInterfaceCmd {
    CheckPhysicalNetworkInterfaceCmd {
        interface_names: vec![nic.into()],
    }
}

/// `/network/l2novlan/createbridge` (`CreateBridgeCmd`, built in
/// `KVMRealizeL2NoVlanNetworkBackend.realize`): `disableIptables` from
/// `bridge.disable.iptables` (false), the L2's MTU, `isolated` from the L2
/// (a NOT NULL column, false unless the L2 is isolated); `pvlan` is null
/// (left out). With `vlan`, the `CreateVlanBridgeCmd` of
/// `/network/l2vlan/createbridge` (send it as `CreateVlanBridgeCmd`).
pub fn create_bridge_cmd(
    nic: &str,
    bridge: &str,
    l2_uuid: &str,
    mtu: u32,
    vlan: Option<u16>,
) -> CreateBridgeCmd {
    CreateBridgeCmd {
        physical_interface_name: nic.into(),
        bridge_name: bridge.into(),
        l2_network_uuid: l2_uuid.into(),
        disable_iptables: Some(false),
        mtu: Some(mtu.into()),
        isolated: Some(false),
        pvlan: None,
        vlan: vlan.map(i64::from),
    }
}

/// `/network/l2novlan/checkbridge` (`CheckBridgeCmd`; `CheckVlanBridgeCmd`
/// with `vlan`).
pub fn check_bridge_cmd(nic: &str, bridge: &str, vlan: Option<u16>) -> CheckBridgeCmd {
    CheckBridgeCmd {
        physical_interface_name: nic.into(),
        bridge_name: bridge.into(),
        vlan: vlan.map(i64::from),
    }
}

/// `/network/l2novlan/deletebridge` (`DeleteBridgeCmd`; `DeleteVlanBridgeCmd`
/// with `vlan`).
pub fn delete_bridge_cmd(
    nic: &str,
    bridge: &str,
    l2_uuid: &str,
    vlan: Option<u16>,
) -> DeleteBridgeCmd {
    DeleteBridgeCmd {
        physical_interface_name: nic.into(),
        bridge_name: bridge.into(),
        l2_network_uuid: l2_uuid.into(),
        vlan: vlan.map(i64::from),
    }
}

/// `/network/bridge/addif` (`AddInterfaceToBridgeCmd`).
pub fn add_interface_cmd(nic: &str, bridge: &str) -> AddInterfaceToBridgeCmd {
    AddInterfaceToBridgeCmd {
        physical_interface_name: nic.into(),
        bridge_name: bridge.into(),
    }
}

/// `/vm/stop` (`StopVmCmd`: `uuid`, `type`, `timeout` in seconds; no
/// `vmNics`: a router's stop adds them).
pub fn stop_vm_cmd(uuid: &str, kind: &str, timeout_secs: u64) -> StopVmCmd {
    StopVmCmd {
        uuid: uuid.into(),
        kind: kind.into(),
        timeout: Some(timeout_secs),
        vm_nics: None,
    }
}

/// `/vm/reboot` (`RebootVmCmd`: `uuid`, `timeout`, `bootDev`).
pub fn reboot_vm_cmd(uuid: &str, timeout_secs: u64) -> RebootVmCmd {
    RebootVmCmd {
        uuid: uuid.into(),
        timeout: Some(timeout_secs),
        boot_dev: vec!["hd".into()],
    }
}

/// `/vm/destroy` (`DestroyVmCmd`: `uuid`, `vmNics`, empty here: a
/// router's destroy fills them).
pub fn destroy_vm_cmd(uuid: &str) -> DestroyVmCmd {
    DestroyVmCmd {
        uuid: uuid.into(),
        vm_nics: Some(vec![]),
    }
}

/// `/vm/vmsync` (`VmSyncCmd`: no fields, every VM is reported).
pub fn vm_sync_cmd() -> VmSyncCmd {
    VmSyncCmd {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::body;
    use serde_json::{Value, json};

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    /// The typed bodies are the ones the hand-written `json!` builders sent:
    /// the same fields present, with the same values.
    #[test]
    fn typed_bodies_are_the_hand_written_ones() {
        assert_eq!(
            body(&connect_cmd("h1", "http://n/s")),
            json!({"hostUuid": "h1", "sendCommandUrl": "http://n/s", "iptablesRules": [],
                   "ignoreMsrs": false, "pageTableExtensionDisabled": false,
                   "tcpServerPort": 7123, "version": "5.2.0"})
        );
        assert_eq!(
            body(&check_interface_cmd("eth0")),
            json!({"interfaceNames": ["eth0"]})
        );
        let bridge = json!({"physicalInterfaceName": "eth0", "bridgeName": "br", "l2NetworkUuid": "l2",
                            "disableIptables": false, "mtu": 1500, "isolated": false});
        assert_eq!(
            body(&create_bridge_cmd("eth0", "br", "l2", 1500, None)),
            bridge
        );
        let mut vlan = bridge;
        vlan["vlan"] = json!(10);
        assert_eq!(
            body(&create_bridge_cmd("eth0", "br", "l2", 1500, Some(10))),
            vlan
        );
        assert_eq!(
            body(&check_bridge_cmd("eth0", "br", None)),
            json!({"physicalInterfaceName": "eth0", "bridgeName": "br"})
        );
        assert_eq!(
            body(&check_bridge_cmd("eth0", "br", Some(10))),
            json!({"physicalInterfaceName": "eth0", "bridgeName": "br", "vlan": 10})
        );
        assert_eq!(
            body(&delete_bridge_cmd("eth0", "br", "l2", Some(10))),
            json!({"physicalInterfaceName": "eth0", "bridgeName": "br", "l2NetworkUuid": "l2",
                   "vlan": 10})
        );
        assert_eq!(
            body(&delete_bridge_cmd("eth0", "br", "l2", None)),
            json!({"physicalInterfaceName": "eth0", "bridgeName": "br", "l2NetworkUuid": "l2"})
        );
        assert_eq!(
            body(&add_interface_cmd("tap0", "br")),
            json!({"physicalInterfaceName": "tap0", "bridgeName": "br"})
        );
        assert_eq!(
            body(&reboot_vm_cmd("u", 10)),
            json!({"uuid": "u", "timeout": 10, "bootDev": ["hd"]})
        );
        // The bodies of `/vm/stop`, `/vm/destroy` and `/vm/vmsync` before
        // they were typed.
        assert_eq!(
            body(&stop_vm_cmd("u", "grace", 30)),
            json!({"uuid": "u", "type": "grace", "timeout": 30})
        );
        assert_eq!(
            body(&destroy_vm_cmd("u")),
            json!({"uuid": "u", "vmNics": []})
        );
        assert_eq!(body(&vm_sync_cmd()), json!({}));
        assert_eq!(
            body(&common::kvm::vm::ConsoleTailCmd {
                uuid: "u".into(),
                max_bytes: Some(3000)
            }),
            json!({"uuid": "u", "maxBytes": 3000})
        );
    }

    /// Every field `ConnectCmd` has, primitives with their values.
    #[test]
    fn connect_carries_every_field_of_connect_cmd() {
        let c = body(&connect_cmd("h1", &send_command_url("10.1.0.10")));
        assert_eq!(
            keys(&c),
            [
                "hostUuid",
                "ignoreMsrs",
                "iptablesRules",
                "pageTableExtensionDisabled",
                "sendCommandUrl",
                "tcpServerPort",
                "version"
            ]
        );
        assert_eq!(
            c["sendCommandUrl"],
            "http://10.1.0.10:8080/zstack/asyncrest/sendcommand"
        );
        assert_eq!(c["tcpServerPort"], 7123);
    }

    #[test]
    fn createbridge_carries_every_field_the_l2_backend_sets() {
        let c = body(&create_bridge_cmd("eth0", "br_eth0", "a1", 1500, None));
        assert_eq!(
            keys(&c),
            [
                "bridgeName",
                "disableIptables",
                "isolated",
                "l2NetworkUuid",
                "mtu",
                "physicalInterfaceName"
            ]
        );
        assert_eq!(c["isolated"], false);
        assert_eq!(
            body(&create_bridge_cmd(
                "eth0",
                "br_eth0_10",
                "a1",
                1500,
                Some(10)
            ))["vlan"],
            10
        );
    }
}
