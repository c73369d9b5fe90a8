//! `vrctl watch`: the controller's recovery loop, run as a service. Like
//! the management node's ping tracker it pings every router; when one stops
//! answering it asks the router's host, decides ([`decide`]) and acts:
//! host back without the VM: start it there; host gone, disk shared: start
//! it on another host; host gone with its disk: re-create it elsewhere from
//! the image and resync; VM running but the router silent past a boot:
//! reboot. A router moved away from a silent host may still run there: the
//! copy is destroyed once that host answers again. Every action is logged
//! and kept in the router's record (`vrctl vr status FILE` shows them).

mod decide;

pub use decide::{Decision, HostSays, Policy, Seen, decide};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::client::ClientError;
use crate::diagnose::{self, Probe};
use crate::host;
use crate::router::{Action, Ctx, RouterError, destroy_cmd};
use crate::spec::RouterSpec;

/// How long a router's ping (connect and version handshake) may take.
const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a host's vmsync may take before the host counts as silent.
const HOST_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause after a failed action before the router is looked at again;
/// it doubles with each failure in a row, up to [`RETRY_MAX`].
const RETRY_AFTER: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How often copies left on other hosts are looked for.
const FENCE_EVERY: Duration = Duration::from_secs(5);

/// One line of the watch's log: what it saw or did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub uuid: String,
    pub file: String,
    /// `lost`, `waiting`, `recovered` (it came back by itself), an action
    /// (`start`, `reboot`, `move`, `recreate`, `destroy-stray`) or
    /// `description` (the file cannot be used).
    pub event: String,
    pub host: String,
    pub detail: String,
    /// For an action: seconds from the first missed ping to the router
    /// answering again (or to the failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secs: Option<f64>,
    pub ok: bool,
}

/// Watches every router in `files` until the future is dropped; `emit`
/// gets each event.
pub async fn watch(
    ctx: &Ctx<'_>,
    files: &[PathBuf],
    policy: Policy,
    interval: Duration,
    emit: &(dyn Fn(&Event) + Sync),
) {
    let all = files
        .iter()
        .map(|f| Watched::new(f).run(ctx, policy, interval, emit));
    futures::future::join_all(all).await;
}

/// What the watch remembers of one router between ticks.
struct Watched {
    file: PathBuf,
    spec: Option<RouterSpec>,
    missed: u32,
    first_miss: Option<Instant>,
    host_silent_since: Option<Instant>,
    /// The last `waiting`/`description` detail, so that it is said once.
    said: String,
    retry_at: Option<Instant>,
    /// Failed actions in a row (the retry pause doubles with each).
    failures: u32,
    fenced_at: Option<Instant>,
    /// The last fencing failure, said once.
    fence_said: String,
}

impl Watched {
    fn new(file: &Path) -> Watched {
        Watched {
            file: file.to_path_buf(),
            spec: None,
            missed: 0,
            first_miss: None,
            host_silent_since: None,
            said: String::new(),
            retry_at: None,
            failures: 0,
            fenced_at: None,
            fence_said: String::new(),
        }
    }

    fn event(&self, event: &str, host: &str, detail: String) -> Event {
        Event {
            uuid: self
                .spec
                .as_ref()
                .map(|s| s.uuid.clone())
                .unwrap_or_default(),
            file: self.file.display().to_string(),
            event: event.into(),
            host: host.into(),
            detail,
            secs: None,
            ok: true,
        }
    }

    /// Says `detail` unless it was the last thing said.
    fn say_once(&mut self, event: &str, host: &str, detail: String, emit: &dyn Fn(&Event)) {
        if self.said != detail {
            emit(&self.event(event, host, detail.clone()));
            self.said = detail;
        }
    }

    /// The router answers (or is not ours to bring back): a later loss
    /// counts from scratch.
    fn reset(&mut self) {
        self.missed = 0;
        self.first_miss = None;
        self.host_silent_since = None;
        self.retry_at = None;
        self.failures = 0;
    }

    async fn run(
        mut self,
        ctx: &Ctx<'_>,
        policy: Policy,
        interval: Duration,
        emit: &(dyn Fn(&Event) + Sync),
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.once(ctx, &policy, emit).await;
        }
    }

    /// One tick: re-read the description (an operator may edit it), fence
    /// strays, ping, and when lost decide and act.
    async fn once(&mut self, ctx: &Ctx<'_>, policy: &Policy, emit: &(dyn Fn(&Event) + Sync)) {
        match RouterSpec::load(&self.file).and_then(|s| s.desired().map(|_| s)) {
            Ok(s) if s.vm.as_ref().is_some_and(|v| !v.hosts.is_empty()) => self.spec = Some(s),
            // A file being edited: the last good description stays.
            Ok(_) => {
                let why = "the description has no [vm] section with hosts".to_string();
                self.say_once("description", "", why, emit);
            }
            Err(e) => self.say_once("description", "", e.to_string(), emit),
        }
        let Some(spec) = self.spec.clone() else {
            return;
        };
        let Some(record) = ctx.records.get(&spec.uuid) else {
            let why = format!(
                "no record in {}: not created by vrctl (`vr create`), left alone",
                ctx.records.dir().display()
            );
            return self.say_once("waiting", "", why, emit);
        };
        if !record.keep_running {
            // Its misses while stopped must not count once it is started.
            self.reset();
            let why = "stopped on purpose (`vr stop`); `vr start` brings it back".to_string();
            return self.say_once("waiting", &record.host, why, emit);
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Ok(url) = spec.agent_url() else { return };
        let base = ctx.client(&url).base().to_string();
        let ping = tokio::time::timeout(PING_TIMEOUT, diagnose::probe(&base, &ctx.credentials));
        match ping.await {
            Ok(Probe::Ready(_)) => {
                if self.missed >= policy.misses {
                    let e = self.event("recovered", &record.host, "answers again by itself".into());
                    emit(&e);
                }
                self.reset();
                self.said.clear();
                // The router answers where it is: a copy elsewhere is a stray.
                return self.fence_strays(ctx, &spec, emit).await;
            }
            // It answers, only not to us: no VM is touched for that.
            Ok(Probe::Denied(why)) | Ok(Probe::WrongVersion(why)) => {
                self.reset();
                let why = format!("{base} answers but cannot be driven, not acted on: {why}");
                return self.say_once("waiting", &record.host, why, emit);
            }
            Ok(Probe::Refused) | Ok(Probe::Silent(_)) | Err(_) => {}
        }
        self.missed += 1;
        let first_miss = *self.first_miss.get_or_insert_with(Instant::now);
        if self.missed == policy.misses {
            let e = self.event(
                "lost",
                &record.host,
                format!("{base} missed {} pings", self.missed),
            );
            emit(&e);
        }
        let host = if self.missed >= policy.misses {
            Some(self.ask_host(ctx, &spec.uuid, &record.host).await)
        } else {
            None
        };
        let vm = spec.vm.as_ref().expect("checked above");
        let seen = Seen {
            missed: self.missed,
            silent_for: first_miss.elapsed(),
            keep_running: record.keep_running,
            on: &record.host,
            host,
            hosts: &vm.hosts,
            storage: vm.storage,
        };
        let decision = decide(&seen, policy);
        let Some(action) = decision.action() else {
            if self.missed >= policy.misses {
                self.say_once("waiting", &record.host, decision.why().to_string(), emit);
            }
            return;
        };
        let why = decision.why().to_string();
        let gone_from = record.host.clone();
        let result = match &decision {
            Decision::StartAgain(_) => ctx.start_on(&spec, std::slice::from_ref(&gone_from)).await,
            Decision::Reboot(_) => ctx.reboot(&spec).await,
            Decision::Move { to, .. } => ctx.start_on(&spec, to).await,
            Decision::Recreate { to, .. } => ctx.recreate_on(&spec, to).await,
            Decision::Healthy | Decision::Wait(_) => unreachable!("no action"),
        };
        let secs = first_miss.elapsed().as_secs_f64();
        let (host, error) = match &result {
            Ok(up) => (up.host.clone(), None),
            Err(e) => (gone_from.clone(), Some(e.to_string())),
        };
        self.keep(
            ctx,
            &spec,
            Action {
                at: unix_now(),
                action: action.into(),
                host: host.clone(),
                why: why.clone(),
                secs,
                error: error.clone(),
            },
        );
        let mut e = self.event(action, &host, error.clone().unwrap_or(why));
        e.secs = Some(secs);
        e.ok = error.is_none();
        emit(&e);
        if error.is_none() {
            // Only once it answers elsewhere is a copy on the old host a
            // stray (if the new one never came up, the old may be the router).
            if matches!(decision, Decision::Move { .. } | Decision::Recreate { .. }) {
                self.left(ctx, &spec, &gone_from);
            }
            self.reset();
        } else {
            let pause = RETRY_AFTER.saturating_mul(1 << self.failures.min(6));
            self.retry_at = Some(Instant::now() + pause.min(RETRY_MAX));
            self.failures += 1;
        }
    }

    /// vmsync on `host`: the router's VM state there, or how long the host
    /// has been silent.
    async fn ask_host(&mut self, ctx: &Ctx<'_>, uuid: &str, host: &str) -> HostSays {
        match vm_states(ctx, host).await {
            Ok(states) => {
                self.host_silent_since = None;
                HostSays::Vm(states.get(uuid).cloned())
            }
            Err(e) if !is_silence(&e) => {
                self.host_silent_since = None;
                HostSays::Refused(e.to_string())
            }
            Err(_) => {
                let since = *self.host_silent_since.get_or_insert_with(Instant::now);
                HostSays::Silent(since.elapsed())
            }
        }
    }

    /// Notes that the router may still be defined on `host`.
    fn left(&self, ctx: &Ctx<'_>, spec: &RouterSpec, host: &str) {
        let Some(mut r) = ctx.records.get(&spec.uuid) else {
            return;
        };
        if !r.left_on.iter().any(|h| h == host) {
            r.left_on.push(host.to_string());
            let _ = ctx.records.put(&r);
        }
    }

    fn keep(&self, ctx: &Ctx<'_>, spec: &RouterSpec, action: Action) {
        if let Some(mut r) = ctx.records.get(&spec.uuid) {
            r.push_action(action);
            if let Err(e) = ctx.records.put(&r) {
                tracing::warn!("{}: {e}", spec.uuid);
            }
        }
    }

    /// Destroys the copies of the router on hosts it was moved away from,
    /// once they answer (a host that was only cut off still runs it, with
    /// the router's addresses). A host that is still silent stays listed.
    async fn fence_strays(&mut self, ctx: &Ctx<'_>, spec: &RouterSpec, emit: &dyn Fn(&Event)) {
        let Some(record) = ctx.records.get(&spec.uuid) else {
            return;
        };
        if record.left_on.is_empty() || self.fenced_at.is_some_and(|t| t.elapsed() < FENCE_EVERY) {
            return;
        }
        self.fenced_at = Some(Instant::now());
        for h in &record.left_on {
            // Running there again (moved back): that copy is the router.
            if *h != record.host {
                match vm_states(ctx, h).await {
                    Err(_) => continue,
                    Ok(states) if !states.contains_key(&spec.uuid) => {}
                    Ok(_) => {
                        let (client, cmd) = (ctx.host_client(h), destroy_cmd(spec));
                        let destroy = client.send(&cmd);
                        let error = match tokio::time::timeout(HOST_TIMEOUT, destroy).await {
                            Ok(r) => r.err().map(|e| e.to_string()),
                            Err(_) => {
                                Some(format!("no answer within {} s", HOST_TIMEOUT.as_secs()))
                            }
                        };
                        let detail = match &error {
                            None => "the copy left there is destroyed".to_string(),
                            Some(e) => format!("destroying the copy left there: {e}"),
                        };
                        // A failure is said (and kept) once, then retried quietly.
                        if error.is_some() && self.fence_said == detail {
                            continue;
                        }
                        self.fence_said = if error.is_some() {
                            detail.clone()
                        } else {
                            String::new()
                        };
                        let mut e = self.event("destroy-stray", h, detail.clone());
                        e.ok = error.is_none();
                        emit(&e);
                        let action = Action {
                            at: unix_now(),
                            action: "destroy-stray".into(),
                            host: h.clone(),
                            why: "moved away while the host was silent".into(),
                            secs: 0.0,
                            error: error.map(|_| detail),
                        };
                        self.keep(ctx, spec, action);
                        if e.ok {
                            self.forget_left(ctx, spec, h);
                        }
                        continue;
                    }
                }
            }
            self.forget_left(ctx, spec, h);
        }
    }

    fn forget_left(&self, ctx: &Ctx<'_>, spec: &RouterSpec, host: &str) {
        if let Some(mut r) = ctx.records.get(&spec.uuid) {
            r.left_on.retain(|x| x != host);
            let _ = ctx.records.put(&r);
        }
    }
}

/// The VM states `host` reports (vmsync), within [`HOST_TIMEOUT`].
async fn vm_states(ctx: &Ctx<'_>, host: &str) -> Result<BTreeMap<String, String>, RouterError> {
    let c = ctx.host_client(host);
    match tokio::time::timeout(HOST_TIMEOUT, c.send(&host::vm_sync_cmd())).await {
        Ok(Ok(reply)) => Ok(reply.states),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(RouterError::Unavailable(format!(
            "{host}: no vmsync answer within {} s",
            HOST_TIMEOUT.as_secs()
        ))),
    }
}

/// Whether a host's error means it does not answer at all (as opposed to
/// answering with a refusal or an error of its own).
fn is_silence(e: &RouterError) -> bool {
    matches!(
        e,
        RouterError::Unavailable(_)
            | RouterError::Agent(ClientError::Unreachable { .. } | ClientError::Timeout { .. })
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
