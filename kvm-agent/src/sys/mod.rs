//! Side effects, one trait each, with a real implementation and a fake.

pub mod antispoof;
pub mod bootstrap;
pub mod events;
pub mod hostinfo;
pub mod hypervisor;
pub mod netlink;
pub mod store;
pub mod sysctl;
