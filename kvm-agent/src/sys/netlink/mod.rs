//! The netlink side effect: dump links/addresses/routes, apply one `Op`, and
//! check that a neighbour (the default gateway) answers.
//!
//! `RtNetlink` (kernel.rs) talks to the kernel of the network namespace it
//! was created in, translating through messages.rs; `FailAt` wraps any
//! implementation to fail one chosen op (tests provoke each rollback against
//! the real kernel with it); `FakeNetlink` simulates a kernel in memory and
//! records ops (both in fakes.rs, compiled only for tests: feature `fakes`).

#[cfg(any(test, feature = "fakes"))]
mod fakes;
mod kernel;
mod messages;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::netstate::{Observed, Op};

#[cfg(any(test, feature = "fakes"))]
pub use fakes::{FailAt, FakeNetlink};
pub use kernel::RtNetlink;

pub const EEXIST: i32 = libc::EEXIST;
pub const ENODEV: i32 = libc::ENODEV;
pub const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    #[error("{message} (errno {errno})")]
    Kernel { errno: i32, message: String },
    #[error("no such link {0}")]
    NoLink(String),
    #[error("injected failure at op {0}")]
    Injected(usize),
    #[error("netlink: {0}")]
    Other(String),
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::NoLink(_) => Some(ENODEV),
            _ => None,
        }
    }
    #[cfg(any(test, feature = "fakes"))]
    fn kernel(errno: i32) -> Self {
        NetlinkError::Kernel {
            errno,
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

impl From<rtnetlink::Error> for NetlinkError {
    fn from(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) => NetlinkError::Kernel {
                errno: -m.raw_code(),
                message: m.to_io().to_string(),
            },
            other => NetlinkError::Other(other.to_string()),
        }
    }
}

pub trait Netlink: Send + Sync {
    /// Every link, address and (IPv4 + IPv6, all tables) route.
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>>;
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>>;
    /// Trigger resolution of `ip` on `link` and wait up to `within` for the
    /// neighbour entry to hold a link-layer address.
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>>;
}

impl<T: Netlink + ?Sized> Netlink for Arc<T> {
    fn dump(&self) -> BoxFuture<'_, Result<Observed, NetlinkError>> {
        (**self).dump()
    }
    fn apply<'a>(&'a self, op: &'a Op) -> BoxFuture<'a, Result<(), NetlinkError>> {
        (**self).apply(op)
    }
    fn neighbour_answers<'a>(
        &'a self,
        link: &'a str,
        ip: IpAddr,
        within: Duration,
    ) -> BoxFuture<'a, Result<bool, NetlinkError>> {
        (**self).neighbour_answers(link, ip, within)
    }
}
