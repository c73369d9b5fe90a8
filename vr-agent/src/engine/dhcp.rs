//! DHCP and DNS: dnsmasq's files rendered from the model, then written
//! with a reload (SIGHUP) or a restart as the change needs.

use super::*;
use crate::plan::dnsmasq::{self as dhcp, Action};
use crate::sys::dnsmasq::Dnsmasq;

/// What the DHCP reconciler put in force.
#[derive(Default)]
pub(super) struct DhcpCache {
    /// The dnsmasq files in use; None when dnsmasq is not running.
    pub files: Option<Files>,
    /// Probes in a row dnsmasq failed.
    pub failed_probes: u32,
}

impl DhcpCache {
    /// dnsmasq files for a DHCP/DNS state; None when there is nothing to
    /// serve. A NIC the state names but the box lacks is an error.
    pub fn render(
        d: &dyn Dnsmasq,
        state: &DnsmasqState,
        links: &std::collections::BTreeMap<common::net::Mac, common::net::IfName>,
    ) -> Result<Option<Files>, EngineError> {
        if *state == DnsmasqState::default() {
            return Ok(None);
        }
        let r = dhcp::render(state, links, d.paths());
        if let Some(mac) = r.missing_nics.iter().next() {
            return Err(crate::plan::PlanError::NoSuchNic {
                what: "vrNicMac/nicMac".into(),
                mac: *mac,
            }
            .into());
        }
        Ok(Some(r.files))
    }

    /// Bring dnsmasq to `files` (reload or restart as needed) and release
    /// the leases of entries that went away or changed address.
    pub async fn sync(
        &mut self,
        d: &dyn Dnsmasq,
        old: &DnsmasqState,
        new: &DnsmasqState,
        files: Option<Files>,
        links: &std::collections::BTreeMap<common::net::Mac, common::net::IfName>,
    ) -> Result<(), EngineError> {
        match files {
            None => {
                if self.files.take().is_some() {
                    d.stop().await?;
                    tracing::info!("dnsmasq stopped: nothing to serve");
                }
            }
            Some(files) => {
                let action = update_dnsmasq(d, self.files.as_ref(), &files).await?;
                if action != dhcp::Action::Nothing {
                    tracing::info!(?action, "dnsmasq updated");
                }
                self.files = Some(files);
            }
        }
        // Only entries that hold a lease need one `dhcp_release` each; most
        // removed guests of a big refresh never asked for one.
        let gone: Vec<_> = old
            .entries
            .values()
            .filter(|e| new.entries.get(&e.key()).is_none_or(|n| n.ip != e.ip))
            .map(|e| (e.vr_nic_mac, e.mac, e.ip))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let leased: std::collections::HashSet<_> = d.leases().into_iter().collect();
        for (nic, mac, ip) in gone
            .into_iter()
            .filter(|(_, m, i)| leased.contains(&(*m, *i)))
        {
            if let Some(ifname) = links.get(&nic)
                && let Err(err) = d.release(ifname, ip, mac).await
            {
                tracing::warn!(%ip, %mac, error = %err, "could not release lease");
            }
        }
        Ok(())
    }
}

/// Brings dnsmasq from `old` to `new` files: nothing, write + SIGHUP, or
/// check + write + restart (the plan says which). Returns what it did.
pub async fn update_dnsmasq(
    d: &dyn Dnsmasq,
    old: Option<&Files>,
    new: &Files,
) -> Result<Action, DnsmasqError> {
    let action = crate::plan::dnsmasq::action(old, new);
    match action {
        Action::Nothing => {}
        Action::Reload => {
            d.write(new).await?;
            d.reload().await?;
        }
        Action::Restart => {
            d.check(&new.conf).await?;
            d.write(new).await?;
            d.restart().await?;
        }
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::dnsmasq::{Call, FakeDnsmasq};

    #[tokio::test]
    async fn hosts_changes_reload_and_config_changes_restart() {
        let d = FakeDnsmasq::new();
        let a = Files::conf_and_hosts("c1", "h1");
        assert_eq!(update_dnsmasq(&d, None, &a).await.unwrap(), Action::Restart);
        assert_eq!(
            d.take_calls(),
            vec![
                Call::Check("c1".into()),
                Call::Write(a.clone()),
                Call::Restart
            ]
        );
        let b = Files::conf_and_hosts("c1", "h2");
        assert_eq!(
            update_dnsmasq(&d, Some(&a), &b).await.unwrap(),
            Action::Reload
        );
        assert_eq!(d.take_calls(), vec![Call::Write(b.clone()), Call::Reload]);
        assert_eq!(
            update_dnsmasq(&d, Some(&b), &b).await.unwrap(),
            Action::Nothing
        );
        assert!(d.take_calls().is_empty());
    }

    #[tokio::test]
    async fn a_refused_config_is_not_written() {
        let d = FakeDnsmasq::new();
        *d.fail_check_on.lock().unwrap() = Some("bogus".into());
        let err = update_dnsmasq(&d, None, &Files::conf_and_hosts("bogus", "h"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bad option bogus"), "{err}");
        assert_eq!(d.take_calls(), vec![Call::Check("bogus".into())]);
    }
}
