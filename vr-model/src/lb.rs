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

use common::net::{Ipv4Net, Mac, parse_ipv4};
use common::text::quoted;
use common::vr;
use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::field::FieldError;

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

// ---------------------------------------------------------------- from the wire

struct Ctx {
    entry: String,
}

impl Ctx {
    fn err(&self, field: &'static str, reason: impl ToString) -> FieldError {
        FieldError {
            entry: self.entry.clone(),
            field,
            reason: reason.to_string(),
        }
    }
}

/// A name or identifier that goes into the haproxy config or a file name.
pub fn check_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A URI path or host name: printable, no space, quote, backslash or `#`.
fn check_uri(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '#' | '$' | '{' | '}')
        })
}

fn num<T>(c: &Ctx, field: &'static str, v: &str, min: T, max: T) -> Result<T, FieldError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match v.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(c.err(
            field,
            format!("{} is not a number in {min}-{max}", quoted(v)),
        )),
    }
}

fn port(c: &Ctx, field: &'static str, v: i64) -> Result<u16, FieldError> {
    if (1..=65535).contains(&v) {
        Ok(v as u16)
    } else {
        Err(c.err(field, format!("{v} is not a port (1-65535)")))
    }
}

/// The CIDRs that cover `a..=b` exactly.
fn range_cidrs(a: Ipv4Addr, b: Ipv4Addr) -> Vec<Ipv4Net> {
    let (mut lo, hi) = (u64::from(u32::from(a)), u64::from(u32::from(b)));
    let mut out = vec![];
    while lo <= hi {
        let mut len = 32u8;
        while len > 0 {
            let size = 1u64 << (32 - (len - 1));
            if lo % size != 0 || lo + size - 1 > hi {
                break;
            }
            len -= 1;
        }
        out.push(Ipv4Net::containing(Ipv4Addr::from(lo as u32), len));
        lo += 1u64 << (32 - len);
    }
    out
}

fn acl_entries(c: &Ctx, v: &str) -> Result<Vec<Ipv4Net>, FieldError> {
    let mut out = vec![];
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (
                parse_ipv4(a.trim()).map_err(|e| c.err("aclEntry", e))?,
                parse_ipv4(b.trim()).map_err(|e| c.err("aclEntry", e))?,
            );
            if a > b {
                return Err(c.err("aclEntry", format!("range {} is reversed", quoted(item))));
            }
            out.extend(range_cidrs(a, b));
        } else {
            out.push(item.parse().map_err(|e| c.err("aclEntry", e))?);
        }
    }
    Ok(out)
}

/// The raw `parameters` of one listener, parsed.
fn params(c: &Ctx, raw: &[String], mode: LbMode) -> Result<(LbParams, Vec<String>), FieldError> {
    let mut p = LbParams::default();
    let mut ignored = vec![];
    let (mut acl_on, mut acl_kind, mut acl_list) = (false, AclKind::Black, vec![]);
    let (mut persist, mut cookie, mut sess_idle) = (None::<String>, None::<String>, None);
    let (mut redirect, mut redirect_port, mut status) = (false, 443u16, 302u16);
    let mut check_param: Option<String> = None;
    let mut check_target: Option<String> = None;
    for item in raw {
        let Some((key, v)) = item.split_once("::") else {
            return Err(c.err("parameters", format!("{} is not key::value", quoted(item))));
        };
        let v = v.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "balanceralgorithm" => {
                p.algorithm = Some(match v {
                    "roundrobin" => Algorithm::RoundRobin,
                    "leastconn" => Algorithm::LeastConn,
                    "source" => Algorithm::Source,
                    "weightroundrobin" | "static-rr" => Algorithm::StaticRr,
                    o => {
                        return Err(c.err(
                            "parameters balancerAlgorithm",
                            format!(
                                "{} is not roundrobin, leastconn, source or weightroundrobin",
                                quoted(o)
                            ),
                        ));
                    }
                })
            }
            "connectionidletimeout" => {
                p.idle_timeout_s = Some(num(c, "parameters connectionIdleTimeout", v, 1, 86400)?)
            }
            "maxconnection" => {
                p.max_conn = Some(num(c, "parameters maxConnection", v, 1, 10_000_000)?)
            }
            "nbprocess" => p.nbprocess = Some(num(c, "parameters Nbprocess", v, 1, 64)?),
            "healthchecktarget" => check_target = Some(v.to_string()),
            "healthcheckparameter" => check_param = Some(v.to_string()),
            "healthcheckinterval" => {
                p.health.interval_s = num(c, "parameters healthCheckInterval", v, 1, 3600)?
            }
            "healthchecktimeout" => {
                p.health.timeout_s = num(c, "parameters healthCheckTimeout", v, 1, 3600)?
            }
            "healthythreshold" => p.health.rise = num(c, "parameters healthyThreshold", v, 1, 100)?,
            "unhealthythreshold" => {
                p.health.fall = num(c, "parameters unhealthyThreshold", v, 1, 100)?
            }
            "balancerweight" => {
                let (ip, w) = v.split_once("::").ok_or_else(|| {
                    c.err(
                        "parameters balancerWeight",
                        format!("{} is not <ip>::<weight>", quoted(v)),
                    )
                })?;
                let ip =
                    parse_ipv4(ip.trim()).map_err(|e| c.err("parameters balancerWeight", e))?;
                p.weights
                    .insert(ip, num(c, "parameters balancerWeight", w, 0, 256)?);
            }
            "sessionpersistence" => persist = Some(v.to_string()),
            "sessionidletimeout" => {
                sess_idle = Some(num(c, "parameters sessionIdleTimeout", v, 0, 86400 * 30)?)
            }
            "cookiename" => cookie = Some(v.to_string()).filter(|s| !s.is_empty()),
            "httpmode" => {
                if !v.is_empty() {
                    if !HTTP_MODES.contains(&v) {
                        return Err(c.err(
                            "parameters httpMode",
                            format!("{} is not one of {}", quoted(v), HTTP_MODES.join(", ")),
                        ));
                    }
                    p.http_mode = Some(v.to_string());
                }
            }
            "httpredirecthttps" => redirect = v.eq_ignore_ascii_case("enable"),
            "redirectport" => redirect_port = num(c, "parameters redirectPort", v, 1, 65535)?,
            "statuscode" => status = num(c, "parameters statusCode", v, 300, 399)?,
            "accesscontrolstatus" => acl_on = v.eq_ignore_ascii_case("enable"),
            "acltype" => {
                acl_kind = match v.to_ascii_lowercase().as_str() {
                    "black" => AclKind::Black,
                    "white" => AclKind::White,
                    o => {
                        return Err(c.err(
                            "parameters aclType",
                            format!("{} is not black or white", quoted(o)),
                        ));
                    }
                }
            }
            "aclentry" => acl_list = acl_entries(c, v)?,
            "httpversions" => {
                for x in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    p.alpn.push(match x.to_ascii_lowercase().as_str() {
                        "h2" | "http2" => "h2".to_string(),
                        "http1.1" | "http/1.1" | "h1" => "http/1.1".to_string(),
                        o => {
                            return Err(c.err(
                                "parameters httpVersions",
                                format!("{} is not h2 or http1.1", quoted(o)),
                            ));
                        }
                    });
                }
            }
            "tcpproxyprotocol" => {
                p.proxy_protocol = match v.to_ascii_lowercase().as_str() {
                    "" | "none" | "disable" => None,
                    "v1" => Some(1),
                    "v2" => Some(2),
                    o => {
                        return Err(c.err(
                            "parameters tcpProxyProtocol",
                            format!("{} is not v1 or v2", quoted(o)),
                        ));
                    }
                }
            }
            "httpcompressalgos" => {
                for x in v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
                    if !["gzip", "deflate", "raw-deflate", "identity"].contains(&x) {
                        return Err(c.err(
                            "parameters httpCompressAlgos",
                            format!(
                                "{} is not gzip, deflate, raw-deflate or identity",
                                quoted(x)
                            ),
                        ));
                    }
                    p.compression.push(x.to_string());
                }
            }
            _ => ignored.push(item.clone()),
        }
    }
    if let Some(t) = check_target.filter(|t| !t.is_empty()) {
        let (proto, port) = t.split_once(':').unwrap_or((t.as_str(), "default"));
        p.health.port = match port {
            "default" | "" => None,
            n => Some(num(c, "parameters healthCheckTarget", n, 1, 65535)?),
        };
        p.health.kind = match proto.to_ascii_lowercase().as_str() {
            "tcp" | "udp" => HealthKind::Tcp,
            "http" => {
                let raw = check_param.unwrap_or_else(|| "HEAD:/:http_2xx".into());
                let mut parts = raw.splitn(3, ':');
                let method = parts.next().unwrap_or("HEAD").trim().to_ascii_uppercase();
                let uri = parts.next().unwrap_or("/").trim().to_string();
                let codes = parts.next().unwrap_or("http_2xx");
                if method.is_empty() || !method.chars().all(|ch| ch.is_ascii_uppercase()) {
                    return Err(c.err(
                        "parameters healthCheckParameter",
                        format!("method {} is not a word", quoted(&method)),
                    ));
                }
                if !uri.starts_with('/') || !check_uri(&uri) {
                    return Err(c.err(
                        "parameters healthCheckParameter",
                        format!("uri {} is not a path", quoted(&uri)),
                    ));
                }
                let mut classes = vec![];
                for code in codes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let n = code
                        .strip_prefix("http_")
                        .and_then(|x| x.strip_suffix("xx"))
                        .and_then(|d| d.parse::<u8>().ok())
                        .filter(|d| (1..=5).contains(d))
                        .ok_or_else(|| {
                            c.err(
                                "parameters healthCheckParameter",
                                format!("{} is not http_1xx-http_5xx", quoted(code)),
                            )
                        })?;
                    classes.push(n);
                }
                if classes.is_empty() {
                    classes.push(2);
                }
                HealthKind::Http {
                    method,
                    uri,
                    classes,
                }
            }
            o => {
                return Err(c.err(
                    "parameters healthCheckTarget",
                    format!("{} is not tcp or http", quoted(o)),
                ));
            }
        };
    }
    if p.health.timeout_s > p.health.interval_s {
        p.health.timeout_s = p.health.interval_s;
    }
    let http = matches!(mode, LbMode::Http | LbMode::Https);
    let valid_cookie = |s: &str| check_ident(s) && !s.contains('.');
    match persist.as_deref() {
        None | Some("") | Some("disable") => {}
        Some(kind @ ("insert" | "rewrite")) if http => {
            let name = cookie.clone().unwrap_or_else(|| "SERVERID".into());
            if !valid_cookie(&name) {
                return Err(c.err(
                    "parameters cookieName",
                    format!("{} is not a cookie name", quoted(&name)),
                ));
            }
            p.persistence = Some(if kind == "insert" {
                Persistence::Insert {
                    cookie: name,
                    idle_s: sess_idle.filter(|s| *s > 0),
                }
            } else {
                Persistence::Rewrite { cookie: name }
            });
        }
        Some("insert" | "rewrite") => {
            return Err(c.err(
                "parameters sessionPersistence",
                format!(
                    "cookies need an http or https listener, not {}",
                    mode.as_str()
                ),
            ));
        }
        Some(o) => {
            return Err(c.err(
                "parameters sessionPersistence",
                format!("{} is not disable, insert or rewrite", quoted(o)),
            ));
        }
    }
    if redirect {
        if mode != LbMode::Http {
            return Err(c.err(
                "parameters httpRedirectHttps",
                "only an http listener can redirect to https",
            ));
        }
        p.redirect_https = Some(HttpsRedirect {
            port: redirect_port,
            code: status,
        });
    }
    if acl_on {
        if acl_kind == AclKind::White && acl_list.is_empty() {
            return Err(c.err(
                "parameters aclEntry",
                "a white list needs at least one entry",
            ));
        }
        p.acl = Some(Acl {
            kind: acl_kind,
            entries: acl_list,
        });
    }
    Ok((p, ignored))
}

/// A redirect rule's text: `host`, `host/path` or `/path`.
fn redirect_rule(c: &Ctx, i: usize, r: &vr::RedirectRule) -> Result<RedirectRule, FieldError> {
    let text = r.redirect_rule.trim();
    if !check_ident(&r.redirect_rule_uuid) {
        return Err(c.err(
            "redirectRules.redirectRuleUuid",
            format!("[{i}] {} is not an id", quoted(&r.redirect_rule_uuid)),
        ));
    }
    if !check_ident(&r.server_group_uuid) {
        return Err(c.err(
            "redirectRules.serverGroupUuid",
            format!("[{i}] {} is not an id", quoted(&r.server_group_uuid)),
        ));
    }
    if !check_uri(text) {
        return Err(c.err(
            "redirectRules.redirectRule",
            format!("[{i}] {} is not host[/path] or /path", quoted(text)),
        ));
    }
    let (host, path) = match text.find('/') {
        Some(0) => (None, Some(text.to_string())),
        Some(n) => (Some(text[..n].to_string()), Some(text[n..].to_string())),
        None => (Some(text.to_string()), None),
    };
    let path = path.filter(|p| p != "/");
    Ok(RedirectRule {
        uuid: r.redirect_rule_uuid.clone(),
        host,
        path,
        group: r.server_group_uuid.clone(),
    })
}

/// The listeners a refresh names: those with backends, and the uuids of
/// those without (a listener with no backends is removed, as in zvr).
pub fn listeners(list: &[vr::LbInfo]) -> Result<(Vec<Listener>, Vec<String>), FieldError> {
    let (mut keep, mut remove) = (vec![], vec![]);
    for (i, l) in list.iter().enumerate() {
        match listener(i, l)? {
            Some(x) => keep.push(x),
            None => remove.push(l.listener_uuid.clone()),
        }
    }
    Ok((keep, remove))
}

pub fn listener_uuids(list: &[vr::LbInfo]) -> Result<Vec<String>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, l)| {
            let c = Ctx {
                entry: format!("lbs[{i}] (listenerUuid {})", l.listener_uuid),
            };
            if check_ident(&l.listener_uuid) {
                Ok(l.listener_uuid.clone())
            } else {
                Err(c.err("listenerUuid", "is not an id"))
            }
        })
        .collect()
}

pub fn listener(i: usize, l: &vr::LbInfo) -> Result<Option<Listener>, FieldError> {
    let c = Ctx {
        entry: format!("lbs[{i}] (listenerUuid {})", l.listener_uuid),
    };
    if !check_ident(&l.listener_uuid) {
        return Err(c.err(
            "listenerUuid",
            "is missing or has characters other than letters, digits, - _ .",
        ));
    }
    if !check_ident(&l.lb_uuid) {
        return Err(c.err(
            "lbUuid",
            "is missing or has characters other than letters, digits, - _ .",
        ));
    }
    let mode = match l.mode.to_ascii_lowercase().as_str() {
        "tcp" => LbMode::Tcp,
        "http" => LbMode::Http,
        "https" => LbMode::Https,
        "udp" => LbMode::Udp,
        o => {
            return Err(c.err(
                "mode",
                format!("{} is not tcp, http, https or udp", quoted(o)),
            ));
        }
    };
    let vip = match l.vip.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(c.err("vip", "is missing (IPv6-only listeners are not supported)"));
        }
        Some(v) => {
            let ip = parse_ipv4(v).map_err(|e| c.err("vip", e))?;
            crate::field::check_host_ip(ip).map_err(|e| c.err("vip", e))?;
            ip
        }
    };
    let public_mac = match l.public_nic.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(m.parse().map_err(|e| c.err("publicNic", e))?),
    };
    let (params, ignored) = params(&c, &l.parameters, mode)?;
    let weight_of = |ip: &Ipv4Addr| params.weights.get(ip).copied().unwrap_or(100);
    let mut nic_ips = vec![];
    for s in &l.nic_ips {
        let ip = parse_ipv4(s.trim()).map_err(|e| c.err("nicIps", e))?;
        if !nic_ips.iter().any(|b: &Backend| b.ip == ip) {
            nic_ips.push(Backend {
                ip,
                weight: weight_of(&ip),
            });
        }
    }
    let mut groups = vec![];
    for (gi, g) in l.server_groups.iter().enumerate() {
        if !check_ident(&g.server_group_uuid) {
            return Err(c.err(
                "serverGroups.serverGroupUuid",
                format!("[{gi}] {} is not an id", quoted(&g.server_group_uuid)),
            ));
        }
        let mut servers = vec![];
        for s in &g.backend_servers {
            let ip =
                parse_ipv4(s.ip.trim()).map_err(|e| c.err("serverGroups.backendServers.ip", e))?;
            let weight = match s.weight {
                Some(w) if (0..=256).contains(&w) => w as u16,
                Some(w) => {
                    return Err(c.err(
                        "serverGroups.backendServers.weight",
                        format!("{w} is outside 0-256"),
                    ));
                }
                None => weight_of(&ip),
            };
            servers.push(Backend { ip, weight });
        }
        groups.push(ServerGroup {
            uuid: g.server_group_uuid.clone(),
            name: g.name.clone(),
            servers,
            is_default: g.is_default,
        });
    }
    let redirect_rules = l
        .redirect_rules
        .iter()
        .enumerate()
        .map(|(ri, r)| redirect_rule(&c, ri, r))
        .collect::<Result<Vec<_>, _>>()?;
    for r in &redirect_rules {
        if !groups.iter().any(|g| g.uuid == r.group) {
            return Err(c.err(
                "redirectRules.serverGroupUuid",
                format!("{} names no server group of the listener", r.group),
            ));
        }
    }
    // The default pool: the default group(s); else every group no redirect
    // rule targets; else nicIps.
    let targeted: BTreeSet<&str> = redirect_rules.iter().map(|r| r.group.as_str()).collect();
    let mut backends: Vec<Backend> = vec![];
    let defaults: Vec<&ServerGroup> = if groups.iter().any(|g| g.is_default) {
        groups.iter().filter(|g| g.is_default).collect()
    } else {
        groups
            .iter()
            .filter(|g| !targeted.contains(g.uuid.as_str()))
            .collect()
    };
    for g in defaults {
        for s in &g.servers {
            if !backends.iter().any(|b| b.ip == s.ip) {
                backends.push(s.clone());
            }
        }
    }
    if backends.is_empty() {
        backends = nic_ips;
    }
    let groups: Vec<ServerGroup> = groups
        .into_iter()
        .filter(|g| targeted.contains(g.uuid.as_str()))
        .collect();
    if backends.is_empty() && groups.iter().all(|g| g.servers.is_empty()) {
        return Ok(None);
    }
    let certificate = l.certificate_uuid.clone().filter(|s| !s.trim().is_empty());
    if let Some(cert) = &certificate
        && !check_ident(cert)
    {
        return Err(c.err("certificateUuid", format!("{} is not an id", quoted(cert))));
    }
    if mode == LbMode::Https && certificate.is_none() {
        return Err(c.err("certificateUuid", "an https listener needs a certificate"));
    }
    let cipher_policy = l
        .security_policy_type
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tls_cipher_policy_default".into());
    if !CIPHER_POLICIES.contains(&cipher_policy.as_str()) {
        return Err(c.err(
            "securityPolicyType",
            format!(
                "{} is not one of {}",
                quoted(&cipher_policy),
                CIPHER_POLICIES.join(", ")
            ),
        ));
    }
    if mode == LbMode::Udp && (!groups.is_empty() || params.acl.is_some()) {
        // Redirect rules are HTTP; ACLs for udp would need nft sets: refuse
        // rather than pretend.
        return Err(c.err(
            if groups.is_empty() {
                "parameters accessControlStatus"
            } else {
                "redirectRules"
            },
            "is not supported for udp listeners",
        ));
    }
    Ok(Some(Listener {
        uuid: l.listener_uuid.clone(),
        lb_uuid: l.lb_uuid.clone(),
        vip,
        public_mac,
        port: port(&c, "loadBalancerPort", l.load_balancer_port)?,
        instance_port: port(&c, "instancePort", l.instance_port)?,
        mode,
        backends,
        groups,
        redirect_rules,
        certificate: if mode == LbMode::Https {
            certificate
        } else {
            None
        },
        cipher_policy,
        full_log: l.enable_full_log,
        params,
        ignored_parameters: ignored,
    }))
}

pub fn log_level(level: &str) -> Result<String, FieldError> {
    let l = level.trim().to_ascii_lowercase();
    let l = match l.as_str() {
        "warn" => "warning".to_string(),
        "error" => "err".to_string(),
        _ => l,
    };
    if LOG_LEVELS.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(FieldError {
            entry: "lb/log/level".into(),
            field: "level",
            reason: format!("{} is not one of {}", quoted(level), LOG_LEVELS.join(", ")),
        })
    }
}

/// A PEM bundle must hold a certificate and a private key.
pub fn certificate(uuid: &str, pem: &str) -> Result<(), FieldError> {
    let e = |field, reason: &str| FieldError {
        entry: format!("certificate {}", common::text::excerpt(uuid)),
        field,
        reason: reason.to_string(),
    };
    if !check_ident(uuid) {
        return Err(e("uuid", "is missing or is not an id"));
    }
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(e("certificate", "has no PEM certificate"));
    }
    if !(pem.contains("PRIVATE KEY-----")) {
        return Err(e("certificate", "has no PEM private key"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(params: &[&str]) -> vr::LbInfo {
        vr::LbInfo {
            lb_uuid: "lb1".into(),
            listener_uuid: "l1".into(),
            vip: Some("172.20.10.102".into()),
            nic_ips: vec!["192.168.100.10".into(), "192.168.100.11".into()],
            instance_port: 80,
            load_balancer_port: 80,
            mode: "http".into(),
            parameters: params.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parameters_are_parsed_and_unknown_kept() {
        let l = listener(
            0,
            &lb(&[
                "balancerWeight::192.168.100.11::3",
                "balancerAlgorithm::weightroundrobin",
                "healthCheckTarget::http:8080",
                "healthCheckParameter::GET:/health:http_2xx,http_3xx",
                "accessControlStatus::enable",
                "aclType::white",
                "aclEntry::10.0.0.0/8,192.168.1.1-192.168.1.6",
                "frobnicate::yes",
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(l.backends[1].weight, 3);
        assert_eq!(l.backends[0].weight, 100);
        assert_eq!(l.params.algorithm, Some(Algorithm::StaticRr));
        assert_eq!(l.params.health.port, Some(8080));
        assert_eq!(
            l.params.health.kind,
            HealthKind::Http {
                method: "GET".into(),
                uri: "/health".into(),
                classes: vec![2, 3]
            }
        );
        let acl = l.params.acl.unwrap();
        let got: Vec<String> = acl.entries.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            got,
            [
                "10.0.0.0/8",
                "192.168.1.1/32",
                "192.168.1.2/31",
                "192.168.1.4/31",
                "192.168.1.6/32"
            ]
        );
        assert_eq!(l.ignored_parameters, vec!["frobnicate::yes".to_string()]);
    }

    #[test]
    fn errors_name_listener_and_key() {
        let e = listener(0, &lb(&["healthCheckInterval::soon"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listenerUuid l1") && e.contains("healthCheckInterval"),
            "{e}"
        );
        let e = listener(
            0,
            &lb(&[
                "healthCheckParameter::GET:/a b:http_2xx",
                "healthCheckTarget::http:default",
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("healthCheckParameter"), "{e}");
    }

    #[test]
    fn no_backends_means_removed() {
        let mut x = lb(&[]);
        x.nic_ips.clear();
        assert_eq!(listeners(&[x]).unwrap(), (vec![], vec!["l1".to_string()]));
    }

    #[test]
    fn same_vip_port_is_a_conflict_and_used_certs_stay() {
        let a = listener(0, &lb(&[])).unwrap().unwrap();
        let mut b = a.clone();
        b.uuid = "l2".into();
        let mut s = LbState::default();
        s.apply(&LbEdit::Refresh {
            listeners: vec![a, b.clone()],
            remove: vec![],
            log: false,
        })
        .unwrap();
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("listener l2") && e.contains("listener l1"),
            "{e}"
        );
        let mut s = LbState::default();
        s.apply(&LbEdit::Certs(vec!["c1".into(), "c2".into()]))
            .unwrap();
        b.mode = LbMode::Https;
        b.certificate = Some("c1".into());
        s.apply(&LbEdit::Refresh {
            listeners: vec![b],
            remove: vec![],
            log: false,
        })
        .unwrap();
        assert_eq!(s.certificates.iter().collect::<Vec<_>>(), vec!["c1"]);
        assert!(s.apply(&LbEdit::DeleteCert("c1".into())).is_err());
    }
}
