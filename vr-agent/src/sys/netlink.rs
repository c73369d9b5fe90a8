//! Links, addresses and the default route through rtnetlink, in the network
//! namespace the agent runs in.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use async_trait::async_trait;
use common::net::{IfName, Mac};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

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
}

#[async_trait]
pub trait Netlink: Send + Sync {
    /// Every link that has a MAC address: MAC -> name.
    async fn links(&self) -> Result<BTreeMap<Mac, IfName>, NetlinkError>;
    async fn up(&self, ifname: &IfName, mtu: Option<u32>) -> Result<(), NetlinkError>;
    /// IPv4 addresses in kernel order (the primary first).
    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError>;
    /// Add an address; already present is fine.
    async fn add_addr(&self, ifname: &IfName, ip: Ipv4Addr, prefix: u8)
    -> Result<(), NetlinkError>;
    /// Remove an address; already absent is fine.
    async fn del_addr(&self, ifname: &IfName, ip: Ipv4Addr, prefix: u8)
    -> Result<(), NetlinkError>;
    async fn default_route(&self, ifname: &IfName, gateway: Ipv4Addr) -> Result<(), NetlinkError>;
    /// Announce an address with gratuitous ARP, in the background.
    fn announce(&self, ifname: &IfName, ip: Ipv4Addr);
}

pub struct RtNetlink {
    handle: Handle,
}

impl RtNetlink {
    /// Must be called inside a tokio runtime; the socket belongs to the
    /// calling thread's network namespace.
    pub fn new() -> Result<RtNetlink, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(RtNetlink { handle })
    }

    async fn index(&self, ifname: &IfName) -> Result<u32, NetlinkError> {
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
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s
            .try_next()
            .await
            .map_err(kernel("list links", &"*".parse().unwrap()))?
        {
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

    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        let index = self.index(ifname).await?;
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

    async fn add_addr(
        &self,
        ifname: &IfName,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
        {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(kernel("add address", ifname)),
        }
    }

    async fn del_addr(
        &self,
        ifname: &IfName,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let index = match self.index(ifname).await {
            Ok(i) => i,
            Err(NetlinkError::NoLink(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let msg = rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, prefix)
            .build();
        match self.handle.address().del(msg).execute().await {
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r.map_err(kernel("delete address", ifname)),
        }
    }

    async fn default_route(&self, ifname: &IfName, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let index = self.index(ifname).await?;
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(kernel("replace default route", ifname))
    }

    fn announce(&self, ifname: &IfName, ip: Ipv4Addr) {
        let (ifname, ip) = (ifname.to_string(), ip.to_string());
        tokio::spawn(async move {
            let args = ["-U", "-c", "3", "-w", "3", "-I", &ifname, &ip];
            if let Err(e) = super::runner::output("arping", &args, None).await {
                tracing::warn!(%ifname, %ip, error = %e, "gratuitous ARP failed");
            }
        });
    }
}

/// An in-memory box: links given up front, addresses recorded.
#[derive(Default)]
pub struct FakeNetlink {
    pub links: Mutex<BTreeMap<Mac, IfName>>,
    pub addrs: Mutex<BTreeMap<IfName, Vec<(Ipv4Addr, u8)>>>,
    pub routes: Mutex<Vec<(IfName, Ipv4Addr)>>,
    pub announced: Mutex<Vec<(IfName, Ipv4Addr)>>,
}

#[async_trait]
impl Netlink for FakeNetlink {
    async fn links(&self) -> Result<BTreeMap<Mac, IfName>, NetlinkError> {
        Ok(self.links.lock().unwrap().clone())
    }
    async fn up(&self, _: &IfName, _: Option<u32>) -> Result<(), NetlinkError> {
        Ok(())
    }
    async fn addrs(&self, ifname: &IfName) -> Result<Vec<(Ipv4Addr, u8)>, NetlinkError> {
        Ok(self
            .addrs
            .lock()
            .unwrap()
            .get(ifname)
            .cloned()
            .unwrap_or_default())
    }
    async fn add_addr(
        &self,
        ifname: &IfName,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut a = self.addrs.lock().unwrap();
        let list = a.entry(ifname.clone()).or_default();
        if !list.contains(&(ip, prefix)) {
            list.push((ip, prefix));
        }
        Ok(())
    }
    async fn del_addr(
        &self,
        ifname: &IfName,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        if let Some(list) = self.addrs.lock().unwrap().get_mut(ifname) {
            list.retain(|x| *x != (ip, prefix));
        }
        Ok(())
    }
    async fn default_route(&self, ifname: &IfName, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        self.routes.lock().unwrap().push((ifname.clone(), gateway));
        Ok(())
    }
    fn announce(&self, ifname: &IfName, ip: Ipv4Addr) {
        self.announced.lock().unwrap().push((ifname.clone(), ip));
    }
}
