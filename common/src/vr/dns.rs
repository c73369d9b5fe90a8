//! DNS upstreams (reference section 2.4).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DnsInfo {
    pub dns_address: String,
    pub nic_mac: Option<String>,
}

/// `dns` is mandatory: VirtualRouterDnsBackend and
/// VirtualRouterSyncDnsOnStartFlow set it from getDnsInfoOfVr, which returns
/// a list (empty when the last DNS goes: a legitimate "no upstream").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsCmd {
    pub dns: Vec<DnsInfo>,
}

/// `dns` and `nicMac` are mandatory: the one sender, the closed VPC
/// plugin's VpcRouterDnsBackend.applyDnsToVpcRouter (read in ZSvirt/zsvirt
/// d057ed44, premium/vpc/src/main/java/org/zstack/vpc/
/// VpcRouterDnsBackend.java:74-75 and 78-88), sets `dns` from a query's list
/// (never null) and `nicMac` to a new list. A body without them would drop
/// every upstream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVpcDnsCmd {
    pub dns: Vec<String>,
    pub nic_mac: Vec<String>,
}
