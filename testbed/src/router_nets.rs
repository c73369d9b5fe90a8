//! [`RouterNets`]: the router topology of the vr-agent tests and benchmarks.

use anyhow::Result;

use crate::links::{addr, bridge, enslave, route, set_mac, veth};
use crate::netns::Netns;

/// MACs of the router's NICs in [`RouterNets`]: management, public, private.
pub const MGMT_MAC: &str = "fa:26:9c:aa:00:01";
pub const PUB_MAC: &str = "fa:26:9c:aa:00:02";
pub const PRIV_MAC: &str = "fa:26:9c:aa:00:03";

/// The router topology of the vr-agent tests and benchmarks:
///
/// ```text
///  ctl (10.0.0.2) --eth0-- vr (10.0.0.25) --eth1-- pub (172.20.0.1, the outside)
///                           |eth2
///                  tenant (192.168.100.10, gw .1)
/// ```
/// With `backends` > 0 the VR's eth2, the tenant and that many backend
/// guests (192.168.100.11, .12, ...) are ports of a bridge `br0` in a `lan`
/// namespace instead of one veth. The VR's NICs carry [`MGMT_MAC`],
/// [`PUB_MAC`], [`PRIV_MAC`]; only its management address is set (the
/// agent configures the rest).
pub struct RouterNets {
    pub backends: Vec<Netns>,
    pub lan: Option<Netns>,
    pub tenant: Netns,
    pub public: Netns,
    pub ctl: Netns,
    pub vr: Netns,
}

impl RouterNets {
    pub fn new(backends: usize) -> Result<RouterNets> {
        let vr = Netns::new("vr")?;
        let ctl = Netns::new("ctl")?;
        let public = Netns::new("pub")?;
        let tenant = Netns::new("ten")?;
        veth(&vr, "eth0", &ctl, "eth0")?;
        veth(&vr, "eth1", &public, "eth0")?;
        let mut guests = vec![];
        let lan = if backends == 0 {
            veth(&vr, "eth2", &tenant, "eth0")?;
            None
        } else {
            let lan = Netns::new("lan")?;
            bridge(&lan, "br0")?;
            veth(&vr, "eth2", &lan, "p-vr")?;
            enslave(&lan, "p-vr", "br0")?;
            veth(&tenant, "eth0", &lan, "p-ten")?;
            enslave(&lan, "p-ten", "br0")?;
            for i in 0..backends {
                let b = Netns::new(&format!("be{i}"))?;
                let port = format!("p-be{i}");
                veth(&b, "eth0", &lan, &port)?;
                enslave(&lan, &port, "br0")?;
                addr(&b, "eth0", &format!("192.168.100.{}/24", 11 + i))?;
                route(&b, "default via 192.168.100.1")?;
                guests.push(b);
            }
            Some(lan)
        };
        set_mac(&vr, "eth0", MGMT_MAC)?;
        set_mac(&vr, "eth1", PUB_MAC)?;
        set_mac(&vr, "eth2", PRIV_MAC)?;
        // The management address comes from the bootstrap info, before the agent starts.
        addr(&vr, "eth0", "10.0.0.25/24")?;
        addr(&ctl, "eth0", "10.0.0.2/24")?;
        addr(&public, "eth0", "172.20.0.1/16")?;
        addr(&tenant, "eth0", "192.168.100.10/24")?;
        route(&tenant, "default via 192.168.100.1")?;
        Ok(RouterNets {
            backends: guests,
            lan,
            tenant,
            public,
            ctl,
            vr,
        })
    }
}
