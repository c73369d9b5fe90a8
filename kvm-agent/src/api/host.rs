//! `/host/*` and `/network/checkphysicalnetworkinterface`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use common::agent::{ApiError, decode_exact, envelope};
use common::net::IfName;

use super::{AppState, Session};
use crate::netstate::Op;
use crate::sys::hostinfo::{LibvirtCaps, parse_capabilities};
use crate::sys::store::write_atomic;
use crate::wire::bounds;
use crate::wire::*;

/// Answers at once, never behind a running apply; the body is empty as in
/// kvmagent (the MN only checks that the call succeeds).
pub async fn echo() -> &'static str {
    ""
}

async fn persist(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let json = serde_json::to_vec_pretty(session).map_err(|e| ApiError::internal(e.to_string()))?;
    let path = state.state_dir.join("host-connect.json");
    tokio::task::spawn_blocking(move || write_atomic(&path, &json))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("cannot persist connect state: {e}")))
}

/// A version the node parses with `VersionComparator`: absent is an error
/// here rather than a null pointer there (kvmagent fails the same way).
fn required_version(v: Option<String>, what: &str, tool: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| {
        ApiError::internal(format!(
            "cannot report {what}: `{tool} --version` printed no version (is it installed?)"
        ))
    })
}

/// Keep the session in memory and record it under the state dir (as ZStack
/// records the version). A restarted agent still reports `hostUuid: ""` so
/// the MN reconnects and re-sends its configuration.
pub async fn connect(state: AppState, cmd: ConnectCmd) -> Result<ConnectResponse, ApiError> {
    // Stored, logged and echoed by /host/ping: bounded and printable.
    bounds::uuid("hostUuid", &cmd.host_uuid)?;
    if !cmd.send_command_url.is_empty() {
        bounds::url("sendCommandUrl", &cmd.send_command_url)?;
    }
    bounds::text("version", &cmd.version, 64)?;
    let (libvirt, qemu) =
        tokio::join!(state.host.version_of("libvirtd"), state.host.qemu_version());
    let libvirt_version = required_version(libvirt, "libvirtVersion", "libvirtd")?;
    let qemu_version = required_version(qemu, "qemuVersion", "qemu-system")?;
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
    persist(&state, &session).await?;
    tracing::info!(host_uuid = %session.host_uuid, version = %session.version, "connected");
    *state.session.lock().unwrap() = session;
    Ok(ConnectResponse {
        libvirt_version,
        qemu_version,
    })
}

/// `/host/update/configuration`: the node's URL changed (its IP moved);
/// later pings report it and events go to it. kvmagent changes only the URL.
pub async fn update_configuration(
    state: AppState,
    cmd: UpdateHostConfigurationCmd,
) -> Result<common::agent::Ok, ApiError> {
    if cmd.send_command_url.is_empty() {
        return Err(ApiError::bad_request("field sendCommandUrl: empty"));
    }
    bounds::url("sendCommandUrl", &cmd.send_command_url)?;
    let mut session = state.session.lock().unwrap().clone();
    session.send_command_url = cmd.send_command_url;
    persist(&state, &session).await?;
    tracing::info!(url = %session.send_command_url, "sendCommandUrl updated");
    state.session.lock().unwrap().send_command_url = session.send_command_url;
    Ok(common::agent::Ok {})
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
    let mut c = state.host.capacity();
    (c.used_cpu, c.used_memory) = super::vm::used_capacity(&state).await?;
    Ok(c)
}

/// `/host/updatedependency`: kvmagent installs `/var/lib/zstack/dependencies`
/// from the node's yum/apt repo, and answers success doing nothing on a host
/// with neither. This host's packages belong to its own deployment
/// (scripts/install-deps), not to the node's repo, so it answers like the
/// latter, and says so in the log. Without an answer every reconnect fails.
pub async fn update_dependency(
    _state: AppState,
    cmd: UpdateDependencyCmd,
) -> Result<common::agent::Ok, ApiError> {
    bounds::optional_uuid("hostUuid", &cmd.host_uuid)?;
    tracing::info!(
        host_uuid = %cmd.host_uuid,
        repo = %common::text::excerpt(cmd.zstack_repo.as_deref().unwrap_or("")),
        experimental = cmd.enable_exp_repo,
        "updatedependency: packages are managed by this host's deployment, nothing installed"
    );
    Ok(common::agent::Ok {})
}

/// The libvirt capabilities of this host (blocking call on its own thread).
async fn libvirt_caps(state: &AppState) -> Result<LibvirtCaps, ApiError> {
    let Some(hv) = state.vm.hypervisor.clone() else {
        return Err(ApiError::internal(format!(
            "cannot read libvirt capabilities (cpuModelName): libvirt unavailable: {}",
            state.vm.libvirt_problem()
        )));
    };
    let xml = tokio::task::spawn_blocking(move || hv.capabilities())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("cannot read libvirt capabilities: {e}")))?;
    Ok(parse_capabilities(&xml))
}

pub async fn fact(state: AppState, _cmd: Empty) -> Result<HostFactResponse, ApiError> {
    let mut f = state.host.facts();
    let (libvirt, qemu_img, qemu) = tokio::join!(
        state.host.version_of("libvirtd"),
        state.host.version_of("qemu-img"),
        state.host.qemu_version()
    );
    f.libvirt_version = required_version(libvirt, "libvirtVersion", "libvirtd")?;
    f.qemu_img_version = qemu_img;
    let caps = libvirt_caps(&state).await?;
    f.cpu_model_name = caps.cpu_model.ok_or_else(|| {
        ApiError::internal("libvirt capabilities have no host CPU model (host/cpu/model), which cpuModelName needs")
    })?;
    f.libvirt_capabilities = caps.features;
    let host_uuid = state.session.lock().unwrap().host_uuid.clone();
    f.virtualizer_info = VirtualizerInfo {
        uuid: (!host_uuid.is_empty()).then_some(host_uuid),
        // kvmagent's constant (KVMConstant.VIRTUALIZER_QEMU_KVM); "" when no
        // qemu answers, as kvmagent does.
        virtualizer: "qemu-kvm".into(),
        version: qemu.unwrap_or_default(),
    };
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

/// Sync (the node's `syncJsonPost`): always HTTP 200, and the failure reply
/// carries `failedInterfaceNames` (the node calls `.isEmpty()` on it), which
/// the shared envelope drops on errors: so this one builds its reply itself.
pub async fn check_physical_interfaces(
    State(state): State<AppState>,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    let reply = |failed: Vec<String>, err: Option<ApiError>| {
        let mut v = match err {
            Some(e) => envelope::<CheckPhysicalNetworkInterfaceResponse>(&Err(e)),
            None => envelope(&Ok(CheckPhysicalNetworkInterfaceResponse::default())),
        };
        v["failedInterfaceNames"] = serde_json::json!(failed);
        (StatusCode::OK, Json(v))
    };
    let cmd: CheckPhysicalNetworkInterfaceCmd = match decode_exact(&body) {
        Ok(c) => c,
        Err(e) => return reply(vec![], Some(e)),
    };
    let obs = match state.netlink.dump().await {
        Ok(o) => o,
        Err(e) => return reply(vec![], Some(ApiError::internal(e.to_string()))),
    };
    // Every name is checked before any link is brought up: a refused list
    // changes nothing.
    for (i, name) in cmd.interface_names.iter().enumerate() {
        // Quoted bounded: the name is echoed in the reply and the log.
        if let Err(e) = name.parse::<IfName>() {
            let e = ApiError::bad_request(format!("field interfaceNames[{i}]: {e}"));
            return reply(vec![common::text::excerpt(name)], Some(e));
        }
        if obs.link(name).is_none() {
            let e =
                ApiError::bad_request(format!("cannot find physical network interface[{name}]"));
            return reply(vec![name.clone()], Some(e));
        }
    }
    for name in &cmd.interface_names {
        if obs.link(name).is_some_and(|l| !l.up) {
            let op = Op::SetUp {
                name: name.clone(),
                up: true,
            };
            if let Err(e) = state.netlink.apply(&op).await {
                let e = ApiError::internal(format!("cannot {op}: {e}"));
                return reply(vec![name.clone()], Some(e));
            }
        }
    }
    reply(vec![], None)
}
