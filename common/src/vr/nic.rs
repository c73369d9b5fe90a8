//! NICs: configure, remove, change the default NIC.

use serde::{Deserialize, Serialize};

use super::nat::SnatInfo;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NicInfo {
    pub ip: Option<String>,
    pub mac: String,
    pub gateway: Option<String>,
    pub netmask: Option<String>,
    pub is_default_route: bool,
    pub category: Option<String>,
    pub physical_interface: Option<String>,
    pub l2type: Option<String>,
    pub vni: Option<i64>,
    pub firewall_default_action: Option<String>,
    pub mtu: Option<i64>,
    pub ip6: Option<String>,
    pub prefix_length: Option<i64>,
    pub gateway6: Option<String>,
    pub address_mode: Option<String>,
    pub state: Option<String>,
    /// Bootstrap info names the device (`ApplianceVmNicTO`); the commands'
    /// `VirtualRouterCommands.NicInfo` has no such field, so a sender
    /// clears it (vrctl's `wire::configure_nic`). Not skipped on serialise:
    /// a router description (vrctl's lab) keeps it.
    pub device_name: Option<String>,
}

/// `nics` is mandatory: VirtualRouter.java and the NIC flows
/// (VirtualRouterCreatePublicVipFlow's configurenic, removenic,
/// VyosChangePrivateL3FirewallDefaultActionFlow) always set it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicsCmd {
    pub nics: Vec<NicInfo>,
}

/// `/changeDefaultNic` (ChangeDefaultNicCmd): the NIC that now carries the
/// default route (`mac`, `ip`/`gateway`, `ip6`/`gateway6`, `state`), and
/// the router's SNATs on it (absent when it has none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ChangeDefaultNicCmd {
    pub new_nic: NicInfo,
    pub snats: Vec<SnatInfo>,
}
