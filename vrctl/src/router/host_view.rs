//! The router's host as the wait for its agent sees it (console, domain
//! state, bridge), for the diagnosis.

use common::kvm::vm::ConsoleTailCmd;

use crate::client::{Client, ClientError};
use crate::diagnose::HostView;
use crate::host;

/// kvm-agent of the router's host, as the waiting loop sees it.
pub struct Host<'a> {
    pub client: &'a Client,
    pub uuid: &'a str,
    /// (bridge, physical interface) of the management NIC.
    pub bridge: (String, String),
}

impl HostView for Host<'_> {
    async fn console(&self) -> String {
        self.client
            .send(&ConsoleTailCmd {
                uuid: self.uuid.into(),
                max_bytes: Some(3000),
            })
            .await
            .map(|r| r.tail)
            .unwrap_or_default()
    }

    async fn state(&self) -> Option<String> {
        match self.client.send(&host::vm_sync_cmd()).await {
            Ok(v) => v.states.get(self.uuid).cloned(),
            // The host did not answer: do not conclude anything about the VM.
            Err(_) => Some("Running".into()),
        }
    }

    async fn bridge_problem(&self) -> Option<String> {
        let (bridge, nic) = &self.bridge;
        self.client
            .send(&host::check_bridge_cmd(nic, bridge, None))
            .await
            .err()
            .map(|e| match e {
                ClientError::Failed { error, .. } => error,
                e => e.to_string(),
            })
    }
}
