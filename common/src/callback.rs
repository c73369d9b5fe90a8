//! Delivery of async replies to the controller's `callbackurl`.
//!
//! Retries with backoff for up to [`DEADLINE`], and stops at once on 404: the
//! controller answers 404 when it no longer waits for the task (timed out or
//! already answered), so retrying only adds noise (zvr's pain point P1).

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::agent::HEADER_TASK_UUID;

pub const DEADLINE: Duration = Duration::from_secs(60);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);

fn client() -> &'static reqwest::Client {
    static C: OnceLock<reqwest::Client> = OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
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

pub async fn deliver(url: &str, task: &str, body: &Value) -> Outcome {
    let start = Instant::now();
    let mut delay = FIRST_DELAY;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = client()
            .post(url)
            .header(HEADER_TASK_UUID, task)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let problem = match sent {
            Ok(rsp) if rsp.status().is_success() => {
                tracing::debug!(task, url, attempt, "callback delivered");
                return Outcome::Delivered;
            }
            Ok(rsp) if rsp.status() == reqwest::StatusCode::NOT_FOUND => {
                tracing::info!(
                    task,
                    url,
                    "controller no longer waits for this task (404); not retrying"
                );
                return Outcome::Gone;
            }
            Ok(rsp) => format!("HTTP {}", rsp.status()),
            Err(e) => e.to_string(),
        };
        if start.elapsed() + delay > DEADLINE {
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
