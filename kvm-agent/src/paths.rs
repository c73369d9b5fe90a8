//! Host paths a request names (channel sockets, volumes, kernel/initrd,
//! storage paths): each must lie inside a directory the agent owns by
//! configuration. The check is lexical (absolute, no `..`) and then on the
//! file system: no existing component below the allowed directory may be a
//! symlink, so a path cannot lead out of it. Sockets are removed through a
//! descriptor of their directory (`unlinkat`, no symlink followed), and the
//! agent chmods only a socket directory it created itself.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

/// Directories the agent may use for paths named in requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirs {
    /// VM channel sockets (`addons.channel.socketPath`, `socketPath` of
    /// setbootstrapinfo) are files directly in it (ZStack:
    /// `ApplianceVmConstant.KVM_CHANNEL_AGENT_PATH`).
    pub socket_dir: PathBuf,
    /// Volume install paths and storage paths (primary storage mounts).
    pub volume_dirs: Vec<PathBuf>,
    /// Kernel and initrd of `addons.directKernelBoot` (volume dirs too).
    pub image_dirs: Vec<PathBuf>,
}

pub const DEFAULT_SOCKET_DIR: &str = "/var/lib/zstack/kvm/agentSocket";
/// Local storage's conventional mount points (the URL is the operator's
/// choice when adding the storage: name others with `--volume-dir`).
pub const DEFAULT_VOLUME_DIRS: [&str; 2] = ["/var/lib/zstack/local", "/zstack_ps"];
pub const DEFAULT_IMAGE_DIR: &str = "/var/lib/kvm-agent/images";

impl Default for HostDirs {
    fn default() -> Self {
        HostDirs {
            socket_dir: DEFAULT_SOCKET_DIR.into(),
            volume_dirs: DEFAULT_VOLUME_DIRS.iter().map(PathBuf::from).collect(),
            image_dirs: vec![DEFAULT_IMAGE_DIR.into()],
        }
    }
}

impl HostDirs {
    /// Every directory under one root (tests, the lab): `sock`, `volumes`
    /// and `images` below it.
    pub fn under(root: &Path) -> Self {
        HostDirs {
            socket_dir: root.join("sock"),
            volume_dirs: vec![root.join("volumes")],
            image_dirs: vec![root.join("images")],
        }
    }

    pub fn volume(&self, field: &str, path: &str) -> Result<PathBuf, PathError> {
        confine(field, path, &self.volume_dirs, "--volume-dir")
    }

    /// A storage path (`/vm/volumesync`): the volume directory itself or a
    /// path inside one.
    pub fn storage(&self, field: &str, path: &str) -> Result<PathBuf, PathError> {
        let p = normalise(path).ok();
        if let Some(p) = &p
            && self.volume_dirs.iter().any(|d| lexical(d) == *p)
        {
            return Ok(p.clone());
        }
        confine(field, path, &self.volume_dirs, "--volume-dir")
    }

    pub fn image(&self, field: &str, path: &str) -> Result<PathBuf, PathError> {
        let dirs: Vec<PathBuf> = self
            .image_dirs
            .iter()
            .chain(&self.volume_dirs)
            .cloned()
            .collect();
        confine(field, path, &dirs, "--image-dir or --volume-dir")
    }

    /// A channel socket: a plain name directly in the socket directory.
    pub fn socket(&self, field: &str, path: &str) -> Result<Socket, PathError> {
        let err = |why: &str| PathError {
            field: field.to_string(),
            path: common::text::quoted(path),
            allowed: format!("{} (--socket-dir)", self.socket_dir.display()),
            why: why.to_string(),
        };
        let p = normalise(path).map_err(&err)?;
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return Err(err("names no file"));
        };
        if parent != lexical(&self.socket_dir) {
            return Err(err("is not a file directly in the socket directory"));
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return Err(err("is a symlink")),
            Ok(m) if !m.file_type().is_socket() => {
                return Err(err("exists and is not a socket"));
            }
            _ => {}
        }
        Ok(Socket {
            dir: self.socket_dir.clone(),
            name: name.to_os_string(),
        })
    }
}

/// Every host path a `StartVmCmd` names, checked before anything is
/// touched: the channel socket, the volumes, the kernel and initrd.
pub fn check_start(cmd: &crate::wire::vm::StartVmCmd, dirs: &HostDirs) -> Result<(), PathError> {
    if let Some(ch) = cmd
        .addons
        .channel
        .as_ref()
        .filter(|c| !c.socket_path.is_empty())
    {
        dirs.socket("addons.channel.socketPath", &ch.socket_path)?;
    }
    if let Some(r) = cmd
        .root_volume
        .as_ref()
        .filter(|v| !v.install_path.is_empty())
    {
        dirs.volume("rootVolume.installPath", &r.install_path)?;
    }
    for (i, v) in cmd.data_volumes.iter().enumerate() {
        if !v.install_path.is_empty() {
            dirs.volume(&format!("dataVolumes[{i}].installPath"), &v.install_path)?;
        }
    }
    if let Some(k) = &cmd.addons.direct_kernel_boot {
        if !k.kernel.is_empty() {
            dirs.image("addons.directKernelBoot.kernel", &k.kernel)?;
        }
        if !k.initrd.is_empty() {
            dirs.image("addons.directKernelBoot.initrd", &k.initrd)?;
        }
    }
    Ok(())
}

/// A channel socket in the socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub dir: PathBuf,
    pub name: OsString,
}

impl Socket {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Removes the socket if it is one (a stale file from a previous run
    /// makes qemu's bind fail); anything else there is left alone.
    pub fn remove(&self) -> std::io::Result<bool> {
        use nix::fcntl::{AtFlags, OFlag, open};
        use nix::sys::stat::{Mode, SFlag, fstatat};
        use nix::unistd::{UnlinkatFlags, unlinkat};
        let dir = match open(
            &self.dir,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let st = match fstatat(&dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
            return Ok(false);
        }
        unlinkat(&dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        Ok(true)
    }
}

/// Creates the socket directory when it is missing and only then makes it
/// 0777 (qemu runs unprivileged and binds its sockets there, as ZStack does);
/// an existing directory is the operator's and is not touched.
pub fn prepare_socket_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {path} {why}; allowed: inside {allowed}")]
pub struct PathError {
    pub field: String,
    /// Quoted and bounded.
    pub path: String,
    pub allowed: String,
    pub why: String,
}

/// Absolute, no `..`, no NUL; `.` and repeated slashes dropped.
fn normalise(path: &str) -> Result<PathBuf, &'static str> {
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    if path.chars().any(char::is_control) {
        return Err("has a control character");
    }
    if !path.starts_with('/') {
        return Err("is not an absolute path");
    }
    if path.len() > 4096 {
        return Err("is longer than 4096 bytes");
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err("contains '..'"),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// A configured directory in the same lexical form as request paths.
fn lexical(dir: &Path) -> PathBuf {
    dir.to_str()
        .and_then(|s| normalise(s).ok())
        .unwrap_or_else(|| dir.to_path_buf())
}

fn confine(field: &str, path: &str, dirs: &[PathBuf], flag: &str) -> Result<PathBuf, PathError> {
    let err = |why: &str| PathError {
        field: field.to_string(),
        path: common::text::quoted(path),
        allowed: format!(
            "{} ({flag})",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        why: why.to_string(),
    };
    let p = normalise(path).map_err(&err)?;
    let Some(base) = dirs
        .iter()
        .map(|d| lexical(d))
        .find(|d| p.starts_with(d) && p != *d)
    else {
        return Err(err("is not inside an allowed directory"));
    };
    // Below the allowed directory, nothing that exists may be a symlink.
    let mut at = base;
    for c in p.strip_prefix(&at).expect("checked above").components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(err(&format!(
                    "leads through the symlink {}",
                    common::text::excerpt(&at.display().to_string())
                )));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> HostDirs {
        HostDirs::under(root)
    }

    #[test]
    fn paths_outside_with_dotdot_or_through_a_symlink_are_refused() {
        let root = std::env::temp_dir().join(format!("kvm-agent-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("volumes/a")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("volumes/esc")).unwrap();
        let d = dirs(&root);
        let v = |p: &str| d.volume("rootVolume.installPath", p);
        let inside = format!("{}/volumes/a/x.qcow2", root.display());
        assert_eq!(v(&inside).unwrap(), PathBuf::from(&inside));
        let dotdot = format!("{}/volumes/a/../../../etc/shadow", root.display());
        assert!(v(&dotdot).unwrap_err().why.contains(".."));
        let e = v("/etc/shadow").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "field rootVolume.installPath: \"/etc/shadow\" is not inside an allowed directory; allowed: inside {}/volumes (--volume-dir)",
                root.display()
            )
        );
        let via = format!("{}/volumes/esc/shadow", root.display());
        assert!(v(&via).unwrap_err().why.contains("symlink"), "{via}");
        assert!(v("relative/x").is_err());
        assert!(v(&format!("{}/volumes", root.display())).is_err());
        // Sockets: directly in the socket dir, a socket or nothing yet.
        let s = |p: &str| d.socket("socketPath", p);
        let sock = format!("{}/sock/applianceVm.x", root.display());
        assert_eq!(s(&sock).unwrap().path(), PathBuf::from(&sock));
        assert!(s(&format!("{}/sock/sub/x", root.display())).is_err());
        assert!(s("/etc/passwd").is_err());
        std::fs::create_dir_all(root.join("sock")).unwrap();
        std::fs::write(root.join("sock/file"), "x").unwrap();
        assert!(
            s(&format!("{}/sock/file", root.display()))
                .unwrap_err()
                .why
                .contains("not a socket")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn remove_takes_sockets_only_and_prepare_leaves_an_existing_dir_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("kvm-agent-rmsock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_socket_dir(&root).unwrap();
        let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "an existing directory keeps its mode");
        let made = root.join("made");
        prepare_socket_dir(&made).unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        std::fs::write(made.join("f"), "x").unwrap();
        let f = Socket {
            dir: made.clone(),
            name: "f".into(),
        };
        assert!(!f.remove().unwrap());
        assert!(made.join("f").exists());
        let _l = std::os::unix::net::UnixListener::bind(made.join("s")).unwrap();
        let s = Socket {
            dir: made.clone(),
            name: "s".into(),
        };
        assert!(s.remove().unwrap());
        assert!(!made.join("s").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
