//! Before the lab is built: which mode the router runs in, and whether
//! the programs and binaries it needs are there.

use super::{LabError, Mode, Options, topo};

/// What the VR mode will be, and why.
pub(super) fn choose_mode(opts: &Options) -> (Mode, Option<String>) {
    let missing_vm = || -> Option<String> {
        for p in [
            "libvirtd",
            "virtlogd",
            "virsh",
            "qemu-system-x86_64",
            "qemu-img",
        ] {
            if !topo::have(p) {
                return Some(format!("{p} is not installed"));
            }
        }
        for f in ["vr.qcow2", "vmlinuz", "initrd.img"] {
            if !opts.image_dir.join(f).is_file() {
                return Some(format!(
                    "{} is missing (build it with `images/build`, as root)",
                    opts.image_dir.join(f).display()
                ));
            }
        }
        None
    };
    match opts.mode {
        Mode::Namespace => (Mode::Namespace, Some("--mode namespace".into())),
        Mode::Vm => (Mode::Vm, None),
        Mode::Auto => match missing_vm() {
            None => (Mode::Vm, None),
            Some(why) => (Mode::Namespace, Some(why)),
        },
    }
}

pub(super) fn preflight(opts: &Options, mode: Mode) -> Result<(), LabError> {
    if !nix_is_root() {
        return Err(LabError::Other(
            "the lab needs root (namespaces, bridges, nft)".into(),
        ));
    }
    let mut missing: Vec<&str> = ["ip", "socat", "busybox", "dig", "dnsmasq", "nft"]
        .into_iter()
        .filter(|p| !topo::have(p))
        .collect();
    if mode == Mode::Vm {
        missing.extend(
            [
                "libvirtd",
                "virtlogd",
                "virsh",
                "qemu-system-x86_64",
                "qemu-img",
            ]
            .into_iter()
            .filter(|p| !topo::have(p)),
        );
    }
    if !missing.is_empty() {
        return Err(LabError::Other(format!(
            "missing programs: {} (`scripts/install-deps`, as root, installs them)",
            missing.join(", ")
        )));
    }
    let mut bins = vec!["kvm-agent"];
    if mode == Mode::Namespace {
        bins.push("vr-agent");
    }
    for b in bins {
        if !opts.bin_dir.join(b).is_file() {
            return Err(LabError::Other(format!(
                "{} is missing: `cargo build --release` builds it beside vrctl",
                opts.bin_dir.join(b).display()
            )));
        }
    }
    Ok(())
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
