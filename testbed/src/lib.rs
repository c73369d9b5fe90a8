//! The shared privileged test bed (see DESIGN.md section 7).
//!
//! Every topology lives in network namespaces created by this crate; nothing
//! here touches the root namespace's addresses, routes or firewall. Every
//! resource is owned by a guard whose `Drop` removes it, so a panicking test
//! still cleans up.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let a = testbed::Netns::new("a")?;
//! let b = testbed::Netns::new("b")?;
//! testbed::veth(&a, "eth0", &b, "eth0")?;
//! testbed::addr(&a, "eth0", "10.0.0.1/24")?;
//! testbed::addr(&b, "eth0", "10.0.0.2/24")?;
//! let _srv = testbed::TcpServer::start(&b, "0.0.0.0:8080")?;
//! let seen = testbed::tcp_probe(&a, "10.0.0.2:8080", std::time::Duration::from_secs(2))?;
//! assert!(seen.starts_with("10.0.0.1:"));
//! # Ok(()) }
//! ```
//!
//! Modules (their items are re-exported here, so callers write `testbed::X`):
//! - `privileges`: whether privileged tests can run; `require_privileged!`.
//! - `names`: process-unique names for namespaces, temp dirs and interfaces.
//! - `command`: runs a command to completion, its failure explained (crate-private).
//! - `netns`: [`Netns`], a namespace guard; commands and Rust code inside it.
//! - `links`: veth pairs, bridges, ports, addresses, routes, MACs.
//! - `process`: [`Proc`], a background process guard with its output logged.
//! - `concurrency`: many calls from several tasks at once in a namespace, failures kept.
//! - `tempdir`: [`TempDir`], a unique directory removed on Drop.
//! - `wait`: polling until a condition holds or a timeout passes.
//! - `server_thread`: the stoppable thread behind the test servers (crate-private).
//! - `servers`: [`TcpServer`], [`UdpServer`], answering with the client's address.
//! - `probes`: TCP, UDP and ping probes from inside a namespace.
//! - `http`: HTTP requests with curl from inside a namespace.
//! - `dhcp`: a DHCP client in a namespace that reports its lease.
//! - `dns`: an upstream DNS server for routers under test.
//! - `callbacks`: [`CallbackReceiver`], the controller's callback endpoint.
//! - `router_nets`: [`RouterNets`], the vr-agent tests' router topology.
//! - `root_view`: the root namespace's network state, to prove tests left it alone.
//! - `images`: where the built VR image lives.
//! - [`conformance`]: the ZStack protocol fixtures and the checks of replies.
//! - [`dos`]: denial-of-service probes against an agent.
//! - [`libvirt`]: a private libvirtd in a namespace, and `virsh` against it.
//! - [`pki`]: client-authentication fixtures and `curl` with them.

pub mod conformance;
pub mod dos;
pub mod failover;
pub mod libvirt;
pub mod pki;
pub mod vr_pair;

mod callbacks;
mod command;
mod concurrency;
mod dhcp;
mod dns;
mod http;
mod images;
mod links;
mod names;
mod netns;
mod privileges;
mod probes;
mod process;
mod root_view;
mod router_nets;
mod server_thread;
mod servers;
mod tempdir;
mod wait;

pub use callbacks::{CallbackReceiver, Recorded};
pub use concurrency::concurrent_failures;
pub use dhcp::dhcp_lease;
pub use dns::upstream_dns;
pub use http::{http, http_get, http_post};
pub use images::vr_image_dir;
pub use links::{addr, bridge, enslave, mac, route, set_mac, veth};
pub use names::{ifname, unique_name};
pub use netns::Netns;
pub use privileges::{privileged, unprivileged_reason};
pub use probes::{ping, tcp_probe, udp_probe};
pub use process::Proc;
pub use root_view::root_view;
pub use router_nets::{MGMT_MAC, PRIV_MAC, PUB_MAC, RouterNets};
pub use servers::{TcpServer, UdpServer};
pub use tempdir::TempDir;
pub use wait::{wait_ok, wait_until};
