//! sysctl writes through `/proc/sys` of the agent's network namespace.

#[cfg(any(test, feature = "fakes"))]
use std::collections::BTreeMap;
use std::io;
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

/// Keys are `/proc/sys`-relative paths (`net/ipv4/ip_forward`).
pub trait Sysctl: Send + Sync {
    fn write(&self, key: &str, value: &str) -> io::Result<()>;
}

/// The real one: `/proc/sys/<key>`.
pub struct ProcSys;

impl Sysctl for ProcSys {
    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(std::path::Path::new("/proc/sys").join(key), value)
    }
}

#[cfg(any(test, feature = "fakes"))]
/// Keeps what was written (tests without root, and so that a test never
/// changes the sysctls of the namespace it runs in).
#[derive(Default)]
pub struct FakeSysctl {
    pub values: Mutex<BTreeMap<String, String>>,
}

#[cfg(any(test, feature = "fakes"))]
impl Sysctl for FakeSysctl {
    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }
}
