//! Atomic state files: temp file, fsync, rename, fsync of the directory.
//! The state dir and what is in it are the agent's alone: dirs 0700, files
//! 0600 (the controller's session, isolation markers).

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates the configured state dir (0700) or tightens it to 0700, and its
/// files to 0600 (written 0644 by an older agent).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    for e in std::fs::read_dir(dir)?.flatten() {
        let t = e.file_type()?;
        let mode = if t.is_dir() {
            DIR_MODE
        } else if t.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        // A temp file left by a crash keeps its mode on open.
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_and_replaces() {
        let dir = std::env::temp_dir().join(format!("kvm-agent-store-{}", std::process::id()));
        let p = dir.join("x.json");
        super::write_atomic(&p, b"1").unwrap();
        super::write_atomic(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert!(!p.with_extension("tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_are_0600_and_dirs_0700() {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = std::env::temp_dir().join(format!("kvm-agent-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("host-connect.json"), b"{}").unwrap();
        std::fs::set_permissions(
            dir.join("host-connect.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        super::private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("host-connect.json")), 0o600);
        let marker = dir.join("isolated-bridges").join("br0");
        super::write_atomic(&marker, b"isolated\n").unwrap();
        assert_eq!(mode(&marker), 0o600);
        assert_eq!(mode(&dir.join("isolated-bridges")), 0o700);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
