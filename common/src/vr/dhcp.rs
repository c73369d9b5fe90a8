//! DHCP servers and entries (reference section 2.3).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DhcpInfo {
    pub ip: String,
    pub mac: String,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    /// Java null (skipped) when empty, as `VyosDhcpBackend` leaves it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    pub hostname: Option<String>,
    /// Java null (skipped) when empty: a `/refreshDhcpServer` entry leaves
    /// it to its server's `nicMac`.
    #[serde(skip_serializing_if = "String::is_empty")]
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

/// `dhcpEntries` is mandatory: VirtualRouterDhcpBackend.java:71 sets a
/// one-entry list, VirtualRouterSyncDHCPOnStartFlow.java:183 fills it (the
/// getter creates it) and skips the call when empty (line 186), zstackio/
/// zstack 5a29293b. `rebuild` missing only means "merge": nothing goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddDhcpCmd {
    pub dhcp_entries: Vec<DhcpInfo>,
    #[serde(default)]
    pub rebuild: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RemoveDhcpCmd {
    pub dhcp_entries: Vec<DhcpInfo>,
}

/// `dhcpServers` is mandatory: VyosDhcpBackend.refreshDhcpServer builds the
/// list and sends `[]` (sendEmptyInfo: DHCP off on a public NIC) to mean
/// "no server", which stays a legitimate empty list; start/stop set it too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpServersCmd {
    pub dhcp_servers: Vec<DhcpServerInfo>,
}
