//! Running a command to completion with its failure explained.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// Runs a command to completion; a non-zero exit becomes an error carrying
/// the command line and its stderr, so test failures explain themselves.
pub(crate) fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output> {
    let line = format!("{cmd:?}");
    let input = if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {line}"))?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(data)
            .with_context(|| format!("writing stdin of {line}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}
