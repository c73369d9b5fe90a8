//! Test doubles: `FailAt` fails one chosen op of any implementation;
//! `FakeNetlink` is an in-memory kernel.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{EEXIST, Netlink, NetlinkError};
use crate::netstate::{BridgeOpts, Link, Observed, Op};

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
