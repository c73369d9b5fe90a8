//! An upstream DNS server for routers under test.

use anyhow::Result;

use crate::netns::Netns;
use crate::process::Proc;

/// An "outside" DNS server in `ns` on `ip`:53 (dnsmasq in the foreground,
/// no system files): `www.example.test` and every other name under
/// example.test resolve to 203.0.113.7. Routers under test forward to it.
pub fn upstream_dns(ns: &Netns, ip: &str) -> Result<Proc> {
    ns.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--bind-interfaces",
            &format!("--listen-address={ip}"),
            "--log-facility=-",
            "--address=/example.test/203.0.113.7",
        ],
    )
}
