//! kvm-agent's wire types through common's decode (lenient and exact).
#![no_main]

use kvm_agent::wire::vm::*;
use kvm_agent::wire::*;
use libfuzzer_sys::fuzz_target;

include!("common_check.rs");

const PATHS: &[&str] = &[
    "/host/connect",
    "/host/ping",
    "/host/capacity",
    "/host/update/configuration",
    "/host/updatedependency",
    "/network/checkphysicalnetworkinterface",
    "/network/l2novlan/createbridge",
    "/network/l2novlan/checkbridge",
    "/network/l2novlan/deletebridge",
    "/network/bridge/addif",
    "/vm/start",
    "/vm/stop",
    "/vm/destroy",
    "/vm/reboot",
    "/appliancevm/setbootstrapinfo",
    "/vm/console/tail",
    "/vm/checkstate",
    "/vm/getvncport",
    "/vm/attachnic",
    "/vm/detachnic",
    "/vm/getvirtualizerinfo",
    "/vm/volumesync",
];

fuzz_target!(|data: &[u8]| {
    let (path, body) = split(data);
    match pick(path, PATHS) {
        0 => drop(check::<ConnectCmd>(body)),
        1 => drop(check::<PingCmd>(body)),
        2 => drop(check::<Empty>(body)),
        3 => drop(check::<UpdateHostConfigurationCmd>(body)),
        4 => drop(check::<UpdateDependencyCmd>(body)),
        5 => drop(check::<CheckPhysicalNetworkInterfaceCmd>(body)),
        6 => drop(check::<CreateBridgeCmd>(body)),
        7 => drop(check::<CheckBridgeCmd>(body)),
        8 => drop(check::<DeleteBridgeCmd>(body)),
        9 => drop(check::<AddInterfaceToBridgeCmd>(body)),
        10 => drop(check::<StartVmCmd>(body)),
        11 => drop(check::<StopVmCmd>(body)),
        12 => drop(check::<DestroyVmCmd>(body)),
        13 => drop(check::<RebootVmCmd>(body)),
        14 => {
            if let Some(c) = check::<SetBootstrapInfoCmd>(body) {
                // The wait must never overflow an Instant.
                let t = kvm_agent::wire::bounds::timeout_secs(c.boot_strap_info_timeout, 300);
                let _ = std::time::Instant::now() + t;
                let _ = kvm_agent::wire::bounds::abs_path("socketPath", &c.socket_path);
            }
        }
        15 => drop(check::<ConsoleTailCmd>(body)),
        16 => drop(check::<CheckVmStateCmd>(body)),
        17 => drop(check::<GetVncPortCmd>(body)),
        18 => drop(check::<AttachNicCmd>(body)),
        19 => drop(check::<DetachNicCmd>(body)),
        20 => drop(check::<GetVirtualizerInfoCmd>(body)),
        _ => drop(check::<VolumeSyncCmd>(body)),
    }
});
