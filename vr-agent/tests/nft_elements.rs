//! The NAT table's element changes sent as our own netlink batch leave the
//! kernel with exactly what `nft -f` of the same script leaves: one
//! namespace loads the golden ruleset by nft, another loads its skeleton by
//! nft and every element by a batch, and their listings must be equal. A
//! batch the kernel refuses leaves nothing of itself behind.

use testbed::Netns;
use vr_agent::sys::nft_elements::{SendError, encode, send};
use vr_agent::sys::nft_fingerprint::fingerprint_of;

const GOLDEN: &str = include_str!("../src/plan/testdata/nat_small.nft");

fn listing(ns: &Netns) -> u64 {
    let out = ns.sh("nft -j list table ip vragent").unwrap();
    fingerprint_of(&out).unwrap().digest
}

fn nft(ns: &Netns, script: &str) {
    let dir = testbed::TempDir::new("nftel").unwrap();
    let f = dir.path().join("s.nft");
    std::fs::write(&f, script).unwrap();
    ns.sh(&format!("nft -f {}", f.display())).unwrap();
}

/// The golden script's skeleton (everything up to the elements) and its
/// element lines.
fn split() -> (String, String) {
    let at = GOLDEN.find("add element").unwrap();
    (GOLDEN[..at].to_string(), GOLDEN[at..].to_string())
}

fn batch_in(ns: &Netns, script: &str) -> Result<(), SendError> {
    let batch = encode(script).unwrap().expect("element lines only");
    ns.run(|| send(&batch))
}

#[test]
fn a_batch_leaves_what_nft_leaves_and_a_refused_one_leaves_nothing() {
    testbed::require_privileged!();
    let by_nft = Netns::new("elnft").unwrap();
    let by_batch = Netns::new("elbatch").unwrap();
    // The veths the skeleton's interface names point at are not needed:
    // ifname keys are strings.
    nft(&by_nft, GOLDEN);
    let (skeleton, elements) = split();
    nft(&by_batch, &skeleton);
    batch_in(&by_batch, &elements).unwrap();
    let want = listing(&by_nft);
    assert_eq!(listing(&by_batch), want, "adds differ from nft's");
    // The same adds again change nothing (nft's `add` semantics).
    batch_in(&by_batch, &elements).unwrap();
    assert_eq!(listing(&by_batch), want, "a repeated add changed the table");

    // Deletes, as the plan writes them (a map element with its data).
    let deletes = elements.replace("add element", "delete element");
    nft(&by_nft, &deletes);
    batch_in(&by_batch, &deletes).unwrap();
    let empty = listing(&by_nft);
    assert_ne!(empty, want);
    assert_eq!(listing(&by_batch), empty, "deletes differ from nft's");

    // An add and a delete of an element that is not there: the kernel
    // refuses the batch and the add is not in force either.
    let script = "add element ip vragent eip_dnat { 172.20.10.101 : 192.168.100.11 }\n\
                  delete element ip vragent count_eip_in { 172.20.10.250 }\n";
    match batch_in(&by_batch, script) {
        Err(SendError::Refused(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(listing(&by_batch), empty, "a refused batch left elements");
}

#[test]
fn many_elements_go_in_one_transaction() {
    testbed::require_privileged!();
    let ns = Netns::new("elmany").unwrap();
    let (skeleton, _) = split();
    nft(&ns, &skeleton);
    let items: Vec<String> = (0..20_000u32)
        .map(|i| {
            let vip = std::net::Ipv4Addr::from(0x0a40_0000 + i);
            format!("{vip} . tcp . {} : 192.168.100.10 . 80", 1000 + i % 60_000)
        })
        .collect();
    let script = format!(
        "add element ip vragent pf_exact {{ {} }}\n",
        items.join(", ")
    );
    let batch = encode(&script).unwrap().unwrap();
    assert!(batch.commands > 1, "{} messages", batch.commands);
    ns.run(|| send(&batch)).unwrap();
    let n = ns
        .sh("nft list map ip vragent pf_exact | grep -o ' : 192.168.100.10 . 80' | wc -l")
        .unwrap();
    assert_eq!(n.trim(), "20000");
}
