//! Drift by content and at once: a foreign change to our nft tables (a
//! flushed ruleset, a deleted element, a rule rewritten in place such as
//! the management-port guard swapped for an accept) is repaired within a
//! second, long before the slow poll (30 s here).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use testbed::Proc;

fn start_slow_poll(lab: &mut Lab) {
    lab.kill_agent();
    let mut cmd = lab.vr.command(
        env!("CARGO_BIN_EXE_vr-agent"),
        &[
            "--listen",
            "10.0.0.25:7272",
            "--state-dir",
            lab.state.path().to_str().unwrap(),
            "--drift-check-secs",
            "30",
            "--allow-from",
            "10.0.0.2",
        ],
    );
    cmd.env("VR_AGENT_LOG", "debug");
    lab.agent = Some(Proc::start(cmd).unwrap());
    assert!(testbed::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || lab
            .post_raw("/echo", "{}", &[])
            .map(|r| r.0 == 200)
            .unwrap_or(false)
    ));
}

fn repaired_within(lab: &Lab, before: &str, what: &str) -> Duration {
    let t = Instant::now();
    let ok = testbed::wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        lab.table_text() == before
    });
    assert!(
        ok,
        "{what}: not repaired\n{}\n{}",
        lab.table_text(),
        lab.log()
    );
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    took
}

#[test]
fn foreign_changes_are_repaired_within_a_second() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.101")]}));
    lab.ok(
        "/createeip",
        json!({"eip": eip("172.20.10.101", "192.168.100.10")}),
    );
    start_slow_poll(&mut lab);
    let before = lab.table_text();
    // Settle: our own start-up changes are not drift.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.table_text(), before);

    lab.vr.sh("nft flush ruleset").unwrap();
    repaired_within(&lab, &before, "flush ruleset");

    lab.vr.sh("nft flush map ip vragent eip_dnat").unwrap();
    repaired_within(&lab, &before, "element deleted");

    // Rewrite a rule in place: same number of rules, other content.
    let listing = lab.vr.sh("nft -a list table ip vragent").unwrap();
    let (chain, handle) = rule_handle(&listing, "7272").expect("a rule guarding the agent port");
    lab.vr
        .sh(&format!(
            "nft replace rule ip vragent {chain} handle {handle} accept"
        ))
        .unwrap();
    assert_ne!(lab.table_text(), before);
    repaired_within(&lab, &before, "rule rewritten in place");

    // Our own edits are not mistaken for drift.
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.102")]}));
    std::thread::sleep(Duration::from_millis(300));
    let (_, metrics) = testbed::http_get(&lab.ctl, &format!("{AGENT}/metrics")).unwrap();
    let repairs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vr_agent_nft_drift_repairs_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(repairs, 3, "{metrics}");
}

/// The chain and handle of the first rule whose text contains `needle`.
fn rule_handle(listing: &str, needle: &str) -> Option<(String, String)> {
    let mut chain = None;
    for line in listing.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().map(str::to_string);
        }
        if l.contains(needle)
            && let Some(h) = l
                .rsplit("# handle ")
                .next()
                .filter(|_| l.contains("# handle "))
        {
            return Some((chain?.clone(), h.trim().to_string()));
        }
    }
    None
}
