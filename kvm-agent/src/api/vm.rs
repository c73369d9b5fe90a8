//! `/vm/*` and `/appliancevm/setbootstrapinfo`: validate -> per-VM lock ->
//! blocking lifecycle on `spawn_blocking` -> map the error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::agent::{ApiError, Ok};

use super::AppState;
use crate::plan::domain::{self, DomainError, HostRoom};
use crate::sys::events::{DomainEvent, reports};
use crate::sys::hypervisor::Hypervisor;
use crate::vm::{self, StopKind, VmError};
use crate::wire::bounds;
use crate::wire::vm::*;

mod ops;
pub use ops::*;

const CONSOLE_TAIL_DEFAULT: u64 = 8192;

fn hypervisor(state: &AppState) -> Result<Arc<dyn Hypervisor>, ApiError> {
    state.vm.hypervisor.clone().ok_or_else(|| {
        ApiError::internal(format!(
            "libvirt is not connected ({})",
            state.vm.libvirt_problem()
        ))
    })
}

/// Run blocking hypervisor work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VmError> + Send + 'static,
) -> Result<T, VmError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(VmError::Io {
            path: "libvirt worker".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// One operation at a time per VM (start racing a stop would leave either).
async fn lock_vm(state: &AppState, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
    let m = state
        .vm
        .locks
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone();
    m.lock_owned().await
}

fn name_of(field: &str, uuid: &str) -> Result<String, ApiError> {
    if uuid.is_empty() {
        return Err(ApiError::bad_request(format!("field {field}: missing")));
    }
    domain::parse_vm_uuid(uuid)
        .map(|(n, _)| n)
        .map_err(|e| ApiError::bad_request(e.to_string().replace("vmInstanceUuid", field)))
}

fn console_tail_of(state: &AppState, name: &str, max: u64) -> (PathBuf, String) {
    let path = domain::console_log_path(&state.vm.options.console_log_dir, name);
    let tail = read_tail(&path, max).unwrap_or_default();
    (path, tail)
}

fn read_tail(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Result::Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn map_err(state: &AppState, e: VmError) -> ApiError {
    match &e {
        VmError::Plan(DomainError::DoesNotFit { .. }) => ApiError::conflict(e.to_string()),
        VmError::Plan(_) => ApiError::bad_request(e.to_string()),
        VmError::NotFound(_) => ApiError::bad_request(e.to_string()),
        VmError::StartTimeout { name, .. } => {
            // The console shows why a guest never came up.
            let (path, tail) = console_tail_of(state, name, 2048);
            ApiError::internal(format!(
                "{e}; console log {} ends with: {}",
                path.display(),
                tail.trim_end()
            ))
        }
        _ => ApiError::internal(e.to_string()),
    }
}

fn virtualizer_info(hv: &dyn Hypervisor, uuid: &str) -> VirtualizerInfo {
    let (virtualizer, version) = hv.virtualizer();
    VirtualizerInfo {
        uuid: uuid.to_string(),
        virtualizer,
        version,
    }
}

pub async fn start(state: AppState, cmd: StartVmCmd) -> Result<StartVmResponse, ApiError> {
    // Before anything is touched: every host path the command names.
    crate::paths::check_start(&cmd, &state.vm.dirs)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let plan =
        domain::plan(&cmd, &state.vm.options).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &plan.name).await;
    let host = state.host.clone_probe();
    let timeout = bounds::timeout_secs(cmd.timeout, 300);
    let (hv2, plan2, guard) = (hv.clone(), plan.clone(), state.vm.guard.clone());
    let dirs = state.vm.dirs.clone();
    let paused = cmd.create_paused;
    let outcome = blocking(move || {
        let room = |reserved_kib| HostRoom {
            mem_available_kib: host.mem_available_kib(),
            reserved_kib,
            online_cpus: host.online_cpus(),
        };
        let unguard = || {
            for g in &plan2.guards {
                let _ = guard.remove(&g.tap);
            }
        };
        // Before the taps exist, so the guest never sends unguarded.
        if let Some(e) = plan2.guards.iter().find_map(|g| guard.apply(g).err()) {
            unguard();
            return Err(e.into());
        }
        let r = vm::start(hv2.as_ref(), &plan2, &dirs, room, paused, timeout)
            .inspect_err(|_| unguard())?;
        let xml = hv2.xml(&plan2.name, false)?;
        Result::Ok((r, xml))
    })
    .await
    .map_err(|e| map_err(&state, e))?;
    let (started, live) = outcome;
    if let Err(e) = isolate_taps(&state, &live, &isolated_macs(&cmd.nics), None).await {
        // An isolated network must not see an unisolated guest: undo.
        let (n, guard, guards) = (
            plan.name.clone(),
            state.vm.guard.clone(),
            plan.guards.clone(),
        );
        let dirs = state.vm.dirs.clone();
        let _ = blocking(move || {
            vm::destroy(hv.as_ref(), &n, &dirs)?;
            for g in &guards {
                let _ = guard.remove(&g.tap);
            }
            Result::Ok(())
        })
        .await;
        return Err(e);
    }
    tracing::info!(vm = %plan.name, ?started, "vm start done");
    let (nics, disks) = domain::live_devices(&live);
    let volumes: Vec<_> = cmd
        .root_volume
        .iter()
        .chain(cmd.data_volumes.iter())
        .collect();
    Result::Ok(StartVmResponse {
        nic_infos: nics
            .into_iter()
            .map(|(mac, addr)| NicInfo {
                mac_address: mac,
                device_address: addr.unwrap_or_default(),
            })
            .collect(),
        virtual_device_info_list: disks
            .into_iter()
            .map(|(serial, addr)| VirtualDeviceInfo {
                resource_uuid: Some(
                    volumes
                        .iter()
                        .find(|v| v.volume_uuid == serial)
                        .map(|v| {
                            if v.resource_uuid.is_empty() {
                                v.volume_uuid.clone()
                            } else {
                                v.resource_uuid.clone()
                            }
                        })
                        .unwrap_or(serial),
                ),
                device_address: addr.unwrap_or_default(),
            })
            .collect(),
        mem_balloon_info: VirtualDeviceInfo {
            resource_uuid: None,
            device_address: domain::memballoon_address(&live).unwrap_or_default(),
        },
        virtualizer_info: Some(virtualizer_info(hv.as_ref(), &plan.name)),
        console_log_path: Some(plan.console_log.display().to_string()),
    })
}

pub async fn stop(state: AppState, cmd: StopVmCmd) -> Result<Ok, ApiError> {
    let name = name_of("uuid", &cmd.uuid)?;
    let kind: StopKind = cmd.kind.parse().map_err(ApiError::bad_request)?;
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &name).await;
    let timeout = bounds::timeout_secs(cmd.timeout, 120);
    let (n, guard, dirs) = (name.clone(), state.vm.guard.clone(), state.vm.dirs.clone());
    blocking(move || {
        let taps = vm_taps(hv.as_ref(), &n);
        vm::stop(hv.as_ref(), &n, kind, timeout, &dirs)?;
        remove_guards(guard.as_ref(), &taps)
    })
    .await
    .map_err(|e| map_err(&state, e))?;
    Result::Ok(Ok {})
}

/// Port isolation of guest taps once they are ports of their bridges: when
/// the NIC asks (`NicTO.isolated`) or the bridge was created isolated (the
/// bridge side's `isolate_guest_port`). `only_mac` limits it to one NIC.
/// A NIC that asks for isolation but has no tap on a bridge is an error,
/// never silently unisolated.
pub(super) async fn isolate_taps(
    state: &AppState,
    live: &str,
    want_macs: &[String],
    only_mac: Option<&str>,
) -> Result<(), ApiError> {
    for i in domain::interfaces(live) {
        if only_mac.is_some_and(|m| !m.eq_ignore_ascii_case(&i.mac)) {
            continue;
        }
        let want = want_macs.iter().any(|m| m.eq_ignore_ascii_case(&i.mac));
        let (Some(tap), Some(bridge)) = (&i.tap, &i.bridge) else {
            if want {
                return Err(ApiError::internal(format!(
                    "nic {} asks for port isolation but libvirt shows no tap on a bridge for it",
                    i.mac
                )));
            }
            continue;
        };
        crate::bridge::isolate_guest_port(
            state.netlink.as_ref(),
            &state.state_dir,
            bridge,
            tap,
            want,
        )
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "cannot isolate tap {tap} on bridge {bridge} (an isolated network must not see an unisolated guest): {e}"
            ))
        })?;
    }
    Result::Ok(())
}

/// The MACs of the NICs that ask for port isolation.
pub(super) fn isolated_macs(nics: &[NicTo]) -> Vec<String> {
    nics.iter()
        .filter(|n| n.isolated == Some(true))
        .map(|n| n.mac.clone())
        .collect()
}

/// The taps of a VM's NICs (to drop their anti-spoofing rules once the VM
/// is gone); none when the VM is not there.
fn vm_taps(hv: &dyn Hypervisor, name: &str) -> Vec<String> {
    hv.xml(name, false)
        .map(|x| {
            domain::interfaces(&x)
                .into_iter()
                .filter_map(|i| i.tap)
                .collect()
        })
        .unwrap_or_default()
}

fn remove_guards(
    guard: &dyn crate::sys::antispoof::NicGuard,
    taps: &[String],
) -> Result<(), VmError> {
    for t in taps {
        guard.remove(t)?;
    }
    Result::Ok(())
}

pub async fn destroy(state: AppState, cmd: DestroyVmCmd) -> Result<Ok, ApiError> {
    let name = name_of("uuid", &cmd.uuid)?;
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &name).await;
    let (n, guard, dirs) = (name.clone(), state.vm.guard.clone(), state.vm.dirs.clone());
    blocking(move || {
        let taps = vm_taps(hv.as_ref(), &n);
        vm::destroy(hv.as_ref(), &n, &dirs)?;
        remove_guards(guard.as_ref(), &taps)
    })
    .await
    .map_err(|e| map_err(&state, e))?;
    Result::Ok(Ok {})
}

pub async fn reboot(state: AppState, cmd: RebootVmCmd) -> Result<RebootVmResponse, ApiError> {
    let name = name_of("uuid", &cmd.uuid)?;
    domain::check_boot_devs(&cmd.boot_dev).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let hv = hypervisor(&state)?;
    let _g = lock_vm(&state, &name).await;
    let timeout = bounds::timeout_secs(cmd.timeout, 300);
    // Reboot makes new taps: they get the isolation the old ones had.
    let (n, h) = (name.clone(), hv.clone());
    let before = blocking(move || Result::Ok(h.xml(&n, false).unwrap_or_default()))
        .await
        .map_err(|e| map_err(&state, e))?;
    let obs = state
        .netlink
        .dump()
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the bridge ports: {e}")))?;
    let was_isolated: Vec<String> = domain::interfaces(&before)
        .into_iter()
        .filter(|i| {
            i.tap
                .as_deref()
                .and_then(|t| obs.link(t))
                .is_some_and(|l| l.isolated)
        })
        .map(|i| i.mac)
        .collect();
    let (n, h, dirs) = (name.clone(), hv.clone(), state.vm.dirs.clone());
    let live = blocking(move || {
        vm::reboot(h.as_ref(), &n, &cmd.boot_dev, timeout, &dirs)?;
        Result::Ok(h.xml(&n, false)?)
    })
    .await
    .map_err(|e| map_err(&state, e))?;
    if let Err(e) = isolate_taps(&state, &live, &was_isolated, None).await {
        let (n, h, dirs) = (name.clone(), hv.clone(), state.vm.dirs.clone());
        let _ = blocking(move || vm::destroy(h.as_ref(), &n, &dirs)).await;
        return Err(e);
    }
    Result::Ok(RebootVmResponse {
        virtualizer_info: Some(virtualizer_info(hv.as_ref(), &name)),
    })
}

pub async fn vmsync(state: AppState, _cmd: crate::wire::Empty) -> Result<VmSyncResponse, ApiError> {
    let hv = hypervisor(&state)?;
    let (states, vm_in_shutdowns) = blocking(move || vm::sync(hv.as_ref()))
        .await
        .map_err(|e| map_err(&state, e))?;
    Result::Ok(VmSyncResponse {
        states,
        vm_in_shutdowns,
    })
}

/// Our addition: the end of a VM's serial console log, so a controller can
/// see why a guest never became ready (works after stop/destroy too: the log
/// file stays until the next start of that VM).
pub async fn console_tail(
    state: AppState,
    cmd: ConsoleTailCmd,
) -> Result<ConsoleTailResponse, ApiError> {
    let name = name_of("uuid", &cmd.uuid)?;
    let max = cmd
        .max_bytes
        .filter(|m| *m > 0)
        .unwrap_or(CONSOLE_TAIL_DEFAULT);
    let path = domain::console_log_path(&state.vm.options.console_log_dir, &name);
    let p = path.clone();
    let tail = tokio::task::spawn_blocking(move || read_tail(&p, max))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            ApiError::bad_request(format!(
                "no console log for vm {name} at {}: {e}",
                path.display()
            ))
        })?;
    Result::Ok(ConsoleTailResponse {
        path: path.display().to_string(),
        tail,
    })
}

/// Forward libvirt events to the controller's `sendCommandUrl` (learnt in
/// `/host/connect`) with header `commandpath`. Before connect there is no
/// one to tell, so events are only logged.
pub async fn report_events(
    state: AppState,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<DomainEvent>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client");
    while let Some(ev) = rx.recv().await {
        let session = state.session.lock().unwrap().clone();
        tracing::info!(?ev, "libvirt domain event");
        if session.send_command_url.is_empty() {
            continue;
        }
        // Connect checked the URL; a controller forgotten since is not told.
        if !state.peers.may_receive_events(&session.send_command_url) {
            tracing::warn!(url = %session.send_command_url, "sendCommandUrl is not a controller address; event not sent");
            continue;
        }
        for (path, body) in reports(&ev, &session.host_uuid) {
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=5 {
                let r = client
                    .post(&session.send_command_url)
                    .header("commandpath", path)
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Result::Ok(rsp) => {
                        tracing::debug!(path, status = %rsp.status(), "event reported");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(path, attempt, error = %e, "cannot report event");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }
}

/// vCPUs and memory of the running domains for `/host/capacity`; zero
/// when libvirt is not connected (no domain can run then).
pub async fn used_capacity(state: &AppState) -> Result<(u64, u64), ApiError> {
    let Some(hv) = state.vm.hypervisor.clone() else {
        return Result::Ok((0, 0));
    };
    tokio::task::spawn_blocking(move || vm::used_capacity(hv.as_ref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("cannot count running domains: {e}")))
}
