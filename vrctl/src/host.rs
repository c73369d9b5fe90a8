//! The compute-host commands as the management node builds them
//! (zstackio/zstack 5a29293bd5, `plugin/kvm/.../KVMAgentCommands.java` and
//! their callers). Gson writes every primitive field (`int`, `boolean`)
//! whatever its value, and leaves out null objects; the bodies here carry
//! the same fields with the values the node's defaults give.

use serde_json::{Value, json};

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
pub fn connect_cmd(host_uuid: &str, send_command_url: &str) -> Value {
    json!({
        "hostUuid": host_uuid,
        "sendCommandUrl": send_command_url,
        "iptablesRules": [],
        "ignoreMsrs": false,
        "pageTableExtensionDisabled": false,
        "tcpServerPort": TCP_SERVER_PORT,
        "version": NODE_VERSION,
    })
}

/// `/network/checkphysicalnetworkinterface` (sync), sent for each L2
/// network before its bridge.
pub fn check_interface_cmd(nic: &str) -> Value {
    json!({"interfaceNames": [nic]})
}

/// `/network/l2novlan/createbridge` (`CreateBridgeCmd`, built in
/// `KVMRealizeL2NoVlanNetworkBackend.realize`): `disableIptables` from
/// `bridge.disable.iptables` (false), the L2's MTU, `isolated` from the L2
/// (a NOT NULL column, false unless the L2 is isolated). With `vlan`, the
/// `CreateVlanBridgeCmd` of `/network/l2vlan/createbridge`.
pub fn create_bridge_cmd(
    nic: &str,
    bridge: &str,
    l2_uuid: &str,
    mtu: u32,
    vlan: Option<u16>,
) -> Value {
    let mut v = json!({
        "physicalInterfaceName": nic,
        "bridgeName": bridge,
        "l2NetworkUuid": l2_uuid,
        "disableIptables": false,
        "mtu": mtu,
        "isolated": false,
    });
    if let Some(vlan) = vlan {
        v["vlan"] = json!(vlan);
    }
    v
}

/// `/network/l2novlan/checkbridge` (`CheckBridgeCmd`; `CheckVlanBridgeCmd`
/// with `vlan`).
pub fn check_bridge_cmd(nic: &str, bridge: &str, vlan: Option<u16>) -> Value {
    let mut v = json!({"physicalInterfaceName": nic, "bridgeName": bridge});
    if let Some(vlan) = vlan {
        v["vlan"] = json!(vlan);
    }
    v
}

/// `/network/l2novlan/deletebridge` (`DeleteBridgeCmd`; `DeleteVlanBridgeCmd`
/// with `vlan`).
pub fn delete_bridge_cmd(nic: &str, bridge: &str, l2_uuid: &str, vlan: Option<u16>) -> Value {
    let mut v =
        json!({"physicalInterfaceName": nic, "bridgeName": bridge, "l2NetworkUuid": l2_uuid});
    if let Some(vlan) = vlan {
        v["vlan"] = json!(vlan);
    }
    v
}

/// `/network/bridge/addif` (`AddInterfaceToBridgeCmd`).
pub fn add_interface_cmd(nic: &str, bridge: &str) -> Value {
    json!({"physicalInterfaceName": nic, "bridgeName": bridge})
}

/// `/vm/stop` (`StopVmCmd`: `uuid`, `type`, `timeout` in seconds).
pub fn stop_vm_cmd(uuid: &str, kind: &str, timeout_secs: u64) -> Value {
    json!({"uuid": uuid, "type": kind, "timeout": timeout_secs})
}

/// `/vm/reboot` (`RebootVmCmd`: `uuid`, `timeout`, `bootDev`).
pub fn reboot_vm_cmd(uuid: &str, timeout_secs: u64) -> Value {
    json!({"uuid": uuid, "timeout": timeout_secs, "bootDev": ["hd"]})
}

/// `/vm/destroy` (`DestroyVmCmd`: `uuid`, `vmNics`).
pub fn destroy_vm_cmd(uuid: &str) -> Value {
    json!({"uuid": uuid, "vmNics": []})
}

/// `/vm/vmsync` (`VmSyncCmd`: the VMs the node wants reported, none means
/// all).
pub fn vm_sync_cmd() -> Value {
    json!({})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    /// Every field `ConnectCmd` has, primitives with their values.
    #[test]
    fn connect_carries_every_field_of_connect_cmd() {
        let c = connect_cmd("h1", &send_command_url("10.1.0.10"));
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
        let c = create_bridge_cmd("eth0", "br_eth0", "a1", 1500, None);
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
            create_bridge_cmd("eth0", "br_eth0_10", "a1", 1500, Some(10))["vlan"],
            10
        );
    }
}
