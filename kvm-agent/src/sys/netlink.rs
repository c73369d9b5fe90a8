//! The netlink side effect: dump links/addresses/routes, apply one `Op`, and
//! check that a neighbour (the default gateway) answers.
//!
//! `RtNetlink` talks to the kernel of the network namespace it was created
//! in; `FailAt` wraps any implementation to fail one chosen op (tests provoke
//! each rollback against the real kernel with it); `FakeNetlink` simulates a
//! kernel in memory and records ops.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use futures::future::BoxFuture;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoPortData, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVlan, RouteMessageBuilder};

use common::net::Mac;

use crate::netstate::{Addr, BridgeOpts, Link, Observed, Op, ROUTE_F_ONLINK, Route};

pub const EEXIST: i32 = libc::EEXIST;
pub const ENODEV: i32 = libc::ENODEV;
pub const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    #[error("{message} (errno {errno})")]
    Kernel { errno: i32, message: String },
    #[error("no such link {0}")]
    NoLink(String),
    #[error("injected failure at op {0}")]
    Injected(usize),
    #[error("netlink: {0}")]
    Other(String),
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::NoLink(_) => Some(ENODEV),
            _ => None,
        }
    }
    fn kernel(errno: i32) -> Self {
        NetlinkError::Kernel {
            errno,
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

impl From<rtnetlink::Error> for NetlinkError {
    fn from(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) => NetlinkError::Kernel {
                errno: -m.raw_code(),
                message: m.to_io().to_string(),
            },
            other => NetlinkError::Other(other.to_string()),
        }
    }
}

pub trait Netlink: Send + Sync {
    /// Every link, address and (IPv4 + IPv6, all tables) route.
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>>;
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>>;
    /// Trigger resolution of `ip` on `link` and wait up to `within` for the
    /// neighbour entry to hold a link-layer address.
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>>;
}

impl<T: Netlink + ?Sized> Netlink for Arc<T> {
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>> {
        (**self).dump()
    }
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>> {
        (**self).apply(op)
    }
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>> {
        (**self).neighbour_answers(link, ip, within)
    }
}

/// The real kernel, over one rtnetlink socket.
#[derive(Clone)]
pub struct RtNetlink {
    handle: Handle,
}

impl RtNetlink {
    /// Must run inside a tokio runtime, on a thread in the target namespace.
    pub fn new() -> std::io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(RtNetlink { handle })
    }

    async fn index(&self, name: &str) -> Result<u32, NetlinkError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(m.header.index),
            Ok(None) => Err(NetlinkError::NoLink(name.into())),
            Err(e) => match NetlinkError::from(e) {
                e if e.errno() == Some(ENODEV) => Err(NetlinkError::NoLink(name.into())),
                e => Err(e),
            },
        }
    }

    async fn dump_all(&self) -> Result<Observed, NetlinkError> {
        // One dump at a time: parallel dumps on one socket answer EBUSY.
        let links: Vec<Link> = self
            .handle
            .link()
            .get()
            .execute()
            .map_ok(parse_link)
            .try_collect()
            .await?;
        let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
        let addrs: Vec<AddressMessage> =
            self.handle.address().get().execute().try_collect().await?;
        let addrs = addrs
            .into_iter()
            .filter_map(|m| parse_addr(m, &names))
            .collect();
        let mut routes = Vec::new();
        for req in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let msgs: Vec<RouteMessage> =
                self.handle.route().get(req).execute().try_collect().await?;
            routes.extend(msgs.into_iter().map(|m| parse_route(m, &names)));
        }
        Ok(Observed {
            links,
            addrs,
            routes,
        })
    }

    async fn apply_op(&self, op: &Op) -> Result<(), NetlinkError> {
        let link = self.handle.link();
        match op {
            Op::CreateBridge { name, mac } => {
                let mut b = LinkBridge::new(name)
                    .stp_state(BridgeStpState::Disabled)
                    .forward_delay(0)
                    .up();
                if let Some(m) = mac {
                    b = b.address(m.0.to_vec());
                }
                link.add(b.build()).execute().await?;
            }
            Op::SetBridgeOpts { name, opts } => {
                let stp = || {
                    LinkBridge::new(name)
                        .stp_state(BridgeStpState::from(opts.stp))
                        .build()
                };
                let fd = || {
                    LinkBridge::new(name)
                        .forward_delay(opts.forward_delay)
                        .build()
                };
                // The kernel refuses a short forward delay while STP is on.
                let order = if opts.stp == 0 {
                    [stp(), fd()]
                } else {
                    [fd(), stp()]
                };
                for m in order {
                    link.change(m).execute().await?;
                }
            }
            Op::AddVlan { name, parent, id } => {
                let p = self.index(parent).await?;
                link.add(LinkVlan::new(name, p, *id).up().build())
                    .execute()
                    .await?;
            }
            Op::DeleteLink { name } => {
                let i = self.index(name).await?;
                link.del(i).execute().await?;
            }
            Op::SetUp { name, up } => {
                let b = LinkUnspec::new_with_name(name);
                let b = if *up { b.up() } else { b.down() };
                link.set(b.build()).execute().await?;
            }
            Op::SetMtu { name, mtu } => {
                link.set(LinkUnspec::new_with_name(name).mtu(*mtu).build())
                    .execute()
                    .await?;
            }
            Op::SetMac { name, mac } => {
                let m = LinkUnspec::new_with_name(name)
                    .address(mac.0.to_vec())
                    .build();
                link.set(m).execute().await?;
            }
            Op::SetAlias { name, alias } => {
                let m = LinkUnspec::new_with_name(name).alias(alias.clone()).build();
                link.set(m).execute().await?;
            }
            Op::SetPortIsolated { name, isolated } => {
                // RTM_NEWLINK on the port with IFLA_INFO_SLAVE_DATA, as
                // `ip link set dev X type bridge_slave isolated on` does.
                let m = LinkBridgePort::new(self.index(name).await?)
                    .append_info_data(InfoBridgePort::Isolated(*isolated))
                    .build();
                link.change(m).execute().await?;
            }
            Op::SetMaster { name, master } => {
                let b = LinkUnspec::new_with_name(name);
                let b = match master {
                    Some(m) => b.controller(self.index(m).await?),
                    None => b.nocontroller(),
                };
                link.set(b.build()).execute().await?;
            }
            Op::AddAddr(a) => {
                let i = self.index(&a.link).await?;
                let mut req = self.handle.address().add(i, a.ip(), a.prefix_len);
                *req.message_mut() = addr_msg(a, i, true);
                req.execute().await?;
            }
            Op::DelAddr(a) => {
                let i = self.index(&a.link).await?;
                self.handle
                    .address()
                    .del(addr_msg(a, i, false))
                    .execute()
                    .await?;
            }
            Op::ReplaceRoute(r) => {
                let oif = match &r.oif {
                    Some(o) => Some(self.index(o).await?),
                    None => None,
                };
                self.handle
                    .route()
                    .add(route_msg(r, oif))
                    .replace()
                    .execute()
                    .await?;
            }
        }
        Ok(())
    }

    async fn neighbour_state(
        &self,
        index: u32,
        ip: IpAddr,
    ) -> Result<Option<NeighbourState>, NetlinkError> {
        let family = if ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let msgs: Vec<_> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.ifindex == index)
            .find(|m| {
                m.attributes.iter().any(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(x)) => {
                        IpAddr::V4(*x) == ip
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(x)) => {
                        IpAddr::V6(*x) == ip
                    }
                    _ => false,
                })
            })
            .map(|m| m.header.state))
    }

    async fn answers(
        &self,
        link: &str,
        ip: IpAddr,
        within: Duration,
    ) -> Result<bool, NetlinkError> {
        let index = self.index(link).await?;
        let deadline = Instant::now() + within;
        let mut next_probe = Instant::now();
        loop {
            if Instant::now() >= next_probe {
                // The kernel resolves the next hop for any datagram; the
                // discard port makes the gateway drop it (or answer ICMP).
                if let Err(e) = send_probe(ip, index) {
                    tracing::debug!(%ip, error = %e, "neighbour probe datagram not sent");
                }
                next_probe = Instant::now() + Duration::from_millis(300);
            }
            if let Some(st) = self.neighbour_state(index, ip).await?
                && matches!(
                    st,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                )
            {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn send_probe(ip: IpAddr, index: u32) -> std::io::Result<()> {
    let (sock, to) = match ip {
        IpAddr::V4(a) => (
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
            SocketAddr::V4(SocketAddrV4::new(a, 9)),
        ),
        IpAddr::V6(a) => {
            let scope = if (a.segments()[0] & 0xffc0) == 0xfe80 {
                index
            } else {
                0
            };
            (
                UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
                SocketAddr::V6(SocketAddrV6::new(a, 9, 0, scope)),
            )
        }
    };
    sock.send_to(&[0], to).map(|_| ())
}

impl Netlink for RtNetlink {
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>> {
        Box::pin(self.dump_all())
    }
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>> {
        Box::pin(self.apply_op(op))
    }
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>> {
        Box::pin(self.answers(link, ip, within))
    }
}

fn parse_link(m: LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
        bridge: None,
        isolated: false,
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Address(b) => {
                if let Ok(mac) = <[u8; 6]>::try_from(b.as_slice()) {
                    l.mac = Some(Mac(mac));
                }
            }
            LinkAttribute::Mtu(x) => l.mtu = x,
            LinkAttribute::Controller(x) => l.master = Some(x),
            LinkAttribute::IfAlias(s) => l.alias = Some(s).filter(|s| !s.is_empty()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            let mut o = BridgeOpts {
                                stp: 0,
                                forward_delay: 0,
                            };
                            for x in opts {
                                match x {
                                    InfoBridge::StpState(s) => o.stp = u32::from(s),
                                    InfoBridge::ForwardDelay(d) => o.forward_delay = d,
                                    _ => {}
                                }
                            }
                            l.bridge = Some(o);
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            l.isolated = port.contains(&InfoBridgePort::Isolated(true));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn parse_addr(m: AddressMessage, names: &HashMap<u32, String>) -> Option<Addr> {
    let link = names.get(&m.header.index)?.clone();
    let mut a = Addr {
        link,
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        local: None,
        prefix_len: m.header.prefix_len,
        scope: u8::from(m.header.scope),
        flags: u32::from(m.header.flags.bits()),
        label: None,
        broadcast: None,
        lifetimes: None,
    };
    let mut have_address = false;
    for attr in m.attributes {
        match attr {
            AddressAttribute::Address(x) => {
                a.address = x;
                have_address = true;
            }
            AddressAttribute::Local(x) => a.local = Some(x),
            AddressAttribute::Label(s) => a.label = Some(s),
            AddressAttribute::Broadcast(b) => a.broadcast = Some(b),
            AddressAttribute::Flags(f) => a.flags = f.bits(),
            AddressAttribute::CacheInfo(c) if c.ifa_valid != u32::MAX => {
                a.lifetimes = Some((c.ifa_preferred, c.ifa_valid));
            }
            _ => {}
        }
    }
    if !have_address {
        a.address = a.local?;
    }
    Some(a)
}

/// Flags a caller may set on RTM_NEWADDR; the rest is kernel state.
const ADDR_SETTABLE_FLAGS: u32 = 0x02 | 0x04 | 0x10 | 0x100 | 0x200 | 0x400;

fn addr_msg(a: &Addr, index: u32, for_add: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = if a.address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.prefix_len = a.prefix_len;
    m.header.index = index;
    m.header.scope = AddressScope::from(a.scope);
    if let Some(l) = a.local {
        m.attributes.push(AddressAttribute::Local(l));
    }
    m.attributes.push(AddressAttribute::Address(a.address));
    if for_add {
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = a.label.as_ref().filter(|_| a.address.is_ipv4()) {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        let f = a.flags & ADDR_SETTABLE_FLAGS;
        if f != 0 {
            m.header.flags = AddressHeaderFlags::from_bits_retain(f as u8);
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(f)));
        }
        if let Some((preferred, valid)) = a.lifetimes {
            let mut c = CacheInfo::default();
            c.ifa_preferred = preferred;
            c.ifa_valid = valid;
            m.attributes.push(AddressAttribute::CacheInfo(c));
        }
    }
    m
}

fn ip_of(a: RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(x) => Some(IpAddr::V4(x)),
        RouteAddress::Inet6(x) => Some(IpAddr::V6(x)),
        _ => None,
    }
}

fn parse_route(m: RouteMessage, names: &HashMap<u32, String>) -> Route {
    let h = &m.header;
    let mut r = Route {
        v6: h.address_family == AddressFamily::Inet6,
        table: u32::from(h.table),
        dst: None,
        dst_len: h.destination_prefix_length,
        src_len: h.source_prefix_length,
        tos: h.tos,
        protocol: u8::from(h.protocol),
        scope: u8::from(h.scope),
        kind: u8::from(h.kind),
        flags: h.flags.bits(),
        gateway: None,
        oif: None,
        prefsrc: None,
        metric: None,
        multipath: false,
        extra: Vec::new(),
    };
    for a in m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = ip_of(d),
            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
            RouteAttribute::PrefSource(p) => r.prefsrc = ip_of(p),
            RouteAttribute::Oif(i) => {
                r.oif = Some(
                    names
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| format!("ifindex{i}")),
                )
            }
            RouteAttribute::Priority(p) => r.metric = Some(p),
            RouteAttribute::Table(t) => r.table = t,
            RouteAttribute::MultiPath(_) => r.multipath = true,
            a @ (RouteAttribute::Metrics(_)
            | RouteAttribute::Preference(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Realm(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Encap(_)) => r.extra.push(a),
            _ => {}
        }
    }
    r
}

fn route_msg(r: &Route, oif: Option<u32>) -> RouteMessage {
    let mut m = RouteMessage::default();
    let h = &mut m.header;
    h.address_family = if r.v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    h.destination_prefix_length = r.dst_len;
    h.source_prefix_length = r.src_len;
    h.tos = r.tos;
    // Tables above 255 only fit the attribute; 0 (RT_TABLE_UNSPEC) defers to it.
    h.table = u8::try_from(r.table).unwrap_or(0);
    h.protocol = RouteProtocol::from(r.protocol);
    h.scope = RouteScope::from(r.scope);
    h.kind = RouteType::from(r.kind);
    h.flags = RouteFlags::from_bits_retain(r.flags & ROUTE_F_ONLINK);
    m.attributes.push(RouteAttribute::Table(r.table));
    if let (Some(d), true) = (r.dst, r.dst_len > 0) {
        m.attributes.push(RouteAttribute::Destination(d.into()));
    }
    if let Some(g) = r.gateway {
        m.attributes.push(RouteAttribute::Gateway(g.into()));
    }
    if let Some(p) = r.prefsrc {
        m.attributes.push(RouteAttribute::PrefSource(p.into()));
    }
    if let Some(i) = oif {
        m.attributes.push(RouteAttribute::Oif(i));
    }
    if let Some(p) = r.metric {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    m.attributes.extend(r.extra.iter().cloned());
    m
}

/// Fails the `step`-th applied op (counting from 0) and passes everything
/// else through, rollback ops included.
pub struct FailAt<N> {
    pub inner: N,
    step: usize,
    count: AtomicUsize,
}

impl<N> FailAt<N> {
    pub fn new(inner: N, step: usize) -> Self {
        FailAt {
            inner,
            step,
            count: AtomicUsize::new(0),
        }
    }
}

impl<N: Netlink> Netlink for FailAt<N> {
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>> {
        self.inner.dump()
    }
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>> {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        if n == self.step {
            tracing::info!(step = n, %op, "injecting failure");
            return Box::pin(async move { Err(NetlinkError::Injected(n)) });
        }
        self.inner.apply(op)
    }
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>> {
        self.inner.neighbour_answers(link, ip, within)
    }
}

/// An in-memory kernel: applies ops to an `Observed` and records them.
pub struct FakeNetlink {
    pub state: Mutex<Observed>,
    pub applied: Mutex<Vec<Op>>,
    pub gateway_answers: AtomicBool,
}

impl FakeNetlink {
    pub fn new(state: Observed) -> Self {
        FakeNetlink {
            state: Mutex::new(state),
            applied: Mutex::new(Vec::new()),
            gateway_answers: AtomicBool::new(true),
        }
    }

    fn apply_sync(&self, op: &Op) -> Result<(), NetlinkError> {
        self.applied.lock().unwrap().push(op.clone());
        let mut s = self.state.lock().unwrap();
        let idx = |s: &Observed, n: &str| {
            s.link(n)
                .map(|l| l.index)
                .ok_or_else(|| NetlinkError::NoLink(n.into()))
        };
        let link_mut = |s: &mut Observed, n: &str| -> Result<usize, NetlinkError> {
            s.links
                .iter()
                .position(|l| l.name == n)
                .ok_or_else(|| NetlinkError::NoLink(n.into()))
        };
        if let Op::CreateBridge { name, .. } | Op::AddVlan { name, .. } = op
            && s.link(name).is_some()
        {
            return Err(NetlinkError::kernel(EEXIST));
        }
        match op {
            Op::CreateBridge { name, mac } => {
                let index = s.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
                s.links.push(Link {
                    index,
                    name: name.clone(),
                    kind: Some("bridge".into()),
                    mac: *mac,
                    mtu: 1500,
                    up: true,
                    master: None,
                    alias: None,
                    bridge: Some(BridgeOpts {
                        stp: 0,
                        forward_delay: 0,
                    }),
                    isolated: false,
                });
            }
            Op::AddVlan {
                name,
                parent,
                id: _,
            } => {
                let p = link_mut(&mut s, parent)?;
                let mut l = s.links[p].clone();
                l.index = s.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
                l.name = name.clone();
                l.kind = Some("vlan".into());
                l.master = None;
                l.alias = None;
                s.links.push(l);
            }
            Op::DeleteLink { name } => {
                let i = idx(&s, name)?;
                s.links.retain(|l| l.index != i);
                s.links
                    .iter_mut()
                    .filter(|l| l.master == Some(i))
                    .for_each(|l| {
                        l.master = None;
                        l.isolated = false;
                    });
                s.addrs.retain(|a| a.link != *name);
                s.routes.retain(|r| r.oif.as_deref() != Some(name));
            }
            Op::SetBridgeOpts { name, opts } => {
                let i = link_mut(&mut s, name)?;
                s.links[i].bridge = Some(*opts);
            }
            Op::SetUp { name, up } => {
                let i = link_mut(&mut s, name)?;
                s.links[i].up = *up;
            }
            Op::SetMtu { name, mtu } => {
                let i = link_mut(&mut s, name)?;
                s.links[i].mtu = *mtu;
            }
            Op::SetMac { name, mac } => {
                let i = link_mut(&mut s, name)?;
                s.links[i].mac = Some(*mac);
            }
            Op::SetAlias { name, alias } => {
                let i = link_mut(&mut s, name)?;
                s.links[i].alias = Some(alias.clone()).filter(|a| !a.is_empty());
            }
            Op::SetPortIsolated { name, isolated } => {
                let i = link_mut(&mut s, name)?;
                if s.links[i].master.is_none() {
                    return Err(NetlinkError::kernel(libc::EOPNOTSUPP));
                }
                s.links[i].isolated = *isolated;
            }
            Op::SetMaster { name, master } => {
                let m = match master {
                    Some(m) => Some(idx(&s, m)?),
                    None => None,
                };
                let i = link_mut(&mut s, name)?;
                // A port's flags live and die with its membership.
                if s.links[i].master != m {
                    s.links[i].isolated = false;
                }
                s.links[i].master = m;
            }
            Op::AddAddr(a) => {
                idx(&s, &a.link)?;
                if s.addrs.iter().any(|x| x.link == a.link && x.same_ip(a)) {
                    return Err(NetlinkError::kernel(EEXIST));
                }
                s.addrs.push(a.clone());
            }
            Op::DelAddr(a) => {
                let before = s.addrs.len();
                s.addrs.retain(|x| !(x.link == a.link && x.same_ip(a)));
                if s.addrs.len() == before {
                    return Err(NetlinkError::kernel(libc::EADDRNOTAVAIL));
                }
            }
            Op::ReplaceRoute(r) => {
                if let Some(o) = &r.oif {
                    idx(&s, o)?;
                }
                s.routes.retain(|x| !x.same_key(r));
                s.routes.push(r.clone());
            }
        }
        Ok(())
    }
}

impl Netlink for FakeNetlink {
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>> {
        let s = self.state.lock().unwrap().clone();
        Box::pin(async move { Ok(s) })
    }
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>> {
        let r = self.apply_sync(op);
        Box::pin(async move { r })
    }
    fn neighbour_answers<'a>(
        &'a self,
        _link: &'a str,
        _ip: IpAddr,
        _within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>> {
        let ok = self.gateway_answers.load(Ordering::SeqCst);
        Box::pin(async move { Ok(ok) })
    }
}
