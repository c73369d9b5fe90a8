//! Side effects, one trait each, with a real implementation and a fake.

pub mod hostinfo;
pub mod netlink;
pub mod store;
pub mod sysctl;
