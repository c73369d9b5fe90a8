//! `parameters` items (`key::value`) into typed listener settings.

use common::net::parse_ipv4;
use common::text::quoted;

use super::fields::*;
use super::*;
use crate::field::FieldError;

/// The raw `parameters` of one listener, parsed.
pub(super) fn params(
    c: &Ctx,
    raw: &[String],
    mode: LbMode,
) -> Result<(LbParams, Vec<String>), FieldError> {
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
