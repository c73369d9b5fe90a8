//! Pure planners: observed state in, ordered kernel operations out; start
//! commands in, domain XML, anti-spoofing rules and bootstrap payloads out.

pub mod antispoof;
pub mod bootstrap;
pub mod bridge;
pub mod domain;
