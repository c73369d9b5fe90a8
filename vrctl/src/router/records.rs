//! What vrctl remembers about each router: one small JSON record per
//! router in the state directory (the truth is re-read from the hosts).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RouterError;
use crate::router_tls;

/// What vrctl remembers about one router.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub uuid: String,
    /// The kvm-agent it was last started on.
    pub host: String,
    /// `Running` or `Stopped`, as last learned from its host (or decided by
    /// the operator when the host is gone for good).
    pub state: String,
    pub disk: String,
    /// Whether it should run: `vr stop` clears it, a start sets it, and
    /// `vrctl watch` only brings back routers that should run.
    #[serde(default = "yes")]
    pub keep_running: bool,
    /// Hosts it was moved away from while they did not answer: it may
    /// still be defined there, and `vrctl watch` destroys that copy when
    /// the host answers again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_on: Vec<String>,
    /// What `vrctl watch` did for it, newest last (the last few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

fn yes() -> bool {
    true
}

/// One recovery `vrctl watch` ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Unix seconds when it ended.
    pub at: u64,
    /// `start`, `reboot`, `move`, `recreate`, `destroy-stray`.
    pub action: String,
    pub host: String,
    /// What was seen that led to it.
    pub why: String,
    /// Seconds from the first unanswered ping to the router answering again
    /// (or to the failure).
    pub secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many actions a record keeps.
pub const ACTIONS_KEPT: usize = 10;

impl Record {
    pub fn push_action(&mut self, a: Action) {
        self.actions.push(a);
        let over = self.actions.len().saturating_sub(ACTIONS_KEPT);
        self.actions.drain(..over);
    }
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
        // A temp file per process: vrctl watch and a vrctl command may
        // write the same record at once.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
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
