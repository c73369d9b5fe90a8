//! Persisting the desired state: a snapshot plus a journal of edits.
//!
//! A small edit appends one fsync'ed journal line, so the cost of one
//! `/createportforwarding` does not grow with the number of rules; big or
//! sync edits (and every [`COMPACT_AFTER`] lines) write a new snapshot
//! atomically (temp file, fsync, rename, fsync the directory) and start an
//! empty journal. A torn last journal line (crash mid-write) is ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::model::{Edit, Model};

pub const COMPACT_AFTER: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state dir {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

pub trait Store: Send + Sync {
    /// The persisted state and its generation, None when there is none.
    fn load(&self) -> Result<Option<(u64, Model)>, StoreError>;
    /// Persist the result of an edit: `model` is the state after `edit`.
    fn record(&self, generation: u64, edit: &Edit, model: &Model) -> Result<(), StoreError>;
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    generation: u64,
    model: Model,
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
            generation,
            model: model.clone(),
        })
        .expect("model serialises");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
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

fn io(p: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = p.display().to_string();
    move |source| StoreError::Io { path, source }
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<(u64, Model)>, StoreError> {
        let path = self.snapshot_path();
        let mut state = match fs::read(&path) {
            Ok(b) => {
                let s: Snapshot = serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                Some((s.generation, s.model))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&path)(e)),
        };
        let jpath = self.journal_path();
        let file = match File::open(&jpath) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(io(&jpath)(e)),
        };
        let mut lines = 0;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io(&jpath))?;
            let Ok(j) = serde_json::from_str::<JournalLine>(&line) else {
                tracing::warn!(path = %jpath.display(), "ignoring a torn journal line");
                break;
            };
            let (generation, model) = state.get_or_insert_with(|| (0, Model::default()));
            if j.generation > *generation {
                // Edits were validated before they were journaled.
                let _ = model.apply(&j.edit);
                *generation = j.generation;
            }
            lines += 1;
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
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jpath)
            .map_err(io(&jpath))?;
        f.write_all(&line).map_err(io(&jpath))?;
        f.sync_data().map_err(io(&jpath))?;
        *self.journal_lines.lock().unwrap() += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Eip;

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
}
