//! Blocking work (the journal's fsync, file reads, the /proc scan) called
//! from async code: on the multi-threaded runtime the worker first hands
//! its other tasks to the rest (`block_in_place`), so a slow disk stalls
//! this command only, not /echo, /ping or the health probes.

/// Runs `f` where blocking is allowed.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        // A current-thread runtime (unit tests) or none: nothing to hand over.
        _ => f(),
    }
}
