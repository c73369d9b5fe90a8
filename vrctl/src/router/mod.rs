//! A router's life as a VM, the controller's way: place it on a host that
//! fits, start it from the image, push its bootstrap info, wait for its
//! agent (with a diagnosis instead of a timeout), then resync it. Plus the
//! recovery paths: re-create, start again (same or another host), and
//! vmsync-driven state when a host is gone.
//!
//! What vrctl remembers about a router (its host, and whether it should be
//! running) is one small JSON record per router in the state directory; the
//! truth is always re-read from the hosts (`/vm/vmsync`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::command::Command;
use common::kvm::vm::{ConsoleTailCmd, DestroyVmCmd, StopVmCmd};
use serde::Serialize;

pub use crate::appliance::{bootstrap_info, start_cmd, url_host, vm_nics};
use crate::client::{CallbackReceiver, Client, ClientError};
use crate::credentials::Credentials;
use crate::diagnose::{self, Diagnosis};
use crate::host;
use crate::router_tls::RouterTlsError;
use crate::spec::{RouterSpec, SpecError, VmSpec};

mod apply;
mod auth;
mod host_view;
mod pair;
mod records;

pub use apply::{Step, apply, progress};
pub use auth::Rotated;
pub use host_view::Host;
pub use pair::{Demoted, demote, peer_agent};
pub use records::{Action, Record, Records};

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Diagnosis(#[from] Diagnosis),
    #[error(transparent)]
    Agent(#[from] ClientError),
    /// The description's [vm] section is wrong.
    #[error("{0}")]
    Description(String),
    /// Something the command needs is not there (the router's disk).
    #[error("{0}")]
    Missing(String),
    /// No host did what was asked, or a host does not answer.
    #[error("{0}")]
    Unavailable(String),
    /// vrctl's credentials or PKI directory do not allow this.
    #[error("{0}")]
    Config(String),
    /// A local operation failed (qemu-img, the records).
    #[error("{0}")]
    System(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("apply stopped at {path}: {error}")]
    Apply { path: String, error: String },
    #[error("the router's certificate: {0}")]
    Tls(#[from] RouterTlsError),
}

fn vm_spec(spec: &RouterSpec) -> Result<&VmSpec, RouterError> {
    let vm = spec
        .vm
        .as_ref()
        .ok_or_else(|| RouterError::Description("the description has no [vm] section".into()))?;
    if spec.uuid.len() < 8 || !spec.uuid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(RouterError::Description(format!(
            "uuid {:?}: letters and digits only (it names the domain and its files)",
            spec.uuid
        )));
    }
    if vm.hosts.is_empty() {
        return Err(RouterError::Description("vm.hosts is empty".into()));
    }
    for n in &spec.nics {
        if !vm.bridges.contains_key(&n.mac) {
            return Err(RouterError::Description(format!(
                "vm.bridges has no bridge for NIC {}",
                n.mac
            )));
        }
        // `NicTO.mtu` is an Integer, and kvm-agent's a u32.
        if let Some(m) = n.mtu.filter(|m| u32::try_from(*m).is_err()) {
            return Err(RouterError::Description(format!(
                "NIC {}: mtu {m} is out of range",
                n.mac
            )));
        }
    }
    if vm.image.is_empty() || vm.disk_dir.is_empty() || vm.socket_dir.is_empty() {
        return Err(RouterError::Description(
            "vm.image, vm.diskDir and vm.socketDir are required".into(),
        ));
    }
    Ok(vm)
}

pub fn disk_path(spec: &RouterSpec, vm: &VmSpec) -> PathBuf {
    Path::new(&vm.disk_dir).join(format!("vr-{}.qcow2", spec.uuid))
}

/// `/vm/destroy` for the router, its NICs included.
pub fn destroy_cmd(spec: &RouterSpec) -> DestroyVmCmd {
    DestroyVmCmd {
        vm_nics: Some(vm_nics(spec)),
        ..host::destroy_vm_cmd(&spec.uuid)
    }
}

/// `/vm/stop` for the router (graceful, `grace_secs`), its NICs included.
pub fn stop_cmd(spec: &RouterSpec, grace_secs: u64) -> StopVmCmd {
    StopVmCmd {
        vm_nics: Some(vm_nics(spec)),
        ..host::stop_vm_cmd(&spec.uuid, "grace", grace_secs)
    }
}

/// Where things are and how to talk to them.
pub struct Ctx<'a> {
    pub records: &'a Records,
    /// Replies to commands come here (async mode); None: sync mode.
    pub callbacks: Option<Arc<CallbackReceiver>>,
    pub quiet: bool,
    /// What vrctl presents to the agents.
    pub credentials: Credentials,
    /// The CA that issues each router its certificate (`--pki-dir`); None:
    /// routers are bootstrapped without TLS.
    pub pki: Option<PathBuf>,
}

fn create_overlay(image: &str, disk: &Path) -> Result<(), RouterError> {
    if let Some(dir) = disk.parent() {
        std::fs::create_dir_all(dir).map_err(|source| RouterError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image])
        .arg(disk)
        .output()
        .map_err(|source| RouterError::Io {
            what: "running qemu-img".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(RouterError::System(format!(
            "qemu-img create {}: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Outcome of bringing a router up.
#[derive(Debug, Serialize)]
pub struct Up {
    pub host: String,
    pub version: String,
    pub boot_secs: f64,
    pub steps: Vec<Step>,
}

impl Ctx<'_> {
    /// A client for an agent URL, in this context's mode.
    pub fn client(&self, url: &str) -> Client {
        Client::with(url, self.callbacks.clone(), &self.credentials)
    }

    /// A client for a host's kvm-agent (its uuid is not in the description).
    pub fn host_client(&self, url: &str) -> Client {
        Client::host_with(url, self.callbacks.clone(), "", &self.credentials)
    }

    fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Start on the first host that fits (or only `on`), push the bootstrap
    /// info, wait for the agent, resync it.
    pub async fn start(&self, spec: &RouterSpec, on: Option<&str>) -> Result<Up, RouterError> {
        let hosts: Vec<String> = match on {
            Some(h) => vec![h.to_string()],
            None => vm_spec(spec)?.hosts.clone(),
        };
        self.start_on(spec, &hosts).await
    }

    /// `hosts` with the HA peer's host last: two halves of a pair on one
    /// host would both go with it.
    pub fn away_from_peer(&self, spec: &RouterSpec, hosts: &[String]) -> Vec<String> {
        let peer_host = spec
            .ha
            .as_ref()
            .and_then(|ha| ha.peer_uuid.as_deref())
            .and_then(|uuid| self.records.get(uuid))
            .filter(|r| r.keep_running)
            .map(|r| r.host);
        let (mut order, peers): (Vec<String>, Vec<String>) = hosts
            .iter()
            .cloned()
            .partition(|h| Some(h) != peer_host.as_ref());
        order.extend(peers);
        order
    }

    /// [`Ctx::start`] on the first of `hosts` that fits (the HA peer's host
    /// last).
    pub async fn start_on(&self, spec: &RouterSpec, hosts: &[String]) -> Result<Up, RouterError> {
        let hosts = &self.away_from_peer(spec, hosts);
        spec.desired()?; // a bad description fails before any VM exists
        let vm = vm_spec(spec)?;
        let disk = disk_path(spec, vm);
        if !disk.exists() {
            return Err(RouterError::Missing(format!(
                "{} does not exist: `vrctl vr create` makes it",
                disk.display()
            )));
        }
        let mut reasons = vec![];
        let t0 = Instant::now();
        let mut placed = None;
        for h in hosts {
            let c = self.host_client(h);
            self.say(&format!("starting {} on {h}", spec.uuid));
            let cmd = crate::client::body(&start_cmd(spec, vm, &disk, h));
            match c.call("/vm/start", &cmd).await {
                Ok(_) => {
                    placed = Some((h.clone(), c));
                    break;
                }
                Err(ClientError::Failed { error, .. }) => reasons.push(format!("  {h}: {error}")),
                Err(e) => reasons.push(format!("  {h}: {e}")),
            }
        }
        let Some((host, c)) = placed else {
            let reasons = reasons.join("\n");
            if reasons.contains("cannot fit") {
                return Err(Diagnosis::NoHostFits {
                    cpu: vm.cpu_num.max(1),
                    memory_mb: vm.memory_mb.max(128),
                    reasons,
                }
                .into());
            }
            return Err(RouterError::Unavailable(format!(
                "no host could start the VR:\n{reasons}"
            )));
        };
        let mut r = self.record_of(spec, vm);
        r.host = host.clone();
        r.state = "Running".into();
        r.disk = disk.display().to_string();
        r.keep_running = true;
        self.records.put(&r)?;
        self.wait_and_apply(spec, vm, &host, &c, t0).await
    }

    async fn wait_and_apply(
        &self,
        spec: &RouterSpec,
        vm: &VmSpec,
        host: &str,
        c: &Client,
        t0: Instant,
    ) -> Result<Up, RouterError> {
        let url = spec.agent_url()?;
        let mgmt = spec.management_nic().cloned().unwrap_or_default();
        let ip = mgmt.ip.clone().unwrap_or_default();
        let view = Host {
            client: c,
            uuid: &spec.uuid,
            bridge: (
                vm.bridges.get(&mgmt.mac).cloned().unwrap_or_default(),
                mgmt.physical_interface.clone().unwrap_or_default(),
            ),
        };
        let want = diagnose::Expect {
            url: &url,
            ip: &ip,
            bootstrap: format!(
                "{ip}/{} gateway {}",
                mgmt.netmask.as_deref().unwrap_or("?"),
                mgmt.gateway.as_deref().unwrap_or("none")
            ),
            bridge: &view.bridge.0,
            credentials: &self.credentials,
        };
        let timeout = Duration::from_secs(match vm.boot_timeout_secs {
            0 => 300,
            s => s,
        });
        // The bootstrap push blocks until the guest reads its channel; a
        // guest that never boots would hold it for its whole timeout, so
        // it runs beside the wait, and the diagnosis does not wait for it.
        self.say("pushing the bootstrap info");
        let info = bootstrap_info(spec, vm, &self.agent_auth(spec)?);
        let push = c.send(&info);
        let wait = diagnose::wait_ready(&view, &want, timeout, progress(self.quiet));
        tokio::pin!(push, wait);
        let mut pushed = false;
        let version = loop {
            tokio::select! {
                r = &mut push, if !pushed => {
                    pushed = true;
                    if let Err(e) = r {
                        self.say(&format!("bootstrap info not delivered: {e}"));
                    }
                }
                v = &mut wait => break v?,
            }
        };
        let boot_secs = t0.elapsed().as_secs_f64();
        self.say(&format!(
            "agent {} answers (version {version}) {boot_secs:.1} s after the start",
            self.credentials.url(&url)
        ));
        let agent = self.client(&url);
        let steps = apply(&agent, spec, |s| {
            if !self.quiet {
                match &s.error {
                    None => eprintln!("  ok    {:<22} {:>6} ms", s.path, s.ms),
                    Some(e) => eprintln!("  FAIL  {:<22} {:>6} ms  {e}", s.path, s.ms),
                }
            }
        })
        .await;
        if let Some(s) = steps.iter().find(|s| !s.ok) {
            return Err(RouterError::Apply {
                path: s.path.clone(),
                error: s.error.clone().unwrap_or_default(),
            });
        }
        Ok(Up {
            host: host.into(),
            version,
            boot_secs,
            steps,
        })
    }

    /// A new router: its disk from the image, then [`Ctx::start`].
    pub async fn create(&self, spec: &RouterSpec) -> Result<Up, RouterError> {
        spec.desired()?;
        let vm = vm_spec(spec)?;
        let disk = disk_path(spec, vm);
        if !disk.exists() {
            create_overlay(&vm.image, &disk)?;
        }
        self.start(spec, None).await
    }

    /// The router's host: the record's, else the first of the description's.
    pub fn host_of(&self, spec: &RouterSpec) -> Result<String, RouterError> {
        let vm = vm_spec(spec)?;
        Ok(self
            .records
            .get(&spec.uuid)
            .map(|r| r.host)
            .unwrap_or_else(|| vm.hosts[0].clone()))
    }

    /// `cmd` to the router's host.
    async fn host_send<C: Command>(
        &self,
        spec: &RouterSpec,
        cmd: &C,
    ) -> Result<C::Reply, RouterError> {
        let host = self.host_of(spec)?;
        Ok(self.host_client(&host).send(cmd).await?)
    }

    pub async fn stop(&self, spec: &RouterSpec, grace_secs: u64) -> Result<(), RouterError> {
        // Stopped on purpose: said before the stop, so that `vrctl watch`
        // does not start it again while it goes down.
        let mut r = self.record_of(spec, vm_spec(spec)?);
        r.keep_running = false;
        self.records.put(&r)?;
        self.host_send(spec, &stop_cmd(spec, grace_secs)).await?;
        r.state = "Stopped".into();
        self.records.put(&r)
    }

    pub async fn reboot(&self, spec: &RouterSpec) -> Result<Up, RouterError> {
        let vm = vm_spec(spec)?;
        let host = self.host_of(spec)?;
        let c = self.host_client(&host);
        let t0 = Instant::now();
        c.send(&host::reboot_vm_cmd(&spec.uuid, 10)).await?;
        // A reboot is a new qemu: the channel is new, so the info goes again.
        self.wait_and_apply(spec, vm, &host, &c, t0).await
    }

    /// Destroy the VM and delete its disk and record.
    pub async fn destroy(&self, spec: &RouterSpec) -> Result<(), RouterError> {
        let vm = vm_spec(spec)?;
        self.host_send(spec, &destroy_cmd(spec)).await?;
        let _ = std::fs::remove_file(disk_path(spec, vm));
        self.records.remove(&spec.uuid);
        Ok(())
    }

    /// The seed's "a VR that lost its network is deleted and re-created":
    /// destroy wherever it is, a fresh disk from the image, start, resync.
    pub async fn recreate(&self, spec: &RouterSpec) -> Result<Up, RouterError> {
        if let Err(e) = self.host_send(spec, &destroy_cmd(spec)).await {
            self.say(&format!("destroying the old VR failed ({e}); going on"));
        }
        let hosts = vm_spec(spec)?.hosts.clone();
        self.recreate_on(spec, &hosts).await
    }

    /// A fresh disk from the image, then [`Ctx::start_on`] `hosts` (the old
    /// VM is not touched: its host may be gone).
    pub async fn recreate_on(
        &self,
        spec: &RouterSpec,
        hosts: &[String],
    ) -> Result<Up, RouterError> {
        let vm = vm_spec(spec)?;
        let disk = disk_path(spec, vm);
        let _ = std::fs::remove_file(&disk);
        create_overlay(&vm.image, &disk)?;
        self.start_on(spec, hosts).await
    }

    /// The router's record, or a new one on its first host.
    pub fn record_of(&self, spec: &RouterSpec, vm: &VmSpec) -> Record {
        self.records.get(&spec.uuid).unwrap_or_else(|| Record {
            uuid: spec.uuid.clone(),
            host: vm.hosts[0].clone(),
            state: String::new(),
            disk: disk_path(spec, vm).display().to_string(),
            keep_running: true,
            left_on: vec![],
            actions: vec![],
        })
    }

    fn mark(&self, spec: &RouterSpec, state: &str) -> Result<(), RouterError> {
        let mut r = self.record_of(spec, vm_spec(spec)?);
        r.state = state.into();
        self.records.put(&r)
    }

    /// vmsync on the router's host: the record follows the host's answer.
    /// With `host_gone` an unreachable host means the router is stopped
    /// (the host is not coming back; start it elsewhere with `--host`).
    pub async fn sync(&self, spec: &RouterSpec, host_gone: bool) -> Result<Record, RouterError> {
        let host = self.host_of(spec)?;
        let reply = self.host_client(&host).send(&host::vm_sync_cmd()).await;
        let state = match reply {
            Ok(v) => v
                .states
                .get(&spec.uuid)
                .cloned()
                .unwrap_or_else(|| "Stopped".into()),
            Err(e) if host_gone => {
                self.say(&format!(
                    "host {host} does not answer ({e}); marking the VR stopped as asked"
                ));
                "Stopped".into()
            }
            Err(e) => {
                return Err(RouterError::Unavailable(format!(
                    "host {host} does not answer ({e}); the VR's state is unknown. If the host \
                     is gone for good, `vrctl vr sync FILE --host-gone` marks the VR stopped"
                )));
            }
        };
        self.mark(spec, &state)?;
        self.records
            .get(&spec.uuid)
            .ok_or_else(|| RouterError::System("record vanished".into()))
    }

    pub async fn console(&self, spec: &RouterSpec) -> Result<String, RouterError> {
        let host = self.host_of(spec)?;
        let tail = self
            .host_client(&host)
            .send(&ConsoleTailCmd {
                uuid: spec.uuid.clone(),
                max_bytes: Some(8000),
            })
            .await?;
        Ok(tail.tail)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::client::body;

    /// `vmNics` as the hand-written `json!` built it before it was typed.
    fn old_vm_nics(spec: &RouterSpec) -> Value {
        let nics: Vec<Value> = spec
            .nics
            .iter()
            .enumerate()
            .map(|(i, n)| {
                json!({"uuid": format!("{}{i:0>24}", &spec.uuid[..8]), "vmInstanceUuid": spec.uuid,
                       "ip": n.ip, "mac": n.mac, "netmask": n.netmask, "gateway": n.gateway,
                       "deviceId": i, "internalName": format!("vr{}.{i}", &spec.uuid[..8]),
                       "hypervisorType": "KVM", "driverType": "virtio", "type": "VNIC",
                       "state": "enable"})
            })
            .collect();
        json!(nics)
    }

    /// The typed `/vm/stop` and `/vm/destroy` of a router are the bodies
    /// the `json!` builders sent (as the client sends them: nulls left out),
    /// a NIC without an address included.
    #[test]
    fn router_stop_and_destroy_are_the_hand_written_bodies() {
        let spec: RouterSpec = serde_json::from_value(json!({
            "uuid": "1ab0000000000000000000000000a001",
            "nics": [
                {"mac": "fa:00:00:00:00:01", "ip": "10.0.0.5", "netmask": "255.255.255.0",
                 "gateway": "10.0.0.1", "category": "Management"},
                {"mac": "fa:00:00:00:00:02"}
            ]
        }))
        .unwrap();
        let gson = crate::client::gson;
        let nics = old_vm_nics(&spec);
        assert_eq!(
            body(&stop_cmd(&spec, 30)),
            gson(&json!({"uuid": spec.uuid, "type": "grace", "timeout": 30, "vmNics": nics}))
        );
        assert_eq!(
            body(&destroy_cmd(&spec)),
            gson(&json!({"uuid": spec.uuid, "vmNics": nics}))
        );
        assert_eq!(body(&destroy_cmd(&spec))["vmNics"][1].get("ip"), None);
    }

    /// The second half of a pair goes to a host its peer is not on, when
    /// `vm.hosts` has one.
    #[test]
    fn a_pair_half_is_placed_away_from_its_peer() {
        let dir = std::env::temp_dir().join(format!("vrctl-peer-{}", std::process::id()));
        let records = Records::new(&dir);
        let ctx = Ctx {
            records: &records,
            callbacks: None,
            quiet: true,
            credentials: Credentials::default(),
            pki: None,
        };
        let hosts: Vec<String> = ["h1", "h2", "h3"].map(String::from).to_vec();
        let half: RouterSpec = serde_json::from_value(json!({
            "uuid": "aa000000000000000000000000000002",
            "ha": {"peerIp": "10.0.0.25", "peerUuid": "aa000000000000000000000000000001"},
            "vm": {"hosts": hosts}
        }))
        .unwrap();
        // No record of the peer yet: the description's order.
        assert_eq!(ctx.away_from_peer(&half, &hosts), hosts);
        let peer = Record {
            uuid: "aa000000000000000000000000000001".into(),
            host: "h1".into(),
            state: "Running".into(),
            disk: String::new(),
            keep_running: true,
            left_on: vec![],
            actions: vec![],
        };
        records.put(&peer).unwrap();
        assert_eq!(ctx.away_from_peer(&half, &hosts), ["h2", "h3", "h1"]);
        // Only the peer's host is left: it is still tried.
        assert_eq!(ctx.away_from_peer(&half, &hosts[..1]), ["h1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
