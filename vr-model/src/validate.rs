//! Validation: whether the router can take an edit, and why not (the
//! cause decides the reply; see [`Invalid`]). `validate` checks a whole
//! model; `check_added` the entries one edit adds, for the element-level
//! path; `edited` applies, validates and names the cause.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use common::net::Proto;

use crate::dhcp::DnsmasqState;
use crate::lb::LbState;
use crate::{Edit, Eip, Invalid, Model, PortForward, checks, field};

impl Model {
    /// An EIP VIP is bound to one guest.
    pub(crate) fn check_eip_vip(&self, e: &Eip) -> Result<(), Invalid> {
        match self.eips.get(&e.vip) {
            Some(old) if old.guest != e.guest => Err(Invalid::Clash(format!(
                "eip: vipIp {} is already the EIP of guest {}, not {}",
                e.vip, old.guest, e.guest
            ))),
            _ => Ok(()),
        }
    }

    /// The model with `edit` applied and validated, or why the router
    /// cannot take it. What the edit breaks on this router without any of
    /// its entries (only its NICs, management networks and certificates)
    /// is the request's own fault; only what it breaks beside the router's
    /// entries is a [`Invalid::Clash`].
    pub fn edited(&self, edit: &Edit) -> Result<Model, Invalid> {
        let mut next = self.clone();
        match next.apply(edit).and_then(|()| next.validate()) {
            Ok(()) => Ok(next),
            Err(e) => {
                let mut alone = self.without_entries();
                match alone.apply(edit).and_then(|()| alone.validate()) {
                    Ok(()) => Err(e),
                    Err(own) => Err(own.own()),
                }
            }
        }
    }

    /// This router's own configuration, without the entries the
    /// controller adds on it.
    fn without_entries(&self) -> Model {
        Model {
            nics: self.nics.clone(),
            snat_enabled: self.snat_enabled,
            mgmt_cidrs: self.mgmt_cidrs.clone(),
            dhcp: DnsmasqState {
                entries: BTreeMap::new(),
                ..self.dhcp.clone()
            },
            lb: LbState {
                listeners: BTreeMap::new(),
                ..self.lb.clone()
            },
            ..Model::default()
        }
    }

    /// The checks of `validate` for the entries an edit adds, against the
    /// rest of the model, so one rule added to thousands costs little.
    /// Only for edits that add entries to a valid model. Its verdict is
    /// [`Model::edited`]'s: the batch alone first (its own faults, then
    /// the management plane), then against the router's entries.
    pub fn check_added(&self, edit: &Edit) -> Result<(), Invalid> {
        match edit {
            Edit::CreatePortForwards(rules) => {
                unique_rule_uuids(rules)?;
                for (i, r) in rules.iter().enumerate() {
                    for o in &rules[..i] {
                        checks::pf_vs_pf(r, o).map_err(Invalid::own)?;
                    }
                }
                let mgmt = checks::mgmt_ips(self);
                for r in rules {
                    checks::pf_vs_mgmt(r, &mgmt)?;
                }
                for r in rules {
                    // The VIP first: a scan of 100 000 held rules comparing
                    // uuids took 1.8 ms, most of a one-rule change.
                    let held = self
                        .port_forwards
                        .values()
                        .filter(|o| o.vip == r.vip)
                        .filter(|o| !rules.iter().any(|n| n.uuid == o.uuid));
                    for o in held {
                        checks::pf_vs_pf(r, o)?;
                    }
                    if let Some(e) = self.eips.get(&r.vip) {
                        checks::pf_vs_eip(r, e)?;
                    }
                    for l in self.lb.listeners.values() {
                        checks::listener_vs_pf(l, r)?;
                    }
                }
                Ok(())
            }
            Edit::CreateEip(e) => {
                checks::eip_vs_mgmt(e, &checks::mgmt_ips(self))?;
                self.check_eip_vip(e)?;
                for l in self.lb.listeners.values() {
                    checks::listener_vs_eip(l, e)?;
                }
                for r in self.port_forwards.values() {
                    checks::pf_vs_eip(r, e)?;
                }
                for o in self.eips.values().filter(|o| o.vip != e.vip) {
                    checks::eip_vs_eip(e, o)?;
                }
                Ok(())
            }
            _ => self.validate(),
        }
    }

    /// Whole-model checks that no single entry can make alone.
    pub fn validate(&self) -> Result<(), Invalid> {
        // Port ranges on one VIP and protocol must not overlap.
        let mut by_key: BTreeMap<(Ipv4Addr, Proto), Vec<&PortForward>> = BTreeMap::new();
        for r in self.port_forwards.values() {
            by_key.entry((r.vip, r.proto)).or_default().push(r);
        }
        for mut rules in by_key.into_values() {
            rules.sort_by_key(|r| r.vip_ports.start);
            for w in rules.windows(2) {
                checks::pf_vs_pf(w[1], w[0])?;
            }
        }
        // A VIP is either an EIP (all ports) or carries port forwards.
        for r in self.port_forwards.values() {
            if let Some(e) = self.eips.get(&r.vip) {
                checks::pf_vs_eip(r, e)?;
            }
        }
        // Outbound EIP traffic is keyed by (public NIC, guest): one EIP each.
        let mut seen = BTreeMap::new();
        for e in self.eips.values() {
            if let Some(other) = seen.insert((e.public_mac, e.guest), e) {
                checks::eip_vs_eip(e, other)?;
            }
        }
        // A static lease's address is the router's to give once: dnsmasq's
        // dhcp-host lines are router-wide and it refuses an address twice
        // (found by fuzz/render_vr's parse-back: one guest on two NICs of
        // the same network).
        let mut leased = BTreeMap::new();
        for e in self.dhcp.entries.values() {
            if let Some(o) = leased.insert(e.ip, e) {
                return Err(Invalid::Clash(format!(
                    "dhcp entry (mac {} on VR NIC {}): ip: {} is already leased to mac {} on VR NIC {}",
                    e.mac, e.vr_nic_mac, e.ip, o.mac, o.vr_nic_mac
                )));
            }
        }
        // A guest's lease is not the router's own address on that NIC.
        for e in self.dhcp.entries.values() {
            if let Some(n) = self.nics.get(&e.vr_nic_mac)
                && n.ip.is_some_and(|(ip, _)| ip == e.ip)
            {
                return Err(Invalid::Router(format!(
                    "dhcp entry (mac {}): ip: {} is the router's own address on NIC {}",
                    e.mac, e.ip, n.mac
                )));
            }
        }
        self.lb.validate()?;
        // The management IP and the agent's port are the controller's.
        checks::management_plane(self)?;
        // A listener's VIP port is the listener's alone.
        for l in self.lb.listeners.values() {
            if let Some(e) = self.eips.get(&l.vip) {
                checks::listener_vs_eip(l, e)?;
            }
            for r in self.port_forwards.values().filter(|r| r.vip == l.vip) {
                checks::listener_vs_pf(l, r)?;
            }
        }
        Ok(())
    }
}

/// One batch names each port forwarding rule once: a map would keep only
/// the last of two rules with one uuid (and the two checks would disagree on
/// which one counts).
pub(crate) fn unique_rule_uuids(rules: &[PortForward]) -> Result<(), Invalid> {
    field::unique(rules, "rules", "uuid", |r| r.uuid.clone())
        .map_err(|e| Invalid::Request(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dhcp::DhcpEdit;
    use common::net::{Mac, PortRange};

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    pub fn pf(uuid: &str, vip: &str, start: u16, end: u16) -> PortForward {
        PortForward {
            uuid: uuid.into(),
            proto: Proto::Tcp,
            vip: vip.parse().unwrap(),
            vip_ports: PortRange { start, end },
            private_ip: "192.168.100.10".parse().unwrap(),
            private_ports: PortRange { start, end },
            public_mac: mac("fa:26:9c:aa:00:02"),
            private_mac: mac("fa:26:9c:aa:00:03"),
            allowed: None,
            snat_inbound: false,
        }
    }

    fn eip(vip: &str, guest: &str) -> Eip {
        Eip {
            vip: vip.parse().unwrap(),
            guest: guest.parse().unwrap(),
            public_mac: mac("fa:26:9c:aa:00:02"),
            private_mac: mac("fa:26:9c:aa:00:03"),
            snat_inbound: false,
        }
    }

    #[test]
    fn overlapping_ranges_are_named() {
        let mut m = Model::default();
        m.apply(&Edit::CreatePortForwards(vec![
            pf("a", "172.20.10.100", 8000, 8100),
            pf("b", "172.20.10.100", 8100, 8200),
        ]))
        .unwrap();
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains("rule b") && e.contains("rule a"), "{e}");
        // Different VIP: fine.
        let mut m = Model::default();
        m.apply(&Edit::CreatePortForwards(vec![
            pf("a", "172.20.10.100", 8000, 8100),
            pf("b", "172.20.10.101", 8000, 8100),
        ]))
        .unwrap();
        m.validate().unwrap();
    }

    /// One guest leased on two NICs (of one network) made dnsmasq refuse
    /// its config; a lease's address is given once per router.
    #[test]
    fn a_lease_address_is_given_once_per_router() {
        let entry = |nic: &str| {
            let w: common::vr::DhcpInfo = serde_json::from_value(serde_json::json!({
                "ip": "192.168.100.31", "mac": "fa:a1:5e:12:34:61", "netmask": "255.255.255.0",
                "vrNicMac": nic, "isDefaultL3Network": true}))
            .unwrap();
            crate::dhcp::entries(&[w]).unwrap()
        };
        let mut m = Model::default();
        let add = |m: &mut Model, nic| {
            m.apply(&Edit::Dhcp(DhcpEdit::Add {
                entries: entry(nic),
                rebuild: false,
            }))
            .unwrap()
        };
        add(&mut m, "fa:26:9c:aa:00:03");
        m.validate().unwrap();
        add(&mut m, "fa:26:9c:aa:00:04");
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("192.168.100.31 is already leased to mac fa:a1:5e:12:34:61"),
            "{e}"
        );
    }

    #[test]
    fn eip_vip_bound_to_other_guest_is_refused() {
        let mut m = Model::default();
        m.apply(&Edit::CreateEip(eip("172.20.10.101", "192.168.100.10")))
            .unwrap();
        m.apply(&Edit::CreateEip(eip("172.20.10.101", "192.168.100.10")))
            .unwrap();
        let e = m
            .apply(&Edit::CreateEip(eip("172.20.10.101", "192.168.100.11")))
            .unwrap_err();
        assert!(
            e.message()
                .contains("already the EIP of guest 192.168.100.10"),
            "{e}"
        );
    }

    #[test]
    fn eip_and_pf_cannot_share_a_vip() {
        let mut m = Model::default();
        m.apply(&Edit::CreateEip(eip("172.20.10.101", "192.168.100.10")))
            .unwrap();
        m.apply(&Edit::CreatePortForwards(vec![pf(
            "x",
            "172.20.10.101",
            80,
            80,
        )]))
        .unwrap();
        assert!(m.validate().is_err());
    }

    const PUB: &str = "fa:26:9c:aa:00:02";
    const PRIV: &str = "fa:26:9c:aa:00:03";
    const PRIV2: &str = "fa:26:9c:aa:00:04";
    const MGMT_IP: &str = "10.0.0.25";

    fn nic(m: &str, ip: &str, category: crate::NicCategory) -> crate::Nic {
        crate::Nic {
            mac: mac(m),
            ip: Some((ip.parse().unwrap(), 24)),
            gateway: None,
            is_default_route: false,
            category,
            mtu: None,
            default_action: None,
            ip6: None,
            gateway6: None,
        }
    }

    /// A router with a management, a public and two private NICs (of one
    /// network), one port forward on
    /// .100 (ports 80-90) and one EIP on .101.
    fn router() -> Model {
        use crate::NicCategory::{Management, Private, Public};
        let m = Model::default()
            .edited(&Edit::ConfigureNics(vec![
                nic("fa:26:9c:aa:00:01", MGMT_IP, Management),
                nic(PUB, "172.20.10.5", Public),
                nic(PRIV, "192.168.100.1", Private),
                nic(PRIV2, "192.168.100.2", Private),
            ]))
            .unwrap();
        let m = m
            .edited(&Edit::CreatePortForwards(vec![pf(
                "a",
                "172.20.10.100",
                80,
                90,
            )]))
            .unwrap();
        m.edited(&Edit::CreateEip(eip("172.20.10.101", "192.168.100.10")))
            .unwrap()
    }

    fn cause(r: Result<Model, Invalid>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(Invalid::Request(_)) => "request",
            Err(Invalid::Clash(_)) => "clash",
            Err(Invalid::Router(_)) => "router",
        }
    }

    /// The fault decides the cause, whatever the kind of edit: a batch
    /// whose own entries clash is the request's (incremental or sync); a
    /// clash with a held entry is a clash (a sync's too); the management
    /// plane is the router's. The element-level path agrees.
    #[test]
    fn the_cause_is_the_fault_not_the_kind_of_edit() {
        let m = router();
        let own = vec![
            pf("b", "172.20.10.100", 100, 110),
            pf("c", "172.20.10.100", 105, 106),
        ];
        let held = vec![pf("b", "172.20.10.100", 85, 95)];
        let on_eip = vec![pf("b", "172.20.10.101", 80, 80)];
        let on_agent = vec![pf("b", MGMT_IP, 7272, 7272)];
        let cases = [
            (Edit::CreatePortForwards(own.clone()), "request"),
            (Edit::SyncPortForwards(own), "request"),
            (Edit::CreatePortForwards(held.clone()), "clash"),
            (Edit::SyncPortForwards(held), "ok"),
            (Edit::CreatePortForwards(on_eip.clone()), "clash"),
            (Edit::SyncPortForwards(on_eip), "clash"),
            (Edit::CreatePortForwards(on_agent.clone()), "router"),
            (Edit::SyncPortForwards(on_agent), "router"),
            (Edit::CreateEip(eip(MGMT_IP, "192.168.100.10")), "router"),
            (
                Edit::SyncEips(vec![eip(MGMT_IP, "192.168.100.10")]),
                "router",
            ),
            (
                Edit::CreateEip(eip("172.20.10.101", "192.168.100.11")),
                "clash",
            ),
            (
                Edit::CreateEip(eip("172.20.10.100", "192.168.100.11")),
                "clash",
            ),
            (
                Edit::SyncEips(vec![eip("172.20.10.100", "192.168.100.11")]),
                "clash",
            ),
            (
                Edit::SyncEips(vec![
                    eip("172.20.10.102", "192.168.100.11"),
                    eip("172.20.10.102", "192.168.100.12"),
                ]),
                "request",
            ),
        ];
        for (edit, want) in cases {
            assert_eq!(cause(m.edited(&edit)), want, "{edit:?}");
            if matches!(edit, Edit::CreatePortForwards(_) | Edit::CreateEip(_)) {
                let fast = m.check_added(&edit).map(|()| m.clone());
                assert_eq!(cause(fast), want, "check_added {edit:?}");
            }
        }
    }

    #[test]
    fn a_lease_twice_in_one_request_is_its_fault_beside_a_held_one_a_clash() {
        // One address leased on two NICs: dnsmasq's dhcp-host lines are
        // router-wide.
        let entry = |mac: &str, nic: &str| {
            let w: common::vr::DhcpInfo = serde_json::from_value(serde_json::json!({
                "ip": "192.168.100.31", "mac": mac, "netmask": "255.255.255.0",
                "vrNicMac": nic, "isDefaultL3Network": true}))
            .unwrap();
            crate::dhcp::entries(&[w]).unwrap()
        };
        let add = |entries| {
            Edit::Dhcp(DhcpEdit::Add {
                entries,
                rebuild: false,
            })
        };
        let m = router();
        let mut both = entry("fa:a1:5e:12:34:61", PRIV);
        both.extend(entry("fa:a1:5e:12:34:62", PRIV2));
        assert_eq!(cause(m.edited(&add(both))), "request");
        let m = m.edited(&add(entry("fa:a1:5e:12:34:61", PRIV))).unwrap();
        let again = entry("fa:a1:5e:12:34:62", PRIV2);
        assert_eq!(cause(m.edited(&add(again))), "clash");
        // The router's own address on that NIC is the router's.
        let mut own_ip = entry("fa:a1:5e:12:34:63", PRIV);
        own_ip[0].ip = "192.168.100.1".parse().unwrap();
        assert_eq!(cause(m.edited(&add(own_ip))), "router");
    }
}
