//! `RtNetlink`: the real kernel, over one rtnetlink socket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use futures::future::BoxFuture;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{BridgeStpState, InfoBridgePort};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVlan, RouteMessageBuilder};

use super::messages::{addr_msg, parse_addr, parse_link, parse_route, route_msg};
use super::{ENODEV, Netlink, NetlinkError};
use crate::netstate::{Link, Observed, Op};

/// The real kernel, over one rtnetlink socket.
#[derive(Clone)]
pub struct RtNetlink {
    handle: Handle,
    /// The kernel runs one dump per netlink socket at a time and refuses
    /// another started meanwhile (EBUSY); concurrent requests (`/metrics`,
    /// `/host/fact`, a bridge command waiting for its gateway, ...) list at
    /// once, so every dump takes its turn here. Shared by the clones, which
    /// share the socket.
    dumps: Arc<tokio::sync::Mutex<()>>,
}

impl RtNetlink {
    /// Must run inside a tokio runtime, on a thread in the target namespace.
    pub fn new() -> std::io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(RtNetlink {
            handle,
            dumps: Arc::default(),
        })
    }

    /// A get by name, not a dump: it needs no turn.
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
        // One dump at a time, also within: parallel dumps on one socket
        // answer EBUSY. The turn covers all four listings.
        let _turn = self.dumps.lock().await;
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
        let _turn = self.dumps.lock().await;
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
