//! A snapshot of the root namespace's network state, to prove a test left
//! it alone.

use std::process::Command;

/// The root namespace's IPv4 addresses, routes (all tables) and nft
/// ruleset: tests that start libvirtd or the lab compare it before and
/// after, since they must never change it.
pub fn root_view() -> String {
    let run = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    format!(
        "{}\n{}\n{}",
        run(&["ip", "-4", "-br", "addr"]),
        run(&["ip", "route", "show", "table", "all"]),
        run(&["nft", "list", "ruleset"])
    )
}
