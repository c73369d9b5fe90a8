//! haproxy's files on disk: written atomically, root's and private (see the
//! module doc), and the staged copy a check runs on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::HaproxyError;
use crate::plan::haproxy::{Files, Paths};

/// Every file the agent writes for haproxy, certificates included.
pub(super) const FILE_MODE: u32 = 0o600;
pub(super) const DIR_MODE: u32 = 0o700;

pub(super) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Temp file + rename; the mode is set also on a file that already has the
/// contents (written 0644 by an older agent).
pub(super) async fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<(), HaproxyError> {
    let err = |source| HaproxyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if tokio::fs::read(path).await.ok().as_deref() == Some(contents) {
        return set_mode(path, mode).map_err(err);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let data = contents.to_vec();
    let t = tmp.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&t)?;
        // A temp file left by a crash keeps its old mode on open.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(&data)?;
        f.sync_all()
    })
    .await
    .map_err(|e| err(std::io::Error::other(e)))?
    .map_err(err)?;
    tokio::fs::rename(&tmp, path).await.map_err(err)
}

/// The check's certificate directory: exactly the live PEMs, with
/// `new_certs` written over them.
pub(super) async fn stage_certs(
    live: &Path,
    staged: &Path,
    new_certs: &BTreeMap<String, String>,
) -> Result<(), HaproxyError> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HaproxyError::Write { path, source }
    };
    let pems = |dir: PathBuf| async move {
        let mut out = vec![];
        if let Ok(mut d) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(e)) = d.next_entry().await {
                if e.path().extension().is_some_and(|x| x == "pem") {
                    out.push(e.path());
                }
            }
        }
        out
    };
    for p in pems(staged.to_path_buf()).await {
        tokio::fs::remove_file(&p).await.map_err(werr(&p))?;
    }
    for p in pems(live.to_path_buf()).await {
        let to = staged.join(p.file_name().unwrap_or_default());
        let body = tokio::fs::read(&p).await.map_err(werr(&p))?;
        write_atomic(&to, &body, FILE_MODE).await?;
    }
    for (uuid, pem) in new_certs {
        let to = staged.join(format!("{uuid}.pem"));
        write_atomic(&to, pem.as_bytes(), FILE_MODE).await?;
    }
    Ok(())
}

pub(super) async fn write_files(paths: &Paths, files: &Files) -> Result<(), HaproxyError> {
    let acl_dir = paths.acl_dir();
    tokio::fs::create_dir_all(&acl_dir)
        .await
        .map_err(|source| HaproxyError::Write {
            path: acl_dir.clone(),
            source,
        })?;
    for (uuid, text) in &files.acls {
        write_atomic(&paths.acl(uuid), text.as_bytes(), FILE_MODE).await?;
    }
    write_atomic(&paths.conf(), files.conf.as_bytes(), FILE_MODE).await?;
    if let Ok(mut dir) = tokio::fs::read_dir(&acl_dir).await {
        while let Ok(Some(e)) = dir.next_entry().await {
            let name = e.file_name();
            let uuid = name.to_str().and_then(|n| n.strip_suffix(".txt"));
            if uuid.is_none_or(|u| !files.acls.contains_key(u)) {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
    }
    Ok(())
}
