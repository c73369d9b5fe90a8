//! The router commands' entries as the management node's Java classes
//! write them (zstackio/zstack 5a29293bd5,
//! `plugin/virtualRouterProvider/.../VirtualRouterCommands.java`,
//! `eip/EipTO.java`, `portforwarding/PortForwardingRuleTO.java`,
//! `lb/VirtualRouterLoadBalancerBackend.java` `LbTO`). Gson writes the
//! class's fields only, primitives always, null objects never; our wire
//! types (common::vr) are looser for decoding, so each entry is written
//! from them with exactly the Java class's fields.

use common::vr;
use serde_json::{Value, json};

use crate::client::gson;

/// `VirtualRouterCommands.NicInfo` (no `deviceName`: that is the bootstrap
/// info's `ApplianceVmNicTO`).
pub fn nic(n: &vr::NicInfo) -> Value {
    gson(&json!({
        "ip": n.ip, "mac": n.mac, "gateway": n.gateway, "netmask": n.netmask,
        "isDefaultRoute": n.is_default_route, "category": n.category,
        "physicalInterface": n.physical_interface, "l2type": n.l2type, "vni": n.vni,
        "firewallDefaultAction": n.firewall_default_action, "mtu": n.mtu, "ip6": n.ip6,
        "prefixLength": n.prefix_length, "gateway6": n.gateway6,
        "addressMode": n.address_mode, "state": n.state,
    }))
}

/// The `NicInfo` of `/configurenic` as `VirtualRouter.java` fills it after
/// a NIC is attached: no `firewallDefaultAction` (that follows by
/// `/configurenicdefaultaction`).
pub fn configure_nic(n: &vr::NicInfo) -> Value {
    let mut v = nic(n);
    if let Value::Object(o) = &mut v {
        o.remove("firewallDefaultAction");
    }
    v
}

/// The `NicInfo` of `/configurenicdefaultaction`
/// (`VyosChangePrivateL3FirewallDefaultActionFlow`): a guest NIC's address
/// and its action; None for a NIC without one.
pub fn nic_default_action(n: &vr::NicInfo) -> Option<Value> {
    let action = n.firewall_default_action.as_ref()?;
    Some(gson(&json!({
        "ip": n.ip, "isDefaultRoute": false, "gateway": n.gateway, "mac": n.mac,
        "netmask": n.netmask, "firewallDefaultAction": action,
    })))
}

/// `VirtualRouterCommands.NicIpTO` of one of the router's NICs (`/createvip`'s
/// `nicIps`).
pub fn nic_ip(n: &vr::NicInfo) -> Value {
    gson(&json!({"ip": n.ip, "netmask": n.netmask, "ownerEthernetMac": n.mac}))
}

/// `VirtualRouterCommands.DnsInfo`.
pub fn dns(d: &vr::DnsInfo) -> Value {
    gson(&json!({"dnsAddress": d.dns_address, "nicMac": d.nic_mac}))
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `VirtualRouterCommands.DhcpInfo`: `VyosDhcpBackend` sets only `ip`,
/// `mac`, `hostname` and `isDefaultL3Network` for `/refreshDhcpServer`, so
/// the list and strings it leaves null are left out when empty.
pub fn dhcp_info(d: &vr::DhcpInfo) -> Value {
    gson(&json!({
        "ip": d.ip, "mac": d.mac, "netmask": d.netmask, "gateway": d.gateway,
        "dns": (!d.dns.is_empty()).then_some(&d.dns), "hostname": d.hostname,
        "vrNicMac": non_empty(&d.vr_nic_mac), "dnsDomain": d.dns_domain,
        "isDefaultL3Network": d.is_default_l3_network, "mtu": d.mtu,
    }))
}

/// `VirtualRouterCommands.DhcpServerInfo`.
pub fn dhcp_server(s: &vr::DhcpServerInfo) -> Value {
    gson(&json!({
        "nicMac": s.nic_mac, "subnet": s.subnet, "netmask": s.netmask, "gateway": s.gateway,
        "dnsDomain": s.dns_domain, "dnsServer": s.dns_server, "mtu": s.mtu,
        "dhcpInfos": s.dhcp_infos.iter().map(dhcp_info).collect::<Vec<_>>(),
    }))
}

/// `VirtualRouterCommands.SNATInfo`.
pub fn snat(s: &vr::SnatInfo) -> Value {
    gson(&json!({
        "publicNicMac": s.public_nic_mac, "publicIp": s.public_ip,
        "privateNicMac": s.private_nic_mac, "privateNicIp": s.private_nic_ip,
        "privateGatewayIp": s.private_gateway_ip, "snatNetmask": s.snat_netmask,
        "state": s.state,
    }))
}

/// `VirtualRouterCommands.VipTO` (`prefixLength` is an `int`, `isSystem` a
/// `boolean`: always written).
pub fn vip(v: &vr::VipInfo) -> Value {
    gson(&json!({
        "ip": non_empty(&v.ip), "netmask": non_empty(&v.netmask), "gateway": v.gateway,
        "ip6": v.ip6, "prefixLength": v.prefix_length, "gateway6": v.gateway6,
        "ownerEthernetMac": v.owner_ethernet_mac, "vipUuid": v.vip_uuid,
        "isSystem": v.is_system,
    }))
}

/// `PortForwardingRuleTO`.
pub fn port_forward(r: &vr::PortForwardingRule) -> Value {
    gson(&json!({
        "uuid": r.uuid, "vipPortStart": r.vip_port_start, "vipPortEnd": r.vip_port_end,
        "privatePortStart": r.private_port_start, "privatePortEnd": r.private_port_end,
        "protocolType": r.protocol_type, "vipIp": r.vip_ip, "publicMac": r.public_mac,
        "privateIp": r.private_ip, "privateMac": r.private_mac, "allowedCidr": r.allowed_cidr,
        "snatInboundTraffic": r.snat_inbound_traffic,
    }))
}

/// `EipTO`.
pub fn eip(e: &vr::EipInfo) -> Value {
    gson(&json!({
        "vipIp": e.vip_ip, "privateMac": e.private_mac, "publicMac": e.public_mac,
        "guestIp": e.guest_ip, "snatInboundTraffic": e.snat_inbound_traffic,
        "needCleanGuestIp": e.need_clean_guest_ip,
    }))
}

/// `VirtualRouterLoadBalancerBackend.LbTO` (`enableFullLog`: the
/// `vyos.enable.loadbalancer.full.log` default, false, unless set).
pub fn lb(l: &vr::LbInfo) -> Value {
    let groups: Vec<Value> = l
        .server_groups
        .iter()
        .map(|g| {
            json!({"name": g.name, "serverGroupUuid": g.server_group_uuid,
                   "backendServers": g.backend_servers.iter()
                       .map(|b| json!({"ip": b.ip, "weight": b.weight.unwrap_or(100)}))
                       .collect::<Vec<_>>(),
                   "isDefault": g.is_default})
        })
        .collect();
    gson(&json!({
        "lbUuid": l.lb_uuid, "listenerUuid": l.listener_uuid, "vip": l.vip, "vip6": l.vip6,
        "publicNic": l.public_nic, "nicIps": l.nic_ips, "instancePort": l.instance_port,
        "loadBalancerPort": l.load_balancer_port, "mode": l.mode, "parameters": l.parameters,
        "certificateUuid": l.certificate_uuid, "securityPolicyType": l.security_policy_type,
        "serverGroups": groups, "redirectRules": l.redirect_rules, "vipL3Uuid": l.vip_l3_uuid,
        "enableFullLog": l.enable_full_log,
    }))
}
