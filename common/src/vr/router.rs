//! Commands about the router as a whole: `/echo`, `/init`, `/ping`.

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
    /// Java null (skipped) when empty: no management network given.
    #[serde(skip_serializing_if = "String::is_empty")]
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
