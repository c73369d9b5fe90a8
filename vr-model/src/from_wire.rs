//! Protocol bodies -> validated model entries: the index of every
//! service's conversion. Each error names the entry (list position and its
//! identity) and the field, in the protocol's names.

pub use crate::dhcp::{entries, entry, entry_keys, server, server_macs, servers};
pub use crate::dns::{dns, vpc_dns};
pub use crate::field::{FieldError, check_host_in, check_host_ip, check_ip6};
pub use crate::nat::{eip, eips, port_forward, port_forwards, snat, snats, vip, vip_ips, vips};
pub use crate::nic::{
    change_default_nic, default_actions, mgmt_cidr, nic, nic_ips, nic_macs, nics,
};

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;
    use common::vr;

    #[test]
    fn errors_name_entry_and_field() {
        let r = vr::PortForwardingRule {
            uuid: "u1".into(),
            vip_port_start: 80,
            vip_port_end: 80,
            private_port_start: 80,
            private_port_end: 80,
            protocol_type: "TCP".into(),
            vip_ip: "172.20.10.300".into(),
            public_mac: "fa:26:9c:aa:00:02".into(),
            private_ip: "192.168.100.10".into(),
            private_mac: "fa:26:9c:aa:00:03".into(),
            ..Default::default()
        };
        let e = port_forwards(std::slice::from_ref(&r))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "rules[0] (uuid u1): vipIp: \"172.20.10.300\" is not an IPv4 address"
        );
        let mut r2 = r;
        r2.vip_ip = "172.20.10.100".into();
        r2.vip_port_end = 90;
        r2.private_port_end = 85;
        let e = port_forwards(&[r2]).unwrap_err().to_string();
        assert!(e.contains("privatePortStart/privatePortEnd"), "{e}");
    }

    #[test]
    fn allowed_cidr_any_means_everyone() {
        let r = vr::PortForwardingRule {
            uuid: "u1".into(),
            vip_port_start: 80,
            vip_port_end: 80,
            private_port_start: 80,
            private_port_end: 80,
            protocol_type: "udp".into(),
            vip_ip: "172.20.10.100".into(),
            public_mac: "fa:26:9c:aa:00:02".into(),
            private_ip: "192.168.100.10".into(),
            private_mac: "fa:26:9c:aa:00:03".into(),
            allowed_cidr: Some("0.0.0.0/0".into()),
            ..Default::default()
        };
        assert_eq!(port_forward(0, &r).unwrap().allowed, None);
    }
}
