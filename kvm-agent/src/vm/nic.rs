//! NIC hot-plug (`/vm/attachnic`, `/vm/detachnic`): a VPC router gains and
//! loses networks this way. The interface XML is the one `/vm/start` would
//! write; anti-spoofing rules go in place before the tap exists and leave
//! after it is gone.

use std::time::{Duration, Instant};

use super::{POLL, VmError};
use crate::plan::domain::{self, LiveInterface};
use crate::sys::antispoof::NicGuard;
use crate::sys::hypervisor::Hypervisor;
use crate::wire::vm::{DeviceAddress, NicTo};

fn find(hv: &dyn Hypervisor, name: &str, mac: &str) -> Result<Option<LiveInterface>, VmError> {
    Ok(domain::interface_by_mac(&hv.xml(name, false)?, mac))
}

/// Attach (idempotent: a NIC with this MAC already there is success) and
/// return its address as libvirt assigned it, with the live XML after it.
pub fn attach(
    hv: &dyn Hypervisor,
    guard: &dyn NicGuard,
    name: &str,
    nic: &NicTo,
) -> Result<(DeviceAddress, String), VmError> {
    let xml = domain::interface_xml(nic, "nic", "")?;
    let spec = domain::guard_of(nic, "nic")?;
    if hv.lookup(name)?.is_none() {
        return Err(VmError::NotFound(name.into()));
    }
    if let Some(g) = &spec {
        guard.apply(g)?;
    }
    let live = hv.xml(name, false)?;
    if let Some(i) = domain::interface_by_mac(&live, &nic.mac) {
        tracing::info!(vm = name, mac = %nic.mac, "nic already attached");
        return Ok((i.address.unwrap_or_default(), live));
    }
    if let Err(e) = hv.attach_device(name, &xml) {
        if let Some(g) = &spec {
            let _ = guard.remove(&g.tap);
        }
        return Err(e.into());
    }
    let live = hv.xml(name, false)?;
    let got = domain::interface_by_mac(&live, &nic.mac).ok_or_else(|| VmError::NicNotShown {
        name: name.into(),
        mac: nic.mac.clone(),
    })?;
    tracing::info!(vm = name, mac = %nic.mac, bridge = %nic.bridge_name, "nic attached");
    Ok((got.address.unwrap_or_default(), live))
}

/// Detach and wait until the guest released it. A VM or NIC that is not
/// there is success (nothing left to detach).
pub fn detach(
    hv: &dyn Hypervisor,
    guard: &dyn NicGuard,
    name: &str,
    nic: &NicTo,
    wait: Duration,
) -> Result<(), VmError> {
    let tap = |i: Option<&LiveInterface>| {
        i.and_then(|i| i.tap.clone())
            .or_else(|| (!nic.nic_internal_name.is_empty()).then(|| nic.nic_internal_name.clone()))
    };
    let live = if hv.lookup(name)?.is_some() {
        find(hv, name, &nic.mac)?
    } else {
        None
    };
    let Some(iface) = live else {
        if let Some(t) = tap(None) {
            guard.remove(&t)?;
        }
        tracing::info!(vm = name, mac = %nic.mac, "nic not attached; nothing to detach");
        return Ok(());
    };
    hv.detach_device(name, &iface.xml)?;
    // A live unplug completes when the guest acknowledges it.
    let deadline = Instant::now() + wait;
    while find(hv, name, &nic.mac)?.is_some() {
        if Instant::now() >= deadline {
            return Err(VmError::NicStillAttached {
                name: name.into(),
                mac: nic.mac.clone(),
                secs: wait.as_secs(),
            });
        }
        std::thread::sleep(POLL);
    }
    if let Some(t) = tap(Some(&iface)) {
        guard.remove(&t)?;
    }
    tracing::info!(vm = name, mac = %nic.mac, "nic detached");
    Ok(())
}
