//! VM paths a host that runs routers receives besides the lifecycle
//! (callers in zstackio/zstack 5a29293b, plugin/kvm KVMHost.java):
//! `/vm/checkstate` (CheckVmStateOnHypervisorMsg: VM destroy flow, state
//! checks), `/vm/getvncport` (GetVmConsoleAddressFromHostMsg: the console),
//! `/vm/attachnic` and `/vm/detachnic` (VmAttachNicOnHypervisorFlow,
//! VmDetachNicOnHypervisorFlow: a VPC router gains and loses networks),
//! `/vm/getvirtualizerinfo` (the host connect flow
//! "collect-virtualizer-info-for-running-vm" fails the connect without it).

use common::agent::{ApiError, Ok};

use super::{AppState, blocking, hypervisor, isolate_taps, lock_vm, map_err, name_of};
use crate::plan::domain;
use crate::vm::{self, VmError};
use crate::wire::vm::*;

/// VM uuids are echoed as keys of the reply: each must be one.
fn vm_uuids(uuids: &[String]) -> Result<(), ApiError> {
    for (i, u) in uuids.iter().enumerate() {
        crate::wire::bounds::uuid(&format!("vmUuids[{i}]"), u)?;
    }
    Result::Ok(())
}

fn bad_nic(field: &str, v: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "field nic.{field}: {} {why}",
        common::text::quoted(v)
    ))
}

pub async fn check_state(
    state: AppState,
    cmd: CheckVmStateCmd,
) -> Result<CheckVmStateRsp, ApiError> {
    vm_uuids(&cmd.vm_uuids)?;
    let hv = hypervisor(&state)?;
    let states = blocking(move || vm::check_states(hv.as_ref(), &cmd.vm_uuids))
        .await
        .map_err(|e| map_err(&state, e))?;
    Result::Ok(CheckVmStateRsp { states })
}

/// The console's protocol and port from the live XML (libvirt writes the
/// port it allocated), as kvmagent's `get_vm_console_info`.
pub async fn get_vnc_port(
    state: AppState,
    cmd: GetVncPortCmd,
) -> Result<GetVncPortResponse, ApiError> {
    let name = name_of("vmUuid", &cmd.vm_uuid)?;
    let hv = hypervisor(&state)?;
    let n = name.clone();
    let xml = blocking(move || {
        if hv.lookup(&n)?.is_none() {
            return Err(VmError::NotFound(n));
        }
        Result::Ok(hv.xml(&n, false)?)
    })
    .await
    .map_err(|e| map_err(&state, e))?;
    let g = domain::graphics(&xml);
    let vnc = g.iter().find(|g| g.kind == "vnc");
    let spice = g.iter().find(|g| g.kind == "spice");
    let Some(first) = vnc.or(spice) else {
        return Err(ApiError::bad_request(format!(
            "no vnc console defined for vm[uuid:{name}]"
        )));
    };
    let vnc_port = vnc.and_then(|g| g.port);
    let spice_port = spice.and_then(|g| g.port);
    Result::Ok(GetVncPortResponse {
        port: vnc_port.or(spice_port).unwrap_or(-1),
        protocol: first.kind.clone(),
        vnc_port,
        spice_port,
        spice_tls_port: spice.and_then(|g| g.tls_port),
    })
}

pub async fn attach_nic(state: AppState, cmd: AttachNicCmd) -> Result<AttachNicResponse, ApiError> {
    let name = name_of("vmUuid", &cmd.vm_uuid)?;
    // Validate before locking: a bad NIC is the caller's error.
    domain::interface_xml(&cmd.nic, "nic", "").map_err(|e| ApiError::bad_request(e.to_string()))?;
    domain::guard_of(&cmd.nic, "nic").map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &name).await;
    let guard = state.vm.guard.clone();
    let n = name.clone();
    let nic = cmd.nic.clone();
    let hv2 = hv.clone();
    let (addr, live) = blocking(move || vm::nic::attach(hv2.as_ref(), guard.as_ref(), &n, &nic))
        .await
        .map_err(|e| map_err(&state, e))?;
    let want = super::isolated_macs(std::slice::from_ref(&cmd.nic));
    if let Err(e) = isolate_taps(&state, &live, &want, Some(&cmd.nic.mac)).await {
        // Take the unisolated NIC away again (best effort: a live unplug
        // needs the guest), then report.
        let (n, nic, guard) = (name.clone(), cmd.nic.clone(), state.vm.guard.clone());
        let _ = blocking(move || {
            vm::nic::detach(hv.as_ref(), guard.as_ref(), &n, &nic, vm::DETACH_WAIT)
        })
        .await;
        return Err(e);
    }
    let resource = [&cmd.nic.uuid, &cmd.nic.resource_uuid]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned();
    Result::Ok(AttachNicResponse {
        virtual_device_info_list: vec![VirtualDeviceInfo {
            resource_uuid: resource,
            device_address: addr,
        }],
    })
}

pub async fn detach_nic(state: AppState, cmd: DetachNicCmd) -> Result<Ok, ApiError> {
    let name = name_of("vmUuid", &cmd.vm_uuid)?;
    if cmd.nic.mac.is_empty() {
        return Err(ApiError::bad_request("field nic.mac: missing"));
    }
    // The MAC finds the NIC; the tap name is what the anti-spoofing rules
    // are removed by when it is not attached: both must be well-formed.
    if !domain::nic_mac_ok(&cmd.nic.mac) {
        return Err(bad_nic("mac", &cmd.nic.mac, "is not a MAC address"));
    }
    let tap = &cmd.nic.nic_internal_name;
    if !tap.is_empty() && !domain::nic_tap_ok(tap) {
        return Err(bad_nic("nicInternalName", tap, "is not a valid tap name"));
    }
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &name).await;
    let guard = state.vm.guard.clone();
    let n = name.clone();
    blocking(move || vm::nic::detach(hv.as_ref(), guard.as_ref(), &n, &cmd.nic, vm::DETACH_WAIT))
        .await
        .map_err(|e| map_err(&state, e))?;
    Result::Ok(Ok {})
}

/// `hostInfo.uuid` is the host's uuid from `/host/connect`, as kvmagent
/// answers; one entry per asked VM.
pub async fn get_virtualizer_info(
    state: AppState,
    cmd: GetVirtualizerInfoCmd,
) -> Result<GetVirtualizerInfoRsp, ApiError> {
    vm_uuids(&cmd.vm_uuids)?;
    let hv = hypervisor(&state)?;
    let host_uuid = state.session.lock().unwrap().host_uuid.clone();
    let (virtualizer, version) = hv.virtualizer();
    let info = |uuid: &str| VirtualizerInfo {
        uuid: uuid.to_string(),
        virtualizer: virtualizer.clone(),
        version: version.clone(),
    };
    Result::Ok(GetVirtualizerInfoRsp {
        host_info: info(&host_uuid),
        vm_info_list: cmd.vm_uuids.iter().map(|u| info(u)).collect(),
    })
}

pub async fn volume_sync(state: AppState, cmd: VolumeSyncCmd) -> Result<VolumeSyncRsp, ApiError> {
    // A storage path is listed: only inside the volume directories.
    // Other schemes (ceph://...) name no host path and are not listed.
    for (i, p) in cmd.storage_paths.iter().enumerate() {
        let Some(path) = p.strip_prefix("file://") else {
            continue;
        };
        state
            .vm
            .dirs
            .storage(&format!("storagePaths[{i}]"), path)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let hv = hypervisor(&state)?;
    let last = state.vm.volume_sync.lock().unwrap().clone();
    let (report, now) = blocking(move || vm::volumes::sync(hv.as_ref(), &cmd.storage_paths, &last))
        .await
        .map_err(|e| map_err(&state, e))?;
    *state.vm.volume_sync.lock().unwrap() = now;
    Result::Ok(VolumeSyncRsp {
        inactive_volume_paths: report,
    })
}
