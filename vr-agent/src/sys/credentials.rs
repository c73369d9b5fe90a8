//! `credentials.json` in the state dir: what a rotation installed (see
//! `crate::credentials`). Written atomically, mode 0600 (it holds a
//! private key).

use std::path::PathBuf;

use common::vr::AgentTls;
use serde::{Deserialize, Serialize};

/// What `credentials.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Persisted {
    /// The bootstrap info's certificate when this was written.
    pub delivered_certificate: String,
    pub tls: Option<AgentTls>,
    pub tokens: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct CredentialFile {
    path: PathBuf,
}

impl CredentialFile {
    pub fn in_dir(state_dir: &std::path::Path) -> CredentialFile {
        CredentialFile {
            path: state_dir.join("credentials.json"),
        }
    }

    pub fn load(&self) -> Result<Option<Persisted>, String> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    pub fn save(&self, p: &Persisted) -> Result<(), String> {
        let body = serde_json::to_vec(p).map_err(|e| e.to_string())?;
        common::files::write_private(&self.path, &body)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    pub fn remove(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }
}
