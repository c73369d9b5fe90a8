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
//! * `watch`: the recovery loop (`vrctl watch`): ping every router, and
//!   when one is lost start, move, re-create or reboot it, by the table in
//!   `watch::decide`.
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
pub mod cli;
pub mod client;
pub mod credentials;
pub mod diagnose;
pub mod exit;
pub mod host;
pub mod lab;
pub mod pki;
pub mod router;
pub mod router_tls;
pub mod spec;
pub mod watch;
pub mod wire;

/// What `--version` prints: the package version, the git commit of a
/// release build (see common/build_commit.rs) and the protocol levels
/// vrctl speaks.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AGENTS_BUILD_COMMIT"),
    "; ZStack virtual-router protocol, zvrVersion 5.2.0.0 or newer; KVM host protocol of ZStack 5.2)"
);

#[cfg(test)]
mod version_tests {
    #[test]
    fn version_line_names_the_protocol_level_we_need() {
        assert!(
            crate::VERSION_LINE.contains(crate::diagnose::MIN_VERSION),
            "{}",
            crate::VERSION_LINE
        );
    }
}
