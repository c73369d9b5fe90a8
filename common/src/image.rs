//! The VR image at a path libvirt's qemu user can read (the lab, VM tests).
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

/// `dir` itself when libvirt's qemu user can read the image there, else a
/// published copy of it (see the module comment). Given back unchanged when
/// the image is missing (the caller's error names it) or publishing fails.
pub fn readable_by_qemu(dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if !dir.join("vr.qcow2").exists() || others_can_enter(&dir) {
        return dir;
    }
    match publish(&dir) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot publish the VR image for libvirt-qemu");
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
