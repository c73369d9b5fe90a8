//! The one place where an engine error becomes a reply: the status names
//! the cause, whatever the kind of edit.
//! - 400: the request on its own (it contradicts itself, it cannot be
//!   rendered, haproxy refuses what it leads to);
//! - 409: it clashes with an entry the router holds or with the router
//!   itself (its NICs, certificates, the management plane);
//! - 500: the box failed (nft, netlink, a child, the disk).

use common::agent::{ApiError, ErrorKind};
use vr_model::Invalid;

use crate::engine::EngineError;
use crate::plan::PlanError;

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError {
            kind: kind(e.cause()),
            message: e.to_string(),
        }
    }
}

fn kind(cause: &EngineError) -> ErrorKind {
    match cause {
        EngineError::Invalid(Invalid::Request(_)) => ErrorKind::BadRequest,
        EngineError::Invalid(Invalid::Clash(_) | Invalid::Router(_)) => ErrorKind::Conflict,
        // The router lacks the NIC (not attached, or not yet configured),
        // as for /changeDefaultNic and a /configurenic NIC that never came.
        EngineError::Plan(PlanError::NoSuchNic { .. }) => ErrorKind::Conflict,
        EngineError::Plan(PlanError::Unsupported(_)) | EngineError::Refused(_) => {
            ErrorKind::BadRequest
        }
        EngineError::Firewall(_)
        | EngineError::Netlink(_)
        | EngineError::Dnsmasq(_)
        | EngineError::Haproxy(_)
        | EngineError::Store(_)
        | EngineError::Persist(_) => ErrorKind::Internal,
        // `cause` looks under it.
        EngineError::NotApplied { cause, .. } => kind(cause),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::store::StoreError;

    #[test]
    fn the_status_follows_the_first_cause_under_an_undo() {
        let undone = |cause| EngineError::NotApplied {
            cause: Box::new(cause),
            undo_failed: None,
        };
        let api = |e: EngineError| ApiError::from(e).status().as_u16();
        assert_eq!(api(Invalid::Request("r".into()).into()), 400);
        assert_eq!(api(Invalid::Clash("c".into()).into()), 409);
        assert_eq!(api(Invalid::Router("m".into()).into()), 409);
        assert_eq!(api(undone(Invalid::Clash("c".into()).into())), 409);
        let nic = PlanError::NoSuchNic {
            what: "eip".into(),
            mac: "fa:26:9c:aa:00:99".parse().unwrap(),
        };
        assert_eq!(api(nic.into()), 409);
        assert_eq!(api(PlanError::Unsupported("u".into()).into()), 400);
        let disk = StoreError::Io {
            path: "/var/lib/vr-agent".into(),
            source: std::io::Error::other("disk full"),
        };
        let e = undone(EngineError::Persist(disk));
        assert_eq!(
            e.to_string(),
            "cannot persist the change: state dir /var/lib/vr-agent: disk full \
             (not applied; the previous state is in force)"
        );
        assert_eq!(api(e), 500);
    }
}
