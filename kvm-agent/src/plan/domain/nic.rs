//! One `<interface type='bridge'>` element from a `NicTO`: shared by the
//! domain XML of `/vm/start` and the device XML of `/vm/attachnic`, so a
//! hot-plugged NIC looks exactly like one the VM was started with. Also the
//! NIC's anti-spoofing guard (`guard_of`), which needs the same NIC checks.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{DomainError, esc, invalid};
use crate::plan::antispoof::NicGuardSpec;
use crate::wire::vm::NicTo;

pub(crate) fn tap_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub(crate) fn mac_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The element, each line prefixed with `indent`; errors name the field as
/// `<field>.<name>` (`nics[0].mac` in a start, `nic.mac` in an attach).
pub fn interface_xml(n: &NicTo, field: &str, indent: &str) -> Result<String, DomainError> {
    let at = |f: &str| format!("{field}.{f}");
    if !mac_ok(&n.mac) {
        return Err(invalid(at("mac"), &n.mac, "is not a MAC address"));
    }
    if n.bridge_name.is_empty() {
        return Err(invalid(at("bridgeName"), "", "is required"));
    }
    if !tap_name_ok(&n.bridge_name) {
        return Err(invalid(
            at("bridgeName"),
            &n.bridge_name,
            "is not an interface name",
        ));
    }
    if !n.nic_internal_name.is_empty() && !tap_name_ok(&n.nic_internal_name) {
        return Err(invalid(
            at("nicInternalName"),
            &n.nic_internal_name,
            "is not a valid tap name (15 characters at most)",
        ));
    }
    if let Some(m) = n.mtu.filter(|m| *m > 0 && !(68..=65535).contains(m)) {
        return Err(invalid(
            at("mtu"),
            m.to_string(),
            "is not a valid MTU (68-65535)",
        ));
    }
    let model = match (n.driver_type.as_str(), n.use_virtio) {
        ("e1000", _) | ("", Some(false)) => "e1000",
        ("virtio" | "", _) => "virtio",
        (d, _) => return Err(invalid(at("driverType"), d, "is not virtio or e1000")),
    };
    let mut x = String::new();
    let w = &mut x;
    let _ = writeln!(w, "{indent}<interface type='bridge'>");
    let _ = writeln!(
        w,
        "{indent}  <mac address='{}'/>",
        n.mac.to_ascii_lowercase()
    );
    let _ = writeln!(w, "{indent}  <source bridge='{}'/>", esc(&n.bridge_name));
    if !n.nic_internal_name.is_empty() {
        let _ = writeln!(w, "{indent}  <target dev='{}'/>", esc(&n.nic_internal_name));
    }
    let _ = writeln!(w, "{indent}  <model type='{model}'/>");
    if let Some(mtu) = n.mtu.filter(|m| *m > 0) {
        let _ = writeln!(w, "{indent}  <mtu size='{mtu}'/>");
    }
    if n.state == "disable" {
        let _ = writeln!(w, "{indent}  <link state='down'/>");
    }
    let _ = writeln!(w, "{indent}</interface>");
    Ok(x)
}

/// The guard a NIC asks for: None unless `cleanTraffic` is true. The tap
/// name must be given (the rules are bound to it before the tap exists).
pub fn guard_of(n: &NicTo, field: &str) -> Result<Option<NicGuardSpec>, DomainError> {
    if n.clean_traffic != Some(true) {
        return Ok(None);
    }
    let bad = |f: &str, v: &str, why: &'static str| DomainError::Invalid {
        field: format!("{field}.{f}"),
        value: v.to_string(),
        why,
    };
    if n.nic_internal_name.is_empty() {
        return Err(bad(
            "nicInternalName",
            "",
            "is required with cleanTraffic=true (the anti-spoofing rules are bound to the tap)",
        ));
    }
    if !tap_name_ok(&n.nic_internal_name) {
        return Err(bad(
            "nicInternalName",
            &n.nic_internal_name,
            "is not a valid tap name",
        ));
    }
    if !mac_ok(&n.mac) {
        return Err(bad("mac", &n.mac, "is not a MAC address"));
    }
    let (mut ipv4, mut ipv6) = (Vec::new(), Vec::new());
    for ip in &n.ips {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => ipv4.push(a),
            Ok(IpAddr::V6(a)) => ipv6.push(a),
            Err(_) => return Err(bad("ips", ip, "is not an IP address")),
        }
    }
    Ok(Some(NicGuardSpec {
        tap: n.nic_internal_name.clone(),
        mac: n.mac.to_ascii_lowercase(),
        ipv4,
        ipv6,
    }))
}

#[cfg(test)]
mod tests;
