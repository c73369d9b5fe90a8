//! `FakeHaproxy`: records calls, for tests of what runs haproxy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Haproxy, HaproxyError};
use crate::plan::haproxy::{Files, Paths};
use crate::sys::runner::RunError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Check(String),
    Write(Files),
    Reload,
    Stop,
    Cert(String),
    RemoveCertsExcept(BTreeSet<String>),
}

/// Records calls; `check` fails for a config containing `fail_check_on`.
pub struct FakeHaproxy {
    paths: Paths,
    check: Paths,
    pub calls: Mutex<Vec<Call>>,
    pub fail_check_on: Mutex<Option<String>>,
    pub stat_csv: Mutex<Option<String>>,
}

impl FakeHaproxy {
    pub fn new() -> FakeHaproxy {
        FakeHaproxy {
            paths: Paths::new("/fake/haproxy", "/fake/certificates"),
            check: Paths::new("/fake/haproxy/check", "/fake/certificates"),
            calls: Mutex::default(),
            fail_check_on: Mutex::default(),
            stat_csv: Mutex::default(),
        }
    }
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Default for FakeHaproxy {
    fn default() -> Self {
        FakeHaproxy::new()
    }
}

#[async_trait]
impl Haproxy for FakeHaproxy {
    fn paths(&self) -> &Paths {
        &self.paths
    }
    fn check_paths(&self) -> &Paths {
        &self.check
    }
    async fn check(
        &self,
        files: &Files,
        _new_certs: &BTreeMap<String, String>,
    ) -> Result<(), HaproxyError> {
        self.record(Call::Check(files.conf.clone()));
        match &*self.fail_check_on.lock().unwrap() {
            Some(s) if files.conf.contains(s.as_str()) => {
                Err(HaproxyError::Check(RunError::Failed {
                    program: "haproxy".into(),
                    status: "exit status: 1".into(),
                    stderr: format!("[ALERT] bad config near {s}"),
                }))
            }
            _ => Ok(()),
        }
    }
    async fn write(&self, files: &Files) -> Result<(), HaproxyError> {
        self.record(Call::Write(files.clone()));
        Ok(())
    }
    async fn reload(&self) -> Result<(), HaproxyError> {
        self.record(Call::Reload);
        Ok(())
    }
    async fn stop(&self) -> Result<(), HaproxyError> {
        self.record(Call::Stop);
        Ok(())
    }
    async fn write_cert(&self, uuid: &str, _pem: &str) -> Result<(), HaproxyError> {
        self.record(Call::Cert(uuid.to_string()));
        Ok(())
    }
    async fn remove_certs_except(&self, keep: &BTreeSet<String>) -> Result<usize, HaproxyError> {
        self.record(Call::RemoveCertsExcept(keep.clone()));
        Ok(0)
    }
    async fn stats(&self) -> Result<Option<String>, HaproxyError> {
        Ok(self.stat_csv.lock().unwrap().clone())
    }
}
