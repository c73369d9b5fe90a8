//! Listings of links, addresses and routes from several tasks at once (the
//! engine, `/configurenic` waiting for a NIC without the engine lock, the
//! drift checks) share one netlink socket, and the kernel runs one dump per
//! socket at a time: a second one started meanwhile is refused with EBUSY.
//! Seen as a 500 "list links on *: ... Device or resource busy" from
//! /configurenic. The agent's dumps take turns.

use testbed::Netns;
use vr_agent::sys::netlink::{Netlink, RtNetlink};

const TASKS: usize = 4;
const LISTINGS: usize = 300;

#[test]
fn listings_from_several_tasks_at_once_do_not_fail() {
    testbed::require_privileged!();
    let ns = Netns::new("dump").unwrap();
    // Enough links that one dump spans several netlink messages.
    ns.sh("for i in $(seq 1 40); do ip link add v$i type veth peer name w$i; done")
        .unwrap();
    let setup = || RtNetlink::new().unwrap();
    let failures = testbed::concurrent_failures(&ns, TASKS, LISTINGS, setup, |nl, i| async move {
        let r = match i % 2 {
            0 => nl.links().await.map(|l| assert!(l.len() >= 80)),
            _ => nl.owned_routes().await.map(drop),
        };
        r.map_err(|e| e.to_string())
    });
    assert!(
        failures.is_empty(),
        "{} of {} listings failed, e.g. {:?}",
        failures.len(),
        TASKS * LISTINGS,
        failures.first()
    );
}
