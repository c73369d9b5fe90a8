//! Crash consistency: kill -9 (the agent's pid only, as the OOM killer or
//! an operator would; its nft child is not in the line of fire) at random
//! moments during syncs of two large port-forward sets A and B. After each
//! restart the kernel's nft table, GET /state and the persisted file agree
//! on exactly one of the two.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const RULES: u16 = 2000;
const TRIALS: usize = 30;

fn set(first_port: u16, tag: char) -> Value {
    let rules: Vec<_> = (0..RULES)
        .map(|i| {
            pf(
                &format!("{tag}{:031x}", i + 1),
                "172.20.10.100",
                "TCP",
                first_port + i,
                first_port + i,
                80,
                80,
                None,
            )
        })
        .collect();
    json!({"rules": rules})
}

/// Which set the port forwards are: 'a', 'b', or '?' for anything else.
fn which(uuids: &[String]) -> char {
    let n = uuids.len();
    for tag in ['a', 'b'] {
        if n == RULES as usize && uuids.iter().all(|u| u.starts_with(tag)) {
            return tag;
        }
    }
    '?'
}

fn uuids_of(model: &Value) -> Vec<String> {
    model["port_forwards"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn served(lab: &Lab) -> char {
    let (_, body) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    which(&uuids_of(
        &serde_json::from_str::<Value>(&body).unwrap()["model"],
    ))
}

fn persisted(lab: &Lab) -> char {
    let body = std::fs::read(lab.state.path().join("state.json")).unwrap();
    which(&uuids_of(
        &serde_json::from_slice::<Value>(&body).unwrap()["model"],
    ))
}

#[test]
fn kill_9_mid_sync_leaves_kernel_state_and_file_on_one_set() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    let (a, b) = (set(10000, 'a'), set(30000, 'b'));
    // References: each set as the kernel lists it after a restart.
    let mut reference = std::collections::BTreeMap::new();
    let mut sync_ms = 0;
    for (tag, body) in [('a', &a), ('b', &b)] {
        let t = Instant::now();
        lab.ok("/syncportforwarding", body.clone());
        sync_ms = sync_ms.max(t.elapsed().as_millis() as u64);
        lab.kill_agent();
        lab.start_agent().unwrap();
        reference.insert(tag, lab.table_text());
    }
    let kernel = |lab: &Lab| {
        let t = lab.table_text();
        reference
            .iter()
            .find(|(_, r)| **r == t)
            .map_or('?', |(tag, _)| *tag)
    };
    let started = Instant::now();
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut outcomes = std::collections::BTreeMap::new();
    for trial in 0..TRIALS {
        let body = if trial % 2 == 0 { &a } else { &b };
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        // Anywhere from before the request arrives to after it is done.
        let delay = Duration::from_millis((seed >> 33) % (sync_ms * 3 / 2 + 20));
        let text = body.to_string();
        let pid = lab.agent.as_ref().unwrap().pid() as i32;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let url = format!("{AGENT}/syncportforwarding");
                let _ = testbed::http_post(&lab.ctl, &url, &text, &[]);
            });
            std::thread::sleep(delay);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        });
        // Reap it (and its group, so nothing is left for the next start).
        lab.kill_agent();
        lab.start_agent().unwrap();
        let (k, s, f) = (kernel(&lab), served(&lab), persisted(&lab));
        assert!(
            k != '?' && k == s && s == f,
            "trial {trial} (kill after {delay:?}): kernel {k}, GET /state {s}, file {f}\n{}",
            lab.log()
        );
        *outcomes.entry(k).or_insert(0) += 1;
    }
    eprintln!(
        "{TRIALS} trials in {:?} (sync {sync_ms} ms): {outcomes:?}",
        started.elapsed()
    );
}
