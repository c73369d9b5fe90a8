//! An HA pair made by vrctl from two descriptions with an `[ha]` section
//! (issue 17): two real vr-agents in their router namespaces, each resync
//! ending with `/enableVyosha`; `vr status` names the master and the
//! backup; the master's host killed, the backup takes over; the lost half
//! back (a new agent, resynced by `vr apply` as `vrctl watch` does after a
//! re-create) rejoins as backup and the survivor stays master.
//!
//! The topology is `testbed::vr_pair`'s (vrctl in its `ctl` namespace,
//! 10.0.0.2; the routers' management NICs 10.0.0.25 and .26).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use serde_json::{Value, json};
use testbed::Netns;
use testbed::vr_pair::{MACS, MGMT_IP, PAIR_VIP};

const UUIDS: [&str; 2] = [
    "bb000000000000000000000000000001",
    "bb000000000000000000000000000002",
];

fn description(i: usize) -> Value {
    json!({
        "agent": format!("http://{}:7272", MGMT_IP[i]),
        "uuid": UUIDS[i],
        "managementNodeCidr": "10.0.0.0/24",
        "nics": [
            {"mac": MACS[i][0], "ip": MGMT_IP[i], "netmask": "255.255.255.0",
             "category": "Management"},
            {"mac": MACS[i][1], "ip": "172.20.10.5", "netmask": "255.255.0.0",
             "gateway": "172.20.0.1", "isDefaultRoute": true, "category": "Public"}
        ],
        "ha": {"peerIp": MGMT_IP[1 - i], "peerUuid": UUIDS[1 - i], "keepalive": 1,
               "vips": [{"nicMac": MACS[i][1], "nicVip": PAIR_VIP, "netmask": "255.255.0.0"}]}
    })
}

/// `vrctl --json vr status FILE`'s `ha.status` ("" when it does not answer).
fn ha_status(ctl: &Netns, file: &Path) -> String {
    let r = common::vrctl(
        &[
            "--json",
            "--netns",
            ctl.name(),
            "vr",
            "status",
            file.to_str().unwrap(),
        ],
        &[],
    );
    serde_json::from_str::<Value>(r.stdout.trim())
        .map(|v| v["ha"]["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn statuses(ctl: &Netns, files: &[PathBuf]) -> [String; 2] {
    [ha_status(ctl, &files[0]), ha_status(ctl, &files[1])]
}

fn apply(ctl: &Netns, file: &Path) {
    let r = common::vrctl(
        &["--netns", ctl.name(), "vr", "apply", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        r.code,
        0,
        "vr apply {}: {}{}",
        file.display(),
        r.stdout,
        r.stderr
    );
    assert!(r.stdout.contains("/enableVyosha"), "{}", r.stdout);
}

/// Both agents of `testbed::vr_pair`, their descriptions written to a
/// temporary directory and applied by vrctl, r0 first: it is master before
/// r1 exists, and stays so (nopreempt). Waits for Master/Backup.
fn paired_by_vrctl(tag: &str) -> (testbed::vr_pair::Pair, testbed::TempDir, Vec<PathBuf>) {
    let vrctl_bin = Path::new(env!("CARGO_BIN_EXE_vrctl"));
    let pair = testbed::vr_pair::build(&vrctl_bin.with_file_name("vr-agent"));
    let tmp = testbed::TempDir::new(tag).unwrap();
    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let f = tmp.path().join(format!("r{i}.json"));
            std::fs::write(&f, description(i).to_string()).unwrap();
            f
        })
        .collect();
    apply(&pair.ctl, &files[0]);
    apply(&pair.ctl, &files[1]);
    let paired = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        statuses(&pair.ctl, &files) == ["Master", "Backup"]
    });
    assert!(paired, "statuses {:?}", statuses(&pair.ctl, &files));
    (pair, tmp, files)
}

#[test]
fn vrctl_pairs_two_routers_and_a_lost_half_rejoins_as_backup() {
    testbed::require_privileged!();
    for prog in ["keepalived", "conntrackd"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {prog}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{prog} is missing (scripts/install-deps installs it)"
        );
    }
    let (mut pair, _tmp, files) = paired_by_vrctl("vrpair");
    assert!(
        testbed::ping(&pair.out, PAIR_VIP, 2),
        "the pair VIP from the outside"
    );
    let st = common::vrctl(
        &[
            "--netns",
            pair.ctl.name(),
            "vr",
            "status",
            files[1].to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        st.stdout.contains("Backup (keepalived: Backup)"),
        "{}",
        st.stdout
    );

    // The master's host is gone: the backup takes over.
    pair.kill(0);
    let took_over =
        testbed::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            ha_status(&pair.ctl, &files[1]) == "Master"
        });
    assert!(took_over, "r1: {}", ha_status(&pair.ctl, &files[1]));
    assert!(vip(&pair.out), "the pair VIP after the failover");

    // The lost half comes back (a new VM: links up, a new agent) and is
    // resynced: it joins as backup, r1 stays master.
    for l in ["eth0", "eth1", "eth2"] {
        pair.routers[0].ip(&format!("link set {l} up")).unwrap();
    }
    // A new VM: nothing of the old agent's state.
    let state = pair.states[0].path().to_path_buf();
    for e in std::fs::read_dir(&state).unwrap().flatten() {
        let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
    }
    pair.start_agent(0);
    apply(&pair.ctl, &files[0]);
    let rejoined = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        statuses(&pair.ctl, &files) == ["Backup", "Master"]
    });
    assert!(rejoined, "statuses {:?}", statuses(&pair.ctl, &files));
    // And stays so (no preemption flap).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(statuses(&pair.ctl, &files), ["Backup", "Master"]);
    assert!(vip(&pair.out), "the pair VIP after the return");
}

/// The pair's VIP answers from `out` within 5 s (ARP moves with it).
fn vip(out: &Netns) -> bool {
    testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        testbed::ping(out, PAIR_VIP, 1)
    })
}

/// `vr demote`: refused while the peer is not Master (the pair would be
/// left without one); with the heartbeat cut (VRRP and the sync dropped
/// on r1's management NIC, the API still reachable) both are Master, and
/// `vr demote r1.json` asks r0 (/syncVpcRouterHa: Master) and restarts
/// r1's keepalived: r1 gives the shared addresses up at once. Healed, the
/// pair is Master/Backup.
#[test]
fn vr_demote_answers_two_masters_as_the_node_does() {
    testbed::require_privileged!();
    let (pair, _tmp, files) = paired_by_vrctl("vrdemote");
    let demote = |i: usize| {
        common::vrctl(
            &[
                "--json",
                "--netns",
                pair.ctl.name(),
                "vr",
                "demote",
                files[i].to_str().unwrap(),
            ],
            &[],
        )
    };
    // r0 is the only master: not demoted; r1 is backup: nothing to give up.
    let r = demote(0);
    assert_eq!(r.code, 69, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("without a master"), "{}", r.stderr);
    assert_eq!(ha_status(&pair.ctl, &files[0]), "Master");
    let r = demote(1);
    assert_eq!(r.code, 69, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not Master: nothing to demote"),
        "{}",
        r.stderr
    );

    let cut = "nft -f - <<'EOF'
table inet vrcut {
  chain in { type filter hook input priority -300; iifname \"eth0\" ip protocol 112 drop; iifname \"eth0\" udp dport 3780 drop; }
  chain out { type filter hook output priority -300; oifname \"eth0\" ip protocol 112 drop; oifname \"eth0\" udp dport 3780 drop; }
}
EOF";
    pair.routers[1].sh(cut).unwrap();
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            statuses(&pair.ctl, &files) == ["Master", "Master"]
        }),
        "no split brain: {:?}",
        statuses(&pair.ctl, &files)
    );
    let r = demote(1);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(d, json!({"peer": "Master", "now": "Backup"}));
    assert!(!pair.link_up(1, "eth1"), "r1 still answers for the pair");
    pair.routers[1].sh("nft delete table inet vrcut").unwrap();
    assert!(
        testbed::wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
            statuses(&pair.ctl, &files) == ["Master", "Backup"]
        }),
        "after the heal: {:?}",
        statuses(&pair.ctl, &files)
    );
}
