//! Pure planners: observed state in, ordered kernel operations out; start
//! commands in, domain XML and bootstrap payloads out.

pub mod bootstrap;
pub mod bridge;
pub mod domain;
