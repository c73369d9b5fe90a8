//! What the router is given at boot (reference section 1.7) and its
//! credentials, replaceable later.

use serde::{Deserialize, Serialize};

use super::nic::NicInfo;

/// The bootstrap info (`ApplianceVmFacadeImpl.prepareBootstrapInformation`
/// plus the vrouter keys of `VyosVmBaseFactory.applianceVmPrepareBootstrapInfo`,
/// zstackio/zstack 5a29293bd5). The router reads its NICs as the looser
/// [`NicInfo`]; the controller writes them as [`ApplianceVmNicTo`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BootstrapInfo<Nic = NicInfo> {
    pub management_nic: Nic,
    pub additional_nics: Vec<Nic>,
    pub public_key: Option<String>,
    pub ssh_port: Option<i64>,
    pub uuid: Option<String>,
    pub management_node_ip: Option<String>,
    pub management_node_cidr: Option<String>,
    pub appliance_vm_sub_type: Option<String>,
    /// `vyosPassword` (`virtualRouter.vrouter.password`).
    pub vyos_password: Option<String>,
    /// `EnableVyosCmd` (`vyos.enable.vyos.cmd`), capitalised as the node
    /// writes it (`VyosConstants.CONFIG_ENABLE_VYOS`).
    #[serde(rename = "EnableVyosCmd")]
    pub enable_vyos_cmd: Option<bool>,
    /// `ConfigTcForVipQos` (`virtualRouter.tc.for.vipqos`,
    /// `VirtualRouterConstant.TC_FOR_VIPQOS`).
    #[serde(rename = "ConfigTcForVipQos")]
    pub config_tc_for_vip_qos: Option<bool>,
    /// `abnormalFileMaxSize` (`applianceVm.abnormalFileMaxSize`, MB).
    pub abnormal_file_max_size: Option<i64>,
    /// `haStatus`: `NoHa`, or the router is a half of an HA pair and must
    /// not answer for the pair's addresses before keepalived has elected it
    /// (zstackio/zstack-vyos `utils/bootStrapInfo.go` `IsHaEnabled`, at
    /// 1f64cc76: any value but `NoHa`, case-insensitive).
    pub ha_status: Option<String>,
    /// Our extension: mutual TLS on the agent's port with these (issue 14).
    pub agent_tls: Option<AgentTls>,
    /// Our extension: bearer tokens the agent requires.
    pub agent_tokens: Option<Vec<String>>,
}

/// One NIC of the bootstrap info as the controller writes it:
/// `ApplianceVmNicTO` (zstackio/zstack 5a29293bd5,
/// `plugin/applianceVm/.../ApplianceVmNicTO.java`), its fields only. Java's
/// `Integer`s are `i64` here, as in [`NicInfo`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplianceVmNicTo {
    pub ip: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub mac: String,
    pub device_name: String,
    pub meta_data: Option<String>,
    pub is_default_route: bool,
    pub category: Option<String>,
    pub l2type: Option<String>,
    pub vni: Option<i64>,
    pub physical_interface: Option<String>,
    pub mtu: Option<i64>,
    pub ip6: Option<String>,
    pub prefix_length: Option<i64>,
    pub gateway6: Option<String>,
    pub address_mode: Option<String>,
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

impl<Nic> BootstrapInfo<Nic> {
    /// Whether the router is a half of an HA pair (`haStatus` other than
    /// `NoHa`; an empty one counts as absent, unlike zvr, so a stray empty
    /// key cannot hold a lone router's NICs down).
    pub fn in_ha_pair(&self) -> bool {
        self.ha_status
            .as_deref()
            .map(str::trim)
            .is_some_and(|s| !s.is_empty() && !s.eq_ignore_ascii_case("NoHa"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ha: serde_json::Value) -> Result<BootstrapInfo, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"uuid": "u", "haStatus": ha}))
    }

    /// `haStatus` as zvr reads it (anything but NoHa, any case, is a pair),
    /// except that an empty or blank one is none; a value of another type
    /// makes the document unreadable like any other mistyped field.
    #[test]
    fn ha_status_says_pair_only_for_a_real_value() {
        let none: BootstrapInfo = serde_json::from_value(serde_json::json!({"uuid": "u"})).unwrap();
        assert!(!none.in_ha_pair());
        for (value, pair) in [
            ("NoHa", false),
            ("noha", false),
            (" NOHA ", false),
            ("", false),
            ("  ", false),
            ("Backup", true),
            ("Master", true),
            ("anything", true),
        ] {
            assert_eq!(with(value.into()).unwrap().in_ha_pair(), pair, "{value:?}");
        }
        assert!(with(serde_json::Value::Null).unwrap().ha_status.is_none());
        assert!(with("x".repeat(100_000).into()).unwrap().in_ha_pair());
        for bad in [
            serde_json::json!(1),
            serde_json::json!(true),
            serde_json::json!(["Backup"]),
        ] {
            let e = with(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("invalid type"), "{bad}: {e}");
        }
    }
}
