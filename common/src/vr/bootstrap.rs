//! What the router is given at boot (reference section 1.7) and its
//! credentials, replaceable later.

use serde::{Deserialize, Serialize};

use super::nic::NicInfo;

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
    /// Our extension: mutual TLS on the agent's port with these (issue 14).
    pub agent_tls: Option<AgentTls>,
    /// Our extension: bearer tokens the agent requires.
    pub agent_tokens: Option<Vec<String>>,
}

/// The router's own credentials for mutual TLS, PEM: its certificate
/// chain, its key, and the CA the controller's client certificate must
/// chain to.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentTls {
    pub certificate: String,
    pub private_key: String,
    pub client_ca: String,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTls").finish_non_exhaustive()
    }
}

/// Our extension, `POST /agent/credentials`: replace the running agent's
/// TLS material and/or tokens without a restart. A part left out stays.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentCredentialsCmd {
    pub tls: Option<AgentTls>,
    pub tokens: Option<Vec<String>>,
}
