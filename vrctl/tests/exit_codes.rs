//! vrctl's exit statuses and the strict router description, for scripts
//! (issue 15): each row of the table in `vrctl --help` provoked for real
//! with the binary. None of these needs privileges: the agents they name
//! are on loopback ports where nothing listens, and the description's
//! errors come before any connection.

mod common;

use common::{Run, vrctl};
use serde_json::Value;
use testbed::TempDir;

fn code(r: &Run, want: i32, words: &[&str]) {
    assert_eq!(
        r.code, want,
        "exit status; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    for w in words {
        assert!(
            r.stderr.contains(w) || r.stdout.contains(w),
            "{w:?} missing from:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
}

const SPEC: &str = r#"
agent = "http://127.0.0.1:1"
uuid = "4d8c1c0e6a0c4e0f9a5b0b7f2d6c9e11"

[[nics]]
mac = "fa:26:9c:aa:00:01"
ip = "10.0.0.25"
netmask = "255.255.255.0"
category = "Management"

[[portForwards]]
uuid = "pf1"
vipPortStart = 80
vipPortEnd = 80
privatePortStart = 80
privatePortEnd = 80
protocolType = "TCP"
vipIp = "10.0.0.25"
publicMac = "fa:26:9c:aa:00:01"
privateIp = "10.0.0.30"
privateMac = "fa:26:9c:aa:00:01"
"#;

#[test]
fn usage_errors_are_64_not_a_diagnosis() {
    code(
        &vrctl(&["--no-such-option", "lab", "status"], &[]),
        64,
        &["--no-such-option"],
    );
    code(&vrctl(&["vr", "apply"], &[]), 64, &["FILE"]);
    code(
        &vrctl(&["lab", "up", "--mode", "bogus"], &[]),
        64,
        &["bogus", "namespace"],
    );
    code(
        &vrctl(
            &[
                "vm",
                "--agent",
                "http://127.0.0.1:1",
                "stop",
                "--uuid",
                "u",
                "--type",
                "soft",
            ],
            &[],
        ),
        64,
        &["soft", "grace", "cold", "force"],
    );
    code(&vrctl(&["vr", "status"], &[]), 64, &["--agent"]);
    // With --json the usage error is a JSON document on stdout too.
    let r = vrctl(&["--json", "vr", "apply"], &[]);
    code(&r, 64, &[]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], 64, "{v}");
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    // Help and the version are not errors.
    code(
        &vrctl(&["--help"], &[]),
        0,
        &["Exit status", "64", "no host"],
    );
    let r = vrctl(&["--version"], &[]);
    code(&r, 0, &["commit", "zvrVersion"]);
}

#[test]
fn a_typo_in_the_description_is_65_naming_the_key_toml_and_json() {
    let tmp = TempDir::new("vrctlstrict").unwrap();
    // The issue's case: `[[portFowards]]` parsed as nothing, and apply
    // would have synced an empty list (deleting every port forward).
    let toml = tmp.path().join("typo.toml");
    std::fs::write(&toml, SPEC.replace("[[portForwards]]", "[[portFowards]]")).unwrap();
    let toml = toml.to_str().unwrap();
    for cmd in ["apply", "diff"] {
        code(
            &vrctl(&["vr", cmd, toml], &[]),
            65,
            &["unknown key", "portFowards", "portForwards", "typo.toml"],
        );
    }
    // Inside an entry, with where it is.
    let nested = tmp.path().join("nested.toml");
    std::fs::write(&nested, SPEC.replace("privateIp =", "privateIP =")).unwrap();
    code(
        &vrctl(&["vr", "apply", nested.to_str().unwrap()], &[]),
        65,
        &["privateIP", "portForwards[0]", "privateIp"],
    );
    // JSON the same.
    let json = tmp.path().join("typo.json");
    std::fs::write(
        &json,
        r#"{"agent":"http://127.0.0.1:1","uuid":"abcdef0123","eips":[{"vipIp":"10.0.0.9","guestIP":"10.0.0.30"}]}"#,
    )
    .unwrap();
    let r = vrctl(&["--json", "vr", "apply", json.to_str().unwrap()], &[]);
    code(&r, 65, &["guestIP", "eips[0]", "guestIp"]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], 65, "{v}");
    // The correct description passes the check and goes on to the agent,
    // which is not there: an agent failure, not a description error.
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, SPEC).unwrap();
    code(
        &vrctl(&["vr", "diff", good.to_str().unwrap()], &[]),
        69,
        &["127.0.0.1:1"],
    );
}

#[test]
fn inputs_agents_and_credentials_have_their_own_statuses() {
    let tmp = TempDir::new("vrctlcodes").unwrap();
    // A file that is not there.
    let r = vrctl(&["--json", "vr", "apply", "/nonexistent/router.toml"], &[]);
    code(&r, 66, &["/nonexistent/router.toml"]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert_eq!(v["error"]["kind"], "no_input", "{v}");
    // A body that is not JSON.
    code(
        &vrctl(
            &[
                "vr",
                "call",
                "--agent",
                "http://127.0.0.1:1",
                "/echo",
                "{nope",
            ],
            &[],
        ),
        65,
        &["JSON"],
    );
    // vrctl's own credentials cannot be read.
    code(
        &vrctl(
            &[
                "--ca",
                "/nonexistent/ca.pem",
                "host",
                "--agent",
                "http://127.0.0.1:1",
                "capacity",
            ],
            &[],
        ),
        78,
        &["/nonexistent/ca.pem"],
    );
    // An agent nobody answers for (not a router diagnosis: a host command).
    code(
        &vrctl(
            &[
                "--sync",
                "host",
                "--agent",
                "http://127.0.0.1:1",
                "capacity",
            ],
            &[],
        ),
        69,
        &["cannot reach"],
    );
    // The PKI refuses to replace a CA.
    let dir = tmp.path().join("pki");
    let dir = dir.to_str().unwrap();
    code(&vrctl(&["pki", "init", "--dir", dir], &[]), 0, &[]);
    code(
        &vrctl(&["pki", "init", "--dir", dir], &[]),
        73,
        &["--force"],
    );
    let r = vrctl(
        &["--json", "pki", "token", "--out", &format!("{dir}/token")],
        &[],
    );
    code(&r, 0, &[]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert!(v["wrote"][0].as_str().unwrap().ends_with("token"), "{v}");
}

#[test]
fn lab_status_is_1_when_the_lab_is_not_up() {
    let r = vrctl(&["lab", "status", "--name", "vrnolab"], &[]);
    code(&r, 1, &["not up"]);
    let r = vrctl(&["--json", "lab", "status", "--name", "vrnolab"], &[]);
    code(&r, 1, &[]);
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON on stdout");
    assert_eq!(v["up"], false, "{v}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    let r = vrctl(&["completions", "bash"], &[]);
    code(&r, 0, &["vrctl", "rotate-cert"]);
    let r = vrctl(&["completions", "zsh"], &[]);
    code(&r, 0, &["#compdef vrctl"]);
    let r = vrctl(&["man"], &[]);
    code(&r, 0, &[".TH vrctl", "EXIT STATUS"]);
    let tmp = TempDir::new("vrctlman").unwrap();
    let r = vrctl(&["man", "--dir", tmp.path().to_str().unwrap()], &[]);
    code(&r, 0, &[]);
    for page in [
        "vrctl.1",
        "vrctl-vr.1",
        "vrctl-vr-apply.1",
        "vrctl-lab-status.1",
    ] {
        let text = std::fs::read_to_string(tmp.path().join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
}
