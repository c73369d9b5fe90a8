//! The router commands' entries where the node's Java code fills them
//! differently from a description's entry (zstackio/zstack 5a29293bd5,
//! `plugin/virtualRouterProvider/.../VirtualRouterCommands.java`,
//! `lb/VirtualRouterLoadBalancerBackend.java` `LbTO`). Each returns the
//! common::vr type the agent decodes, which serialises with the Java
//! class's fields only (see `common::vr`); the other entries (DNS, DHCP,
//! SNAT, VIPs, port forwarding, EIPs) go as the description has them.

use common::vr;

/// The `NicInfo` of `/configurenic` as `VirtualRouter.java` fills it after
/// a NIC is attached: no `firewallDefaultAction` (that follows by
/// `/configurenicdefaultaction`), and no `deviceName` (not a field of
/// `VirtualRouterCommands.NicInfo`: the bootstrap info's `ApplianceVmNicTO`
/// has it).
pub fn configure_nic(n: &vr::NicInfo) -> vr::NicInfo {
    vr::NicInfo {
        firewall_default_action: None,
        device_name: None,
        ..n.clone()
    }
}

/// The `NicInfo` of `/configurenicdefaultaction`
/// (`VyosChangePrivateL3FirewallDefaultActionFlow`): a guest NIC's address
/// and its action; None for a NIC without one.
pub fn nic_default_action(n: &vr::NicInfo) -> Option<vr::NicInfo> {
    let action = n.firewall_default_action.clone()?;
    Some(vr::NicInfo {
        ip: n.ip.clone(),
        is_default_route: false,
        gateway: n.gateway.clone(),
        mac: n.mac.clone(),
        netmask: n.netmask.clone(),
        firewall_default_action: Some(action),
        ..Default::default()
    })
}

/// `VirtualRouterCommands.NicIpTO` of one of the router's NICs with an
/// address (`/createvip`'s `nicIps`); None for a NIC without one.
pub fn nic_ip(n: &vr::NicInfo) -> Option<vr::NicIpInfo> {
    let ip = n.ip.clone().filter(|ip| !ip.is_empty())?;
    Some(vr::NicIpInfo {
        ip,
        netmask: n.netmask.clone().unwrap_or_default(),
        owner_ethernet_mac: n.mac.clone(),
    })
}

/// `VirtualRouterLoadBalancerBackend.LbTO`: `BackendServer.weight` is a
/// `long`, always written; a description may leave it out for the node's
/// default, 100.
pub fn lb(l: &vr::LbInfo) -> vr::LbInfo {
    let mut l = l.clone();
    for b in l
        .server_groups
        .iter_mut()
        .flat_map(|g| &mut g.backend_servers)
    {
        b.weight = Some(b.weight.unwrap_or(100));
    }
    l
}
