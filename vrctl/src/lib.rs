//! vrctl plays the cloud controller: it talks to vr-agent (and kvm-agent)
//! with the real protocol, async callbacks included.
//!
//! * `client`: one agent connection: async commands with our own callback
//!   receiver, sync commands, the version handshake.
//! * `spec`: the declarative description of a router's networks and
//!   services (and, for `vr create`, its VM), the controller's resync
//!   order, and diffs.
//! * `router`: the router's life as a VM through kvm-agent (create, start,
//!   reboot, stop, destroy, re-create, vmsync-driven state).
//! * `diagnose`: why a router does not come up, decided from the agent's
//!   port, the console and the domain state instead of a timeout.
//! * `lab`: the whole seed topology on one machine, driven and verified.
//! * `credentials`, `pki`, `router_tls`: mutual TLS and bearer tokens
//!   towards the agents (issue 14): what vrctl presents, its CA, and each
//!   router's own certificate.
//! * `host`, `appliance`, `wire`: the bodies the management node's Java
//!   classes send (host commands; the router VM's start and bootstrap info;
//!   the router commands' entries).

pub mod appliance;
pub mod client;
pub mod credentials;
pub mod diagnose;
pub mod host;
pub mod lab;
pub mod pki;
pub mod router;
pub mod router_tls;
pub mod spec;
pub mod wire;
