//! Wire types of the ZStack virtual-router agent protocol
//! (`shared/reference/zstack-vr-protocol.md`). Field names follow the Java
//! command classes exactly: camelCase, `is*` booleans kept. Every struct takes
//! defaults for missing fields and ignores unknown ones; values stay strings
//! here and are validated when converted into the agent's model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of commands that carry nothing we use (`/echo`, `/type`, `/test`, `/ping`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UuidCmd {
    pub uuid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InitCmd {
    pub uuid: String,
    #[serde(rename = "restartDnsmasqAfterNumberOfSIGUSER1")]
    pub restart_dnsmasq_after_sigusr1: i64,
    pub mgt_cidr: String,
    pub log_level: String,
    pub time_servers: Vec<String>,
    pub parms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitRsp {
    pub uuid: String,
    pub zvr_version: String,
    pub vyos_version: String,
    pub kernel_version: String,
    pub ipsec_current_version: String,
    pub ipsec_latest_version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingRsp {
    pub uuid: String,
    pub version: String,
    pub ha_status: String,
    pub healthy: bool,
    pub health_detail: String,
    pub service_health_list: BTreeMap<String, BTreeMap<String, String>>,
}

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
    /// Bootstrap info names the device; commands from the controller do not.
    pub device_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RemoveSnatCmd {
    pub nat_info: Vec<SnatInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncSnatCmd {
    pub snats: Vec<SnatInfo>,
    pub enable: bool,
}

impl Default for SyncSnatCmd {
    fn default() -> Self {
        SyncSnatCmd {
            snats: Vec::new(),
            enable: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
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
pub struct VipInfo {
    pub ip: String,
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
    pub netmask: String,
    pub owner_ethernet_mac: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateVipCmd {
    pub vips: Vec<VipInfo>,
    pub sync_vip: bool,
    pub nic_ips: Vec<NicIpInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RemoveVipCmd {
    pub vips: Vec<VipInfo>,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncEipCmd {
    pub eips: Vec<EipInfo>,
}

// ---- DHCP and DNS (section 2.3, 2.4) ----

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DhcpInfo {
    pub ip: String,
    pub mac: String,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub hostname: Option<String>,
    pub vr_nic_mac: String,
    pub dns_domain: Option<String>,
    pub is_default_l3_network: bool,
    pub mtu: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DhcpServerInfo {
    pub nic_mac: String,
    pub subnet: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub dns_domain: Option<String>,
    pub dns_server: Option<String>,
    pub mtu: Option<i64>,
    pub dhcp_infos: Vec<DhcpInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AddDhcpCmd {
    pub dhcp_entries: Vec<DhcpInfo>,
    pub rebuild: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RemoveDhcpCmd {
    pub dhcp_entries: Vec<DhcpInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DhcpServersCmd {
    pub dhcp_servers: Vec<DhcpServerInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsInfo {
    pub dns_address: String,
    pub nic_mac: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsCmd {
    pub dns: Vec<DnsInfo>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetVpcDnsCmd {
    pub dns: Vec<String>,
    pub nic_mac: Vec<String>,
}

// ---- Load balancer (section 2.9) ----

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendServer {
    pub ip: String,
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerGroup {
    pub name: Option<String>,
    pub server_group_uuid: String,
    pub backend_servers: Vec<BackendServer>,
    pub is_default: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RedirectRule {
    pub redirect_rule_uuid: String,
    pub acl_uuid: Option<String>,
    pub redirect_rule: String,
    pub server_group_uuid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LbInfo {
    pub lb_uuid: String,
    pub listener_uuid: String,
    pub vip: Option<String>,
    pub vip6: Option<String>,
    pub public_nic: Option<String>,
    pub nic_ips: Vec<String>,
    pub instance_port: i64,
    pub load_balancer_port: i64,
    pub mode: String,
    pub parameters: Vec<String>,
    pub certificate_uuid: Option<String>,
    pub security_policy_type: Option<String>,
    pub server_groups: Vec<ServerGroup>,
    pub redirect_rules: Vec<RedirectRule>,
    pub vip_l3_uuid: Option<String>,
    pub enable_full_log: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LbCmd {
    pub lbs: Vec<LbInfo>,
    pub enable_haproxy_log: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LbLogLevelCmd {
    pub level: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateCmd {
    pub uuid: String,
    pub certificate: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificatesCmd {
    pub certs: BTreeMap<String, String>,
}

// ---- Bootstrap info (section 1.7) ----

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BootstrapInfo {
    pub management_nic: NicInfo,
    pub additional_nics: Vec<NicInfo>,
    pub public_key: Option<String>,
    pub ssh_port: Option<i64>,
    pub uuid: Option<String>,
    pub management_node_ip: Option<String>,
    pub management_node_cidr: Option<String>,
    pub appliance_vm_sub_type: Option<String>,
}
