//! sysctl writes through `/proc/sys` of the caller's network namespace.

#[cfg(any(test, feature = "fakes"))]
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

/// Keys are `/proc/sys`-relative paths (`net/ipv4/conf/default/forwarding`):
/// interface names may contain dots, so the dotted form is ambiguous.
pub trait Sysctl: Send + Sync {
    fn read(&self, key: &str) -> io::Result<String>;
    fn write(&self, key: &str, value: &str) -> io::Result<()>;
}

/// Write `value` unless it is already there; true when something changed.
pub fn ensure(s: &dyn Sysctl, key: &str, value: &str) -> io::Result<bool> {
    if s.read(key)?.trim() == value {
        return Ok(false);
    }
    s.write(key, value)?;
    Ok(true)
}

pub struct ProcSys {
    root: PathBuf,
}

impl Default for ProcSys {
    fn default() -> Self {
        ProcSys {
            root: PathBuf::from("/proc/sys"),
        }
    }
}

impl Sysctl for ProcSys {
    fn read(&self, key: &str) -> io::Result<String> {
        std::fs::read_to_string(self.root.join(key))
    }
    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.root.join(key), value)
    }
}

#[cfg(any(test, feature = "fakes"))]
/// Records writes; keys not set read as missing (ENOENT).
#[derive(Default)]
pub struct FakeSysctl {
    pub values: Mutex<BTreeMap<String, String>>,
    pub writes: Mutex<Vec<(String, String)>>,
}

#[cfg(any(test, feature = "fakes"))]
impl Sysctl for FakeSysctl {
    fn read(&self, key: &str) -> io::Result<String> {
        self.values
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        let mut v = self.values.lock().unwrap();
        if !v.contains_key(key) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        v.insert(key.into(), value.into());
        self.writes.lock().unwrap().push((key.into(), value.into()));
        Ok(())
    }
}
