//! Polling until a condition holds or a timeout passes.

use std::time::{Duration, Instant};

use anyhow::Result;

/// Polls `f` every `interval` until it returns `true` or `timeout` passes.
pub fn wait_until(timeout: Duration, interval: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
    true
}

/// Polls `f` until it returns `Ok`; on timeout returns the last error, so
/// the test failure says what was still wrong.
pub fn wait_ok<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {timeout:?}")));
            }
            Err(_) => std::thread::sleep(interval),
        }
    }
}
