//! Why qemu cannot read a disk (issue 15): libvirt runs qemu as an
//! unprivileged user (`libvirt-qemu` on Debian) and says only "Cannot
//! access storage file '/root/x/vr.qcow2' (as uid:64055, gid:64055):
//! Permission denied". This finds what stops that user: a directory on the
//! way it cannot search (root's 0700 home, a `mktemp -d`), or the file
//! itself, and names the user, the path and the mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What blocks `uid`/`gid` from reading `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub path: PathBuf,
    pub user: String,
    /// The directory it cannot search, or the file it cannot read.
    pub at: PathBuf,
    pub mode: u32,
    pub owner: u32,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.at == self.path {
            "the file is not readable by it".to_string()
        } else {
            format!("it cannot enter {}", self.at.display())
        };
        write!(
            f,
            "qemu runs as {}, which cannot read {}: {what} (mode {:04o}, owner uid {}); put the disk under a directory that user can search (e.g. /var/lib/libvirt/images), or make the path searchable",
            self.user,
            self.path.display(),
            self.mode,
            self.owner
        )
    }
}

/// The quoted paths and `(uid, gid)` of libvirt's "'<path>' (as uid:N,
/// gid:M): Permission denied" message ("Cannot access backing file 'A' of
/// storage file 'B' ..." names two).
pub fn parse_denied(message: &str) -> Option<(Vec<PathBuf>, u32, u32)> {
    if !message.contains("Permission denied") {
        return None;
    }
    let ids = message.find("(as uid:")?;
    let paths: Vec<PathBuf> = message[..ids]
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    let rest = &message[ids + "(as uid:".len()..];
    let (uid, rest) = rest.split_once(',')?;
    let gid = rest.trim_start().strip_prefix("gid:")?;
    let gid: String = gid.chars().take_while(char::is_ascii_digit).collect();
    Some((paths, uid.trim().parse().ok()?, gid.parse().ok()?))
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or(format!("uid {uid}"), |u| u.name)
}

/// Does the mode grant `bit` (4 read, 1 search) to uid/gid?
fn grants(meta: &std::fs::Metadata, uid: u32, gids: &[u32], bit: u32) -> bool {
    let mode = meta.permissions().mode();
    if uid == 0 {
        return true;
    }
    if meta.uid() == uid {
        mode & (bit << 6) != 0
    } else if gids.contains(&meta.gid()) {
        mode & (bit << 3) != 0
    } else {
        mode & bit != 0
    }
}

/// The groups of `uid` besides `gid` (supplementary, from /etc/group).
fn groups(uid: u32, gid: u32) -> Vec<u32> {
    let mut out = vec![gid];
    let name = user_name(uid);
    if let Ok(text) = std::fs::read_to_string("/etc/group") {
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() == 4
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse()
            {
                out.push(g);
            }
        }
    }
    out
}

/// What keeps `uid`/`gid` from reading `path` (None: nothing we can see).
pub fn blocked(path: &Path, uid: u32, gid: u32) -> Option<Blocked> {
    let gids = groups(uid, gid);
    let make = |at: &Path, meta: &std::fs::Metadata| Blocked {
        path: path.to_path_buf(),
        user: user_name(uid),
        at: at.to_path_buf(),
        mode: meta.permissions().mode() & 0o7777,
        owner: meta.uid(),
    };
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    for d in dirs {
        let meta = std::fs::metadata(d).ok()?;
        if !grants(&meta, uid, &gids, 1) {
            return Some(make(d, &meta));
        }
    }
    let meta = std::fs::metadata(path).ok()?;
    (!grants(&meta, uid, &gids, 4)).then(|| make(path, &meta))
}

/// libvirt's start error, explained when it is an unreadable file.
pub fn explain(message: &str) -> Option<String> {
    let (paths, uid, gid) = parse_denied(message)?;
    paths
        .iter()
        .find_map(|p| blocked(p, uid, gid))
        .map(|b| b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_directory_the_qemu_user_cannot_enter() {
        let top = std::env::temp_dir().join(format!("kvm-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let private = top.join("home");
        std::fs::create_dir_all(&private).unwrap();
        let disk = private.join("vr.qcow2");
        std::fs::write(&disk, b"x").unwrap();
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o644)).unwrap();
        let owner = std::fs::metadata(&private).unwrap().uid();
        let other = if owner == 65534 { 65533 } else { 65534 };
        let msg = format!(
            "Cannot access backing file '{}' of storage file '/var/lib/x.qcow2' (as uid:{other}, gid:{other}): Permission denied",
            disk.display()
        );
        let (paths, uid, gid) = parse_denied(&msg).unwrap();
        assert_eq!(paths, vec![disk.clone(), PathBuf::from("/var/lib/x.qcow2")]);
        assert_eq!((uid, gid), (other, other));
        let text = explain(&msg).unwrap();
        assert!(
            text.contains(&format!("cannot enter {}", private.display())),
            "{text}"
        );
        assert!(
            text.contains("0700") && text.contains(&disk.display().to_string()),
            "{text}"
        );
        // Searchable directory, unreadable file.
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = explain(&msg).unwrap();
        assert!(text.contains("the file is not readable"), "{text}");
        // Readable: nothing to explain.
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(explain(&msg), None);
        assert_eq!(explain("Cannot access '/x': No such file"), None);
        std::fs::remove_dir_all(&top).unwrap();
    }
}
