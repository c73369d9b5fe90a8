//! One `<interface type='bridge'>` element from a `NicTO`: shared by the
//! domain XML of `/vm/start` and the device XML of `/vm/attachnic`, so a
//! hot-plugged NIC looks exactly like one the VM was started with.

use std::fmt::Write as _;

use super::{DomainError, esc, invalid};
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
