//! SNAT, port forwarding and EIPs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SnatInfo {
    pub public_nic_mac: String,
    pub public_ip: String,
    pub private_nic_mac: String,
    pub private_nic_ip: String,
    pub private_gateway_ip: Option<String>,
    pub snat_netmask: String,
    pub state: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetSnatCmd {
    pub snat: SnatInfo,
}

/// `natInfo` is mandatory: both senders in VirtualRouterSnatBackend.java
/// (zstackio/zstack 5a29293b, lines 184-185 and 273-274) set the list they
/// built and skip the call when it is empty (lines 179, 268).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveSnatCmd {
    pub nat_info: Vec<SnatInfo>,
}

/// `snats` is mandatory: VirtualRouterSyncSNATOnStartFlow and
/// VirtualRouterSnatBackend (syncSnat) always set it and skip the call when
/// it would be empty, so a body without it is not "no SNAT" but a broken
/// request (it would wipe every SNAT rule).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSnatCmd {
    pub snats: Vec<SnatInfo>,
    #[serde(default = "yes")]
    pub enable: bool,
}

fn yes() -> bool {
    true
}

impl Default for SyncSnatCmd {
    fn default() -> Self {
        SyncSnatCmd {
            snats: Vec::new(),
            enable: true,
        }
    }
}

/// `snats` and `enabled` are mandatory: the one sender, the closed VPC
/// plugin's VpcManagerImpl.setSnatStateToVirtualRouter (read in
/// ZSvirt/zsvirt d057ed44, premium/vpc/src/main/java/org/zstack/vpc/
/// VpcManagerImpl.java:832-833), sets both and skips the call when the list
/// is empty (line 827). A body without them would switch SNAT off.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSnatServiceStateCmd {
    pub snats: Vec<SnatInfo>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnatServiceStateRsp {
    pub service_status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortForwardingRule {
    pub uuid: String,
    pub vip_port_start: i64,
    pub vip_port_end: i64,
    pub private_port_start: i64,
    pub private_port_end: i64,
    pub protocol_type: String,
    pub vip_ip: String,
    pub public_mac: String,
    pub private_ip: String,
    pub private_mac: String,
    pub allowed_cidr: Option<String>,
    pub snat_inbound_traffic: bool,
}

/// `rules` is mandatory for create, revoke and sync:
/// VirtualRouterSyncPortForwardingRulesOnStartFlow sets it and skips the
/// call when there is no rule, so `/syncportforwarding` without it would
/// wipe every rule on a request the node never sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardingCmd {
    pub rules: Vec<PortForwardingRule>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EipInfo {
    pub vip_ip: String,
    pub private_mac: String,
    pub public_mac: String,
    pub guest_ip: String,
    pub snat_inbound_traffic: bool,
    pub need_clean_guest_ip: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EipCmd {
    pub eip: EipInfo,
}

/// `eips` is mandatory: VirtualRouterSyncEipOnStartFlow sets it (and skips
/// the call when empty); VirtualRouterEipBackend's NIC detach sends `[]` to
/// remove them all, which stays a legitimate "remove all".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncEipCmd {
    pub eips: Vec<EipInfo>,
}
