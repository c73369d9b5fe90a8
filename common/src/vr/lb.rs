//! Load balancer listeners and certificates (reference section 2.9).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// `lbs` is mandatory: VirtualRouterLoadBalancerBackend's refresh flows set
/// `cmd.lbs` to the list they build (empty when the last listener goes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbCmd {
    pub lbs: Vec<LbInfo>,
    #[serde(default)]
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

/// `certs` is mandatory: VirtualRouterLoadBalancerBackend's
/// "refresh-lb-certs" flow skips the call when it has no certificate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesCmd {
    pub certs: BTreeMap<String, String>,
}
