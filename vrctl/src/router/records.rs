//! What vrctl remembers about each router: one small JSON record per
//! router in the state directory (the truth is re-read from the hosts).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RouterError;
use crate::router_tls;

/// What vrctl remembers about one router.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub uuid: String,
    /// The kvm-agent it was last started on.
    pub host: String,
    /// `Running` or `Stopped`, as last learned from its host (or decided by
    /// the operator when the host is gone for good).
    pub state: String,
    pub disk: String,
}

pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(dir: &Path) -> Records {
        Records {
            dir: dir.join("routers"),
        }
    }

    pub fn get(&self, uuid: &str) -> Option<Record> {
        let text = std::fs::read_to_string(self.dir.join(format!("{uuid}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Atomic write (temp file + rename).
    pub fn put(&self, r: &Record) -> Result<(), RouterError> {
        let io = |source| RouterError::Io {
            what: format!("saving the record of {} in {}", r.uuid, self.dir.display()),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let path = self.dir.join(format!("{}.json", r.uuid));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(r).unwrap_or_default()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    pub fn remove(&self, uuid: &str) {
        let _ = std::fs::remove_file(self.dir.join(format!("{uuid}.json")));
        router_tls::remove(&self.dir, uuid);
    }

    /// Where the records (and the routers' certificates) are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
