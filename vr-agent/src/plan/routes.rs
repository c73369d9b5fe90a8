//! Static routes the agent owns besides the default route: the management
//! node's networks via the management NIC's gateway. A router's default
//! route is on its public NIC, so without these a management node in
//! another subnet would get its replies through the public side (zvr adds
//! the same routes from `managementNodeCidr` at boot and `mgtCidr` on
//! `/init`: zstack-vyos 63bc11a, zvrboot/zvrboot_utils.go configureNicInfo
//! and plugin/misc.go initHandler).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use common::net::{IfName, Ipv4Net, Mac};

use super::PlanError;
use vr_model::{Model, NicCategory};

/// A route `dst via gateway dev <the NIC with mac>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaticRoute {
    pub dst: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mac: Mac,
}

/// The same route with the interface it leaves by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ifname: IfName,
}

/// Routes to the management node's networks. None when there is no
/// management NIC with a gateway, and none for a network the management
/// NIC reaches on-link (it is its own subnet, or inside it).
pub fn mgmt_routes(m: &Model) -> BTreeSet<StaticRoute> {
    let Some(nic) = m
        .nics
        .values()
        .find(|n| n.category == NicCategory::Management)
    else {
        return BTreeSet::new();
    };
    let (Some(gateway), Some(net)) = (nic.gateway, nic.network()) else {
        return BTreeSet::new();
    };
    let on_link = |c: &Ipv4Net| net.prefix_len() <= c.prefix_len() && net.contains(c.addr());
    [m.mgmt_cidrs.boot, m.mgmt_cidrs.init]
        .into_iter()
        .flatten()
        // 0.0.0.0/0 would be a second default route: the default is the
        // public NIC's.
        .filter(|c| !c.is_any() && !on_link(c))
        .map(|dst| StaticRoute {
            dst,
            gateway,
            mac: nic.mac,
        })
        .collect()
}

/// The routes with their interfaces; a NIC the box lacks is an error.
pub fn resolve(
    routes: &BTreeSet<StaticRoute>,
    links: &BTreeMap<Mac, IfName>,
) -> Result<BTreeSet<Route>, PlanError> {
    routes
        .iter()
        .map(|r| {
            let ifname = links
                .get(&r.mac)
                .cloned()
                .ok_or_else(|| PlanError::NoSuchNic {
                    what: format!("route to {} via {}: management NIC", r.dst, r.gateway),
                    mac: r.mac,
                })?;
            Ok(Route {
                dst: r.dst,
                gateway: r.gateway,
                ifname,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vr_model::{CidrSource, Edit, Nic};

    fn model(boot: Option<&str>, init: Option<&str>) -> Model {
        let mut m = Model::default();
        m.apply(&Edit::ConfigureNics(vec![Nic {
            mac: "fa:26:9c:aa:00:01".parse().unwrap(),
            ip: Some(("10.0.0.25".parse().unwrap(), 24)),
            gateway: Some("10.0.0.1".parse().unwrap()),
            is_default_route: false,
            category: NicCategory::Management,
            mtu: None,
            default_action: None,
            ip6: None,
            gateway6: None,
        }]))
        .unwrap();
        for (source, c) in [(CidrSource::Bootstrap, boot), (CidrSource::Init, init)] {
            m.apply(&Edit::SetMgmtCidr {
                source,
                cidr: c.map(|c| c.parse().unwrap()),
            })
            .unwrap();
        }
        m
    }

    fn dsts(m: &Model) -> Vec<String> {
        mgmt_routes(m).iter().map(|r| r.dst.to_string()).collect()
    }

    #[test]
    fn routes_the_management_node_via_the_management_gateway() {
        let m = model(Some("10.9.0.0/16"), Some("10.9.0.0/16"));
        let r: Vec<_> = mgmt_routes(&m).into_iter().collect();
        assert_eq!(r.len(), 1, "both sources name one network: one route");
        assert_eq!(r[0].gateway.to_string(), "10.0.0.1");
        assert_eq!(
            dsts(&model(Some("10.9.0.0/16"), Some("10.8.0.0/16"))),
            ["10.8.0.0/16", "10.9.0.0/16"]
        );
    }

    #[test]
    fn no_route_when_on_link_or_without_gateway() {
        assert!(dsts(&model(Some("10.0.0.0/24"), Some("10.0.0.128/25"))).is_empty());
        assert!(dsts(&model(Some("0.0.0.0/0"), None)).is_empty());
        // A wider network than the management subnet still needs the route
        // for the rest of it.
        assert_eq!(dsts(&model(None, Some("10.0.0.0/8"))), ["10.0.0.0/8"]);
        let mut m = model(Some("10.9.0.0/16"), None);
        m.nics.values_mut().for_each(|n| n.gateway = None);
        assert!(dsts(&m).is_empty());
    }
}
