//! Delivery of async replies to the controller's `callbackurl`.
//!
//! Retries with backoff for up to [`DEADLINE`], and stops at once on 404: the
//! controller answers 404 when it no longer waits for the task (timed out or
//! already answered), so retrying only adds noise (zvr's pain point P1).
//!
//! Replies go through one bounded queue ([`enqueue`]): at most
//! [`MAX_IN_FLIGHT`] attempts hold a connection at a time and at most
//! [`MAX_PENDING`] replies wait; past that a new reply is dropped with an
//! error log. An unreachable controller so costs a bounded number of fds
//! and tasks, not one socket per command.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The request headers of async mode: the task the reply is for (also
/// sent on the callback) and where to POST it.
pub const HEADER_TASK_UUID: &str = "taskuuid";
pub const HEADER_CALLBACK_URL: &str = "callbackurl";

/// A reply not delivered this long after it was queued is dropped: the
/// controller's own timeouts for a command are of this order.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Attempts (HTTP connections) in progress at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// Replies queued or being delivered at once.
pub const MAX_PENDING: usize = 1024;
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn client() -> &'static reqwest::Client {
    static C: OnceLock<reqwest::Client> = OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("http client")
    })
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// The controller no longer knows the task.
    Gone,
    GaveUp,
}

struct Queue {
    attempts: Semaphore,
    pending: AtomicUsize,
    dropped: AtomicUsize,
}

fn queue() -> &'static Queue {
    static Q: OnceLock<Queue> = OnceLock::new();
    Q.get_or_init(|| Queue {
        attempts: Semaphore::new(MAX_IN_FLIGHT),
        pending: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
    })
}

/// One pending reply; frees its place in the queue when dropped.
struct Pending;

impl Drop for Pending {
    fn drop(&mut self) {
        queue().pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Queue `body` for delivery to `url`; returns at once. Dropped (with an
/// error log) when [`MAX_PENDING`] replies are already pending.
pub fn enqueue(url: String, task: String, body: Value) {
    enqueue_with(url, (HEADER_TASK_UUID, task), body);
}

/// [`enqueue`] for a message that is not a task's reply: `header` names
/// it instead of `taskuuid` (the VR's HA status report carries
/// `commandpath: /vpc/hastatus`, dispatched on by the node's
/// `/asyncrest/sendcommand`).
pub fn enqueue_with(url: String, header: (&'static str, String), body: Value) {
    let task = header.1.clone();
    let Some(pending) = reserve() else {
        let n = queue().dropped.fetch_add(1, Ordering::SeqCst) + 1;
        // One line per hundred drops: a dead controller would flood the log.
        if n % 100 == 1 {
            tracing::error!(
                task,
                url,
                dropped_total = n,
                max_pending = MAX_PENDING,
                "callback queue full: reply dropped"
            );
        }
        return;
    };
    tokio::spawn(async move {
        let _pending = pending;
        deliver_with(&url, (header.0, &header.1), &body).await;
    });
}

/// Replies queued or being delivered now.
pub fn pending() -> usize {
    queue().pending.load(Ordering::SeqCst).min(MAX_PENDING)
}

/// A place in the queue, if one is free.
fn reserve() -> Option<Pending> {
    let before = queue().pending.fetch_add(1, Ordering::SeqCst);
    // Taken either way; dropping it gives the place back.
    let place = Pending;
    (before < MAX_PENDING).then_some(place)
}

/// Deliver `body` now (through the same limit on attempts in flight),
/// retrying until [`DEADLINE`].
pub async fn deliver(url: &str, task: &str, body: &Value) -> Outcome {
    deliver_with(url, (HEADER_TASK_UUID, task), body).await
}

/// [`deliver`] with `header` in place of `taskuuid`.
pub async fn deliver_with(url: &str, header: (&str, &str), body: &Value) -> Outcome {
    let task = header.1;
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let mut delay = FIRST_DELAY;
    let mut attempt = 0u32;
    let text = body.to_string();
    loop {
        attempt += 1;
        let problem =
            match tokio::time::timeout_at(deadline, attempt_once(url, header, &text)).await {
                Ok(Ok(())) => {
                    tracing::debug!(task, url, attempt, "callback delivered");
                    return Outcome::Delivered;
                }
                Ok(Err(Problem::Gone)) => {
                    tracing::info!(
                        task,
                        url,
                        "controller no longer waits for this task (404); not retrying"
                    );
                    return Outcome::Gone;
                }
                Ok(Err(Problem::Failed(p))) => p,
                Err(_) => "deadline reached waiting for a delivery slot or an answer".to_string(),
            };
        if Instant::now() + delay >= deadline {
            tracing::error!(task, url, attempt, problem, "giving up on callback");
            return Outcome::GaveUp;
        }
        tracing::warn!(
            task,
            url,
            attempt,
            problem,
            retry_in_ms = delay.as_millis() as u64,
            "callback failed"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

enum Problem {
    Gone,
    Failed(String),
}

/// One POST, holding one of the [`MAX_IN_FLIGHT`] slots (not during the
/// backoff between attempts).
async fn attempt_once(url: &str, header: (&str, &str), body: &str) -> Result<(), Problem> {
    let _slot = queue()
        .attempts
        .acquire()
        .await
        .map_err(|e| Problem::Failed(e.to_string()))?;
    let sent = client()
        .post(url)
        .header(header.0, header.1)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(rsp) if rsp.status().is_success() => Ok(()),
        Ok(rsp) if rsp.status() == reqwest::StatusCode::NOT_FOUND => Err(Problem::Gone),
        Ok(rsp) => Err(Problem::Failed(format!("HTTP {}", rsp.status()))),
        Err(e) => Err(Problem::Failed(e.to_string())),
    }
}
