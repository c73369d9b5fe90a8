//! `LbTO` listeners, log levels and certificates from the wire.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use common::net::parse_ipv4;
use common::text::quoted;
use common::vr;

use super::fields::*;
use super::params::*;
use super::*;
use crate::field::FieldError;

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
