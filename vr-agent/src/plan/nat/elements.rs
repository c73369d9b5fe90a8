//! The set and map elements each EIP, port forward and SNAT network puts in
//! the table.

use std::collections::BTreeMap;

use common::net::{IfName, Mac, PortRange};

use super::{FlowMatch, MAX_SHIFTED_PORTS, PlanError};
use vr_model::{Eip, PortForward, Snat};

/// One element of a set or map: (set, element text, flows it affects).
pub type Element = (&'static str, String, Option<FlowMatch>);

fn link(
    links: &BTreeMap<Mac, IfName>,
    mac: &Mac,
    what: impl FnOnce() -> String,
) -> Result<IfName, PlanError> {
    links.get(mac).cloned().ok_or_else(|| PlanError::NoSuchNic {
        what: what(),
        mac: *mac,
    })
}

/// The elements one EIP puts in the table.
pub fn eip_elements(e: &Eip, links: &BTreeMap<Mac, IfName>) -> Result<Vec<Element>, PlanError> {
    let pub_if = link(links, &e.public_mac, || format!("eip {}: publicMac", e.vip))?;
    let priv_if = link(links, &e.private_mac, || {
        format!("eip {}: privateMac", e.vip)
    })?;
    let mut out = vec![
        (
            "eip_dnat",
            format!("{} : {}", e.vip, e.guest),
            Some(FlowMatch::Dst(e.vip)),
        ),
        (
            "eip_snat",
            format!("\"{pub_if}\" . {} : {}", e.guest, e.vip),
            Some(FlowMatch::Src(e.guest)),
        ),
    ];
    if e.snat_inbound {
        out.push(("eip_inbound", format!("\"{priv_if}\" . {}", e.guest), None));
    }
    out.push(("count_eip_in", e.vip.to_string(), None));
    out.push(("count_eip_out", format!("\"{pub_if}\" . {}", e.guest), None));
    Ok(out)
}

/// The elements one port forwarding rule puts in the table.
pub fn pf_elements(
    r: &PortForward,
    links: &BTreeMap<Mac, IfName>,
) -> Result<Vec<Element>, PlanError> {
    link(links, &r.public_mac, || {
        format!("port forwarding rule {}: publicMac", r.uuid)
    })?;
    link(links, &r.private_mac, || {
        format!("port forwarding rule {}: privateMac", r.uuid)
    })?;
    let flow = Some(FlowMatch::DstPorts(r.vip, r.proto, r.vip_ports));
    let (vip, p, pip) = (r.vip, r.proto, r.private_ip);
    let key = format!("{vip} . {p} . {}", range(r.vip_ports));
    let mut out = vec![];
    if r.vip_ports.is_single() {
        out.push((
            "pf_exact",
            format!("{key} : {pip} . {}", r.private_ports.start),
            flow,
        ));
    } else if r.private_ports.is_single() {
        out.push((
            "pf_range_one",
            format!("{key} : {pip} . {}", r.private_ports.start),
            flow,
        ));
    } else if r.private_ports.start == r.vip_ports.start {
        out.push(("pf_range_keep", format!("{key} : {pip}"), flow));
    } else {
        shifted(r, &mut |set, el, f| out.push((set, el, f)))?;
    }
    if let Some(cidr) = r.allowed {
        out.push(("pf_restricted", key.clone(), None));
        out.push(("pf_allowed", format!("{key} . {cidr}"), None));
    }
    // Keyed by the VIP side, which no two rules share (the model refuses
    // overlapping VIP ports): keyed by the guest side, two rules on two
    // VIPs to one guest's ports made overlapping intervals nft refuses.
    if r.snat_inbound {
        out.push(("pf_inbound", key.clone(), None));
    }
    let counter = if r.vip_ports.is_single() {
        "count_pf_in"
    } else {
        "count_pf_range_in"
    };
    out.push((counter, key, None));
    Ok(out)
}

/// The counter element of an SNAT network leaving by `pub_if`.
pub fn snat_counter(pub_if: &IfName, s: &Snat) -> String {
    format!("\"{pub_if}\" . {}", s.private_net)
}

fn range(r: PortRange) -> String {
    if r.is_single() {
        r.start.to_string()
    } else {
        format!("{}-{}", r.start, r.end)
    }
}

fn shifted(
    r: &PortForward,
    add: &mut impl FnMut(&'static str, String, Option<FlowMatch>),
) -> Result<(), PlanError> {
    if r.vip_ports.count() > MAX_SHIFTED_PORTS {
        return Err(PlanError::Unsupported(format!(
            "port forwarding rule {}: vip ports {} map to private ports {} at another offset; \
             at most {MAX_SHIFTED_PORTS} ports are supported for that",
            r.uuid, r.vip_ports, r.private_ports
        )));
    }
    let flow = Some(FlowMatch::DstPorts(r.vip, r.proto, r.vip_ports));
    for i in 0..r.vip_ports.count() as u16 {
        add(
            "pf_exact",
            format!(
                "{} . {} . {} : {} . {}",
                r.vip,
                r.proto,
                r.vip_ports.start + i,
                r.private_ip,
                r.private_ports.start + i
            ),
            flow,
        );
    }
    Ok(())
}
