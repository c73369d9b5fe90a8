//! Why an edit cannot be rendered for this box.

use common::net::Mac;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An entry names a NIC (by MAC) that this router does not have.
    #[error("{what}: {mac} matches no NIC on this router")]
    NoSuchNic { what: String, mac: Mac },
    /// Beyond what we render (e.g. a port range shifted by more ports than
    /// the table takes).
    #[error("{0}")]
    Unsupported(String),
}
