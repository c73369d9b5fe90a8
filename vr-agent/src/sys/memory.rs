//! Giving memory back after big edits.
//!
//! A `/synceip` of 10 000 entries briefly holds the request, the parsed
//! entries and two renderings; glibc keeps those freed pages in its arenas,
//! so resident memory would ratchet up with every big sync. `malloc_trim`
//! returns them to the kernel.

/// Release free heap pages to the kernel (glibc only; a no-op elsewhere).
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it has no
    // preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
