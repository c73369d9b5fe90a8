//! One child daemon (dnsmasq, haproxy) kept running in the foreground: its
//! output goes to our log, and when it dies it is started again after a
//! backoff that doubles up to [`BACKOFF_MAX`] (zvr needed a pid monitor for
//! haproxy, pain point P11). Restarts are counted for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long resets the backoff.
const STABLE: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Shared {
    /// Pid of the running child, 0 when none.
    pid: AtomicU32,
    /// Unplanned exits since creation; watched by whoever must act on
    /// one at once (the HA pair stops answering when keepalived dies).
    exits: watch::Sender<u64>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct Supervised {
    name: &'static str,
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Supervised {
    pub fn new(name: &'static str) -> Supervised {
        Supervised {
            name,
            shared: Arc::default(),
            running: tokio::sync::Mutex::new(None),
        }
    }

    /// Pid of the running child, if any.
    pub fn pid(&self) -> Option<u32> {
        Some(self.shared.pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }

    /// How often the child died and was started again.
    pub fn restarts(&self) -> u64 {
        *self.shared.exits.borrow()
    }

    /// Changes on every unplanned exit (not on a stop or a restart asked
    /// for), before the backoff.
    pub fn exits(&self) -> watch::Receiver<u64> {
        self.shared.exits.subscribe()
    }

    /// (Re)start: end the current child, then run `make()` and keep it
    /// running. Returns the new child's pid.
    pub async fn start(
        &self,
        make: impl Fn() -> Command + Send + Sync + 'static,
    ) -> std::io::Result<u32> {
        let mut running = self.running.lock().await;
        end(running.take()).await;
        let child = spawn(make(), self.name, &self.shared)?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, "{} started", self.name);
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(supervise(child, make, self.name, self.shared.clone(), rx));
        *running = Some(Running { stop, task });
        Ok(pid)
    }

    /// End the child and its supervision.
    pub async fn stop(&self) {
        end(self.running.lock().await.take()).await;
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Aborting the task drops the Child, whose kill_on_drop kills it.
        if let Some(r) = self.running.get_mut().take() {
            r.task.abort();
        }
    }
}

async fn end(running: Option<Running>) {
    if let Some(r) = running {
        let _ = r.stop.send(());
        let _ = r.task.await;
    }
}

fn log_lines(out: impl AsyncRead + Unpin + Send + 'static, name: &'static str, pid: u32) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("ALERT") || l.contains("WARNING") || l.contains("warning") {
                tracing::warn!(target: "child", name, pid, "{l}");
            } else {
                tracing::info!(target: "child", name, pid, "{l}");
            }
        }
    });
}

fn spawn(mut cmd: Command, name: &'static str, shared: &Shared) -> std::io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    shared.pid.store(pid, Ordering::SeqCst);
    if let Some(out) = child.stdout.take() {
        log_lines(out, name, pid);
    }
    if let Some(err) = child.stderr.take() {
        log_lines(err, name, pid);
    }
    Ok(child)
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn supervise(
    first: Child,
    make: impl Fn() -> Command + Send + 'static,
    name: &'static str,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut child = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut c = match child.take() {
            Some(c) => c,
            None => match spawn(make(), name, &shared) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start {name}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let started = Instant::now();
        tokio::select! {
            _ = &mut stop => {
                terminate(&mut c).await;
                shared.pid.store(0, Ordering::SeqCst);
                return;
            }
            status = c.wait() => {
                shared.pid.store(0, Ordering::SeqCst);
                let n = *shared.exits.borrow() + 1;
                shared.exits.send_replace(n);
                if started.elapsed() >= STABLE {
                    backoff = BACKOFF_MIN;
                }
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                tracing::warn!(%status, restarts = n, "{name} exited; restarting in {backoff:?}");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// End processes that an earlier agent left running (children outlive an
/// agent killed with SIGKILL) and that would hold our ports: every process
/// whose command line `is_ours` says is one of ours.
pub fn kill_strays(name: &str, is_ours: impl Fn(&[&[u8]]) -> bool) {
    super::blocking::run(|| kill_strays_now(name, is_ours));
}

fn kill_strays_now(name: &str, is_ours: impl Fn(&[&[u8]]) -> bool) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id() as i32;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if pid != me && is_ours(&args) {
            tracing::warn!(pid, "ending a {name} left over from an earlier agent");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
