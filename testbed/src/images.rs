//! Where the built VR image lives.

use std::path::{Path, PathBuf};

/// `$VR_IMAGE_DIR`, or the repository's `images/out`, at a path libvirt's
/// qemu user can read (`common::image`: a checkout in a 0700 home is not).
pub fn vr_image_dir() -> PathBuf {
    let dir = std::env::var_os("VR_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/out"));
    common::image::readable_by_qemu(&dir)
}
