//! Field checks shared by the listener and parameter parsers.

use std::net::Ipv4Addr;

use common::net::{Ipv4Net, parse_ipv4};
use common::text::quoted;

use crate::field::FieldError;

pub(super) struct Ctx {
    pub(super) entry: String,
}

impl Ctx {
    pub(super) fn err(&self, field: &'static str, reason: impl ToString) -> FieldError {
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
pub(super) fn check_uri(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '#' | '$' | '{' | '}')
        })
}

pub(super) fn num<T>(c: &Ctx, field: &'static str, v: &str, min: T, max: T) -> Result<T, FieldError>
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

pub(super) fn port(c: &Ctx, field: &'static str, v: i64) -> Result<u16, FieldError> {
    if (1..=65535).contains(&v) {
        Ok(v as u16)
    } else {
        Err(c.err(field, format!("{v} is not a port (1-65535)")))
    }
}

/// The CIDRs that cover `a..=b` exactly.
pub(super) fn range_cidrs(a: Ipv4Addr, b: Ipv4Addr) -> Vec<Ipv4Net> {
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

pub(super) fn acl_entries(c: &Ctx, v: &str) -> Result<Vec<Ipv4Net>, FieldError> {
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
