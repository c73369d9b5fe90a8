//! What `vrctl watch` does about one router, from what it saw: a pure
//! function, so that every case of the recovery table is a unit test.

use std::time::Duration;

use crate::spec::Storage;

/// How patient the watch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pings a router may miss in a row before it counts as lost.
    pub misses: u32,
    /// How long its host may stay silent before it counts as gone (a host
    /// that reboots comes back within this and keeps its routers).
    pub host_gone_after: Duration,
    /// How long a router may stay silent while its VM runs before it is
    /// rebooted (longer than a boot, so a router still booting is left).
    pub reboot_after: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            misses: 3,
            host_gone_after: Duration::from_secs(10),
            reboot_after: Duration::from_secs(120),
        }
    }
}

/// What the router's host said about its VM (asked once it is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSays {
    /// vmsync's state of the router's VM (`None`: the host does not have it).
    Vm(Option<String>),
    /// No answer, for this long.
    Silent(Duration),
    /// An answer that is not vmsync's (refused credentials, TLS, an error):
    /// the host is there, so nothing is moved off it.
    Refused(String),
}

/// What the watch knows about one router at one tick.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// Pings missed in a row (0: it answered).
    pub missed: u32,
    /// How long since the first missed ping.
    pub silent_for: Duration,
    /// `false`: stopped on purpose (`vr stop`).
    pub keep_running: bool,
    /// The host it last ran on.
    pub on: &'a str,
    /// `None` when the host was not asked (the router is not lost yet).
    pub host: Option<HostSays>,
    /// Every host that may run it (`vm.hosts`).
    pub hosts: &'a [String],
    pub storage: Storage,
}

/// The watch's decision, each with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It answers: nothing to do.
    Healthy,
    /// Lost, but nothing to do yet (or ever, for a router stopped on
    /// purpose): why.
    Wait(String),
    /// Its host answers and does not run it: start it there again.
    StartAgain(String),
    /// Its host runs it but it stays silent: reboot it.
    Reboot(String),
    /// Its host is gone and its disk is shared: start it on the first of
    /// these that fits.
    Move { to: Vec<String>, why: String },
    /// Its host is gone with its disk: a new disk from the image, started
    /// on the first of these that fits, then resynced.
    Recreate { to: Vec<String>, why: String },
}

impl Decision {
    /// The action's name in the records and the log (`None`: no action).
    pub fn action(&self) -> Option<&'static str> {
        match self {
            Decision::Healthy | Decision::Wait(_) => None,
            Decision::StartAgain(_) => Some("start"),
            Decision::Reboot(_) => Some("reboot"),
            Decision::Move { .. } => Some("move"),
            Decision::Recreate { .. } => Some("recreate"),
        }
    }

    pub fn why(&self) -> &str {
        match self {
            Decision::Healthy => "it answers",
            Decision::Wait(w) | Decision::StartAgain(w) | Decision::Reboot(w) => w,
            Decision::Move { why, .. } | Decision::Recreate { why, .. } => why,
        }
    }
}

pub fn decide(seen: &Seen, policy: &Policy) -> Decision {
    if seen.missed == 0 {
        return Decision::Healthy;
    }
    if !seen.keep_running {
        return Decision::Wait("stopped on purpose (`vr stop`); `vr start` brings it back".into());
    }
    if seen.missed < policy.misses {
        return Decision::Wait(format!("missed {} of {} pings", seen.missed, policy.misses));
    }
    let silent = seen.silent_for.as_secs_f64();
    match &seen.host {
        None => Decision::Wait("its host was not asked yet".into()),
        Some(HostSays::Refused(why)) => Decision::Wait(format!(
            "{} answers vmsync with an error, so it is not gone: {why}",
            seen.on
        )),
        // A paused VM is there like a running one (a start would be a
        // no-op): past the boot time it is rebooted.
        Some(HostSays::Vm(Some(state))) if state == "Running" || state == "Paused" => {
            if seen.silent_for >= policy.reboot_after {
                Decision::Reboot(format!(
                    "silent for {silent:.1} s while {} has it {state}",
                    seen.on
                ))
            } else {
                Decision::Wait(format!(
                    "silent while {} has it {state} (rebooted after {} s)",
                    seen.on,
                    policy.reboot_after.as_secs()
                ))
            }
        }
        Some(HostSays::Vm(state)) => Decision::StartAgain(format!(
            "{} answers and {}",
            seen.on,
            match state {
                Some(s) => format!("has it {s}"),
                None => "does not have it".into(),
            }
        )),
        // The waits name no growing figure: the watch says a wait once.
        Some(HostSays::Silent(for_)) if *for_ < policy.host_gone_after => Decision::Wait(format!(
            "{} silent (gone after {} s)",
            seen.on,
            policy.host_gone_after.as_secs()
        )),
        Some(HostSays::Silent(for_)) => {
            let to: Vec<String> = seen
                .hosts
                .iter()
                .filter(|h| h.as_str() != seen.on)
                .cloned()
                .collect();
            let gone = format!("{} silent for {:.1} s", seen.on, for_.as_secs_f64());
            if to.is_empty() {
                return Decision::Wait(format!("{gone}, and vm.hosts has no other host"));
            }
            match seen.storage {
                Storage::Shared => Decision::Move {
                    to,
                    why: format!("{gone}, disk shared"),
                },
                Storage::Local => Decision::Recreate {
                    to,
                    why: format!("{gone}, disk lost with it (local storage)"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec![
            "http://h1:7070".into(),
            "http://h2:7070".into(),
            "http://h3:7070".into(),
        ]
    }

    fn lost(host: Option<HostSays>, storage: Storage, hosts: &[String]) -> Decision {
        let seen = Seen {
            missed: 3,
            silent_for: Duration::from_secs(6),
            keep_running: true,
            on: "http://h1:7070",
            host,
            hosts,
            storage,
        };
        decide(&seen, &Policy::default())
    }

    #[test]
    fn a_router_that_answers_or_only_missed_a_few_is_left() {
        let h = hosts();
        let mut seen = Seen {
            missed: 0,
            silent_for: Duration::ZERO,
            keep_running: true,
            on: &h[0],
            host: None,
            hosts: &h,
            storage: Storage::Shared,
        };
        assert_eq!(decide(&seen, &Policy::default()), Decision::Healthy);
        seen.missed = 2;
        seen.host = Some(HostSays::Silent(Duration::from_secs(60)));
        let d = decide(&seen, &Policy::default());
        assert_eq!(d, Decision::Wait("missed 2 of 3 pings".into()));
        assert_eq!(d.action(), None);
    }

    #[test]
    fn a_router_stopped_on_purpose_is_never_brought_back() {
        let h = hosts();
        let seen = Seen {
            missed: 50,
            silent_for: Duration::from_secs(600),
            keep_running: false,
            on: &h[0],
            host: Some(HostSays::Vm(None)),
            hosts: &h,
            storage: Storage::Shared,
        };
        assert_eq!(decide(&seen, &Policy::default()).action(), None);
    }

    #[test]
    fn host_back_without_the_vm_starts_it_there() {
        let h = hosts();
        let d = lost(Some(HostSays::Vm(None)), Storage::Local, &h);
        assert_eq!(
            d,
            Decision::StartAgain("http://h1:7070 answers and does not have it".into())
        );
        let d = lost(
            Some(HostSays::Vm(Some("Stopped".into()))),
            Storage::Local,
            &h,
        );
        assert_eq!(d.action(), Some("start"));
    }

    #[test]
    fn a_silent_router_on_a_running_vm_is_rebooted_only_after_a_boot_time() {
        let h = hosts();
        let running = Some(HostSays::Vm(Some("Running".into())));
        assert_eq!(lost(running.clone(), Storage::Shared, &h).action(), None);
        let seen = Seen {
            missed: 100,
            silent_for: Duration::from_secs(121),
            keep_running: true,
            on: &h[0],
            host: running,
            hosts: &h,
            storage: Storage::Shared,
        };
        assert_eq!(decide(&seen, &Policy::default()).action(), Some("reboot"));
        let paused = Seen {
            host: Some(HostSays::Vm(Some("Paused".into()))),
            ..seen
        };
        assert_eq!(decide(&paused, &Policy::default()).action(), Some("reboot"));
    }

    /// A host that answers with an error (a token it refuses, TLS) is not
    /// gone: nothing is moved or re-created off it.
    #[test]
    fn a_host_that_refuses_us_is_not_gone() {
        let h = hosts();
        for storage in [Storage::Shared, Storage::Local] {
            let d = lost(Some(HostSays::Refused("401".into())), storage, &h);
            assert!(
                matches!(&d, Decision::Wait(w) if w.contains("not gone")),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_gone_host_moves_shared_and_recreates_local_on_the_other_hosts() {
        let h = hosts();
        let briefly = Some(HostSays::Silent(Duration::from_secs(9)));
        assert_eq!(lost(briefly, Storage::Shared, &h).action(), None);
        let gone = Some(HostSays::Silent(Duration::from_secs(10)));
        assert_eq!(
            lost(gone.clone(), Storage::Shared, &h),
            Decision::Move {
                to: h[1..].to_vec(),
                why: "http://h1:7070 silent for 10.0 s, disk shared".into()
            }
        );
        let d = lost(gone.clone(), Storage::Local, &h);
        assert_eq!(d.action(), Some("recreate"));
        assert!(matches!(d, Decision::Recreate { to, .. } if to == h[1..]));
        // Nowhere else to go: it waits for the host.
        let d = lost(gone, Storage::Shared, &h[..1]);
        assert!(
            matches!(&d, Decision::Wait(w) if w.contains("no other host")),
            "{d:?}"
        );
    }
}
