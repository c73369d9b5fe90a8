//! A command of the agents' protocols as a type: the request body knows the
//! path it is POSTed to and the type of its reply, so a caller (vrctl) that
//! sends a body to the wrong path, or reads a reply of another command, does
//! not compile. One table per protocol below, in the agents' route order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::Ok;
use crate::kvm::vm::*;
use crate::kvm::*;
use crate::{vr, vr_ha};

/// A request body of one path. The reply is read from the reply envelope
/// (its `success` and `error` are the caller's to check).
pub trait Command: Serialize {
    /// The path the body is POSTed to.
    const PATH: &'static str;
    type Reply: DeserializeOwned;
}

/// `impl Command` for each `path => request => reply`.
macro_rules! commands {
    ($($path:expr => $req:ty => $reply:ty;)*) => {
        $(impl Command for $req {
            const PATH: &'static str = $path;
            type Reply = $reply;
        })*
    };
}

// kvmagent (kvm-agent's router). `/host/echo`, `/host/capacity` and
// `/host/fact` take an empty body (`Empty`, shared, so no path of its own);
// `/vm/vmsync` has its own empty `VmSyncCmd` (kvm-agent reads it as `Empty`).
commands! {
    "/host/connect" => ConnectCmd => ConnectResponse;
    "/host/ping" => PingCmd => PingResponse;
    "/host/update/configuration" => UpdateHostConfigurationCmd => Ok;
    "/host/updatedependency" => UpdateDependencyCmd => Ok;
    "/network/checkphysicalnetworkinterface" => CheckPhysicalNetworkInterfaceCmd
        => CheckPhysicalNetworkInterfaceResponse;
    "/network/l2novlan/createbridge" => CreateBridgeCmd => Ok;
    "/network/l2vlan/createbridge" => CreateVlanBridgeCmd => Ok;
    "/network/l2novlan/checkbridge" => CheckBridgeCmd => Ok;
    "/network/l2vlan/checkbridge" => CheckVlanBridgeCmd => Ok;
    "/network/l2novlan/deletebridge" => DeleteBridgeCmd => Ok;
    "/network/l2vlan/deletebridge" => DeleteVlanBridgeCmd => Ok;
    "/network/bridge/addif" => AddInterfaceToBridgeCmd => Ok;
    "/vm/start" => StartVmCmd => StartVmResponse;
    "/vm/stop" => StopVmCmd => Ok;
    "/vm/destroy" => DestroyVmCmd => Ok;
    "/vm/reboot" => RebootVmCmd => RebootVmResponse;
    "/vm/vmsync" => VmSyncCmd => VmSyncResponse;
    "/vm/console/tail" => ConsoleTailCmd => ConsoleTailResponse;
    "/vm/checkstate" => CheckVmStateCmd => CheckVmStateRsp;
    "/vm/getvncport" => GetVncPortCmd => GetVncPortResponse;
    "/vm/volumesync" => VolumeSyncCmd => VolumeSyncRsp;
    "/vm/attachnic" => AttachNicCmd => AttachNicResponse;
    "/vm/detachnic" => DetachNicCmd => Ok;
    "/vm/getvirtualizerinfo" => GetVirtualizerInfoCmd => GetVirtualizerInfoRsp;
    "/appliancevm/setbootstrapinfo" => SetBootstrapInfoCmd => Ok;
}

// The virtual-router agent (vr-agent's router). Bodies shared by several
// paths (`UuidCmd`, `NicsCmd`, `PortForwardingCmd`, `EipCmd`,
// `DhcpServersCmd`, `DnsCmd`, `LbCmd`, `CertificateCmd`) have no path of
// their own, so they are not here.
commands! {
    "/init" => vr::InitCmd => vr::InitRsp;
    "/changeDefaultNic" => vr::ChangeDefaultNicCmd => Ok;
    "/setsnat" => vr::SetSnatCmd => Ok;
    "/removesnat" => vr::RemoveSnatCmd => Ok;
    "/syncsnat" => vr::SyncSnatCmd => Ok;
    "/setsnatservicestate" => vr::SetSnatServiceStateCmd => vr::SnatServiceStateRsp;
    "/createvip" => vr::CreateVipCmd => Ok;
    "/removevip" => vr::RemoveVipCmd => Ok;
    "/synceip" => vr::SyncEipCmd => Ok;
    "/adddhcp" => vr::AddDhcpCmd => Ok;
    "/removedhcp" => vr::RemoveDhcpCmd => Ok;
    "/setvpcdns" => vr::SetVpcDnsCmd => Ok;
    "/lb/log/level" => vr::LbLogLevelCmd => Ok;
    "/certificates/create" => vr::CertificatesCmd => Ok;
    "/agent/credentials" => vr::AgentCredentialsCmd => Ok;
}

// The HA pair (issue 17; not served yet).
commands! {
    vr_ha::ENABLE_HA_PATH => vr_ha::EnableVyosHaCmd => Ok;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply decodes from the agent's envelope, whose `success` and
    /// `error` are not the reply's fields.
    #[test]
    fn replies_decode_from_the_envelope() {
        let rsp = ConsoleTailResponse {
            path: "/var/log/c.log".into(),
            tail: "login:".into(),
        };
        let v = crate::agent::envelope(&std::result::Result::Ok(rsp.clone()));
        let back: <ConsoleTailCmd as Command>::Reply = serde_json::from_value(v).unwrap();
        assert_eq!(back, rsp);
        let _: <StopVmCmd as Command>::Reply =
            serde_json::from_value(serde_json::json!({"success": true, "error": ""})).unwrap();
    }

    /// The wrappers of the VLAN paths put the plain body on the wire.
    #[test]
    fn vlan_bodies_are_the_plain_bodies() {
        let c = CreateBridgeCmd {
            bridge_name: "br_eth0_10".into(),
            vlan: Some(10),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(CreateVlanBridgeCmd(c.clone())).unwrap(),
            serde_json::to_value(c).unwrap()
        );
        assert_eq!(CreateVlanBridgeCmd::PATH, "/network/l2vlan/createbridge");
        assert_eq!(CreateBridgeCmd::PATH, "/network/l2novlan/createbridge");
    }
}
