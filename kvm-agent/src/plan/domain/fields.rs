//! Checks of `StartVmCmd` values before they are written into the XML.

use super::{DomainError, invalid};

/// Longest free-text field written into the domain XML.
const MAX_XML_TEXT: usize = 1024;

/// Free text written into the domain XML: bounded, and without control
/// characters, which XML 1.0 cannot carry (libvirt refuses the domain).
pub(super) fn xml_text(field: &str, v: &str) -> Result<(), DomainError> {
    if v.len() > MAX_XML_TEXT {
        return Err(invalid(field, v, "is longer than 1024 bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, v, "has a control character"));
    }
    Ok(())
}

/// A host path written into the domain XML (the API layer also confines
/// it to the configured directories; the plan does not rely on that).
pub(super) fn xml_path(field: &str, v: &str) -> Result<(), DomainError> {
    if v.chars().any(char::is_control) {
        return Err(invalid(field, v, "has a control character"));
    }
    Ok(())
}

/// The boot devices libvirt knows (`<boot dev=...>`).
pub fn check_boot_devs(devs: &[String]) -> Result<(), DomainError> {
    match devs
        .iter()
        .find(|d| !matches!(d.as_str(), "hd" | "cdrom" | "network" | "fd"))
    {
        Some(d) => Err(invalid("bootDev", d, "is not hd, cdrom, network or fd")),
        None => Ok(()),
    }
}
