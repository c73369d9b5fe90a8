//! The load balancer and its certificates: `/lb/*`, `/certificate*`.

use common::agent::{ApiError, Ok};
use common::vr;
use vr_model::Edit;
use vr_model::lb::{self, LbEdit};

use super::{AppState, bad, bounded, submit};

pub(super) async fn lb_refresh(s: AppState, c: vr::LbCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let (listeners, remove) = lb::listeners(&c.lbs).map_err(bad)?;
    submit(
        &s,
        Edit::Lb(LbEdit::Refresh {
            listeners,
            remove,
            log: c.enable_haproxy_log,
        }),
    )
    .await
}

pub(super) async fn lb_delete(s: AppState, c: vr::LbCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let uuids = lb::listener_uuids(&c.lbs).map_err(bad)?;
    submit(&s, Edit::Lb(LbEdit::Delete(uuids))).await
}

pub(super) async fn lb_log_level(s: AppState, c: vr::LbLogLevelCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    let level = lb::log_level(&c.level).map_err(bad)?;
    submit(&s, Edit::Lb(LbEdit::LogLevel(level))).await
}

pub(super) async fn add_certs(
    s: &AppState,
    certs: std::collections::BTreeMap<String, String>,
) -> Result<Ok, ApiError> {
    for (uuid, pem) in &certs {
        lb::certificate(uuid, pem).map_err(bad)?;
    }
    s.engine.lock().await.add_certificates(&certs).await?;
    Result::Ok(Ok {})
}

pub(super) async fn certificate_create(s: AppState, c: vr::CertificateCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    add_certs(&s, [(c.uuid, c.certificate)].into_iter().collect()).await
}

pub(super) async fn certificates_create(
    s: AppState,
    c: vr::CertificatesCmd,
) -> Result<Ok, ApiError> {
    bounded(&c)?;
    add_certs(&s, c.certs).await
}

pub(super) async fn certificate_delete(s: AppState, c: vr::CertificateCmd) -> Result<Ok, ApiError> {
    bounded(&c)?;
    if !lb::check_ident(&c.uuid) {
        return Err(ApiError::bad_request(format!(
            "certificate: uuid: {} is missing or is not an id",
            common::text::quoted(&c.uuid)
        )));
    }
    submit(&s, Edit::Lb(LbEdit::DeleteCert(c.uuid))).await
}
