//! Shared by both agents: validation newtypes (`net`), the ZStack wire types
//! (`vr`, `vr_ha`, `kvm`), and the HTTP protocol layer (`agent`, `callback`)
//! that gives every command the async-callback and sync modes of DESIGN.md
//! section 3, and the server that runs it under limits (`serve`).

pub mod agent;
pub mod callback;
pub mod command;
pub mod credentials;
pub mod files;
pub mod image;
pub mod json;
pub mod kvm;
pub mod logging;
pub mod net;
pub mod objects_only;
#[cfg(feature = "pki")]
pub mod pki;
pub mod prometheus;
pub mod reload;
pub mod serve;
pub mod systemd;
pub mod text;
pub mod tls;
pub mod token;
pub mod vr;
pub mod vr_ha;
