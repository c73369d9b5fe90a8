//! Pure planning: desired state (plus observed facts) in, artifacts out.
//! Nothing here touches the system; `sys/` applies what these functions make.

pub mod conntrackd;
pub mod dnsmasq;
mod error;
pub mod haproxy;
pub mod keepalived;
pub mod lbudp;
pub mod links;
pub mod nat;
pub mod routes;

pub use error::PlanError;
