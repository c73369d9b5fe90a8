//! VIPs: the addresses the router answers for besides its NICs'.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VipInfo {
    /// Java null (skipped) when empty: an IPv6 VIP has only `ip6`
    /// (`VipTO.valueOf`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub netmask: String,
    pub gateway: Option<String>,
    pub ip6: Option<String>,
    pub prefix_length: i64,
    pub gateway6: Option<String>,
    pub owner_ethernet_mac: String,
    pub vip_uuid: Option<String>,
    pub is_system: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NicIpInfo {
    pub ip: String,
    /// Java null (skipped) when empty: the NIC has none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub netmask: String,
    pub owner_ethernet_mac: String,
}

/// `vips` is mandatory: every sender (VirtualRouterVipBackend's
/// createVipOnVirtualRouterVm and its syncVip on NIC attach,
/// VirtualRouterVipBaseBackend.createVipOnVirtualRouterVm) sets it;
/// `nicIps` only comes with `syncVip`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateVipCmd {
    pub vips: Vec<VipInfo>,
    #[serde(default)]
    pub sync_vip: bool,
    #[serde(default)]
    pub nic_ips: Vec<NicIpInfo>,
}

/// `vips` is mandatory (VirtualRouterVipBaseBackend.releaseVipOnVirtualRouterVm sets it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveVipCmd {
    pub vips: Vec<VipInfo>,
}
