//! VM commands beyond the lifecycle (KVMAgentCommands at zstackio/zstack
//! 5a29293b): state check, console port, NIC hot-plug, virtualizer info.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{NicTo, VirtualDeviceInfo, VirtualizerInfo};

/// `/vm/checkstate` (`CheckVmStateCmd`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckVmStateCmd {
    pub vm_uuids: Vec<String>,
    pub host_uuid: String,
}

/// `CheckVmStateRsp`: the MN maps every value through `KvmVmState.valueOf`
/// (NoState, Running, Paused, Shutdown, Crashed, Suspended).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckVmStateRsp {
    pub states: BTreeMap<String, String>,
}

/// `/vm/getvncport` (`GetVncPortCmd`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GetVncPortCmd {
    pub vm_uuid: String,
}

/// `GetVncPortResponse`: `port` is a Java `int`, the others boxed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct GetVncPortResponse {
    pub port: i64,
    pub protocol: String,
    pub vnc_port: Option<i64>,
    pub spice_port: Option<i64>,
    pub spice_tls_port: Option<i64>,
}

/// `/vm/attachnic` (`AttachNicCommand`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AttachNicCmd {
    pub vm_uuid: String,
    pub nic: NicTo,
    pub account_uuid: String,
}

/// `AttachNicResponse`: the MN stores each entry's `deviceAddress` as the
/// NIC's address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct AttachNicResponse {
    pub virtual_device_info_list: Vec<VirtualDeviceInfo>,
}

/// `/vm/detachnic` (`DetachNicCommand`); the reply is a plain AgentResponse.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DetachNicCmd {
    pub vm_uuid: String,
    pub nic: NicTo,
}

/// `/vm/getvirtualizerinfo` (`GetVirtualizerInfoCmd`), sent by the host
/// connect flow "collect-virtualizer-info-for-running-vm".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GetVirtualizerInfoCmd {
    pub vm_uuids: Vec<String>,
}

/// `GetVirtualizerInfoRsp`: the MN reads `hostInfo.uuid/virtualizer/version`
/// and streams `vmInfoList` (both must be present).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct GetVirtualizerInfoRsp {
    pub host_info: VirtualizerInfo,
    pub vm_info_list: Vec<VirtualizerInfo>,
}

/// `/vm/volumesync` (`VolumeSyncCmd`), sent by KvmVmActiveVolumeSyncPingTask
/// when a primary storage extension names storage paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeSyncCmd {
    pub storage_paths: Vec<String>,
}

/// `VolumeSyncRsp`: storage path -> volume paths no VM uses (twice in a row).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeSyncRsp {
    pub inactive_volume_paths: BTreeMap<String, Vec<String>>,
}
