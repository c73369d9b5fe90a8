//! Logs an operator can use (issue 15): under systemd every line carries
//! its syslog priority for journald (`journalctl -p err` finds errors) and
//! no timestamp; elsewhere, no colour unless stderr is a terminal; the
//! serial console gets only warnings, errors and the diagnosis's lines.
//!
//! The agent installs its nft table before it reads the bootstrap info,
//! so it runs in a namespace of its own, never in the root one.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

use testbed::{Netns, TempDir};

struct Run {
    stderr: String,
    console: String,
}

/// vr-agent that fails at once (no bootstrap info) in a namespace of its
/// own: its stderr and console text, with JOURNAL_STREAM naming that
/// stderr when `journal`.
fn failing_agent(journal: bool) -> Run {
    let dir = TempDir::new("vrlog").unwrap();
    let ns = Netns::new("vrlog").unwrap();
    let err = dir.path().join("stderr");
    let console = dir.path().join("console");
    std::fs::write(&console, "").unwrap();
    let file = std::fs::File::create(&err).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_vr-agent"), &[]);
    cmd.arg("--console")
        .arg(&console)
        .args([
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
    Run {
        stderr: std::fs::read_to_string(&err).unwrap(),
        console: std::fs::read_to_string(&console).unwrap(),
    }
}

#[test]
fn under_journald_each_line_carries_its_priority() {
    testbed::require_privileged!();
    let text = failing_agent(true).stderr;
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
    testbed::require_privileged!();
    let text = failing_agent(false).stderr;
    assert!(text.contains("no bootstrap info"), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in a file: {text:?}");
    assert!(!text.starts_with('<'), "{text}");
}

#[test]
fn the_console_gets_the_fatal_line_once_and_no_info() {
    testbed::require_privileged!();
    let run = failing_agent(true);
    // The journal has the info lines (start-up) and the error.
    assert!(run.stderr.contains("<6>"), "{}", run.stderr);
    let lines: Vec<&str> = run.console.lines().collect();
    let fatal: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("no bootstrap info"))
        .collect();
    assert_eq!(fatal.len(), 1, "said once: {}", run.console);
    assert!(fatal[0].starts_with("vr-agent: "), "{}", run.console);
    for l in &lines {
        assert!(
            l.starts_with("vr-agent: ") || l.contains("WARN") || l.contains("ERROR"),
            "an info line on the console: {l:?} in\n{}",
            run.console
        );
        assert!(!l.contains('\x1b'), "{l:?}");
    }
}

#[test]
fn the_console_says_serving_and_nothing_of_info() {
    testbed::require_privileged!();
    let dir = TempDir::new("vrlog").unwrap();
    let ns = Netns::new("vrlog").unwrap();
    let console = dir.path().join("console");
    std::fs::write(&console, "").unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_vr-agent"), &[]);
    cmd.arg("--console")
        .arg(&console)
        .args(["--listen", "127.0.0.1:7272", "--drift-check-secs", "0"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("VR_AGENT_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _agent = testbed::Proc::start(cmd).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&console).unwrap();
        if text.contains("vr-agent serving") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["vr-agent serving on 127.0.0.1:7272"],
        "only the serving line, even at debug level: {text:?}"
    );
}

/// An error before the agent runs (here: a state dir that cannot be made,
/// as on a full or read-only disk) reaches the console in the same words.
#[test]
fn an_early_error_reaches_the_console_too() {
    testbed::require_privileged!();
    let dir = TempDir::new("vrlog").unwrap();
    let ns = Netns::new("vrlog").unwrap();
    let console = dir.path().join("console");
    std::fs::write(&console, "").unwrap();
    // A file where the state dir should be: it cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_vr-agent"), &[]);
    cmd.arg("--console")
        .arg(&console)
        .arg("--state-dir")
        .arg(blocker.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    assert_eq!(cmd.status().unwrap().code(), Some(1));
    let text = std::fs::read_to_string(&console).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("vr-agent: ")),
        "{text:?}"
    );
}
