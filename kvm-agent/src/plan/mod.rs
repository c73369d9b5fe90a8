//! Pure planners: observed state in, ordered kernel operations out.

pub mod bridge;
