//! Credentials reloaded without a restart: a task that notices when their
//! files change (polled, as an operator's `cp`/`mv` or a certificate
//! manager's renewal leaves no other trace we can rely on) or when SIGHUP
//! arrives, and reloads them. A reload that fails (a key written before its
//! certificate, a half-copied file) is logged and the old material stays in
//! force; the next change tries again.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(SystemTime, u64, u64)>>);

fn stamp(paths: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(
        paths
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len(), m.ino()))
            })
            .collect(),
    )
}

/// Watch `paths` and call `reload` when any of them changes or on SIGHUP.
pub fn watch<F>(what: &'static str, paths: Vec<PathBuf>, every: Duration, reload: F)
where
    F: Fn() -> Result<(), String> + Send + 'static,
{
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = stamp(&paths);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let now = stamp(&paths);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            match reload() {
                Ok(()) => tracing::info!(what, forced, "reloaded"),
                Err(e) => {
                    tracing::error!(what, error = %e, "reload failed; the previous one stays in force")
                }
            }
        }
    });
}
