//! What the kernel holds for some links (MTU, up, addresses in order) and
//! in the main routing table, taken before an edit's link operations and
//! put back when the edit fails. Deleting an IPv4 primary address takes
//! its secondaries (VIPs of the subnet) and the routes through it along,
//! so replaying the plan backwards cannot undo it; the kernel's own
//! listing can.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use common::net::IfName;
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

use super::{NetlinkError, RT_TABLE_MAIN, RtNetlink, errno, kernel};

/// Opaque: each implementation keeps its own form.
pub struct Snapshot(pub(super) Box<dyn std::any::Any + Send + Sync>);

pub(super) struct Held {
    links: Vec<HeldLink>,
    routes: Vec<RouteMessage>,
}

struct HeldLink {
    ifname: IfName,
    index: u32,
    mtu: Option<u32>,
    up: bool,
    addrs: Vec<AddressMessage>,
}

fn any_link() -> IfName {
    "*".parse().unwrap()
}

/// An address as the kernel names it: family, prefix, address.
fn addr_key(m: &AddressMessage) -> String {
    let a = m
        .attributes
        .iter()
        .find(|a| matches!(a, AddressAttribute::Address(_)));
    format!("{:?}/{}/{a:?}", m.header.family, m.header.prefix_len)
}

/// A route without what changes by itself (cache info, expiry).
fn route_key(m: &RouteMessage) -> String {
    let attrs: Vec<&RouteAttribute> = m
        .attributes
        .iter()
        .filter(|a| !matches!(a, RouteAttribute::CacheInfo(_) | RouteAttribute::Expires(_)))
        .collect();
    format!("{:?} {attrs:?}", m.header)
}

fn without_cacheinfo(m: &AddressMessage) -> AddressMessage {
    let mut m = m.clone();
    m.attributes
        .retain(|a| !matches!(a, AddressAttribute::CacheInfo(_)));
    m
}

impl RtNetlink {
    async fn link_state(&self, index: u32) -> Result<Option<(Option<u32>, bool)>, NetlinkError> {
        let mut s = self.handle.link().get().match_index(index).execute();
        match s.try_next().await {
            Ok(Some(m)) => {
                let mtu = m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(v) => Some(*v),
                    _ => None,
                });
                Ok(Some((mtu, m.header.flags.contains(LinkFlags::Up))))
            }
            _ => Ok(None),
        }
    }

    async fn addr_msgs(
        &self,
        index: u32,
        ifname: &IfName,
    ) -> Result<Vec<AddressMessage>, NetlinkError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(kernel("list addresses", ifname))
    }

    /// Main-table routes of both families.
    async fn all_main_routes(&self) -> Result<Vec<RouteMessage>, NetlinkError> {
        let mut out = self.main_routes().await?;
        let v6: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv6Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(kernel("list routes", &any_link()))?;
        out.extend(v6.into_iter().filter(|m| {
            m.header.table == RT_TABLE_MAIN as u8
                || m.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Table(RT_TABLE_MAIN)))
        }));
        Ok(out)
    }

    pub(super) async fn take_snapshot(
        &self,
        ifnames: &BTreeSet<IfName>,
    ) -> Result<Held, NetlinkError> {
        let mut links = vec![];
        for ifname in ifnames {
            let Ok(index) = self.index(ifname).await else {
                continue;
            };
            let Some((mtu, up)) = self.link_state(index).await? else {
                continue;
            };
            let addrs = self.addr_msgs(index, ifname).await?;
            links.push(HeldLink {
                ifname: ifname.clone(),
                index,
                mtu,
                up,
                addrs,
            });
        }
        Ok(Held {
            links,
            routes: self.all_main_routes().await?,
        })
    }

    async fn add_addr_msg(&self, l: &HeldLink, m: &AddressMessage) -> Result<(), NetlinkError> {
        // Any address will do: the message replaces it whole.
        let mut req = self
            .handle
            .address()
            .add(l.index, Ipv4Addr::UNSPECIFIED.into(), 0);
        *req.message_mut() = without_cacheinfo(m);
        match req.execute().await {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(kernel("restore address", &l.ifname)),
        }
    }

    async fn del_addr_msg(&self, l: &HeldLink, m: &AddressMessage) -> Result<(), NetlinkError> {
        match self.handle.address().del(m.clone()).execute().await {
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r.map_err(kernel("remove address", &l.ifname)),
        }
    }

    async fn restore_link(&self, l: &HeldLink) -> Result<(), NetlinkError> {
        let Some((mtu, up)) = self.link_state(l.index).await? else {
            return Ok(()); // the link is gone: nothing to put back on it
        };
        if (mtu, up) != (l.mtu, l.up) {
            let mut b = LinkUnspec::new_with_index(l.index);
            b = if l.up { b.up() } else { b.down() };
            if let Some(m) = l.mtu {
                b = b.mtu(m);
            }
            self.handle
                .link()
                .set(b.build())
                .execute()
                .await
                .map_err(kernel("restore link", &l.ifname))?;
        }
        let want: Vec<String> = l.addrs.iter().map(addr_key).collect();
        for m in self.addr_msgs(l.index, &l.ifname).await? {
            if !want.contains(&addr_key(&m)) {
                self.del_addr_msg(l, &m).await?;
            }
        }
        let have: Vec<String> = self
            .addr_msgs(l.index, &l.ifname)
            .await?
            .iter()
            .map(addr_key)
            .collect();
        for m in &l.addrs {
            if !have.contains(&addr_key(m)) {
                self.add_addr_msg(l, m).await?;
            }
        }
        // IPv4 order matters (the primary is the NIC's own IP): when it
        // differs, put the family back in the order held.
        let v4 = |ms: &[AddressMessage]| -> Vec<String> {
            ms.iter()
                .filter(|m| m.header.family == AddressFamily::Inet)
                .map(addr_key)
                .collect()
        };
        let now = self.addr_msgs(l.index, &l.ifname).await?;
        if v4(&now) != v4(&l.addrs) {
            for m in now
                .iter()
                .filter(|m| m.header.family == AddressFamily::Inet)
            {
                self.del_addr_msg(l, m).await?;
            }
            for m in l
                .addrs
                .iter()
                .filter(|m| m.header.family == AddressFamily::Inet)
            {
                self.add_addr_msg(l, m).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn restore_snapshot(&self, held: &Held) -> Result<(), NetlinkError> {
        let mut first_err = None;
        for l in &held.links {
            if let Err(e) = self.restore_link(l).await {
                first_err.get_or_insert(e);
            }
        }
        // Routes last: restored addresses bring their connected routes back.
        let want: Vec<String> = held.routes.iter().map(route_key).collect();
        let now = self.all_main_routes().await?;
        for m in now.iter().filter(|m| !want.contains(&route_key(m))) {
            match self.handle.route().del(m.clone()).execute().await {
                Err(e) if errno(&e) == Some(libc::ESRCH) => {}
                r => {
                    if let Err(e) = r.map_err(kernel("remove route", &any_link())) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        let have: Vec<String> = self
            .all_main_routes()
            .await?
            .iter()
            .map(route_key)
            .collect();
        for m in held.routes.iter().filter(|m| !have.contains(&route_key(m))) {
            let mut m = m.clone();
            m.attributes.retain(|a| {
                !matches!(a, RouteAttribute::CacheInfo(_) | RouteAttribute::Expires(_))
            });
            match self.handle.route().add(m).execute().await {
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                r => {
                    if let Err(e) = r.map_err(kernel("restore route", &any_link())) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
