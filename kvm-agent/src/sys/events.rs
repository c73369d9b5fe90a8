//! libvirt domain lifecycle events, reported to the controller's
//! `sendCommandUrl` (reference 1.4).
//!
//! virt 0.5 wraps the event loop but not `virConnectDomainEventRegisterAny`,
//! so the registration below calls virt-sys directly: the only unsafe code
//! of the crate, kept to one small function and two C callbacks.

use std::os::raw::{c_int, c_void};
use std::sync::Once;

use tokio::sync::mpsc::UnboundedSender;
use virt::connect::Connect;
use virt::sys;

/// One event as libvirt delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    Lifecycle {
        name: String,
        event: i32,
        detail: i32,
    },
    /// The guest rebooted inside the same qemu process.
    Reboot { name: String },
}

/// (commandpath, body) pairs to POST for one event; pure.
pub fn reports(ev: &DomainEvent, host_uuid: &str) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let state = |name: &str, st: &str| {
        (
            "/kvm/reportvmstate",
            json!({"hostUuid": host_uuid, "vmUuid": name, "vmState": st}),
        )
    };
    match ev {
        DomainEvent::Reboot { name } => vec![("/kvm/reportvmreboot", json!({"vmUuid": name}))],
        DomainEvent::Lifecycle {
            name,
            event,
            detail,
        } => {
            let e = *event as u32;
            let vm = json!({"vmUuid": name});
            match e {
                sys::VIR_DOMAIN_EVENT_STARTED => {
                    vec![("/kvm/reportvmstart", vm), state(name, "Running")]
                }
                sys::VIR_DOMAIN_EVENT_SUSPENDED => vec![state(name, "Paused")],
                sys::VIR_DOMAIN_EVENT_RESUMED => vec![state(name, "Running")],
                // Guest-initiated power-off ends in STOPPED/SHUTDOWN; report the
                // shutdown once, when it is complete.
                sys::VIR_DOMAIN_EVENT_STOPPED => {
                    let mut v = vec![state(name, "Stopped")];
                    match *detail as u32 {
                        sys::VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN => {
                            v.insert(0, ("/kvm/reportvmshutdown", vm))
                        }
                        sys::VIR_DOMAIN_EVENT_STOPPED_CRASHED => {
                            v.insert(0, ("/kvm/reportvmcrash", vm))
                        }
                        _ => {}
                    }
                    v
                }
                sys::VIR_DOMAIN_EVENT_CRASHED => {
                    vec![("/kvm/reportvmcrash", vm), state(name, "Crashed")]
                }
                _ => vec![],
            }
        }
    }
}

static EVENT_LOOP: Once = Once::new();

/// Install libvirt's default event loop and run it on a dedicated thread.
/// Must happen before the connection is opened; idempotent.
pub fn start_event_loop() {
    EVENT_LOOP.call_once(|| {
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::error!(error = %e.message(), "cannot install the libvirt event loop; no lifecycle reports");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(|| {
                loop {
                    if let Err(e) = virt::event::event_run_default_impl() {
                        tracing::error!(error = %e.message(), "libvirt event loop failed");
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the libvirt event thread");
        }
    });
}

type Tx = UnboundedSender<DomainEvent>;

#[allow(unsafe_code)]
mod ffi {
    use super::*;

    unsafe fn name_of(dom: sys::virDomainPtr) -> String {
        // SAFETY: libvirt passes a valid domain for the duration of the
        // callback; the name string is owned by that domain object.
        unsafe {
            let p = sys::virDomainGetName(dom);
            if p.is_null() {
                return String::new();
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }

    pub unsafe extern "C" fn lifecycle(
        _conn: sys::virConnectPtr,
        dom: sys::virDomainPtr,
        event: c_int,
        detail: c_int,
        opaque: *mut c_void,
    ) -> c_int {
        // SAFETY: opaque is the Box<Tx> registered below, freed only by
        // `free_tx` after libvirt stops calling us.
        unsafe {
            let tx = &*(opaque as *const Tx);
            let _ = tx.send(DomainEvent::Lifecycle {
                name: name_of(dom),
                event,
                detail,
            });
        }
        0
    }

    pub unsafe extern "C" fn reboot(
        _conn: sys::virConnectPtr,
        dom: sys::virDomainPtr,
        opaque: *mut c_void,
    ) {
        // SAFETY: as in `lifecycle`.
        unsafe {
            let tx = &*(opaque as *const Tx);
            let _ = tx.send(DomainEvent::Reboot { name: name_of(dom) });
        }
    }

    pub unsafe extern "C" fn free_tx(opaque: *mut c_void) {
        // SAFETY: created by Box::into_raw in `register`, freed once here.
        unsafe { drop(Box::from_raw(opaque as *mut Tx)) }
    }

    type Lifecycle = unsafe extern "C" fn(
        sys::virConnectPtr,
        sys::virDomainPtr,
        c_int,
        c_int,
        *mut c_void,
    ) -> c_int;
    type Generic = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);

    pub fn register(conn: &Connect, tx: &Tx) -> Result<(), String> {
        // SAFETY: libvirt's C API takes the per-event callback through the
        // generic callback type (its VIR_DOMAIN_EVENT_CALLBACK cast) and
        // calls it with the lifecycle signature; the connection pointer is
        // valid while `conn` lives.
        unsafe {
            let lc = std::mem::transmute::<Lifecycle, Generic>(lifecycle as Lifecycle);
            let regs: [(c_int, Generic); 2] = [
                (sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int, lc),
                (sys::VIR_DOMAIN_EVENT_ID_REBOOT as c_int, reboot as Generic),
            ];
            for (id, cb) in regs {
                let opaque = Box::into_raw(Box::new(tx.clone())) as *mut c_void;
                let r = sys::virConnectDomainEventRegisterAny(
                    conn.as_ptr(),
                    std::ptr::null_mut(),
                    id,
                    Some(cb),
                    opaque,
                    Some(free_tx),
                );
                if r < 0 {
                    drop(Box::from_raw(opaque as *mut Tx));
                    return Err(virt::error::Error::last_error().message().to_string());
                }
            }
        }
        Ok(())
    }
}

/// Subscribe to lifecycle and reboot events of every domain on `conn`.
/// Needs [`start_event_loop`] before the connection was opened.
pub fn subscribe(conn: &Connect, tx: &Tx) -> Result<(), String> {
    ffi::register(conn, tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_zstack_reports() {
        let ev = |event: u32, detail: u32| DomainEvent::Lifecycle {
            name: "vm1".into(),
            event: event as i32,
            detail: detail as i32,
        };
        let paths = |e: &DomainEvent| {
            reports(e, "h")
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&ev(sys::VIR_DOMAIN_EVENT_STARTED, 0)),
            ["/kvm/reportvmstart", "/kvm/reportvmstate"]
        );
        assert_eq!(
            paths(&ev(
                sys::VIR_DOMAIN_EVENT_STOPPED,
                sys::VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
            )),
            ["/kvm/reportvmshutdown", "/kvm/reportvmstate"]
        );
        assert_eq!(
            paths(&ev(
                sys::VIR_DOMAIN_EVENT_STOPPED,
                sys::VIR_DOMAIN_EVENT_STOPPED_DESTROYED
            )),
            ["/kvm/reportvmstate"]
        );
        assert_eq!(
            paths(&ev(sys::VIR_DOMAIN_EVENT_CRASHED, 0)),
            ["/kvm/reportvmcrash", "/kvm/reportvmstate"]
        );
        assert_eq!(
            paths(&DomainEvent::Reboot { name: "vm1".into() }),
            ["/kvm/reportvmreboot"]
        );
        assert!(paths(&ev(sys::VIR_DOMAIN_EVENT_DEFINED, 0)).is_empty());
        let (_, body) = &reports(&ev(sys::VIR_DOMAIN_EVENT_STARTED, 0), "h")[1];
        assert_eq!(
            *body,
            serde_json::json!({"hostUuid":"h","vmUuid":"vm1","vmState":"Running"})
        );
    }
}
