//! Privileged: several tasks list links, addresses, routes and neighbours at
//! once over the agent's one netlink socket, as concurrent HTTP requests do
//! (`/metrics`, `/host/fact`, `/host/checkPhysicalInterfaces`, `/vm/reboot`
//! and a bridge command waiting for its gateway each dump without a shared
//! lock). The kernel runs one dump per netlink socket at a time and refuses
//! a second one started meanwhile with EBUSY ("Device or resource busy"):
//! the agent's dumps take turns.

use std::time::Duration;

use kvm_agent::sys::netlink::{Netlink, RtNetlink};
use testbed::Netns;

const TASKS: usize = 4;
const LISTINGS: usize = 300;

#[test]
fn listings_from_several_tasks_at_once_do_not_fail() {
    testbed::require_privileged!();
    let ns = Netns::new("kdump").unwrap();
    // Enough links that one dump spans several netlink messages.
    ns.sh("for i in $(seq 1 40); do ip link add v$i type veth peer name w$i; done")
        .unwrap();
    ns.sh("ip addr add 10.9.0.1/24 dev v1 && ip link set v1 up && ip link set w1 up")
        .unwrap();
    let setup = || RtNetlink::new().unwrap();
    let failures = testbed::concurrent_failures(&ns, TASKS, LISTINGS, setup, |nl, i| async move {
        let r = match i % 4 {
            // Nobody answers 10.9.0.2: a few neighbour dumps, then false.
            3 => nl
                .neighbour_answers("v1", "10.9.0.2".parse().unwrap(), Duration::from_millis(5))
                .await
                .map(drop),
            _ => nl.dump().await.map(|o| assert!(o.links.len() >= 80)),
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
