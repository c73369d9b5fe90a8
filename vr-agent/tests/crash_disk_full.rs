//! A full disk: a change that cannot be persisted is not kept on the box
//! either, so the reply ("not applied") and the router agree.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::json;

/// A tiny tmpfs over a directory the test owns; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fill(dir: &std::path::Path) {
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", dir.join("filler").display()))
        .stderr(std::process::Stdio::null())
        .status();
}

fn forwards(n: u16) -> serde_json::Value {
    let rules: Vec<_> = (0..n)
        .map(|i| {
            pf(
                &format!("{:032x}", i + 1),
                "172.20.10.100",
                "TCP",
                10000 + i,
                10000 + i,
                80,
                80,
                None,
            )
        })
        .collect();
    json!({"rules": rules})
}

/// A lab whose agent keeps its state on a 256k tmpfs, with the base config.
fn lab_on_tmpfs() -> (Lab, PathBuf, Tmpfs) {
    let mut lab = Lab::new().unwrap();
    lab.kill_agent();
    let dir = lab.state.path().to_path_buf();
    let tmpfs = Tmpfs::mount(&dir, "256k");
    lab.start_agent().unwrap();
    lab.base_config();
    (lab, dir, tmpfs)
}

/// The desired state GET /state shows.
fn model(lab: &Lab) -> serde_json::Value {
    let body = testbed::http_get(&lab.ctl, &format!("{AGENT}/state"))
        .unwrap()
        .1;
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["model"].clone()
}

#[test]
fn a_sync_that_cannot_be_persisted_is_not_left_on_the_box() {
    testbed::require_privileged!();
    let (mut lab, dir, _tmpfs) = lab_on_tmpfs();
    lab.ok("/createvip", json!({"vips": [vip("172.20.10.100")]}));
    let (table, before) = (lab.table_text(), model(&lab));
    fill(&dir);
    let (code, v) = lab.post("/syncportforwarding", forwards(300)).unwrap();
    assert_eq!(code, 500, "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("not applied") && e.contains("previous state is in force"),
        "{e}"
    );
    assert_eq!(lab.table_text(), table, "the refused rules stay live");
    assert_eq!(model(&lab), before);
    // Room again: the same sync goes through and survives a restart.
    std::fs::remove_file(dir.join("filler")).unwrap();
    lab.ok("/syncportforwarding", forwards(300));
    let after = lab.table_text();
    assert!(after.contains("10299"), "{after}");
    lab.kill_agent();
    lab.start_agent().unwrap();
    assert_eq!(lab.table_text(), after);
}

/// The element-level path (one rule, one EIP: no whole-table render) is
/// undone the same way when its journal line cannot be written. A full
/// tmpfs still takes a short append into the journal's last page, so the
/// store is made read-only instead (EROFS, as a failing disk remounted).
#[test]
fn one_rule_that_cannot_be_persisted_is_not_left_on_the_box() {
    testbed::require_privileged!();
    let (mut lab, dir, _tmpfs) = lab_on_tmpfs();
    lab.ok(
        "/createvip",
        json!({"vips": [vip("172.20.10.100"), vip("172.20.10.101")]}),
    );
    lab.ok("/createportforwarding", forwards(2));
    let (table, before) = (lab.table_text(), model(&lab));
    remount(&dir, "ro");
    let changed_rule = {
        let mut r = forwards(1);
        r["rules"][0]["privatePortStart"] = json!(81);
        r["rules"][0]["privatePortEnd"] = json!(81);
        r
    };
    for (path, body) in [
        ("/createportforwarding", forwards(3)),
        ("/createportforwarding", changed_rule),
        ("/revokeportforwarding", forwards(1)),
        (
            "/createeip",
            json!({"eip": eip("172.20.10.101", "192.168.100.20")}),
        ),
    ] {
        let (code, v) = lab.post(path, body).unwrap();
        assert_eq!(code, 500, "{path}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains("previous state is in force"), "{path}: {e}");
        assert_eq!(lab.table_text(), table, "{path}: the table is as before");
        assert_eq!(model(&lab), before, "{path}: the model is as before");
    }
    remount(&dir, "rw");
    lab.ok("/createportforwarding", forwards(3));
    assert!(lab.table_text().contains("10002"));
    lab.kill_agent();
    lab.start_agent().unwrap();
    assert!(lab.table_text().contains("10002"), "persisted");
}

fn remount(dir: &std::path::Path, how: &str) {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,{how}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "remount {how} {}", dir.display());
}
