//! Field-level errors of protocol bodies and the checks every service's
//! conversion shares: each error names the entry (list position and its
//! identity) and the field, in the protocol's names.

use std::net::{Ipv4Addr, Ipv6Addr};

use common::net::{Ipv4Net, Mac, netmask_prefix, parse_ipv4};
use common::text::{excerpt, quoted};

/// A field-level validation error: "<entry>: <field>: <reason>".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {field}: {reason}")]
pub struct FieldError {
    pub entry: String,
    pub field: &'static str,
    pub reason: String,
}

/// One entry of a request, by its position and identity, for errors.
pub(crate) struct Entry(pub(crate) String);

impl Entry {
    pub(crate) fn err(&self, field: &'static str, reason: impl ToString) -> FieldError {
        FieldError {
            entry: self.0.clone(),
            field,
            reason: reason.to_string(),
        }
    }
    pub(crate) fn mac(&self, field: &'static str, s: &str) -> Result<Mac, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        s.trim().parse().map_err(|e| self.err(field, e))
    }
    pub(crate) fn ip(&self, field: &'static str, s: &str) -> Result<Ipv4Addr, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        parse_ipv4(s).map_err(|e| self.err(field, e))
    }
    /// An address a host, VIP or guest can have: not 0.0.0.0, broadcast,
    /// loopback, multicast or link-local (none of them can be a NIC's,
    /// a VIP's or a guest's address on a routed network).
    pub(crate) fn host_ip(&self, field: &'static str, s: &str) -> Result<Ipv4Addr, FieldError> {
        let ip = self.ip(field, s)?;
        check_host_ip(ip).map_err(|r| self.err(field, r))?;
        Ok(ip)
    }
    /// [`Self::host_ip`], and not the network or broadcast address of its
    /// subnet when the prefix is known (and leaves room for both).
    pub(crate) fn host_in(
        &self,
        field: &'static str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), FieldError> {
        check_host_in(ip, prefix).map_err(|r| self.err(field, r))
    }
    /// An optional gateway: a unicast address when given.
    pub(crate) fn opt_gateway(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv4Addr>, FieldError> {
        let ip = self.opt_ip(field, s)?;
        if let Some(ip) = ip {
            check_host_ip(ip).map_err(|r| self.err(field, r))?;
        }
        Ok(ip)
    }
    pub(crate) fn opt_ip(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv4Addr>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => self.ip(field, s).map(Some),
        }
    }
    pub(crate) fn opt_ip6(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<Ipv6Addr>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => {
                let ip: Ipv6Addr = s.parse().map_err(|_| {
                    self.err(field, format!("{} is not an IPv6 address", quoted(s)))
                })?;
                check_ip6(ip).map_err(|r| self.err(field, r))?;
                Ok(Some(ip))
            }
        }
    }
    pub(crate) fn prefix6(&self, field: &'static str, p: Option<i64>) -> Result<u8, FieldError> {
        match p {
            None => Err(self.err(field, "is missing")),
            Some(p) if (1..=128).contains(&p) => Ok(p as u8),
            Some(p) => Err(self.err(field, format!("{p} is outside 1-128"))),
        }
    }
    pub(crate) fn netmask(&self, field: &'static str, s: &str) -> Result<u8, FieldError> {
        if s.trim().is_empty() {
            return Err(self.err(field, "is missing"));
        }
        netmask_prefix(s).map_err(|e| self.err(field, e))
    }
    pub(crate) fn opt_netmask(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<u8>, FieldError> {
        match s.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => netmask_prefix(s).map(Some).map_err(|e| self.err(field, e)),
        }
    }
    pub(crate) fn mtu(
        &self,
        field: &'static str,
        m: Option<i64>,
    ) -> Result<Option<u32>, FieldError> {
        match m {
            None | Some(0) => Ok(None),
            Some(m) if (68..=65535).contains(&m) => Ok(Some(m as u32)),
            Some(m) => Err(self.err(field, format!("{m} is outside 68-65535"))),
        }
    }
    /// A host or domain name: dot-separated labels of letters, digits, '-'
    /// and '_', 1-63 bytes each, 253 in all. Anything else (newline, comma,
    /// '#', whitespace, control characters) could inject a directive.
    pub(crate) fn name(
        &self,
        field: &'static str,
        s: &Option<String>,
    ) -> Result<Option<String>, FieldError> {
        let s = match s.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(s) => s.trim_end_matches('.'),
        };
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(self.err(
                field,
                format!("{} contains {c:?}, not allowed in a name", quoted(s)),
            ));
        }
        if s.len() > 253 || s.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(self.err(
                field,
                format!(
                    "{} is not a valid DNS name (labels of 1-63, 253 in all)",
                    quoted(s)
                ),
            ));
        }
        Ok(Some(s.to_ascii_lowercase()))
    }
}

/// Refuses a batch where two entries share `key` (a uuid, an IP, a MAC):
/// a map would silently keep only the last one.
pub(crate) fn unique<T>(
    list: &[T],
    name: &str,
    field: &'static str,
    key: impl Fn(&T) -> String,
) -> Result<(), FieldError> {
    let mut seen = std::collections::BTreeMap::new();
    for (i, x) in list.iter().enumerate() {
        if let Some(j) = seen.insert(key(x), i) {
            return Err(FieldError {
                entry: format!("{name}[{i}]"),
                field,
                reason: format!("{} is also in {name}[{j}]", excerpt(&key(x))),
            });
        }
    }
    Ok(())
}

/// Why `ip` cannot be a host's, a VIP's or a guest's address.
pub fn check_host_ip(ip: Ipv4Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "is the unspecified address"
    } else if ip.is_broadcast() {
        "is the broadcast address"
    } else if ip.is_loopback() {
        "is a loopback address"
    } else if ip.is_multicast() {
        "is a multicast address"
    } else if ip.is_link_local() {
        "is a link-local address"
    } else if ip.octets()[0] >= 240 {
        "is a reserved (class E) address"
    } else {
        return Ok(());
    };
    Err(format!("{ip} {why}"))
}

/// Why `ip` cannot be a host of its /`prefix` subnet: its network or
/// broadcast address (a /31 or /32 has neither).
pub fn check_host_in(ip: Ipv4Addr, prefix: u8) -> Result<(), String> {
    if prefix >= 31 {
        return Ok(());
    }
    let net = Ipv4Net::containing(ip, prefix);
    let host_bits = u32::MAX >> prefix;
    let bits = u32::from(ip);
    if bits & host_bits == 0 {
        return Err(format!("{ip} is the network address of {net}"));
    }
    if bits & host_bits == host_bits {
        return Err(format!("{ip} is the broadcast address of {net}"));
    }
    Ok(())
}

/// Why `ip` cannot be a NIC's, a VIP's or a gateway's IPv6 address.
pub fn check_ip6(ip: Ipv6Addr) -> Result<(), String> {
    let why = if ip.is_unspecified() {
        "is the unspecified address"
    } else if ip.is_loopback() {
        "is the loopback address"
    } else if ip.is_multicast() {
        "is a multicast address"
    } else {
        return Ok(());
    };
    Err(format!("{ip} {why}"))
}
