//! Sending a description to a router's agent, step by step, in the
//! controller's resync order.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Client;
use crate::spec::RouterSpec;

/// Progress lines for long waits (stderr, so `--json` output stays clean).
pub fn progress(quiet: bool) -> impl FnMut(&str) {
    let mut last = Instant::now() - Duration::from_secs(60);
    move |msg: &str| {
        if !quiet && last.elapsed() >= Duration::from_secs(3) {
            last = Instant::now();
            eprintln!("  .. {msg}");
        }
    }
}

/// One step of an apply.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub path: String,
    pub ok: bool,
    pub ms: u128,
    pub error: Option<String>,
}

/// Sends the description in the controller's resync order; stops at the
/// first failure (later commands depend on earlier ones).
pub async fn apply(c: &Client, spec: &RouterSpec, mut each: impl FnMut(&Step)) -> Vec<Step> {
    let mut steps = vec![];
    for (path, body) in spec.commands() {
        let t = Instant::now();
        let r = c.call(path, &body).await;
        let step = Step {
            path: path.into(),
            ok: r.is_ok(),
            ms: t.elapsed().as_millis(),
            error: r.err().map(|e| e.to_string()),
        };
        each(&step);
        let ok = step.ok;
        steps.push(step);
        if !ok {
            break;
        }
    }
    steps
}
