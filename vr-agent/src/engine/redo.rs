//! Which services an edit must render again: each one only when its part
//! of the model, or the links it names, changed since it was put in
//! force. A `/setsnat` leaves 5 000 DHCP hosts and haproxy's config alone.

use std::collections::BTreeMap;

use common::net::{IfName, Mac};

use super::{Engine, Model};

pub(super) struct Redo {
    pub nat: bool,
    pub dhcp: bool,
    pub lb: bool,
}

/// What `plan::nat::render` reads. Destructured whole, so a field added
/// to the model must be placed here (read by the NAT table or not).
fn nat_inputs(m: &Model) -> impl PartialEq + '_ {
    let Model {
        nics,
        snat_enabled,
        snats,
        port_forwards,
        eips,
        vips: _,
        dhcp: _,
        lb: _,
        mgmt_cidrs: _,
    } = m;
    (nics, snat_enabled, snats, port_forwards, eips)
}

impl Engine {
    pub(super) fn to_redo(&self, next: &Model, links: &BTreeMap<Mac, IfName>) -> Redo {
        let old = &self.model;
        let links_same = self.links_seen.as_ref() == Some(links);
        Redo {
            nat: self.nat.applied.is_none() || !links_same || nat_inputs(old) != nat_inputs(next),
            dhcp: self.dhcp.files.is_none() || !links_same || old.dhcp != next.dhcp,
            // haproxy names no link; a failed reload (files unknown) or a
            // replaced certificate is retried by any edit.
            lb: old.lb != next.lb
                || self.lb.reload_pending
                || !self.lb.new_certs.is_empty()
                || self.lb.udp.is_none()
                || (self.lb.files.is_none() && next.lb.proxied().next().is_some()),
        }
    }
}
