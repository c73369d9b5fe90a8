//! Wire types of the ZStack virtual-router agent protocol
//! (`shared/reference/zstack-vr-protocol.md`). Field names follow the Java
//! command classes exactly: camelCase, `is*` booleans kept. Every struct takes
//! defaults for missing fields and ignores unknown ones; values stay strings
//! here and are validated when converted into the agent's model.
//!
//! The same types are what a sender (vrctl) serialises, so the field names
//! are written once. Serialised and with JSON nulls left out (vrctl's
//! `client::body`), a value is what the node's Gson writes for the Java
//! class (zstackio/zstack 5a29293bd5): the class's fields only, primitives
//! always, a null never. A `String` or list here that stands for a Java
//! field the node may leave null is skipped when empty. The one field the
//! Java command classes lack, `NicInfo::device_name` (the bootstrap info's),
//! is for the sender to clear. vrctl's `tests/bodies.rs` checks each body
//! against the conformance fixtures' fields.

mod bootstrap;
#[cfg(test)]
mod bound_tests;
mod bounds;
mod dhcp;
mod dns;
mod lb;
mod nat;
mod nic;
mod router;
mod vip;

pub use bootstrap::*;
pub use bounds::*;
pub use dhcp::*;
pub use dns::*;
pub use lb::*;
pub use nat::*;
pub use nic::*;
pub use router::*;
pub use vip::*;

/// Protocol level reported to the controller as `zvrVersion`: the ZStack
/// controller wants four numeric parts and redeploys agents it finds older
/// than its own, so this names the zvr protocol level we implement.
pub const ZVR_VERSION: &str = "5.2.0.0";
