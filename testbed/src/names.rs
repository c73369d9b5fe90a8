//! Process-unique names for namespaces, temp dirs and interfaces.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A process-unique name `tb<pid>-<n>-<tag>` for namespaces and temp dirs,
/// so parallel tests and parallel test binaries never collide.
pub fn unique_name(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("tb{}-{}-{}", std::process::id(), next_id(), tag)
}

/// A unique interface name of at most 15 bytes (the kernel limit): up to 6
/// characters of `tag`, the pid (6 hex digits, pid_max <= 2^22) and a counter
/// (3 hex digits). Only needed for links in a shared namespace; links inside
/// our own namespaces can use plain names like `eth0`.
pub fn ifname(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    format!("{tag}{:06x}{:03x}", std::process::id(), next_id() % 0x1000)
}
