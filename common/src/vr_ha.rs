//! Wire types of the virtual router's HA pair (issue 17), as ZStack's
//! management node and zvr speak it. Fixtures: `conformance/vr/ha/`, and
//! the served ones in `conformance/vr/`.
//!
//! Sources (read, not copied):
//! - zstackio/zstack `5a29293bd53c98a38488fb8b71d54531012d3dae`,
//!   `plugin/virtualRouterProvider/.../vyos/VyosKeepalivedCommands.java`
//!   (the classes), `.../vyos/VyosVm.java configureKeepalived` (reads only
//!   `success`/`error` of `/enableVyosha`), `ApplianceVmHaStatus.java`
//!   (`NoHa|Master|Backup`), `core/.../rest/RESTFacadeImpl.java`
//!   (`getSendCommandUrl` = `.../asyncrest/sendcommand`, dispatch on the
//!   `commandpath` header).
//! - ZSvirt/zsvirt `4aeacf241f6fb4747de90fa3b6aa2788781d903d` (the premium
//!   VPC module, where the callers live):
//!   `premium/vpc/.../vpc/ha/vyos/vyosVpcHaRouterBackendManagerImpl.java
//!   enableHa` fills `/enableVyosha`; `premium/vpc/.../vpc/ha/VpcHaGroupManagerImpl.java
//!   start` serves the status report `/vpc/hastatus` and, on a second
//!   Master, sends `/syncVpcRouterHa` to the peer and `/restartKeepalived`
//!   to the reporter.
//! - zstackio/zstack-vyos `63bc11ade0f13f3287cdd1d7a90a7aab9a130af0`,
//!   `plugin/vyosha.go` (handlers), `plugin/keepalived.go` (config, notify
//!   scripts, `/keepalived/garp`), `plugin/misc.go` (`/ping` `haStatus`).
//!
//! | path | mode | request | the node reads |
//! |---|---|---|---|
//! | `/enableVyosha` | async | [`EnableVyosHaCmd`] | `success`, `error` |
//! | `/syncVpcRouterHa` | async | `{}` | `success`, `error`, `haStatus` (`valueOf`: mandatory) |
//! | `/restartKeepalived` | async | `{}` | `success`, `error` (only logged) |
//! | `/keepalived/garp` | sync | empty, sent by the *peer's* notify-backup script, not by the node | nothing |
//! | `/ping` | async | `{uuid}` | `haStatus` copied to the ping reply (string) |
//!
//! The status report goes the other way: on every keepalived transition
//! zvr's notify script POSTs [`HaStatusReport`] to the command's
//! `callbackUrl` (the node's `/zstack/asyncrest/sendcommand`) with header
//! `commandpath: /vpc/hastatus`. The node acts only on `Master` and
//! `Backup`; anything else is logged and dropped. Its answer is an empty
//! 200 (the handler returns null).
//!
//! What zvr does with them (behaviour to match, not wire): `keepalive` is
//! keepalived's `advert_int` in seconds (the node's `vpcHa.keepalived.interval`,
//! 1..60); one VRRP instance `virtual_router_id 50`, `priority 100`,
//! `nopreempt`, `state BACKUP`, unicast from `localIp` to `peerIp` on the
//! heartbeat NIC (found by MAC; the caller uses the management NIC); the
//! VIPs become secondary addresses added by the master's notify script;
//! an empty `peerIp` is replaced by `localIp`. conntrackd's FTFW config is
//! written (UDP port 3780) but zvr kills conntrackd at start ("disable
//! conntrackd at current time", `InitHaNicState`).

use serde::{Deserialize, Serialize};

pub const ENABLE_HA_PATH: &str = "/enableVyosha";
pub const SYNC_HA_PATH: &str = "/syncVpcRouterHa";
pub const RESTART_KEEPALIVED_PATH: &str = "/restartKeepalived";
pub const GARP_PATH: &str = "/keepalived/garp";
/// The `commandpath` header value of the status report.
pub const HA_STATUS_REPORT_PATH: &str = "/vpc/hastatus";
/// The header `RESTFacadeImpl.sendCommand` dispatches on.
pub const COMMAND_PATH_HEADER: &str = "commandpath";

/// `ApplianceVmHaStatus`: the node passes it to `valueOf`, so these three
/// names are the only ones it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HaStatus {
    #[default]
    NoHa,
    Master,
    Backup,
}

impl HaStatus {
    /// The Java name (what `/ping`'s string `haStatus` carries).
    pub fn as_str(self) -> &'static str {
        match self {
            HaStatus::NoHa => "NoHa",
            HaStatus::Master => "Master",
            HaStatus::Backup => "Backup",
        }
    }
}

/// `VyosHaVip`: one shared address. The enableHa caller fills `nicMac`,
/// `nicVip` and `netmask` (IPv4 only; IPv6 VIPs are skipped); `category`
/// and `prefixLen` (an `Integer`) are never set by it, so Gson omits them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct HaVip {
    pub nic_mac: String,
    pub nic_vip: String,
    pub netmask: Option<String>,
    pub category: Option<String>,
    pub prefix_len: Option<i64>,
}

/// `VyosHaEnableCmd`. Every field is a boxed Java type, so any may be
/// absent (`peerIp` is when the peer is not created yet).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct EnableVyosHaCmd {
    /// VRRP advertisement interval in seconds (`Integer`).
    pub keepalive: Option<i64>,
    /// The heartbeat NIC's MAC (the management NIC's, from the caller).
    pub heartbeat_nic: Option<String>,
    pub local_ip: Option<String>,
    #[serde(rename = "localIpV6")]
    pub local_ip_v6: Option<String>,
    pub peer_ip: Option<String>,
    #[serde(rename = "peerIpV6")]
    pub peer_ip_v6: Option<String>,
    /// Addresses keepalived pings to lower its priority (`weight -2`).
    pub monitors: Vec<String>,
    pub vips: Vec<HaVip>,
    /// Where the status report goes (`.../asyncrest/sendcommand`).
    pub callback_url: Option<String>,
}

/// `SyncVpcRouterHaCmd`, `RestartKeepalivedCmd`: no fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmptyCmd {}

/// `SyncVpcRouterHaRsp`: `haStatus` is read with `valueOf` (mandatory);
/// `Master` makes the node restart keepalived on the router that just
/// reported Master too (split brain), `Backup` is stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncHaRsp {
    pub ha_status: HaStatus,
}

/// `VpcRouterHaStatusCmd`: the body the agent POSTs to `callbackUrl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HaStatusReport {
    pub virtual_router_uuid: String,
    pub ha_status: HaStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects_only::ObjectsOnly;
    use serde_json::{Value, json};

    /// `name` is relative to `conformance/vr/`: the served HA fixtures sit there,
    /// the ones that need a real pair in `ha/`.
    fn fixture(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../conformance/vr")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    #[test]
    fn the_enable_fixture_is_read_field_for_field() {
        let f = fixture("ha/enableVyosha.json");
        let cmd = EnableVyosHaCmd::deserialize(ObjectsOnly(f["request"].clone())).unwrap();
        assert_eq!(cmd.keepalive, Some(1));
        assert_eq!(cmd.heartbeat_nic.as_deref(), Some("fa:26:9c:aa:00:01"));
        assert_eq!(cmd.peer_ip.as_deref(), Some("10.0.0.6"));
        assert_eq!(cmd.vips.len(), 1);
        assert_eq!(cmd.vips[0].netmask.as_deref(), Some("255.255.255.0"));
        assert_eq!(cmd.vips[0].prefix_len, None);
        // What we send back is what Gson would: no nulls, same names.
        let back = serde_json::to_value(&cmd).unwrap();
        assert_eq!(back["localIp"], f["request"]["localIp"]);
        assert_eq!(back["callbackUrl"], f["request"]["callbackUrl"]);
    }

    #[test]
    fn a_list_where_an_object_belongs_is_refused() {
        let bad = json!({"vips": [[]]});
        assert!(EnableVyosHaCmd::deserialize(ObjectsOnly(bad)).is_err());
        assert!(EnableVyosHaCmd::deserialize(ObjectsOnly(json!([]))).is_err());
    }

    #[test]
    fn status_names_are_the_java_enum_names() {
        for (s, name) in [
            (HaStatus::NoHa, "NoHa"),
            (HaStatus::Master, "Master"),
            (HaStatus::Backup, "Backup"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(name));
            assert_eq!(s.as_str(), name);
        }
        let r = HaStatusReport {
            virtual_router_uuid: "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11".into(),
            ha_status: HaStatus::Master,
        };
        let f = fixture("ha/hastatus-report.json");
        assert_eq!(serde_json::to_value(&r).unwrap(), f["request"]);
        let rsp = serde_json::to_value(SyncHaRsp {
            ha_status: HaStatus::Backup,
        })
        .unwrap();
        assert_eq!(rsp, json!({"haStatus": "Backup"}));
        assert!(serde_json::from_value::<HaStatus>(json!("Fault")).is_err());
    }

    #[test]
    fn empty_commands_take_an_empty_object() {
        for name in ["syncVpcRouterHa.json", "ha/restartKeepalived.json"] {
            let f = fixture(name);
            EmptyCmd::deserialize(ObjectsOnly(f["request"].clone())).unwrap();
        }
    }
}
