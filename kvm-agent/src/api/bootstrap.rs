//! `/appliancevm/setbootstrapinfo`: the socket must be a file directly in
//! `--socket-dir`; one pending push per socket (per VM): a newer call
//! replaces the pending one, which answers 409 saying so. The wait is a
//! tokio future, not a blocking thread, so any number of pending pushes
//! leave the other endpoints (`/vm/vmsync`) answering at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::agent::{ApiError, Ok};
use tokio::sync::oneshot;

use super::AppState;
use crate::sys::bootstrap;
use crate::wire::vm::SetBootstrapInfoCmd;

/// The pending push of each socket: its generation and how to cancel it.
#[derive(Default)]
pub struct Pending {
    next: std::sync::atomic::AtomicU64,
    by_socket: Mutex<HashMap<PathBuf, (u64, oneshot::Sender<()>)>>,
}

impl Pending {
    /// Registers a push; returns its generation, the signal that a newer
    /// one replaced it, and whether it replaced one.
    fn begin(&self, sock: &Path) -> (u64, oneshot::Receiver<()>, bool) {
        let generation = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        let old = self
            .by_socket
            .lock()
            .unwrap()
            .insert(sock.to_path_buf(), (generation, tx));
        let replaced = old.map(|(_, tx)| tx.send(())).is_some();
        (generation, rx, replaced)
    }

    fn end(&self, sock: &Path, generation: u64) {
        let mut m = self.by_socket.lock().unwrap();
        if m.get(sock).is_some_and(|(g, _)| *g == generation) {
            m.remove(sock);
        }
    }

    /// Pushes waiting now (tests, metrics).
    pub fn len(&self) -> usize {
        self.by_socket.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub async fn set_bootstrap_info(state: AppState, cmd: SetBootstrapInfoCmd) -> Result<Ok, ApiError> {
    let sock = state
        .vm
        .dirs
        .socket("socketPath", &cmd.socket_path)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The node always sends the router's information
    // (ApplianceVmKvmBootstrapFlow); pushing nothing would leave the router
    // to boot unconfigured.
    if cmd.info.is_empty() {
        return Err(ApiError::bad_request("field info: missing or empty"));
    }
    let path = sock.path();
    let timeout = crate::wire::bounds::timeout_secs(cmd.boot_strap_info_timeout, 300);
    let pending = &state.vm.bootstraps;
    let (generation, replaced_by, replaced) = pending.begin(&path);
    if replaced {
        tracing::info!(socket = %path.display(), "setbootstrapinfo replaces the pending push");
    }
    let r = tokio::select! {
        r = bootstrap::send(&path, &cmd.info, timeout) => Some(r),
        _ = replaced_by => None,
    };
    pending.end(&path, generation);
    match r {
        None => Err(ApiError::conflict(format!(
            "set appliance bootstrapinfo replaced: a newer setbootstrapinfo for {} took its place",
            path.display()
        ))),
        Some(Err(e)) => Err(ApiError::internal(format!(
            "set appliance bootstrapinfo error, because: {e}"
        ))),
        Some(Result::Ok(_)) => Result::Ok(Ok {}),
    }
}
