//! Running helper programs (nft, conntrack, arping) with captured output.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {secs} s")]
    Timeout { program: String, secs: u64 },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Run `program args` with `stdin`, returning stdout; a non-zero exit is an
/// error carrying stderr.
pub async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, RunError> {
    let out = output(program, args, stdin).await?;
    if !out.status.success() {
        return Err(RunError::Failed {
            program: program.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run and return the raw output whatever the exit status.
pub async fn output(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<std::process::Output, RunError> {
    let spawn_err = |source| RunError::Spawn {
        program: program.to_string(),
        source,
    };
    let mut cmd = Command::new(program);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).await.map_err(spawn_err)?;
        drop(pipe);
    }
    match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.map_err(spawn_err),
        Err(_) => Err(RunError::Timeout {
            program: program.to_string(),
            secs: TIMEOUT.as_secs(),
        }),
    }
}

/// Make the child die (SIGKILL) when the agent dies: an `nft -f` that
/// outlives a killed agent would commit a change the restarted agent does
/// not know of. The signal follows the spawning thread; tokio's worker
/// threads live as long as the runtime.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The agent died before prctl took effect.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent gone"));
            }
            Ok(())
        });
    }
}
