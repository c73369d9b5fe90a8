//! The HA pair's hold on the shared NICs (issue 17). Both routers of a pair
//! are configured alike (the node sends each the same NICs, VIPs, NAT,
//! DHCP and LB), and the backup keeps all of it applied; it answers for
//! none of the pair's addresses because every NIC but the management and
//! heartbeat NICs is down on it (zvr's notify scripts do the same). So a
//! promotion is links up, the pair's VIPs added, the default route put
//! back and every address announced: no render, no restart.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::net::{IfName, Mac};
use vr_model::NicCategory;

use super::{Engine, EngineError};
use crate::plan::{self, links::LinkOp};

/// When a new master announces its addresses the second time.
const REANNOUNCE_AFTER: Duration = Duration::from_millis(250);

/// What the engine must not undo on a backup.
#[derive(Debug, Clone, Default)]
pub struct HaHold {
    /// NICs that stay up whatever the role (the heartbeat NIC; the
    /// management NIC is always kept).
    pub keep_up: BTreeSet<Mac>,
    /// True on a backup (and before the first election): the shared NICs
    /// are down and edits do not bring them up.
    pub standby: bool,
}

/// One address the pair shares besides the NICs' own (`/enableVyosha`'s
/// `vips`): added by the master only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairVip {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

impl Engine {
    /// Set (or clear) the hold before anything else runs; with `standby`
    /// the shared NICs go down at once.
    pub async fn set_ha_hold(&mut self, hold: Option<HaHold>) -> Result<(), EngineError> {
        let standby = hold.as_ref().is_some_and(|h| h.standby);
        self.ha = hold;
        if standby {
            self.ha_standby().await
        } else {
            self.ha_bring_up(&[]).await
        }
    }

    pub fn ha_hold(&self) -> Option<&HaHold> {
        self.ha.as_ref()
    }

    /// The links a backup keeps down, by name: the shared NICs of the
    /// model, and of `next` (an edit that adds a NIC, e.g. the bootstrap
    /// info's on a router with no state yet).
    fn shared_links(
        &self,
        links: &BTreeMap<Mac, IfName>,
        next: Option<&vr_model::Model>,
    ) -> BTreeSet<IfName> {
        let Some(hold) = &self.ha else {
            return BTreeSet::new();
        };
        let next = next.into_iter().flat_map(|m| m.nics.values());
        self.model
            .nics
            .values()
            .chain(next)
            .filter(|n| n.category != NicCategory::Management && !hold.keep_up.contains(&n.mac))
            .filter_map(|n| links.get(&n.mac).cloned())
            .collect()
    }

    /// A link op a backup skips: bringing a shared NIC up, routing or
    /// announcing through it.
    pub(super) fn held_back(&self, op: &LinkOp, shared: &BTreeSet<IfName>) -> bool {
        matches!(
            op,
            LinkOp::Up { .. } | LinkOp::DefaultRoute { .. } | LinkOp::Announce { .. }
        ) && self.ha.as_ref().is_some_and(|h| h.standby)
            && shared.contains(op.ifname())
    }

    /// The names of the shared links now (with `next`'s), for
    /// [`held_back`]; empty when no hold is standing.
    pub(super) async fn held_links(
        &self,
        next: Option<&vr_model::Model>,
    ) -> Result<BTreeSet<IfName>, EngineError> {
        if !self.ha.as_ref().is_some_and(|h| h.standby) {
            return Ok(BTreeSet::new());
        }
        let links = self.sys.netlink.links().await?;
        Ok(self.shared_links(&links, next))
    }

    /// Backup (or fault): every shared NIC down.
    pub async fn ha_standby(&mut self) -> Result<(), EngineError> {
        if let Some(h) = &mut self.ha {
            h.standby = true;
        }
        let links = self.sys.netlink.links().await?;
        for l in self.shared_links(&links, None) {
            self.sys.netlink.down(&l).await?;
        }
        Ok(())
    }

    /// Master: the shared NICs up with their addresses and the pair's
    /// VIPs, the default route back, every address announced.
    pub async fn ha_bring_up(&mut self, vips: &[PairVip]) -> Result<(), EngineError> {
        if let Some(h) = &mut self.ha {
            h.standby = false;
        }
        let links = self.sys.netlink.links().await?;
        let mut ops = plan::links::plan(None, &self.model, None, &links)?;
        for v in vips {
            if let Some(ifname) = links.get(&v.mac) {
                ops.push(LinkOp::AddAddr {
                    ifname: ifname.clone(),
                    ip: v.ip.into(),
                    prefix: v.prefix,
                });
            }
        }
        self.run_link_ops(&ops).await?;
        let nl = self.sys.netlink.clone();
        let mut announced = vec![];
        for l in self.shared_links(&links, None) {
            for (ip, _) in nl.addrs(&l).await? {
                nl.announce(&l, IpAddr::V4(ip));
                announced.push((l.clone(), ip));
            }
        }
        // A neighbour that missed the first burst (sent as the link came
        // up) hears a second one shortly after, not arping's next packet a
        // second later (seen once in ~35 failovers here: 1.37 s of silence).
        tokio::spawn(async move {
            tokio::time::sleep(REANNOUNCE_AFTER).await;
            for (l, ip) in announced {
                nl.announce(&l, IpAddr::V4(ip));
            }
        });
        self.sync_routes(&links).await
    }
}
