//! The HA pair's routes (`common::vr_ha`): decode, bound, hand to
//! `crate::ha`, map its error by cause.

use common::agent::{ApiError, Ok};
use common::vr_ha::{EmptyCmd, EnableVyosHaCmd, SyncHaRsp};

use super::AppState;
use crate::ha::{Ha, HaError};

impl From<HaError> for ApiError {
    fn from(e: HaError) -> ApiError {
        match e {
            // The body on its own: a bad field, a spec keepalived cannot take.
            HaError::Config(_) | HaError::Render(_) => ApiError::bad_request(e.to_string()),
            HaError::Engine(inner) => ApiError::from(inner),
            HaError::Sys(_) | HaError::Persist(_) | HaError::NoRole(_) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

fn ha(s: &AppState) -> Result<&Ha, ApiError> {
    s.ha.as_deref().ok_or_else(|| {
        ApiError::bad_request("this agent runs without HA support (no state directory for it)")
    })
}

pub(super) async fn enable_ha(s: AppState, cmd: EnableVyosHaCmd) -> Result<Ok, ApiError> {
    super::bounded(&cmd)?;
    if let Some(url) = cmd.callback_url.as_deref().filter(|u| !u.trim().is_empty()) {
        // The status reports go there later, from no request: the same
        // rule as a callbackurl header (a controller address only).
        s.sources
            .check_callback(url, None)
            .await
            .map_err(|why| ApiError::bad_request(format!("callbackUrl: {why}")))?;
    }
    ha(&s)?.enable(&cmd).await?;
    Result::Ok(Ok {})
}

pub(super) async fn sync_ha(s: AppState, _: EmptyCmd) -> Result<SyncHaRsp, ApiError> {
    let role = s.ha.as_deref().map(Ha::role);
    Result::Ok(SyncHaRsp {
        ha_status: role.map(|r| r.wire()).unwrap_or_default(),
    })
}

pub(super) async fn restart_keepalived(s: AppState, _: EmptyCmd) -> Result<Ok, ApiError> {
    ha(&s)?.restart_keepalived().await?;
    Result::Ok(Ok {})
}

/// `/keepalived/garp`: the peer's curl posts no body.
pub(super) async fn garp(axum::extract::State(s): axum::extract::State<AppState>) -> &'static str {
    if let Some(ha) = s.ha.as_deref()
        && let Err(e) = ha.garp().await
    {
        tracing::warn!(error = %e, "announcing the shared addresses failed");
    }
    "{}"
}

/// `GET /ha`: this router's view of the pair, for vrctl.
pub(super) async fn status(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    let role = s.ha.as_deref().map(Ha::role);
    axum::Json(serde_json::json!({
        "role": role.unwrap_or(crate::ha::Role::Off),
        "haStatus": role.map(|r| r.wire()).unwrap_or_default(),
    }))
}
