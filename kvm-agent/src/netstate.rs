//! Internal, kernel-independent view of links, addresses and routes, and the
//! operations the bridge plans are made of. `plan/` works on these only, so it
//! can be tested without root; `sys::netlink` maps them to rtnetlink messages.

use std::fmt;
use std::net::IpAddr;

use common::net::Mac;
use rtnetlink::packet_route::route::RouteAttribute;

pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;
pub const PROTO_KERNEL: u8 = 2;
/// `RTNH_F_ONLINK`: the only route flag we carry over (others are kernel state).
pub const ROUTE_F_ONLINK: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeOpts {
    /// 0 = STP off.
    pub stp: u32,
    /// In centiseconds (USER_HZ), as netlink carries it.
    pub forward_delay: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `vlan`, `tun` ...; None for plain devices.
    pub kind: Option<String>,
    pub mac: Option<Mac>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub master: Option<u32>,
    pub alias: Option<String>,
    pub bridge: Option<BridgeOpts>,
    /// A bridge port with `isolated on` (IFLA_BRPORT_ISOLATED): it forwards
    /// only to ports that are not isolated.
    pub isolated: bool,
}

impl Link {
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }
}

/// One address as the kernel reports it; copied verbatim when moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub link: String,
    /// IFA_ADDRESS (the peer on point-to-point links).
    pub address: IpAddr,
    /// IFA_LOCAL (IPv4; equals `address` except on point-to-point links).
    pub local: Option<IpAddr>,
    pub prefix_len: u8,
    pub scope: u8,
    /// IFA_FLAGS.
    pub flags: u32,
    pub label: Option<String>,
    pub broadcast: Option<std::net::Ipv4Addr>,
    /// (preferred, valid) lifetimes in seconds for non-permanent addresses.
    pub lifetimes: Option<(u32, u32)>,
}

impl Addr {
    /// The address this host owns (IFA_LOCAL when present).
    pub fn ip(&self) -> IpAddr {
        self.local.unwrap_or(self.address)
    }
    pub fn same_ip(&self, o: &Addr) -> bool {
        self.ip() == o.ip() && self.prefix_len == o.prefix_len
    }
    pub fn is_ipv6_link_local(&self) -> bool {
        matches!(self.address, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
    }
    /// The same address on another link; a label `eth0:1` becomes `br_eth0:1`.
    pub fn on(&self, link: &str) -> Addr {
        let label = self.label.as_ref().and_then(|l| {
            let suffix = l.strip_prefix(self.link.as_str()).unwrap_or("");
            let new = format!("{link}{suffix}");
            (new.len() <= 15).then_some(new)
        });
        Addr {
            link: link.to_string(),
            label,
            ..self.clone()
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.ip(), self.prefix_len, self.link)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub v6: bool,
    pub table: u32,
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    pub src_len: u8,
    pub tos: u8,
    pub protocol: u8,
    pub scope: u8,
    /// RTN_* type (1 = unicast).
    pub kind: u8,
    pub flags: u32,
    pub gateway: Option<IpAddr>,
    pub oif: Option<String>,
    pub prefsrc: Option<IpAddr>,
    pub metric: Option<u32>,
    /// True when the route has several next hops (not moved, see plan).
    pub multipath: bool,
    /// Attributes carried verbatim (metrics, preference, source, realm ...).
    pub extra: Vec<RouteAttribute>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }
    pub fn on(&self, link: &str) -> Route {
        Route {
            oif: Some(link.to_string()),
            ..self.clone()
        }
    }
    /// The kernel's identity of a route: a replace with the same key swaps it.
    pub fn same_key(&self, o: &Route) -> bool {
        self.v6 == o.v6
            && self.table == o.table
            && self.dst == o.dst
            && self.dst_len == o.dst_len
            && self.tos == o.tos
            && self.metric.unwrap_or(0) == o.metric.unwrap_or(0)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.dst, self.dst_len) {
            (_, 0) => f.write_str("default")?,
            (Some(d), l) => write!(f, "{d}/{l}")?,
            (None, l) => write!(f, "?/{l}")?,
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = &self.oif {
            write!(f, " dev {o}")?;
        }
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.flags & ROUTE_F_ONLINK != 0 {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

/// What the kernel holds, as far as bridge plans care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
}

impl Observed {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
    pub fn addrs_on<'a>(&'a self, link: &'a str) -> impl Iterator<Item = &'a Addr> + 'a {
        self.addrs.iter().filter(move |a| a.link == link)
    }
    pub fn ports_of(&self, bridge: &Link) -> Vec<&Link> {
        self.links
            .iter()
            .filter(|l| l.master == Some(bridge.index))
            .collect()
    }
}

/// One kernel change. Every op has an inverse the plan records beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A bridge with STP off and forward delay 0, up, with this MAC.
    CreateBridge {
        name: String,
        mac: Option<Mac>,
    },
    /// STP state first, then forward delay (the kernel refuses delay 0 with STP on).
    SetBridgeOpts {
        name: String,
        opts: BridgeOpts,
    },
    AddVlan {
        name: String,
        parent: String,
        id: u16,
    },
    DeleteLink {
        name: String,
    },
    SetUp {
        name: String,
        up: bool,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetMac {
        name: String,
        mac: Mac,
    },
    SetMaster {
        name: String,
        master: Option<String>,
    },
    /// Bridge port isolation of a port (`bridge link set dev X isolated on`).
    SetPortIsolated {
        name: String,
        isolated: bool,
    },
    /// An empty alias removes it.
    SetAlias {
        name: String,
        alias: String,
    },
    AddAddr(Addr),
    DelAddr(Addr),
    /// Add or atomically replace the route with the same key (NLM_F_REPLACE).
    ReplaceRoute(Route),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateBridge { name, mac } => match mac {
                Some(m) => write!(f, "create bridge {name} with MAC {m}"),
                None => write!(f, "create bridge {name}"),
            },
            Op::SetBridgeOpts { name, opts } => write!(
                f,
                "set stp {} forward delay {} on {name}",
                opts.stp, opts.forward_delay
            ),
            Op::AddVlan { name, parent, id } => {
                write!(f, "create vlan {name} on {parent} id {id}")
            }
            Op::DeleteLink { name } => write!(f, "delete link {name}"),
            Op::SetUp { name, up } => {
                write!(f, "set {name} {}", if *up { "up" } else { "down" })
            }
            Op::SetMtu { name, mtu } => write!(f, "set mtu {mtu} on {name}"),
            Op::SetMac { name, mac } => write!(f, "set MAC {mac} on {name}"),
            Op::SetMaster { name, master } => match master {
                Some(m) => write!(f, "enslave {name} to {m}"),
                None => write!(f, "release {name} from its bridge"),
            },
            Op::SetAlias { name, alias } => write!(f, "set alias {alias:?} on {name}"),
            Op::SetPortIsolated { name, isolated } => write!(
                f,
                "set isolated {} on port {name}",
                if *isolated { "on" } else { "off" }
            ),
            Op::AddAddr(a) => write!(f, "add address {a}"),
            Op::DelAddr(a) => write!(f, "delete address {a}"),
            Op::ReplaceRoute(r) => write!(f, "replace route {r}"),
        }
    }
}
