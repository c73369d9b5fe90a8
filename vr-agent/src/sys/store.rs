//! Persisting the desired state: a snapshot plus a journal of edits.
//!
//! A small edit appends one fsync'ed journal line, so the cost of one
//! `/createportforwarding` does not grow with the number of rules; big or
//! sync edits (and every [`COMPACT_AFTER`] lines) write a new snapshot
//! atomically (temp file, fsync, rename, fsync the directory) and start an
//! empty journal. A torn last journal line (crash mid-write) is dropped.
//!
//! A snapshot that cannot be read (truncated, empty, not JSON, a schema
//! version we do not know) or a journal with a corrupt line before its end
//! is quarantined (renamed `*.corrupt-<unix seconds>`, kept for forensics)
//! and the agent starts empty: its controller sees `uuid ""` and resyncs,
//! where refusing to start would leave the router dead.
//!
//! The state dir holds the router's whole configuration (and, below it,
//! private keys): it is [`STATE_DIR_MODE`] and every file in it 0600 (files
//! an older agent left readable are tightened at start). Search without
//! read for others is the one exception: dnsmasq, after dropping root,
//! opens its files in `dnsmasq/` by name (see `sys::dnsmasq`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use vr_model::{Edit, Model};

pub const COMPACT_AFTER: usize = 256;

/// The persisted state's schema. A snapshot without `version` is the first,
/// unversioned format: version 1.
pub const SCHEMA_VERSION: u32 = 1;

/// Owner only, plus search (not listing) so dnsmasq reaches `dnsmasq/`.
pub const STATE_DIR_MODE: u32 = 0o711;
/// Every file the store writes.
pub const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state dir {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub trait Store: Send + Sync {
    /// The persisted state and its generation, None when there is none.
    fn load(&self) -> Result<Option<(u64, Model)>, StoreError>;
    /// Persist the result of an edit: `model` is the state after `edit`.
    fn record(&self, generation: u64, edit: &Edit, model: &Model) -> Result<(), StoreError>;
}

#[derive(Serialize)]
struct Snapshot<'a> {
    version: u32,
    generation: u64,
    model: &'a Model,
}

/// What is read back: the version first, so an unknown one is not parsed.
#[derive(Deserialize)]
struct Header {
    #[serde(default = "v1")]
    version: u32,
}

#[derive(Deserialize)]
struct SnapshotV1 {
    generation: u64,
    model: Model,
}

fn v1() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    generation: u64,
    edit: Edit,
}

pub struct FileStore {
    dir: PathBuf,
    journal_lines: Mutex<usize>,
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        tighten(&dir).map_err(io(&dir))?;
        Ok(FileStore {
            dir,
            journal_lines: Mutex::new(0),
        })
    }
    fn snapshot_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    fn write_snapshot(&self, generation: u64, model: &Model) -> Result<(), StoreError> {
        let path = self.snapshot_path();
        let tmp = self.dir.join("state.json.tmp");
        let body = serde_json::to_vec(&Snapshot {
            version: SCHEMA_VERSION,
            generation,
            model,
        })
        .expect("model serialises");
        let mut f = private_file(&tmp, true).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The journal's edits are now in the snapshot.
        match fs::remove_file(self.journal_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&self.journal_path())(e));
            }
            _ => {}
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        *self.journal_lines.lock().unwrap() = 0;
        Ok(())
    }
}

/// The dir to [`STATE_DIR_MODE`] and its regular files (snapshot,
/// journal, quarantined copies, left-over temp files) to [`FILE_MODE`].
fn tighten(dir: &Path) -> std::io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(STATE_DIR_MODE))?;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let meta = fs::symlink_metadata(e.path())?;
        if meta.is_file() && meta.permissions().mode() & 0o7777 != FILE_MODE {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(())
}

/// Opens `path` for writing, created [`FILE_MODE`]; `truncate` or append.
/// An existing file keeps its mode on open, so it is set again.
fn private_file(path: &Path, truncate: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(truncate)
        .append(!truncate)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

fn io(p: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = p.display().to_string();
    move |source| StoreError::Io { path, source }
}

impl FileStore {
    /// Rename a file we cannot read out of the way, keeping it.
    fn quarantine(&self, path: &Path, reason: &str) -> Result<(), StoreError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
        let to = self.dir.join(format!("{name}.corrupt-{secs}"));
        fs::rename(path, &to).map_err(io(path))?;
        tracing::error!(path = %path.display(), moved_to = %to.display(), reason,
            "persisted state is corrupt: quarantined it; starting with an empty state until the controller resyncs");
        Ok(())
    }

    fn read_snapshot(&self) -> Result<Result<Option<(u64, Model)>, String>, StoreError> {
        let path = self.snapshot_path();
        let b = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
            Err(e) => return Err(io(&path)(e)),
        };
        let version = match serde_json::from_slice::<Header>(&b) {
            Ok(h) => h.version,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if version != SCHEMA_VERSION {
            return Ok(Err(format!(
                "schema version {version}: this agent reads version {SCHEMA_VERSION}"
            )));
        }
        Ok(serde_json::from_slice::<SnapshotV1>(&b)
            .map(|s| Some((s.generation, s.model)))
            .map_err(|e| e.to_string()))
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<(u64, Model)>, StoreError> {
        let path = self.snapshot_path();
        let mut state = match self.read_snapshot()? {
            Ok(s) => s,
            Err(reason) => {
                self.quarantine(&path, &reason)?;
                let jpath = self.journal_path();
                if jpath.exists() {
                    // Its edits apply to the snapshot that is gone.
                    self.quarantine(&jpath, "its snapshot is corrupt")?;
                }
                return Ok(None);
            }
        };
        let jpath = self.journal_path();
        let body = match fs::read(&jpath) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(io(&jpath)(e)),
        };
        let mut lines = 0;
        let mut good_len = 0;
        let mut rest = &body[..];
        while !rest.is_empty() {
            let (line, complete) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let last = line.len() + usize::from(complete) == rest.len();
            match serde_json::from_slice::<JournalLine>(line) {
                Ok(j) if complete => {
                    let (generation, model) = state.get_or_insert_with(|| (0, Model::default()));
                    if j.generation > *generation {
                        // Edits were validated before they were journaled.
                        let _ = model.apply(&j.edit);
                        *generation = j.generation;
                    }
                    lines += 1;
                    good_len += line.len() + 1;
                }
                _ if last => {
                    // A crash mid-append: the edit was never answered.
                    tracing::warn!(path = %jpath.display(), "dropping a torn last journal line");
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&jpath)
                        .map_err(io(&jpath))?;
                    f.set_len(good_len as u64).map_err(io(&jpath))?;
                    f.sync_all().map_err(io(&jpath))?;
                    break;
                }
                Ok(_) => unreachable!("an incomplete line is the last"),
                Err(e) => {
                    let reason = format!("line {}: {e}", lines + 1);
                    self.quarantine(&jpath, &reason)?;
                    if path.exists() {
                        self.quarantine(&path, "its journal is corrupt")?;
                    }
                    return Ok(None);
                }
            }
            rest = &rest[(line.len() + usize::from(complete)).min(rest.len())..];
        }
        *self.journal_lines.lock().unwrap() = lines;
        Ok(state)
    }

    fn record(&self, generation: u64, edit: &Edit, model: &Model) -> Result<(), StoreError> {
        let lines = *self.journal_lines.lock().unwrap();
        if edit.is_sync() || edit.is_bulk() || lines >= COMPACT_AFTER {
            return self.write_snapshot(generation, model);
        }
        let jpath = self.journal_path();
        let mut line = serde_json::to_vec(&JournalLine {
            generation,
            edit: edit.clone(),
        })
        .expect("edit serialises");
        line.push(b'\n');
        let mut f = private_file(&jpath, false).map_err(io(&jpath))?;
        f.write_all(&line).map_err(io(&jpath))?;
        f.sync_data().map_err(io(&jpath))?;
        *self.journal_lines.lock().unwrap() += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_model::Eip;

    fn eip(i: u8) -> Eip {
        Eip {
            vip: format!("172.20.10.{i}").parse().unwrap(),
            guest: format!("192.168.100.{i}").parse().unwrap(),
            public_mac: "fa:26:9c:aa:00:02".parse().unwrap(),
            private_mac: "fa:26:9c:aa:00:03".parse().unwrap(),
            snat_inbound: false,
        }
    }

    #[test]
    fn snapshot_plus_journal_roundtrip() {
        let dir = std::env::temp_dir().join(format!("vr-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = FileStore::new(&dir).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut m = Model::default();
        let mut generation = 0;
        let edits = vec![
            Edit::SyncEips(vec![eip(1), eip(2)]),
            Edit::CreateEip(eip(3)),
            Edit::RemoveEip(eip(1).vip),
        ];
        for e in &edits {
            m.apply(e).unwrap();
            generation += 1;
            store.record(generation, e, &m).unwrap();
        }
        assert!(dir.join("journal.jsonl").exists());
        // A torn line at the end is ignored.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"generation\":9,\"ed").unwrap();
        let again = FileStore::new(&dir).unwrap();
        assert_eq!(again.load().unwrap(), Some((3, m)));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn the_dir_and_every_file_are_private_also_when_an_older_agent_left_them_open() {
        let dir = fresh("modes");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("state.json.corrupt-1"), b"x").unwrap();
        fs::set_permissions(
            dir.join("state.json.corrupt-1"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let store = FileStore::new(&dir).unwrap();
        assert_eq!(mode(&dir), STATE_DIR_MODE);
        assert_eq!(mode(&dir.join("state.json.corrupt-1")), FILE_MODE);
        let mut m = Model::default();
        let first = Edit::SyncEips(vec![eip(1)]);
        m.apply(&first).unwrap();
        store.record(1, &first, &m).unwrap();
        let second = Edit::CreateEip(eip(2));
        m.apply(&second).unwrap();
        store.record(2, &second, &m).unwrap();
        assert_eq!(mode(&dir.join("state.json")), FILE_MODE);
        assert_eq!(mode(&dir.join("journal.jsonl")), FILE_MODE);
        fs::set_permissions(dir.join("journal.jsonl"), fs::Permissions::from_mode(0o644)).unwrap();
        let third = Edit::CreateEip(eip(3));
        m.apply(&third).unwrap();
        store.record(3, &third, &m).unwrap();
        assert_eq!(mode(&dir.join("journal.jsonl")), FILE_MODE);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vr-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn quarantined(dir: &Path, name: &str) -> Vec<Vec<u8>> {
        let mut out = vec![];
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let n = e.file_name().into_string().unwrap();
            if n.starts_with(&format!("{name}.corrupt-")) {
                out.push(fs::read(e.path()).unwrap());
            }
        }
        out
    }

    #[test]
    fn a_corrupt_or_unknown_snapshot_is_quarantined_and_the_state_starts_empty() {
        let bodies: [&[u8]; 5] = [
            b"",
            b"{\"generation\":3,\"model\":{\"ni",
            b"not json at all",
            b"[1,2]",
            b"{\"version\":7,\"generation\":3,\"model\":{}}",
        ];
        for (i, body) in bodies.iter().enumerate() {
            let dir = fresh(&format!("corrupt{i}"));
            fs::write(dir.join("state.json"), body).unwrap();
            fs::write(dir.join("journal.jsonl"), b"{}\n").unwrap();
            let store = FileStore::new(&dir).unwrap();
            assert_eq!(
                store.load().unwrap(),
                None,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!dir.join("state.json").exists());
            assert!(!dir.join("journal.jsonl").exists());
            assert_eq!(quarantined(&dir, "state.json"), vec![body.to_vec()]);
            assert_eq!(quarantined(&dir, "journal.jsonl").len(), 1);
            // And the store works on: a new snapshot, read back.
            let m = Model::default();
            store.record(1, &Edit::SyncEips(vec![eip(1)]), &m).unwrap();
            assert_eq!(FileStore::new(&dir).unwrap().load().unwrap(), Some((1, m)));
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_snapshot_without_version_is_version_1_and_new_ones_carry_it() {
        let dir = fresh("v1");
        let mut m = Model::default();
        m.apply(&Edit::SyncEips(vec![eip(1)])).unwrap();
        let old = serde_json::json!({"generation": 4, "model": m});
        fs::write(dir.join("state.json"), old.to_string()).unwrap();
        let store = FileStore::new(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Some((4, m.clone())));
        store.record(5, &Edit::SyncEips(vec![eip(1)]), &m).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("state.json")).unwrap()).unwrap();
        assert_eq!(v["version"], SCHEMA_VERSION);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_journal_line_before_the_end_is_quarantined() {
        let dir = fresh("midline");
        let store = FileStore::new(&dir).unwrap();
        let mut m = Model::default();
        let edits = [
            Edit::SyncEips(vec![eip(1)]),
            Edit::CreateEip(eip(2)),
            Edit::CreateEip(eip(3)),
        ];
        for (g, e) in edits.iter().enumerate() {
            m.apply(e).unwrap();
            store.record(g as u64 + 1, e, &m).unwrap();
        }
        let j = dir.join("journal.jsonl");
        let body = fs::read_to_string(&j).unwrap();
        let broken = body.replacen("{", "{]", 1);
        fs::write(&j, &broken).unwrap();
        assert_eq!(FileStore::new(&dir).unwrap().load().unwrap(), None);
        assert_eq!(
            quarantined(&dir, "journal.jsonl"),
            vec![broken.into_bytes()]
        );
        assert_eq!(quarantined(&dir, "state.json").len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The torn fragment must go: an edit appended after it would be glued
    /// to it and be lost at the next start.
    #[test]
    fn a_torn_last_line_is_cut_off_so_later_edits_survive() {
        let dir = fresh("torn");
        let store = FileStore::new(&dir).unwrap();
        let mut m = Model::default();
        let first = Edit::SyncEips(vec![eip(1)]);
        m.apply(&first).unwrap();
        store.record(1, &first, &m).unwrap();
        let second = Edit::CreateEip(eip(2));
        m.apply(&second).unwrap();
        store.record(2, &second, &m).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"generation\":3,\"ed").unwrap();
        let again = FileStore::new(&dir).unwrap();
        assert_eq!(again.load().unwrap(), Some((2, m.clone())));
        let third = Edit::CreateEip(eip(3));
        m.apply(&third).unwrap();
        again.record(3, &third, &m).unwrap();
        assert_eq!(FileStore::new(&dir).unwrap().load().unwrap(), Some((3, m)));
        assert!(quarantined(&dir, "journal.jsonl").is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
