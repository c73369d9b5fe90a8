//! The load balancer: haproxy's config checked before anything is
//! touched, then reloaded (or started), certificates staged until the
//! check passes.

use super::*;
use crate::plan::nat;

/// What the LB reconciler put in force, and what it waits to apply.
pub(super) struct LbCache {
    /// The haproxy files in use; None when haproxy is not running.
    pub files: Option<haproxy::Files>,
    /// A certificate in use changed on disk: reload even if the config
    /// text is the same.
    pub reload_pending: bool,
    /// Certificates being uploaded (uuid -> PEM): staged for the check,
    /// written live only once it passed.
    pub new_certs: std::collections::BTreeMap<String, String>,
    /// The box's facts haproxy's config depends on (read once at start).
    pub host: haproxy::Host,
    /// The udp listener table last applied; None when unknown.
    pub udp: Option<String>,
    /// Probes in a row haproxy failed.
    pub failed_probes: u32,
}

impl LbCache {
    pub fn new(host: haproxy::Host) -> LbCache {
        LbCache {
            files: None,
            reload_pending: false,
            new_certs: Default::default(),
            host,
            udp: None,
            failed_probes: 0,
        }
    }
}

impl Engine {
    /// Records uploaded certificates in the model and stores them. A
    /// replaced certificate that a listener uses is checked first
    /// (`haproxy -c` with the new PEMs staged apart) and makes haproxy
    /// reload; a refusal leaves the live PEMs as they were.
    pub async fn add_certificates(
        &mut self,
        certs: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let was_pending = self.lb.reload_pending;
        if self.model.lb.listeners.values().any(|l| {
            l.certificate
                .as_ref()
                .is_some_and(|c| certs.contains_key(c))
        }) {
            self.lb.reload_pending = true;
        }
        self.lb.new_certs = certs.clone();
        let r = self
            .apply(Edit::Lb(LbEdit::Certs(certs.keys().cloned().collect())))
            .await;
        if !self.lb.new_certs.is_empty() {
            // Not installed: the edit failed before its services.
            self.lb.new_certs.clear();
            self.lb.reload_pending = was_pending;
        }
        r
    }

    /// Renders the haproxy config for `lb` and, when it differs from the
    /// running one, checks it (`haproxy -c`) before anything is touched.
    /// None: haproxy stays as it is.
    pub(super) async fn prepare_lb(
        &self,
        lb: &LbState,
    ) -> Result<Option<Option<haproxy::Files>>, EngineError> {
        let h = &self.sys.haproxy;
        let files = haproxy::render(lb, h.paths(), self.lb.host);
        if files == self.lb.files && !self.lb.reload_pending {
            return Ok(None);
        }
        if files.is_some()
            && let Some(check) = haproxy::render(lb, h.check_paths(), self.lb.host)
        {
            h.check(&check, &self.lb.new_certs)
                .await
                .map_err(EngineError::Refused)?;
        }
        Ok(Some(files))
    }

    /// Puts a prepared haproxy config in force, replaces the udp table when
    /// it changed, and deletes certificates no longer used.
    pub(super) async fn sync_lb(
        &mut self,
        old: &LbState,
        new: &LbState,
        plan: Option<Option<haproxy::Files>>,
    ) -> Result<(), EngineError> {
        for l in new.listeners.values() {
            if !l.ignored_parameters.is_empty() && old.listeners.get(&l.uuid) != Some(l) {
                tracing::warn!(listener = %l.uuid, ignored = ?l.ignored_parameters,
                    "unknown load balancer parameters ignored (shown in GET /state)");
            }
        }
        let h = self.sys.haproxy.clone();
        // Uploaded certificates, checked by prepare_lb: now they go live.
        for (uuid, pem) in std::mem::take(&mut self.lb.new_certs) {
            h.write_cert(&uuid, &pem).await?;
        }
        match plan {
            None => {}
            Some(None) if self.lb.files.take().is_some() => {
                h.stop().await?;
                tracing::info!("haproxy stopped: no tcp/http/https listener");
            }
            Some(None) => {}
            Some(Some(files)) => {
                h.write(&files).await?;
                // Unknown until the reload succeeds: a failed reload is
                // retried by the next edit.
                self.lb.files = None;
                if let Err(e) = h.reload().await {
                    self.stats.haproxy_reload_failures += 1;
                    return Err(e.into());
                }
                self.stats.haproxy_reloads += 1;
                self.lb.files = Some(files);
                self.lb.reload_pending = false;
            }
        }
        let script = lbudp::render(new);
        // Nothing to remove when nothing was applied (start with no udp
        // listener): keeps start-up at one nft transaction.
        if self.lb.udp.is_none() && new.udp().next().is_none() {
            self.lb.udp = Some(script.clone());
        }
        if self.lb.udp.as_ref() != Some(&script) {
            self.lb.udp = None;
            self.nft(lbudp::TABLE, &script).await?;
            self.lb.udp = Some(script);
            // Flows of a changed udp listener may stick to a backend that left.
            let stale: BTreeSet<nat::FlowMatch> = old
                .udp()
                .filter(|l| new.listeners.get(&l.uuid) != Some(*l))
                .map(|l| {
                    nat::FlowMatch::DstPorts(
                        l.vip,
                        common::net::Proto::Udp,
                        common::net::PortRange {
                            start: l.port,
                            end: l.port,
                        },
                    )
                })
                .collect();
            self.defer_conntrack(stale);
        }
        if new.certificates != old.certificates || plan_touches_certs(old, new) {
            match h.remove_certs_except(&new.certificates).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "unused certificates deleted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot delete unused certificates"),
            }
        }
        Ok(())
    }
}

/// True when some listener's certificate changed.
pub(super) fn plan_touches_certs(old: &LbState, new: &LbState) -> bool {
    let certs = |s: &LbState| -> BTreeSet<String> {
        s.listeners
            .values()
            .filter(|l| l.mode == LbMode::Https)
            .filter_map(|l| l.certificate.clone())
            .collect()
    };
    certs(old) != certs(new)
}
