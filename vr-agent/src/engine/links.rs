//! Links: addresses, MTUs and the default route put on the box
//! (`plan::links` says what; this runs it through netlink).

use super::*;

impl Engine {
    pub(super) async fn run_link_ops(&self, ops: &[LinkOp]) -> Result<(), EngineError> {
        self.run_link_ops_towards(ops, None).await
    }

    /// [`run_link_ops`] for an edit towards `next`: on a backup the shared
    /// links of both models are held, and set down first (a NIC may come
    /// up by itself before it is configured: it must not answer for the
    /// pair's addresses once it has them).
    pub(super) async fn run_link_ops_towards(
        &self,
        ops: &[LinkOp],
        next: Option<&vr_model::Model>,
    ) -> Result<(), EngineError> {
        let nl = &self.sys.netlink;
        let mut announce = vec![];
        let held = self.held_links(next).await?;
        for l in &held {
            if ops.iter().any(|op| op.ifname() == l) {
                nl.down(l).await?;
            }
        }
        for op in ops {
            if self.held_back(op, &held) {
                continue;
            }
            match op {
                LinkOp::Up { ifname, mtu } => nl.up(ifname, *mtu).await,
                LinkOp::AddAddr { ifname, ip, prefix } => nl.add_addr(ifname, *ip, *prefix).await,
                LinkOp::DelAddr { ifname, ip, prefix } => nl.del_addr(ifname, *ip, *prefix).await,
                LinkOp::DefaultRoute { ifname, gateway } => {
                    nl.default_route(ifname, *gateway).await
                }
                LinkOp::PrimaryFirst { ifname, ip, prefix } => {
                    let addrs = nl.addrs(ifname).await?;
                    if addrs.first() == Some(&(*ip, *prefix)) {
                        Ok(())
                    } else {
                        tracing::info!(%ifname, %ip, "re-ordering addresses so the NIC's own IP is first");
                        for (a, p) in &addrs {
                            nl.del_addr(ifname, (*a).into(), *p).await?;
                        }
                        nl.add_addr(ifname, (*ip).into(), *prefix).await?;
                        for (a, p) in addrs.iter().filter(|x| **x != (*ip, *prefix)) {
                            nl.add_addr(ifname, (*a).into(), *p).await?;
                        }
                        Ok(())
                    }
                }
                LinkOp::Announce { ifname, ip } => {
                    announce.push((ifname, *ip));
                    Ok(())
                }
            }?;
        }
        for (ifname, ip) in announce {
            nl.announce(ifname, ip);
        }
        Ok(())
    }
}
