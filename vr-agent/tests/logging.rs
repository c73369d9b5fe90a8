//! Logs an operator can use (issue 15): under systemd every line carries
//! its syslog priority for journald (`journalctl -p err` finds errors) and
//! no timestamp; elsewhere, no colour unless stderr is a terminal.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use testbed::TempDir;

/// vr-agent that fails at once (no bootstrap info): its stderr text, with
/// JOURNAL_STREAM naming that stderr when `journal`.
fn failing_agent(journal: bool) -> String {
    let dir = TempDir::new("vrlog").unwrap();
    let err = dir.path().join("stderr");
    let file = std::fs::File::create(&err).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vr-agent"));
    cmd.args([
        "--bootstrap",
        "/nonexistent/bootstrap",
        "--bootstrap-timeout-secs",
        "0",
    ])
    .arg("--state-dir")
    .arg(dir.path().join("state"))
    .env_remove("VR_AGENT_LOG")
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(file);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        cmd.env_remove("JOURNAL_STREAM");
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(1));
    std::fs::read_to_string(&err).unwrap()
}

#[test]
fn under_journald_each_line_carries_its_priority() {
    let text = failing_agent(true);
    assert!(!text.is_empty());
    for line in text.lines() {
        let p = line.get(..3).unwrap_or("");
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&p),
            "{line:?} in\n{text}"
        );
    }
    let error = text
        .lines()
        .find(|l| l.contains("no bootstrap info"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(error.starts_with("<3>"), "{error}");
    // journald stamps lines itself.
    assert!(!text.contains("Z "), "a timestamp: {text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn no_colour_when_stderr_is_not_a_terminal() {
    let text = failing_agent(false);
    assert!(text.contains("no bootstrap info"), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in a file: {text:?}");
    assert!(!text.starts_with('<'), "{text}");
}
