//! `/host/*` and `/network/checkphysicalnetworkinterface`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use common::agent::{ApiError, decode, envelope};
use common::net::IfName;

use super::{AppState, Session};
use crate::netstate::Op;
use crate::sys::hostinfo::tool_version;
use crate::sys::store::write_atomic;
use crate::wire::*;

/// Answers at once, never behind a running apply; the body is empty as in
/// kvmagent (the MN only checks that the call succeeds).
pub async fn echo() -> &'static str {
    ""
}

/// Keep the session in memory and record it under the state dir (as ZStack
/// records the version). A restarted agent still reports `hostUuid: ""` so
/// the MN reconnects and re-sends its configuration.
pub async fn connect(state: AppState, cmd: ConnectCmd) -> Result<ConnectResponse, ApiError> {
    let session = Session {
        host_uuid: cmd.host_uuid,
        send_command_url: cmd.send_command_url,
        version: cmd.version,
    };
    if !cmd.iptables_rules.is_empty() {
        // Firewall rules of the host belong to the operator's deployment here;
        // applying raw iptables arguments is out of scope for now.
        tracing::warn!(
            rules = cmd.iptables_rules.len(),
            "iptablesRules from connect not applied"
        );
    }
    let json =
        serde_json::to_vec_pretty(&session).map_err(|e| ApiError::internal(e.to_string()))?;
    let path = state.state_dir.join("host-connect.json");
    tokio::task::spawn_blocking(move || write_atomic(&path, &json))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("cannot persist connect state: {e}")))?;
    tracing::info!(host_uuid = %session.host_uuid, version = %session.version, "connected");
    *state.session.lock().unwrap() = session;
    let (libvirt, qemu) =
        tokio::join!(tool_version("libvirtd"), tool_version("qemu-system-x86_64"));
    Ok(ConnectResponse {
        libvirt_version: libvirt,
        qemu_version: qemu,
    })
}

pub async fn ping(state: AppState, _cmd: PingCmd) -> Result<PingResponse, ApiError> {
    let s = state.session.lock().unwrap().clone();
    let opt = |v: String| (!v.is_empty()).then_some(v);
    Ok(PingResponse {
        host_uuid: s.host_uuid,
        send_command_url: opt(s.send_command_url),
        version: opt(s.version),
    })
}

pub async fn capacity(state: AppState, _cmd: Empty) -> Result<HostCapacityResponse, ApiError> {
    Ok(state.host.capacity())
}

pub async fn fact(state: AppState, _cmd: Empty) -> Result<HostFactResponse, ApiError> {
    let mut f = state.host.facts();
    let (libvirt, qemu_img) = tokio::join!(tool_version("libvirtd"), tool_version("qemu-img"));
    f.libvirt_version = libvirt;
    f.qemu_img_version = qemu_img;
    let obs = state
        .netlink
        .dump()
        .await
        .map_err(|e| ApiError::internal(format!("cannot list addresses: {e}")))?;
    f.ip_addresses = obs
        .addrs
        .iter()
        .filter(|a| !a.link.ends_with("zs"))
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) if !v4.is_loopback() => Some(v4.to_string()),
            _ => None,
        })
        .collect();
    Ok(f)
}

/// Sync, and the failure reply carries `failedInterfaceNames`, which the
/// shared envelope drops on errors: so this one builds its reply itself.
pub async fn check_physical_interfaces(
    State(state): State<AppState>,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let reply = |status: StatusCode, failed: Vec<String>, err: Option<ApiError>| {
        let mut v = match err {
            Some(e) => envelope::<CheckPhysicalNetworkInterfaceResponse>(&Err(e)),
            None => envelope(&Ok(CheckPhysicalNetworkInterfaceResponse::default())),
        };
        v["failedInterfaceNames"] = serde_json::json!(failed);
        (status, Json(v))
    };
    let cmd: CheckPhysicalNetworkInterfaceCmd = match decode(&body) {
        Ok(c) => c,
        Err(e) => return reply(e.status(), vec![], Some(e)),
    };
    let obs = match state.netlink.dump().await {
        Ok(o) => o,
        Err(e) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![],
                Some(ApiError::internal(e.to_string())),
            );
        }
    };
    for name in &cmd.interface_names {
        let link = name.parse::<IfName>().ok().and_then(|_| obs.link(name));
        let Some(link) = link else {
            let e =
                ApiError::bad_request(format!("cannot find physical network interface[{name}]"));
            return reply(e.status(), vec![name.clone()], Some(e));
        };
        if !link.up {
            let op = Op::SetUp {
                name: name.clone(),
                up: true,
            };
            if let Err(e) = state.netlink.apply(&op).await {
                let e = ApiError::internal(format!("cannot {op}: {e}"));
                return reply(e.status(), vec![name.clone()], Some(e));
            }
        }
    }
    reply(StatusCode::OK, vec![], None)
}
