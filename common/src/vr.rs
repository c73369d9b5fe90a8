//! Wire types of the ZStack virtual-router agent protocol
//! (`shared/reference/zstack-vr-protocol.md`). Field names follow the Java
//! command classes exactly: camelCase, `is*` booleans kept. Every struct takes
//! defaults for missing fields and ignores unknown ones; values stay strings
//! here and are validated when converted into the agent's model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Protocol level reported to the controller as `zvrVersion`: the ZStack
/// controller wants four numeric parts and redeploys agents it finds older
/// than its own, so this names the zvr protocol level we implement.
pub const ZVR_VERSION: &str = "5.2.0.0";

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

// ---- Size bounds (issue 13) ----

/// Certificates (PEM chains) and public keys: generous for a chain of a few
/// 4096-bit certificates and a key, nothing like the 50 MB that was once
/// persisted and echoed.
pub const MAX_PEM: usize = 64 << 10;
/// Uuids: the node sends 32 hex digits (36 with dashes).
pub const MAX_UUID: usize = 36;
/// A DNS name (RFC 1035: 253 characters in text form).
pub const MAX_NAME: usize = 253;
/// One LB parameter (`key::value`) or redirect rule; ACL and backend lists
/// stay well below this.
pub const MAX_LB_TEXT: usize = 4096;
/// Any other string: addresses, MACs, CIDRs, modes, levels.
pub const MAX_OTHER: usize = 255;

/// How long a string under `key` may be, and whether it may hold line
/// breaks (only PEM text does).
fn bound_for(key: &str) -> (usize, bool, &'static str) {
    match key {
        "certificate" | "certs" | "publicKey" | "privateKey" | "clientCa" => {
            (MAX_PEM, true, "a PEM text")
        }
        "uuid" => (MAX_UUID, false, "a uuid"),
        k if k.ends_with("Uuid") => (MAX_UUID, false, "a uuid"),
        "hostname" | "dnsDomain" | "name" => (MAX_NAME, false, "a DNS name"),
        "parameters" | "redirectRule" | "parms" => (MAX_LB_TEXT, false, "a parameter"),
        _ => (MAX_OTHER, false, "this field"),
    }
}

/// Refuses any string (value or map key) of a command that is longer than
/// its use needs or carries control characters where none belong, naming
/// its JSON path and never quoting it: a 50 MB uuid or a newline in a name
/// never reaches the model, a reply or a log line.
pub fn check_bounds<T: Serialize>(cmd: &T) -> Result<(), String> {
    let v = serde_json::to_value(cmd).map_err(|e| e.to_string())?;
    walk(&v, "", "")
}

fn walk(v: &serde_json::Value, path: &str, key: &str) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::String(s) => check_str(s, path, key),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), key)),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            // Map keys are data: the `certs` map is keyed by certificate
            // uuid, `parms` by parameter name.
            let data_map = matches!(key, "certs" | "parms" | "serviceHealthList");
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if data_map {
                let kind = if key == "certs" { "uuid" } else { key };
                check_str(k, &format!("{path} key"), kind)?;
                walk(x, &format!("{path}[{}]", crate::text::quoted(k)), key)
            } else {
                walk(x, &child, k)
            }
        }),
        _ => Ok(()),
    }
}

fn check_str(s: &str, path: &str, key: &str) -> Result<(), String> {
    let (max, multi_line, what) = bound_for(key);
    let path = if path.is_empty() { "body" } else { path };
    if s.len() > max {
        return Err(format!(
            "{path}: is {} bytes, more than the {max} {what} may have",
            s.len()
        ));
    }
    let bad = |c: char| c.is_control() && !(multi_line && matches!(c, '\n' | '\r' | '\t'));
    if let Some(c) = s.chars().find(|&c| bad(c)) {
        return Err(format!(
            "{path}: contains the control character {:?}, not allowed here",
            c
        ));
    }
    Ok(())
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn long_or_control_strings_are_refused_by_path_without_quoting_them() {
        let mut c = PortForwardingCmd::default();
        c.rules.push(PortForwardingRule {
            uuid: "u".repeat(50 << 20),
            ..Default::default()
        });
        let e = check_bounds(&c).unwrap_err();
        assert!(
            e.starts_with("rules[0].uuid: is 52428800 bytes, more than the 36"),
            "{e}"
        );
        assert!(e.len() < 200);
        c.rules[0].uuid = "a\nforged log line".into();
        let e = check_bounds(&c).unwrap_err();
        assert!(
            e.contains("rules[0].uuid: contains the control character '\\n'"),
            "{e}"
        );
        c.rules[0].uuid = "3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b".into();
        check_bounds(&c).unwrap();
        let mut certs = CertificatesCmd::default();
        certs
            .certs
            .insert("c1".into(), "-----BEGIN CERTIFICATE-----\nAAA\n".into());
        check_bounds(&certs).unwrap();
        certs.certs.insert("c2".into(), "x".repeat(MAX_PEM + 1));
        assert!(check_bounds(&certs).unwrap_err().contains("certs[\"c2\"]"));
        let mut certs = CertificatesCmd::default();
        certs.certs.insert("k".repeat(40), String::new());
        assert!(check_bounds(&certs).unwrap_err().contains("certs key"));
    }

    #[test]
    fn destructive_commands_need_their_list() {
        let e = serde_json::from_str::<SyncSnatCmd>("{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("snats"), "{e}");
        assert!(
            serde_json::from_str::<SyncEipCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("eips")
        );
        assert!(
            serde_json::from_str::<PortForwardingCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("rules")
        );
        assert!(
            serde_json::from_str::<DhcpServersCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("dhcpServers")
        );
        assert!(
            serde_json::from_str::<DnsCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("dns")
        );
        assert!(
            serde_json::from_str::<LbCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("lbs")
        );
        assert!(
            serde_json::from_str::<CertificatesCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("certs")
        );
        assert!(
            serde_json::from_str::<CreateVipCmd>("{}")
                .unwrap_err()
                .to_string()
                .contains("vips")
        );
        // The four whose senders were read later (see their types).
        let missing = |r: Result<(), serde_json::Error>| r.unwrap_err().to_string();
        let e = missing(serde_json::from_str::<SetVpcDnsCmd>(r#"{"nicMac":[]}"#).map(drop));
        assert!(e.contains("missing field `dns`"), "{e}");
        let e = missing(serde_json::from_str::<SetVpcDnsCmd>(r#"{"dns":[]}"#).map(drop));
        assert!(e.contains("missing field `nicMac`"), "{e}");
        let e = missing(serde_json::from_str::<AddDhcpCmd>(r#"{"rebuild":true}"#).map(drop));
        assert!(e.contains("missing field `dhcpEntries`"), "{e}");
        let e = missing(serde_json::from_str::<RemoveSnatCmd>("{}").map(drop));
        assert!(e.contains("missing field `natInfo`"), "{e}");
        let e = missing(
            serde_json::from_str::<SetSnatServiceStateCmd>(r#"{"enabled":false}"#).map(drop),
        );
        assert!(e.contains("missing field `snats`"), "{e}");
        let e =
            missing(serde_json::from_str::<SetSnatServiceStateCmd>(r#"{"snats":[]}"#).map(drop));
        assert!(e.contains("missing field `enabled`"), "{e}");
        // `rebuild` is a Java primitive (always written) but its absence
        // only means "merge", which removes nothing.
        assert!(
            !serde_json::from_str::<AddDhcpCmd>(r#"{"dhcpEntries":[]}"#)
                .unwrap()
                .rebuild
        );
        // The empty lists the node sends to remove everything stay valid.
        assert!(serde_json::from_str::<SyncEipCmd>(r#"{"eips":[]}"#).is_ok());
        assert!(serde_json::from_str::<DhcpServersCmd>(r#"{"dhcpServers":[]}"#).is_ok());
        assert!(
            serde_json::from_str::<SyncSnatCmd>(r#"{"snats":[]}"#)
                .unwrap()
                .enable
        );
    }
}
