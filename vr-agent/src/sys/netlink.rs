//! Links, addresses and the default route through rtnetlink, in the network
//! namespace the agent runs in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
#[cfg(any(test, feature = "fakes"))]
use std::sync::Mutex;

use async_trait::async_trait;
use common::net::{IfName, Ipv4Net, Mac};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

pub use crate::plan::routes::Route;
pub use snapshot::Snapshot;

mod snapshot;

/// The route protocol number that marks the routes this agent owns
/// (`ip route show proto 250`), so it finds and removes only its own.
pub const ROUTE_PROTO: u8 = 250;
const RT_TABLE_MAIN: u32 = 254;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("no interface named {0}")]
    NoLink(IfName),
    #[error("{op} on {ifname}: {source}")]
    Kernel {
        op: &'static str,
        ifname: String,
        source: rtnetlink::Error,
    },
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("refused: {0}")]
    Refused(String),
}

#[async_trait]
pub trait Netlink: Send + Sync {
    /// Every link that has a MAC address: MAC -> name.
    async fn links(&self) -> Result<BTreeMap<Mac, IfName>, NetlinkError>;
    async fn up(&self, ifname: &IfName, mtu: Option<u32>) -> Result<(), NetlinkError>;
    /// Set the link down (an HA backup's shared NICs): its addresses stay,
    /// it answers for none of them.
    async fn down(&self, ifname: &IfName) -> Result<(), NetlinkError>;
    /// IPv4 addresses in kernel order (the primary first).
    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError>;
    /// Add an address; already present is fine. IPv6 addresses skip
    /// duplicate address detection (as zvr turns `accept_dad` off): a
    /// router's address or VIP must answer at once.
    async fn add_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError>;
    /// Remove an address; already absent is fine.
    async fn del_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError>;
    /// Replace the default route of the gateway's family.
    async fn default_route(&self, ifname: &IfName, gateway: IpAddr) -> Result<(), NetlinkError>;
    /// The routes marked with [`ROUTE_PROTO`] in the main table.
    async fn owned_routes(&self) -> Result<Vec<Route>, NetlinkError>;
    /// Add or replace a route, marked as ours.
    async fn replace_route(&self, r: &Route) -> Result<(), NetlinkError>;
    /// Remove one of our routes; already absent is fine.
    async fn del_route(&self, r: &Route) -> Result<(), NetlinkError>;
    /// Announce an address in the background: gratuitous ARP for IPv4, an
    /// unsolicited neighbour advertisement for IPv6.
    fn announce(&self, ifname: &IfName, ip: IpAddr);
    /// What the kernel holds for these links (MTU, up, addresses in order)
    /// and in the main routing table.
    async fn snapshot(&self, ifnames: &BTreeSet<IfName>) -> Result<Snapshot, NetlinkError>;
    /// Put a snapshot back: the undo of a failed edit's link operations.
    async fn restore(&self, snap: &Snapshot) -> Result<(), NetlinkError>;
}

pub struct RtNetlink {
    handle: Handle,
    /// The kernel runs one dump per netlink socket at a time and refuses
    /// another started meanwhile (EBUSY); the engine, `/configurenic`
    /// waiting for a NIC and the drift checks list at once, so every
    /// listing takes its turn here.
    dumps: tokio::sync::Mutex<()>,
}

impl RtNetlink {
    /// Must be called inside a tokio runtime; the socket belongs to the
    /// calling thread's network namespace.
    pub fn new() -> Result<RtNetlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(RtNetlink {
            handle,
            dumps: tokio::sync::Mutex::new(()),
        })
    }

    async fn index(&self, ifname: &IfName) -> Result<u32, NetlinkError> {
        let _turn = self.dumps.lock().await;
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(ifname.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(m.header.index),
            _ => Err(NetlinkError::NoLink(ifname.clone())),
        }
    }
}

fn kernel(op: &'static str, ifname: &IfName) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let ifname = ifname.to_string();
    move |source| NetlinkError::Kernel { op, ifname, source }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

#[async_trait]
impl Netlink for RtNetlink {
    async fn links(&self) -> Result<BTreeMap<Mac, IfName>, NetlinkError> {
        let mut out = BTreeMap::new();
        for m in self.dump_links().await? {
            let mut name = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = n.parse::<IfName>().ok(),
                    LinkAttribute::Address(a) if a.len() == 6 => {
                        let mut b = [0u8; 6];
                        b.copy_from_slice(a);
                        mac = Some(Mac(b));
                    }
                    _ => {}
                }
            }
            // Bridges and VLANs can share a MAC with their port; the first
            // (lowest index, the physical NIC) wins.
            if let (Some(n), Some(m)) = (name, mac)
                && m.0 != [0; 6]
            {
                out.entry(m).or_insert(n);
            }
        }
        Ok(out)
    }

    async fn up(&self, ifname: &IfName, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        let mut b = LinkUnspec::new_with_index(index).up();
        if let Some(m) = mtu {
            b = b.mtu(m);
        }
        self.handle
            .link()
            .set(b.build())
            .execute()
            .await
            .map_err(kernel("set link up", ifname))
    }

    async fn down(&self, ifname: &IfName) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).down().build())
            .execute()
            .await
            .map_err(kernel("set link down", ifname))
    }

    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        let index = self.index(ifname).await?;
        let _turn = self.dumps.lock().await;
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = vec![];
        while let Some(m) = s
            .try_next()
            .await
            .map_err(kernel("list addresses", ifname))?
        {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                    out.push((*ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    async fn add_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        let mut req = self.handle.address().add(index, ip, prefix);
        if ip.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(kernel("add address", ifname)),
        }
    }

    async fn del_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let index = match self.index(ifname).await {
            Ok(i) => i,
            Err(NetlinkError::NoLink(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let msg = match ip {
            IpAddr::V4(ip) => rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(ip, prefix)
                .build(),
            IpAddr::V6(ip) => rtnetlink::AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(ip, prefix)
                .build(),
        };
        match self.handle.address().del(msg).execute().await {
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r.map_err(kernel("delete address", ifname)),
        }
    }

    async fn default_route(&self, ifname: &IfName, gateway: IpAddr) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        let msg = match gateway {
            IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(g)
                .output_interface(index)
                .build(),
            IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(g)
                .output_interface(index)
                .build(),
        };
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(kernel("replace default route", ifname))
    }

    async fn owned_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let names = self.names().await?;
        let mut out = vec![];
        for m in self.main_routes().await? {
            if m.header.protocol != RouteProtocol::Other(ROUTE_PROTO) {
                continue;
            }
            let r = parse_route(&m);
            if let (Some(IpAddr::V4(dst)), Some(IpAddr::V4(gateway)), Some(ifname)) =
                (r.dst, r.gateway, r.oif.and_then(|i| names.get(&i)))
            {
                out.push(Route {
                    dst: Ipv4Net::containing(dst, m.header.destination_prefix_length),
                    gateway,
                    ifname: ifname.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn replace_route(&self, r: &Route) -> Result<(), NetlinkError> {
        let index = self.index(&r.ifname).await?;
        self.handle
            .route()
            .add(route_msg(r, index))
            .replace()
            .execute()
            .await
            .map_err(kernel("replace route", &r.ifname))
    }

    async fn del_route(&self, r: &Route) -> Result<(), NetlinkError> {
        let index = match self.index(&r.ifname).await {
            Ok(i) => i,
            // The link is gone, and its routes with it.
            Err(NetlinkError::NoLink(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self.handle.route().del(route_msg(r, index)).execute().await {
            Err(e) if errno(&e) == Some(libc::ESRCH) => Ok(()),
            r2 => r2.map_err(kernel("delete route", &r.ifname)),
        }
    }

    fn announce(&self, ifname: &IfName, ip: IpAddr) {
        let ifname = ifname.clone();
        tokio::spawn(async move {
            let r = match ip {
                IpAddr::V4(ip) => {
                    let (i, a) = (ifname.to_string(), ip.to_string());
                    let args = ["-U", "-c", "3", "-w", "3", "-I", &i, &a];
                    super::runner::output("arping", &args, None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                IpAddr::V6(ip) => super::ndisc::advertise(&ifname, ip, 3).await,
            };
            if let Err(e) = r {
                tracing::warn!(%ifname, %ip, error = %e, "announcing the address failed");
            }
        });
    }

    async fn snapshot(&self, ifnames: &BTreeSet<IfName>) -> Result<Snapshot, NetlinkError> {
        Ok(Snapshot(Box::new(self.take_snapshot(ifnames).await?)))
    }

    async fn restore(&self, snap: &Snapshot) -> Result<(), NetlinkError> {
        match snap.0.downcast_ref::<snapshot::Held>() {
            Some(h) => self.restore_snapshot(h).await,
            None => Ok(()),
        }
    }
}

struct ParsedRoute {
    dst: Option<IpAddr>,
    gateway: Option<IpAddr>,
    oif: Option<u32>,
}

fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn parse_route(m: &RouteMessage) -> ParsedRoute {
    let mut r = ParsedRoute {
        dst: None,
        gateway: None,
        oif: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = addr_of(d),
            RouteAttribute::Gateway(g) => r.gateway = addr_of(g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            _ => {}
        }
    }
    r
}

fn route_msg(r: &Route, index: u32) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.dst.addr(), r.dst.prefix_len())
        .gateway(r.gateway)
        .output_interface(index)
        .protocol(RouteProtocol::Other(ROUTE_PROTO))
        .build()
}

impl RtNetlink {
    /// Every link.
    async fn dump_links(&self) -> Result<Vec<LinkMessage>, NetlinkError> {
        let _turn = self.dumps.lock().await;
        self.handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(kernel("list links", &"*".parse().unwrap()))
    }

    /// Interface index -> name.
    async fn names(&self) -> Result<BTreeMap<u32, IfName>, NetlinkError> {
        let mut out = BTreeMap::new();
        for m in self.dump_links().await? {
            for a in &m.attributes {
                if let LinkAttribute::IfName(n) = a
                    && let Ok(n) = n.parse()
                {
                    out.insert(m.header.index, n);
                }
            }
        }
        Ok(out)
    }

    /// Every IPv4 route of the main table (ours are IPv4 only).
    async fn main_routes(&self) -> Result<Vec<RouteMessage>, NetlinkError> {
        let _turn = self.dumps.lock().await;
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(kernel("list routes", &"*".parse().unwrap()))?;
        Ok(msgs
            .into_iter()
            .filter(|m| {
                m.header.table == RT_TABLE_MAIN as u8
                    || m.attributes
                        .iter()
                        .any(|a| matches!(a, RouteAttribute::Table(RT_TABLE_MAIN)))
            })
            .collect())
    }
}

#[cfg(any(test, feature = "fakes"))]
/// An in-memory box: links given up front, addresses and routes recorded.
#[derive(Default)]
pub struct FakeNetlink {
    pub links: Mutex<BTreeMap<Mac, IfName>>,
    pub addrs: Mutex<BTreeMap<IfName, Vec<(IpAddr, u8)>>>,
    /// Default routes set, in order.
    pub routes: Mutex<Vec<(IfName, IpAddr)>>,
    pub owned: Mutex<Vec<Route>>,
    pub announced: Mutex<Vec<(IfName, IpAddr)>>,
    /// An address whose adding fails, as a kernel refusal would.
    pub refuse_addr: Mutex<Option<IpAddr>>,
    /// Links set down and not up since.
    pub down: Mutex<BTreeSet<IfName>>,
}

#[cfg(any(test, feature = "fakes"))]
type FakeHeld = (
    BTreeMap<IfName, Vec<(IpAddr, u8)>>,
    Vec<(IfName, IpAddr)>,
    Vec<Route>,
);

#[cfg(any(test, feature = "fakes"))]
#[async_trait]
impl Netlink for FakeNetlink {
    async fn links(&self) -> Result<BTreeMap<Mac, IfName>, NetlinkError> {
        Ok(self.links.lock().unwrap().clone())
    }
    async fn up(&self, ifname: &IfName, _: Option<u32>) -> Result<(), NetlinkError> {
        self.down.lock().unwrap().remove(ifname);
        Ok(())
    }
    async fn down(&self, ifname: &IfName) -> Result<(), NetlinkError> {
        self.down.lock().unwrap().insert(ifname.clone());
        Ok(())
    }
    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        Ok(self
            .addrs
            .lock()
            .unwrap()
            .get(ifname)
            .into_iter()
            .flatten()
            .filter_map(|(ip, p)| match ip {
                IpAddr::V4(a) => Some((*a, *p)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }
    async fn add_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        if *self.refuse_addr.lock().unwrap() == Some(ip) {
            return Err(NetlinkError::Refused(format!(
                "add address {ip} on {ifname}"
            )));
        }
        let mut a = self.addrs.lock().unwrap();
        let list = a.entry(ifname.clone()).or_default();
        if !list.contains(&(ip, prefix)) {
            list.push((ip, prefix));
        }
        Ok(())
    }
    async fn del_addr(&self, ifname: &IfName, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        if let Some(list) = self.addrs.lock().unwrap().get_mut(ifname) {
            list.retain(|x| *x != (ip, prefix));
        }
        Ok(())
    }
    async fn default_route(&self, ifname: &IfName, gateway: IpAddr) -> Result<(), NetlinkError> {
        self.routes.lock().unwrap().push((ifname.clone(), gateway));
        Ok(())
    }
    async fn owned_routes(&self) -> Result<Vec<Route>, NetlinkError> {
        Ok(self.owned.lock().unwrap().clone())
    }
    async fn replace_route(&self, r: &Route) -> Result<(), NetlinkError> {
        let mut o = self.owned.lock().unwrap();
        o.retain(|x| x.dst != r.dst);
        o.push(r.clone());
        Ok(())
    }
    async fn del_route(&self, r: &Route) -> Result<(), NetlinkError> {
        self.owned.lock().unwrap().retain(|x| x != r);
        Ok(())
    }
    fn announce(&self, ifname: &IfName, ip: IpAddr) {
        self.announced.lock().unwrap().push((ifname.clone(), ip));
    }
    async fn snapshot(&self, _: &BTreeSet<IfName>) -> Result<Snapshot, NetlinkError> {
        let held: FakeHeld = (
            self.addrs.lock().unwrap().clone(),
            self.routes.lock().unwrap().clone(),
            self.owned.lock().unwrap().clone(),
        );
        Ok(Snapshot(Box::new(held)))
    }
    async fn restore(&self, snap: &Snapshot) -> Result<(), NetlinkError> {
        if let Some((a, r, o)) = snap.0.downcast_ref::<FakeHeld>() {
            *self.addrs.lock().unwrap() = a.clone();
            *self.routes.lock().unwrap() = r.clone();
            *self.owned.lock().unwrap() = o.clone();
        }
        Ok(())
    }
}
