//! Load balancer listeners and certificates (`/lb/*`, `/certificate*`).
//!
//! A listener (`LbTO`) is converted once, here, from its wire form: every
//! `parameters` item (`key::value`) is parsed into a typed field, so the
//! renderers (plan/haproxy.rs for tcp/http/https, plan/lbudp.rs for udp)
//! never see raw strings. Every string that reaches the haproxy config is
//! checked against a strict character set, so no value can inject a
//! directive. A key we do not know is kept in `ignored_parameters`, logged
//! and shown in `GET /state`, never silently dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::net::{Ipv4Net, Mac};
use serde::{Deserialize, Serialize};

use super::Invalid;

mod fields;
mod from_wire;
mod params;

pub use fields::check_ident;
pub use from_wire::{certificate, listener, listener_uuids, listeners, log_level};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbMode {
    Tcp,
    Http,
    Https,
    Udp,
}

impl LbMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            LbMode::Tcp => "tcp",
            LbMode::Http => "http",
            LbMode::Https => "https",
            LbMode::Udp => "udp",
        }
    }
    /// The transport the listener's port is on.
    pub fn l4(&self) -> &'static str {
        if *self == LbMode::Udp { "udp" } else { "tcp" }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    RoundRobin,
    LeastConn,
    Source,
    /// `weightroundrobin`: static weights (haproxy `static-rr`).
    StaticRr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthKind {
    Tcp,
    Http {
        method: String,
        uri: String,
        /// Status classes that count as healthy: 2 for `http_2xx`, ...
        classes: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub kind: HealthKind,
    /// None: the instance port (`default`).
    pub port: Option<u16>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub rise: u32,
    pub fall: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthKind::Tcp,
            port: None,
            interval_s: 5,
            timeout_s: 2,
            rise: 2,
            fall: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Persistence {
    Insert { cookie: String, idle_s: Option<u32> },
    Rewrite { cookie: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclKind {
    Black,
    White,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub kind: AclKind,
    /// Ranges are converted to the CIDRs that cover them exactly.
    pub entries: Vec<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsRedirect {
    pub port: u16,
    pub code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LbParams {
    pub algorithm: Option<Algorithm>,
    pub idle_timeout_s: Option<u32>,
    pub max_conn: Option<u32>,
    /// `Nbprocess`: with one haproxy for all listeners, the largest value
    /// becomes `nbthread` (capped by the CPUs).
    pub nbprocess: Option<u32>,
    pub health: HealthCheck,
    pub persistence: Option<Persistence>,
    /// `option <httpMode>` (http/https only).
    pub http_mode: Option<String>,
    pub redirect_https: Option<HttpsRedirect>,
    pub acl: Option<Acl>,
    /// ALPN names (`h2`, `http/1.1`) for https listeners.
    pub alpn: Vec<String>,
    /// 1 or 2: send the PROXY protocol header to backends.
    pub proxy_protocol: Option<u8>,
    pub compression: Vec<String>,
    /// Per-IP weights (`balancerWeight::<ip>::<w>`) for `nicIps` backends.
    pub weights: BTreeMap<Ipv4Addr, u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub weight: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerGroup {
    pub uuid: String,
    pub name: Option<String>,
    pub servers: Vec<Backend>,
    pub is_default: bool,
}

/// Where a redirect rule sends matching requests: host and/or path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectRule {
    pub uuid: String,
    pub host: Option<String>,
    pub path: Option<String>,
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub uuid: String,
    pub lb_uuid: String,
    pub vip: Ipv4Addr,
    pub public_mac: Option<Mac>,
    pub port: u16,
    pub instance_port: u16,
    pub mode: LbMode,
    /// The default backend pool: `nicIps`, or the default server group(s).
    pub backends: Vec<Backend>,
    /// Non-default server groups that redirect rules point at.
    pub groups: Vec<ServerGroup>,
    pub redirect_rules: Vec<RedirectRule>,
    pub certificate: Option<String>,
    pub cipher_policy: String,
    pub full_log: bool,
    pub params: LbParams,
    /// `key::value` items we do not know; logged and shown in `/state`.
    pub ignored_parameters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LbState {
    pub listeners: BTreeMap<String, Listener>,
    /// Uploaded certificates (PEM files under the state dir; never in the
    /// model, which `/state` shows).
    pub certificates: BTreeSet<String>,
    pub log_enabled: bool,
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LbEdit {
    /// Upsert these listeners; `remove` are listeners the refresh named
    /// without backends (they are deleted).
    Refresh {
        listeners: Vec<Listener>,
        remove: Vec<String>,
        log: bool,
    },
    Delete(Vec<String>),
    /// Certificates whose PEM was written to disk.
    Certs(Vec<String>),
    DeleteCert(String),
    LogLevel(String),
}

pub const CIPHER_POLICIES: &[&str] = &[
    "tls_cipher_policy_default",
    "tls_cipher_policy_1_0",
    "tls_cipher_policy_1_1",
    "tls_cipher_policy_1_2",
    "tls_cipher_policy_1_2_strict",
    "tls_cipher_policy_1_2_strict_with_1_3",
];

const HTTP_MODES: &[&str] = &[
    "http-server-close",
    "http-keep-alive",
    "httpclose",
    "http-tunnel",
    "forceclose",
];

const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl LbState {
    pub fn apply(&mut self, e: &LbEdit) -> Result<(), Invalid> {
        match e {
            LbEdit::Refresh {
                listeners,
                remove,
                log,
            } => {
                for l in listeners {
                    self.listeners.insert(l.uuid.clone(), l.clone());
                }
                for u in remove {
                    self.listeners.remove(u);
                }
                self.log_enabled = *log;
                self.drop_unused_certs();
            }
            LbEdit::Delete(uuids) => {
                for u in uuids {
                    self.listeners.remove(u);
                }
                self.drop_unused_certs();
            }
            LbEdit::Certs(uuids) => self.certificates.extend(uuids.iter().cloned()),
            LbEdit::DeleteCert(uuid) => {
                if let Some(l) = self.user_of(uuid) {
                    return Err(Invalid::Clash(format!(
                        "certificate {uuid} is used by listener {}",
                        l.uuid
                    )));
                }
                self.certificates.remove(uuid);
            }
            LbEdit::LogLevel(l) => self.log_level = Some(l.clone()),
        }
        Ok(())
    }

    fn user_of(&self, cert: &str) -> Option<&Listener> {
        self.listeners
            .values()
            .find(|l| l.certificate.as_deref() == Some(cert))
    }

    /// Like zvr: certificates no listener uses go after a refresh or delete.
    fn drop_unused_certs(&mut self) {
        let used: BTreeSet<&str> = self
            .listeners
            .values()
            .filter_map(|l| l.certificate.as_deref())
            .collect();
        self.certificates.retain(|c| used.contains(c.as_str()));
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut seen: BTreeMap<(Ipv4Addr, &str, u16), &str> = BTreeMap::new();
        for l in self.listeners.values() {
            if let Some(other) = seen.insert((l.vip, l.mode.l4(), l.port), &l.uuid) {
                return Err(Invalid::Clash(format!(
                    "listener {}: {} port {} on vip {} is already used by listener {other}",
                    l.uuid,
                    l.mode.l4(),
                    l.port,
                    l.vip
                )));
            }
            if let Some(c) = &l.certificate
                && !self.certificates.contains(c)
            {
                return Err(Invalid::Router(format!(
                    "listener {}: certificateUuid {c} was not uploaded (POST /certificate/create first)",
                    l.uuid
                )));
            }
        }
        Ok(())
    }

    /// The listeners served by haproxy (all but udp).
    pub fn proxied(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.values().filter(|l| l.mode != LbMode::Udp)
    }

    pub fn udp(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.values().filter(|l| l.mode == LbMode::Udp)
    }
}

#[cfg(test)]
mod tests;
