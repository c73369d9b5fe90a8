//! Turning "the router never answered" into a cause, fast.
//!
//! While a router boots, vrctl polls its agent and, through the host's
//! kvm-agent, its serial console and its domain state. Each observation
//! narrows the cause down, and a verdict is given as soon as the evidence is
//! clear, not when a timeout expires:
//!
//! | evidence                                             | verdict            |
//! |------------------------------------------------------|--------------------|
//! | kernel panic / initrd failure on the console, or the | `OsNotBooted`      |
//! | domain stopped                                       |                    |
//! | console: "vr-agent serving", the IP stays silent     | `MgmtUnreachable`  |
//! | the IP refuses port 7272 / console: agent error      | `AgentMissing`     |
//! | HTTP answers, but 404 or an older `zvrVersion`       | `WrongVersion`     |
//! | TLS refused either way, HTTP 401 or 403              | `Refused`          |
//! | nothing at all until the boot timeout                | `OsNotBooted`      |

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Client, ClientError};
use crate::credentials::Credentials;

/// Why a router is not usable, each with its own message.
#[derive(Debug, thiserror::Error)]
pub enum Diagnosis {
    #[error("no host can fit the VR ({cpu} CPU, {memory_mb} MiB):\n{reasons}")]
    NoHostFits {
        cpu: u32,
        memory_mb: u64,
        reasons: String,
    },
    #[error("the VR's OS did not boot ({why}); console tail:\n{tail}")]
    OsNotBooted { why: String, tail: String },
    #[error("the management IP {ip} is unreachable: {detail}")]
    MgmtUnreachable { ip: String, detail: String },
    #[error("the agent is missing at {url}: {why}")]
    AgentMissing { url: String, why: String },
    #[error("{url} is the wrong version: {why}")]
    WrongVersion { url: String, why: String },
    /// The agent is there but will not take this controller's commands:
    /// certificates, token or source address.
    #[error("the agent at {url} refuses this controller: {why}")]
    Refused { url: String, why: String },
}

/// One look at the agent's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The handshake passed: the agent's version.
    Ready(String),
    /// Something answers on the IP but nothing listens on the port.
    Refused,
    /// No answer at all (timeout, no route, no ARP reply).
    Silent(String),
    /// An HTTP server answers, but not a vr-agent we can drive.
    WrongVersion(String),
    /// The agent refuses us (TLS, 401, 403): why.
    Denied(String),
}

/// The lowest protocol level this controller drives (`zvrVersion`).
pub const MIN_VERSION: &str = common::vr::ZVR_VERSION;

fn version_parts(v: &str) -> Option<Vec<u32>> {
    let parts: Vec<u32> = v
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (parts.len() == 4).then_some(parts)
}

/// Checks a reported `zvrVersion` against [`MIN_VERSION`].
pub fn check_version(v: &str) -> Result<(), String> {
    let (Some(have), Some(need)) = (version_parts(v), version_parts(MIN_VERSION)) else {
        return Err(format!(
            "it reports version {v:?}, not the 4-part version the controller needs"
        ));
    };
    if have < need {
        return Err(format!(
            "it reports version {v}, this controller needs {MIN_VERSION} or newer"
        ));
    }
    Ok(())
}

/// `/echo`, then `/test` and its version. Errors name the cause.
pub async fn handshake(c: &Client) -> Result<String, Probe> {
    let wrong = |e: ClientError| match e {
        ClientError::UnknownCommand { body, .. } => Probe::WrongVersion(format!(
            "it answers HTTP but not this command (404: {})",
            body.trim()
        )),
        ClientError::Unreachable { reason, .. } => Probe::Silent(reason),
        ClientError::Tls { reason, .. } | ClientError::Unauthorized { reason, .. } => {
            Probe::Denied(reason)
        }
        ClientError::Http {
            status: 403, body, ..
        } => Probe::Denied(format!("HTTP 403: {}", body.trim())),
        e => Probe::WrongVersion(e.to_string()),
    };
    c.call("/echo", &json!({})).await.map_err(wrong)?;
    let v = c.call("/test", &json!({})).await.map_err(wrong)?;
    let version = v["zvrVersion"].as_str().unwrap_or("").to_string();
    check_version(&version).map_err(Probe::WrongVersion)?;
    Ok(version)
}

/// TCP first (so "refused" and "silent" are told apart quickly), then the
/// handshake in sync mode.
pub async fn probe(url: &str, credentials: &Credentials) -> Probe {
    let hostport = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    match tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(&hostport),
    )
    .await
    {
        Err(_) => return Probe::Silent("no answer within 1 s".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Probe::Refused,
        Ok(Err(e)) => return Probe::Silent(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let mut c = Client::with(url, None, credentials);
    c.timeout = Duration::from_secs(5);
    match handshake(&c).await {
        Ok(v) => Probe::Ready(v),
        Err(p) => p,
    }
}

/// A probe's verdict for a router that should be up now (`vrctl vr status`).
pub fn verdict_now(url: &str, p: Probe) -> Result<String, Diagnosis> {
    match p {
        Probe::Ready(v) => Ok(v),
        Probe::Refused => Err(Diagnosis::AgentMissing {
            url: url.into(),
            why: "the address answers but nothing listens on the port (connection refused): \
                  vr-agent is not running"
                .into(),
        }),
        Probe::Silent(e) => Err(Diagnosis::AgentMissing {
            url: url.into(),
            why: format!("no answer from the address ({e}): the router is down or unreachable"),
        }),
        Probe::WrongVersion(why) => Err(Diagnosis::WrongVersion {
            url: url.into(),
            why,
        }),
        Probe::Denied(why) => Err(Diagnosis::Refused {
            url: url.into(),
            why,
        }),
    }
}

/// What the console says about the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleSign {
    Nothing,
    /// The kernel or the initrd gave up: the line.
    Failed(String),
    /// The agent reported an error and exited: the line.
    AgentFailed(String),
    /// The agent serves: its log line.
    Serving(String),
}

/// Reads a console tail. The latest sign wins (a rebooted VR's log has the
/// previous boot before it).
pub fn read_console(tail: &str) -> ConsoleSign {
    let mut sign = ConsoleSign::Nothing;
    for line in tail.lines().map(common::text::strip_ansi) {
        let l = line.trim();
        if l.contains("Kernel panic")
            || l.contains("vr-initrd:")
            || l.contains("Unable to mount root")
        {
            sign = ConsoleSign::Failed(l.to_string());
        } else if l.contains("vr-agent serving") {
            sign = ConsoleSign::Serving(l.to_string());
        } else if l.starts_with("vr-agent: ") {
            sign = ConsoleSign::AgentFailed(l.to_string());
        }
    }
    sign
}

/// What the waiting loop needs from the router's host.
pub trait HostView {
    /// The console tail ("" when there is none).
    fn console(&self) -> impl Future<Output = String>;
    /// The domain's state as vmsync reports it (`None`: not on the host).
    fn state(&self) -> impl Future<Output = Option<String>>;
    /// Why the management bridge cannot carry the VR's traffic, if known.
    fn bridge_problem(&self) -> impl Future<Output = Option<String>>;
}

/// What was expected of the management NIC (for the messages).
pub struct Expect<'a> {
    pub url: &'a str,
    pub ip: &'a str,
    pub bootstrap: String,
    pub bridge: &'a str,
    /// What the controller presents to the agent.
    pub credentials: &'a Credentials,
}

/// How long the console may say "serving" while the IP stays silent before
/// the verdict is "unreachable" (a GARP and a first ARP exchange fit well).
const SERVING_GRACE: Duration = Duration::from_secs(6);
/// How long a refused port is given to start listening.
const REFUSED_GRACE: Duration = Duration::from_secs(10);

/// Waits until the agent passes the handshake, or names why it will not.
/// `progress` is called with a short status about once a second.
pub async fn wait_ready(
    host: &impl HostView,
    want: &Expect<'_>,
    boot_timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<String, Diagnosis> {
    let t0 = Instant::now();
    let mut serving_since: Option<Instant> = None;
    let mut refused_since: Option<Instant> = None;
    let mut last_console = Instant::now() - Duration::from_secs(10);
    loop {
        let p = probe(want.url, want.credentials).await;
        match &p {
            Probe::Ready(v) => return Ok(v.clone()),
            Probe::Denied(why) => {
                return Err(Diagnosis::Refused {
                    url: want.credentials.url(want.url),
                    why: why.clone(),
                });
            }
            Probe::WrongVersion(why) => {
                return Err(Diagnosis::WrongVersion {
                    url: want.url.into(),
                    why: why.clone(),
                });
            }
            Probe::Refused => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() > REFUSED_GRACE {
                    return Err(Diagnosis::AgentMissing {
                        url: want.url.into(),
                        why: format!(
                            "the VR answers at {} but nothing has listened on the port for {} s \
                             (connection refused); console tail:\n{}",
                            want.ip,
                            REFUSED_GRACE.as_secs(),
                            host.console().await
                        ),
                    });
                }
            }
            Probe::Silent(_) => refused_since = None,
        }
        if last_console.elapsed() >= Duration::from_secs(1) {
            last_console = Instant::now();
            let tail = host.console().await;
            match read_console(&tail) {
                ConsoleSign::Failed(line) => {
                    return Err(Diagnosis::OsNotBooted { why: line, tail });
                }
                ConsoleSign::AgentFailed(line) => {
                    return Err(Diagnosis::AgentMissing {
                        url: want.url.into(),
                        why: format!(
                            "the VR booted but vr-agent did not start: {line}\nconsole tail:\n{tail}"
                        ),
                    });
                }
                ConsoleSign::Serving(line) => {
                    let since = *serving_since.get_or_insert_with(Instant::now);
                    if let Probe::Silent(error) = &p
                        && since.elapsed() > SERVING_GRACE
                    {
                        let bridge_check = match host.bridge_problem().await {
                            Some(why) => format!(": {why}"),
                            None => " (the host reports the bridge is present)".into(),
                        };
                        return Err(Diagnosis::MgmtUnreachable {
                            ip: want.ip.into(),
                            detail: format!(
                                "the VR booted and its agent serves (console: {line}), but this \
                                 controller gets no answer ({error}). Check the bootstrap \
                                 IP/netmask/gateway ({}) and that the host bridge {} has its \
                                 uplink{bridge_check}",
                                want.bootstrap, want.bridge
                            ),
                        });
                    }
                }
                ConsoleSign::Nothing => {}
            }
            match host.state().await.as_deref() {
                Some("Running") | Some("Paused") => {}
                other => {
                    return Err(Diagnosis::OsNotBooted {
                        why: format!(
                            "the VM is not running on its host (state: {})",
                            other.unwrap_or("gone")
                        ),
                        tail,
                    });
                }
            }
            if t0.elapsed() > boot_timeout {
                return Err(Diagnosis::OsNotBooted {
                    why: format!(
                        "no agent within {} s and no sign of a boot failure",
                        boot_timeout.as_secs()
                    ),
                    tail,
                });
            }
            progress(&format!(
                "waiting for {} ({:.0} s): {}",
                want.url,
                t0.elapsed().as_secs_f64(),
                match (&p, serving_since) {
                    (_, Some(_)) => "agent serving on the console, IP silent".to_string(),
                    (Probe::Refused, _) => "VR answers, port closed".to_string(),
                    _ => "booting".to_string(),
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The JSON shape of a diagnosis for `--json`.
pub fn to_json(d: &Diagnosis) -> Value {
    let kind = match d {
        Diagnosis::NoHostFits { .. } => "no_host_fits",
        Diagnosis::OsNotBooted { .. } => "os_not_booted",
        Diagnosis::MgmtUnreachable { .. } => "management_ip_unreachable",
        Diagnosis::AgentMissing { .. } => "agent_missing",
        Diagnosis::WrongVersion { .. } => "wrong_version",
        Diagnosis::Refused { .. } => "refused",
    };
    json!({"diagnosis": kind, "message": d.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_signs() {
        assert_eq!(read_console(""), ConsoleSign::Nothing);
        let boot = "[    0.0] Linux version 6.1\nvr-initrd: cannot mount root /dev/vda (ext4); dropping to a shell\n";
        assert!(matches!(read_console(boot), ConsoleSign::Failed(l) if l.starts_with("vr-initrd")));
        let ok = "\u{1b}[2m2026-11-24T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m vr_agent: vr-agent serving \u{1b}[3mlisten\u{1b}[0m=10.0.0.25:7272\n";
        assert!(
            matches!(read_console(ok), ConsoleSign::Serving(l) if l.contains("listen=10.0.0.25:7272"))
        );
        let bad = "vr-agent: bootstrap: no NIC with MAC 52:54:00:00:00:09\n";
        assert!(matches!(read_console(bad), ConsoleSign::AgentFailed(_)));
        // The latest boot counts.
        assert!(matches!(
            read_console(&format!("{bad}{ok}")),
            ConsoleSign::Serving(_)
        ));
    }

    /// A host whose console and domain state are given.
    struct Fake {
        console: &'static str,
        state: Option<&'static str>,
    }

    impl HostView for Fake {
        async fn console(&self) -> String {
            self.console.into()
        }
        async fn state(&self) -> Option<String> {
            self.state.map(str::to_string)
        }
        async fn bridge_problem(&self) -> Option<String> {
            None
        }
    }

    /// The verdict for an agent URL nobody listens on (port 1 refuses).
    async fn verdict(console: &'static str, state: Option<&'static str>) -> (Diagnosis, f64) {
        let want = Expect {
            url: "http://127.0.0.1:1",
            ip: "127.0.0.1",
            bootstrap: String::new(),
            bridge: "br_eth0",
            credentials: &Credentials::default(),
        };
        let t = Instant::now();
        let d = wait_ready(
            &Fake { console, state },
            &want,
            Duration::from_secs(60),
            |_| {},
        )
        .await
        .unwrap_err();
        (d, t.elapsed().as_secs_f64())
    }

    #[tokio::test]
    async fn the_console_and_the_domain_decide_at_once() {
        let (d, secs) = verdict("[ 1.2] Kernel panic - not syncing: VFS\n", Some("Running")).await;
        assert!(matches!(d, Diagnosis::OsNotBooted { .. }), "{d}");
        assert!(secs < 2.0, "{secs}");
        let (d, secs) = verdict(
            "vr-agent: bootstrap: no NIC with MAC 52:54:00:00:00:09\n",
            Some("Running"),
        )
        .await;
        assert!(
            matches!(&d, Diagnosis::AgentMissing { why, .. } if why.contains("no NIC with MAC")),
            "{d}"
        );
        assert!(secs < 2.0, "{secs}");
        let (d, _) = verdict("", None).await;
        assert!(
            d.to_string()
                .contains("not running on its host (state: gone)"),
            "{d}"
        );
        let (d, secs) = verdict("", Some("Running")).await;
        assert!(
            matches!(&d, Diagnosis::AgentMissing { why, .. } if why.contains("connection refused")),
            "{d}"
        );
        assert!(secs < 15.0, "refused for 10 s: {secs}");
    }

    #[test]
    fn versions() {
        assert!(check_version(MIN_VERSION).is_ok());
        assert!(check_version("9.0.0.0").is_ok());
        let e = check_version("4.8.0.0").unwrap_err();
        assert!(e.contains("needs") && e.contains("4.8.0.0"), "{e}");
        assert!(check_version("").unwrap_err().contains("4-part"));
        assert!(check_version("1.2.3").is_err());
    }
}
