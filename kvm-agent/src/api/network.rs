//! `/network/l2novlan/*`, `/network/l2vlan/*`, `/network/bridge/addif`.

use common::agent::{ApiError, Ok};
use common::net::IfName;

use super::AppState;
use crate::bridge::{self, BridgeError};
use crate::plan::bridge::{BridgeSpec, PlanError};
use crate::wire::bounds;
use crate::wire::*;

fn ifname(field: &str, v: &str) -> Result<String, ApiError> {
    v.parse::<IfName>()
        .map(|n| n.as_str().to_string())
        .map_err(|e| ApiError::bad_request(format!("field {field}: {e}")))
}

fn vlan_id(v: Option<i64>) -> Result<u16, ApiError> {
    match v.unwrap_or(0) {
        n @ 0..=4094 => Ok(n as u16),
        n => Err(ApiError::bad_request(format!(
            "field vlan: {n} is not a VLAN id (1-4094)"
        ))),
    }
}

fn spec(nic: &str, bridge: &str, mtu: Option<i64>, uuid: &str) -> Result<BridgeSpec, ApiError> {
    let mtu = match mtu {
        None | Some(0) => None,
        Some(m @ 68..=65535) => Some(m as u32),
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "field mtu: {m} is not a valid MTU"
            )));
        }
    };
    // The uuid becomes the bridge's alias (IFLA_IFALIAS), which the kernel
    // bounds; the node always sends a 32-hex uuid.
    bounds::optional_uuid("l2NetworkUuid", uuid)?;
    Ok(BridgeSpec {
        bridge: ifname("bridgeName", bridge)?,
        nic: ifname("physicalInterfaceName", nic)?,
        mtu,
        l2_uuid: (!uuid.is_empty()).then(|| uuid.to_string()),
    })
}

/// Errors keep ZStack's wording, with the cause after "because".
fn map_err(e: BridgeError, context: String) -> ApiError {
    let msg = format!("{context}, because {e}");
    match e {
        BridgeError::Plan(
            PlanError::NicMissing(_)
            | PlanError::NicIsBridge(_)
            | PlanError::NotABridge(_)
            | PlanError::NotAPort { .. }
            | PlanError::Loopback(_),
        )
        | BridgeError::NoBridge(_)
        | BridgeError::NoParent(_)
        | BridgeError::NoNic(_)
        | BridgeError::VlanNameTooLong(_) => ApiError::bad_request(msg),
        BridgeError::Plan(_) => ApiError::conflict(msg),
        _ => ApiError::internal(msg),
    }
}

/// `pvlan` (private VLAN: primary/secondary ids, promiscuous, community and
/// isolated ports) is a security setting this agent does not implement, so a
/// bridge for it is refused rather than built open. kvmagent itself leaves it
/// unapplied (network_plugin.py, `_configure_pvlan_veth` commented out).
fn refuse_pvlan(cmd: &CreateBridgeCmd) -> Result<(), ApiError> {
    match cmd.pvlan.as_deref().map(str::trim) {
        None | Some("") => Ok(()),
        // Quoted: the value is echoed (bounded, one line).
        Some(p) => Err(ApiError::bad_request(format!(
            "unable to create bridge[{}]: private VLAN[{}] is not supported by this agent \
             (refused rather than leave the network unisolated)",
            cmd.bridge_name,
            common::text::quoted(p)
        ))),
    }
}

async fn create(state: AppState, cmd: CreateBridgeCmd, vlan: u16) -> Result<Ok, ApiError> {
    let spec = spec(
        &cmd.physical_interface_name,
        &cmd.bridge_name,
        cmd.mtu,
        &cmd.l2_network_uuid,
    )?;
    refuse_pvlan(&cmd)?;
    let isolated = cmd.isolated.unwrap_or(false);
    let disable = cmd.disable_iptables.unwrap_or(false);
    let _guard = state.bridge_lock.lock().await;
    let (nl, sc, o) = (&*state.netlink, &*state.sysctl, &state.bridge_options);
    let fail = |e: BridgeError| map_err(e, format!("unable to create bridge[{}]", spec.bridge));
    // Recorded first: a tap that joins while the bridge is being made is
    // isolated too (fail-safe: a stale mark only isolates more).
    if isolated {
        bridge::record_isolation(&state.state_dir, &spec.bridge, true).map_err(fail)?;
    }
    if vlan == 0 {
        bridge::create(nl, sc, &spec, disable, o)
            .await
            .map_err(|e| {
                map_err(
                    e,
                    format!(
                        "unable to create bridge[{}] from device[{}]",
                        spec.bridge, spec.nic
                    ),
                )
            })?;
    } else {
        bridge::create_vlan(nl, sc, &spec, vlan, disable, o)
            .await
            .map_err(|e| {
                map_err(
                    e,
                    format!(
                        "unable to create vlan bridge[name:{}, vlan:{vlan}] from device[{}]",
                        spec.bridge, spec.nic
                    ),
                )
            })?;
    }
    let uplink = if vlan == 0 {
        spec.nic.clone()
    } else {
        bridge::vlan_ifname(&spec.nic, vlan).map_err(fail)?
    };
    bridge::set_isolation(nl, sc, &spec.bridge, &uplink, isolated)
        .await
        .map_err(fail)?;
    if !isolated {
        bridge::record_isolation(&state.state_dir, &spec.bridge, false).map_err(fail)?;
    }
    Result::Ok(Ok {})
}

pub async fn create_novlan(state: AppState, cmd: CreateBridgeCmd) -> Result<Ok, ApiError> {
    create(state, cmd, 0).await
}

/// `vlan == 0` is the no-VLAN path, as in kvmagent.
pub async fn create_vlan(state: AppState, cmd: CreateBridgeCmd) -> Result<Ok, ApiError> {
    let vlan = vlan_id(cmd.vlan)?;
    create(state, cmd, vlan).await
}

async fn check(state: AppState, cmd: CheckBridgeCmd, vlan: bool) -> Result<Ok, ApiError> {
    let bridge = ifname("bridgeName", &cmd.bridge_name)?;
    let id = vlan_id(cmd.vlan)?;
    let mut nic = ifname("physicalInterfaceName", &cmd.physical_interface_name)?;
    if vlan && id != 0 {
        nic = bridge::vlan_ifname(&nic, id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let _guard = state.bridge_lock.lock().await;
    bridge::check(&*state.netlink, &bridge, &nic, vlan && id != 0)
        .await
        .map_err(|e| match e {
            BridgeError::NoBridge(_)
            | BridgeError::NoVlanBridge(_)
            | BridgeError::UplinkMissing { .. }
            | BridgeError::NoUplink { .. } => ApiError::bad_request(e.to_string()),
            e => ApiError::internal(e.to_string()),
        })?;
    Result::Ok(Ok {})
}

pub async fn check_novlan(state: AppState, cmd: CheckBridgeCmd) -> Result<Ok, ApiError> {
    check(state, cmd, false).await
}

pub async fn check_vlan(state: AppState, cmd: CheckBridgeCmd) -> Result<Ok, ApiError> {
    check(state, cmd, true).await
}

async fn delete(state: AppState, cmd: DeleteBridgeCmd, vlan: u16) -> Result<Ok, ApiError> {
    let spec = spec(&cmd.physical_interface_name, &cmd.bridge_name, None, "")?;
    let _guard = state.bridge_lock.lock().await;
    let (nl, sc) = (&*state.netlink, &*state.sysctl);
    let r = if vlan == 0 {
        bridge::delete(nl, sc, &spec).await
    } else {
        bridge::delete_vlan(nl, sc, &spec, vlan).await
    };
    r.map_err(|e| map_err(e, format!("unable to delete bridge[{}]", spec.bridge)))?;
    bridge::record_isolation(&state.state_dir, &spec.bridge, false)
        .map_err(|e| map_err(e, format!("unable to delete bridge[{}]", spec.bridge)))?;
    Result::Ok(Ok {})
}

pub async fn delete_novlan(state: AppState, cmd: DeleteBridgeCmd) -> Result<Ok, ApiError> {
    delete(state, cmd, 0).await
}

pub async fn delete_vlan(state: AppState, cmd: DeleteBridgeCmd) -> Result<Ok, ApiError> {
    let vlan = vlan_id(cmd.vlan)?;
    delete(state, cmd, vlan).await
}

pub async fn add_if(state: AppState, cmd: AddInterfaceToBridgeCmd) -> Result<Ok, ApiError> {
    let bridge = ifname("bridgeName", &cmd.bridge_name)?;
    let nic = ifname("physicalInterfaceName", &cmd.physical_interface_name)?;
    let _guard = state.bridge_lock.lock().await;
    bridge::add_if(&*state.netlink, &bridge, &nic)
        .await
        .map_err(|e| {
            map_err(
                e,
                format!("unable to add interface[{nic}] to bridge[{bridge}]"),
            )
        })?;
    Result::Ok(Ok {})
}
