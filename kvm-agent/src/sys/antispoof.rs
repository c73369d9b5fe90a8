//! The anti-spoofing side effect: load the rules of `plan::antispoof` with
//! `nft -f -` (real), or record them (fake). Blocking (a process each).

use std::io::Write;
use std::process::{Command, Stdio};
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use crate::plan::antispoof::{self, NicGuardSpec, TABLE};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("cannot run nft (needed for cleanTraffic): {0}")]
    Spawn(std::io::Error),
    #[error("nft refused the anti-spoofing rules for tap {tap}: {stderr}")]
    Nft { tap: String, stderr: String },
}

pub trait NicGuard: Send + Sync {
    /// Install or replace the guard of one tap.
    fn apply(&self, g: &NicGuardSpec) -> Result<(), GuardError>;
    /// Remove the guard of a tap; a tap without one is not an error.
    fn remove(&self, tap: &str) -> Result<(), GuardError>;
}

/// nft in the agent's network namespace (where the bridges and taps are).
#[derive(Debug, Default)]
pub struct NftGuard;

fn nft_load(tap: &str, script: &str) -> Result<(), GuardError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GuardError::Spawn)?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(GuardError::Spawn)?;
    let out = child.wait_with_output().map_err(GuardError::Spawn)?;
    if !out.status.success() {
        return Err(GuardError::Nft {
            tap: tap.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl NicGuard for NftGuard {
    fn apply(&self, g: &NicGuardSpec) -> Result<(), GuardError> {
        nft_load(&g.tap, &antispoof::apply_script(g))?;
        tracing::info!(tap = %g.tap, mac = %g.mac, ipv4 = ?g.ipv4, ipv6 = ?g.ipv6, "anti-spoofing rules in place");
        Ok(())
    }

    fn remove(&self, tap: &str) -> Result<(), GuardError> {
        // Look before writing: stopping a VM that never had a guard must
        // not create our table (e.g. on a host that never uses cleanTraffic).
        let chain = antispoof::chain_name(tap);
        let listed = Command::new("nft")
            .args(["list", "chain", "bridge", TABLE, &chain])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match listed {
            Ok(st) if st.success() => {}
            _ => return Ok(()),
        }
        nft_load(tap, &antispoof::remove_script(tap))?;
        tracing::info!(tap, "anti-spoofing rules removed");
        Ok(())
    }
}

#[cfg(any(test, feature = "fakes"))]
/// Records every call; `fail` makes `apply` fail (the start must then fail).
#[derive(Debug, Default)]
pub struct FakeGuard {
    pub calls: Mutex<Vec<String>>,
    pub fail: std::sync::atomic::AtomicBool,
}

#[cfg(any(test, feature = "fakes"))]
impl NicGuard for FakeGuard {
    fn apply(&self, g: &NicGuardSpec) -> Result<(), GuardError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GuardError::Nft {
                tap: g.tap.clone(),
                stderr: "fake failure".into(),
            });
        }
        let ips: Vec<String> = g
            .ipv4
            .iter()
            .map(|a| a.to_string())
            .chain(g.ipv6.iter().map(|a| a.to_string()))
            .collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("apply {} {} [{}]", g.tap, g.mac, ips.join(",")));
        Ok(())
    }

    fn remove(&self, tap: &str) -> Result<(), GuardError> {
        self.calls.lock().unwrap().push(format!("remove {tap}"));
        Ok(())
    }
}
