//! The VR image for VM tests, at a path libvirt's qemu user can read.
//!
//! libvirt runs qemu as `libvirt-qemu`: an image (or an overlay's backing
//! file) under a directory that user cannot enter, such as a checkout in
//! root's 0700 home, fails with "Cannot access backing file ... Permission
//! denied" (PLATFORM.md). Such an image is published once under
//! `/var/tmp` (hard links where the file system allows, copies otherwise).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The files `images/build` writes that a VM test uses.
const FILES: [&str; 4] = ["vr.qcow2", "vmlinuz", "initrd.img", "inputs.sha256"];

/// `$VR_IMAGE_DIR`, or the repository's `images/out`, made readable by the
/// qemu user (see the module comment). Returned as given when the image is
/// missing (the caller's skip or failure names it).
pub fn vr_image_dir() -> PathBuf {
    let dir = std::env::var_os("VR_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/out"));
    let dir = dir.canonicalize().unwrap_or(dir);
    if !dir.join("vr.qcow2").exists() || others_can_enter(&dir) {
        return dir;
    }
    match publish(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "cannot publish the VR image of {} for libvirt-qemu: {e}",
                dir.display()
            );
            dir
        }
    }
}

/// Every directory from `/` to `dir` lets others traverse it.
fn others_can_enter(dir: &Path) -> bool {
    dir.ancestors()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn publish(dir: &Path) -> std::io::Result<PathBuf> {
    let stamp = std::fs::read_to_string(dir.join("inputs.sha256")).unwrap_or_default();
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (dir, stamp.trim()).hash(&mut h);
        h.finish()
    };
    let target = PathBuf::from(format!("/var/tmp/vr-image-{key:016x}"));
    if target.join("vr.qcow2").exists() {
        return Ok(target);
    }
    // Built beside the target and renamed into place: tests run in parallel.
    let staging = PathBuf::from(format!("{}.{}", target.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))?;
    for f in FILES {
        let from = dir.join(f);
        if !from.exists() {
            continue;
        }
        let to = staging.join(f);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    if std::fs::rename(&staging, &target).is_err() {
        // Another test published it first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(target)
}
