//! Why the router cannot take an edit. The cause, not the kind of edit,
//! decides the reply: the agent maps each variant to its status in one
//! place (400 for `Request`, 409 for the others).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The request on its own: it contradicts itself (two of its entries
    /// clash, a uuid twice), so no router could take it.
    #[error("{0}")]
    Request(String),
    /// It clashes with an entry the router holds (a rule, an EIP, a
    /// listener, a lease).
    #[error("{0}")]
    Clash(String),
    /// It clashes with the router itself: its NICs and their addresses,
    /// its gateways, its uploaded certificates, the management plane.
    #[error("{0}")]
    Router(String),
}

impl Invalid {
    pub fn message(&self) -> &str {
        match self {
            Invalid::Request(m) | Invalid::Clash(m) | Invalid::Router(m) => m,
        }
    }

    /// The same fault, found among the request's own entries: then it is
    /// the request's.
    pub fn own(self) -> Invalid {
        match self {
            Invalid::Clash(m) => Invalid::Request(m),
            e => e,
        }
    }
}
