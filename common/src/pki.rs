//! A small certificate authority (feature `pki`): what vrctl and the lab
//! use to give each agent a server certificate and the controller a client
//! certificate, and what the tests use to make them.
//!
//! * The CA signs server certificates (extended key usage `serverAuth`,
//!   the agent's addresses as subject alternative names) and client
//!   certificates (`clientAuth` only): a router's certificate cannot be used
//!   to command another router or a host.
//! * Keys are ECDSA P-256. Leaves last `days` (default a year), the CA ten
//!   years.
//! * On disk (`save`/`load`): `ca.pem`, `ca.key` (0600) and `ca.name` (the
//!   CA's common name, from which its issuer identity is rebuilt).

use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub certificate: String,
    pub private_key: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate.len())
            .finish_non_exhaustive()
    }
}

pub struct Authority {
    name: String,
    key: KeyPair,
    certificate_pem: String,
    /// The CA as rcgen signs with it (its name, key identifier, usages).
    issuer: rcgen::Certificate,
}

/// Days since 1970-01-01 as (year, month, day) (proleptic Gregorian).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn validity(p: &mut CertificateParams, days: u32) {
    let today = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 / 86_400);
    // From yesterday: clocks of a freshly booted router may lag.
    let (y, m, d) = civil(today - 1);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil(today + i64::from(days));
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

fn serial(p: &mut CertificateParams) -> Result<(), PkiError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PkiError::Io {
            path: "/dev/urandom".into(),
            reason: e.to_string(),
        })?;
    bytes[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&bytes));
    Ok(())
}

fn name(cn: &str) -> Result<DistinguishedName, PkiError> {
    if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
        return Err(PkiError::Invalid(format!(
            "certificate name {cn:?}: 1 to 64 characters, no control characters"
        )));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "vrctl");
    Ok(dn)
}

fn ca_params(cn: &str) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(cn)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

impl Authority {
    /// A new CA named `cn`.
    pub fn create(cn: &str) -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = ca_params(cn)?;
        validity(&mut p, 3650);
        serial(&mut p)?;
        let cert = p.self_signed(&key)?;
        Ok(Authority {
            name: cn.to_string(),
            certificate_pem: cert.pem(),
            issuer: cert,
            key,
        })
    }

    /// The CA saved by [`Authority::save`].
    pub fn load(dir: &Path) -> Result<Authority, PkiError> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(|e| PkiError::Io {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        let cn = read("ca.name")?.trim().to_string();
        let key = KeyPair::from_pem(&read("ca.key")?)?;
        let certificate_pem = read("ca.pem")?;
        // Issued certificates name the CA by its subject and key
        // identifier: rebuilt from the same name and key they match
        // `ca.pem` (this copy's own signature is never used).
        let issuer = ca_params(&cn)?.self_signed(&key)?;
        Ok(Authority {
            name: cn,
            key,
            certificate_pem,
            issuer,
        })
    }

    /// Write `ca.pem`, `ca.key` (0600) and `ca.name` into `dir` (0700,
    /// created when missing).
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |p: &Path, e: std::io::Error| PkiError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(dir, e))?;
        write_private(&dir.join("ca.key"), &self.key.serialize_pem())?;
        write_private(&dir.join("ca.pem"), &self.certificate_pem)?;
        write_private(&dir.join("ca.name"), &format!("{}\n", self.name))?;
        Ok(())
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    fn issue(&self, mut p: CertificateParams, days: u32) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        validity(&mut p, days);
        serial(&mut p)?;
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Issued {
            certificate: cert.pem(),
            private_key: key.serialize_pem(),
        })
    }

    /// A server certificate for an agent reached at `addresses` (and
    /// `dns_names`).
    pub fn issue_server(
        &self,
        cn: &str,
        addresses: &[IpAddr],
        dns_names: &[String],
        days: u32,
    ) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = name(cn)?;
        p.subject_alt_names = addresses.iter().map(|a| SanType::IpAddress(*a)).collect();
        for d in dns_names {
            p.subject_alt_names.push(SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|_| PkiError::Invalid(format!("DNS name {d:?}")))?,
            ));
        }
        if p.subject_alt_names.is_empty() {
            return Err(PkiError::Invalid(
                "a server certificate needs an address or DNS name".into(),
            ));
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(p, days)
    }

    /// A client certificate (the controller's).
    pub fn issue_client(&self, cn: &str, days: u32) -> Result<Issued, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = name(cn)?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(p, days)
    }
}

/// Write-then-rename, mode 0600 (see [`crate::files::write_private`]).
pub fn write_private(path: &Path, text: &str) -> Result<(), PkiError> {
    crate::files::write_private(path, text.as_bytes()).map_err(|e| PkiError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(20_788), (2026, 12, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
