//! Side effects, one trait each, with a real implementation and a fake that
//! records calls (for tests that run without root).

pub mod blocking;
pub mod conntrack;
pub mod credentials;
pub mod dnsmasq;
pub mod firewall;
pub mod ha;
pub mod haproxy;
pub mod health;
pub mod memory;
pub mod monitor;
pub mod ndisc;
pub mod netlink;
pub mod nft_elements;
pub mod nft_fingerprint;
pub mod power;
pub mod runner;
pub mod store;
pub mod supervisor;
pub mod sysctl;

use std::sync::Arc;

/// Every side effect the engine performs.
#[derive(Clone)]
pub struct Sys {
    pub firewall: Arc<dyn firewall::Firewall>,
    pub netlink: Arc<dyn netlink::Netlink>,
    pub conntrack: Arc<dyn conntrack::Conntrack>,
    pub store: Arc<dyn store::Store>,
    pub dnsmasq: Arc<dyn dnsmasq::Dnsmasq>,
    pub haproxy: Arc<dyn haproxy::Haproxy>,
    pub sysctl: Arc<dyn sysctl::Sysctl>,
}
