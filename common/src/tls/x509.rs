//! The subject and serial of an X.509 certificate, for the audit line and
//! for telling certificates apart after a rotation: just enough DER to
//! reach `tbsCertificate.serialNumber` and `.subject`.
//! Anything it cannot read yields a fixed text, never a panic (property
//! test in `tls_tests.rs`).

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
/// Attributes named at most (the line stays short whatever the subject).
const MAX_PARTS: usize = 8;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        _ => None,
    }
}

fn subject_name(cert: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, mut rdns, _) = element(rest)? else {
        return None;
    };
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (SET, mut set, next) = element(rdns)? else {
            return None;
        };
        rdns = next;
        while !set.is_empty() {
            let (SEQUENCE, atv, next) = element(set)? else {
                return None;
            };
            set = next;
            let (OID, oid, value) = element(atv)? else {
                return None;
            };
            let (_, value, _) = element(value)?;
            if let Some(name) = attribute_name(oid)
                && parts.len() < MAX_PARTS
            {
                let text: String = String::from_utf8_lossy(value)
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                parts.push(format!("{name}={}", crate::text::excerpt_n(&text, 64)));
            }
        }
    }
    Some(if parts.is_empty() {
        "(empty subject)".into()
    } else {
        parts.join(",")
    })
}

/// `CN=...,O=...` of a DER certificate; "(unreadable subject)" when the
/// DER is not what a certificate looks like.
pub fn subject_of(der: &[u8]) -> String {
    subject_name(der).unwrap_or_else(|| "(unreadable subject)".into())
}

/// The serial number of a DER certificate, as hex.
pub fn serial_of(der: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    let (0x02, serial, _) = element(rest)? else {
        return None;
    };
    Some(serial.iter().map(|b| format!("{b:02x}")).collect())
}
