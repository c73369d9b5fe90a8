//! vrctl plays the cloud controller: it talks to vr-agent (and kvm-agent)
//! with the real protocol, async callbacks included.
//!
//! * `client`: one agent connection: async commands with our own callback
//!   receiver, sync commands, the version handshake.
//! * `spec`: the declarative description of a router's networks and
//!   services, the controller's resync order, and diffs.

pub mod client;
pub mod spec;
