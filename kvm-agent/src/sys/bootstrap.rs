//! Writes the bootstrap payload into a VR's channel socket (reference 5,
//! step 4): connect to the unix socket qemu listens on (mode='bind'), set a
//! 4 KiB send buffer, write the padded JSON, close. The guest reads until EOF.
//!
//! Asynchronous (tokio), so a call waiting for a socket that never accepts
//! holds no thread (530 pending calls once exhausted the blocking pool and
//! stalled `/vm/vmsync`). The socket is opened `O_PATH | O_NOFOLLOW` and
//! connected through `/proc/self/fd`, so a symlink swapped in is never
//! followed out of the socket directory.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::plan::bootstrap::payload;

const SNDBUF: usize = 4096;
const RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("socket {path} did not accept a connection within {secs} s: {last}")]
    NoSocket {
        path: String,
        secs: u64,
        last: std::io::Error,
    },
    #[error(
        "writing {len} bytes to {path} failed after {written} bytes (is the guest reading its channel?): {source}"
    )]
    Write {
        path: String,
        len: usize,
        written: usize,
        #[source]
        source: std::io::Error,
    },
}

/// One connect attempt without following a symlink at the last component.
async fn connect_nofollow(path: &Path) -> std::io::Result<UnixStream> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, SFlag, fstat};
    let fd = open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(std::io::Error::other("not a socket"));
    }
    UnixStream::connect(format!("/proc/self/fd/{}", fd.as_raw_fd())).await
}

/// Retries the connect until the socket exists and accepts (qemu creates
/// it when the domain starts), for at most `timeout` overall. Returns the
/// number of bytes written. Cancel by dropping the future.
pub async fn send(
    path: &Path,
    info: &Map<String, Value>,
    timeout: Duration,
) -> Result<usize, BootstrapError> {
    let deadline = Instant::now() + timeout;
    let p = path.display().to_string();
    let mut stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(left.max(RETRY), connect_nofollow(path)).await;
        match attempt.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
            Ok(s) => break s,
            Err(e) if Instant::now() + RETRY < deadline => {
                tracing::debug!(path = %p, error = %e, "channel socket not ready; retrying");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => {
                return Err(BootstrapError::NoSocket {
                    path: p,
                    secs: timeout.as_secs(),
                    last: e,
                });
            }
        }
    };
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    // Linux doubles the value; pad to what the kernel really uses, as ZStack.
    let _ = setsockopt(&stream, sockopt::SndBuf, &SNDBUF);
    let sndbuf = getsockopt(&stream, sockopt::SndBuf).unwrap_or(SNDBUF);
    let data = payload(info, sndbuf);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let write = async {
        stream.write_all(&data).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(left, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(BootstrapError::Write {
                path: p,
                len: data.len(),
                written: 0,
                source: e,
            });
        }
        Err(_) => {
            return Err(BootstrapError::Write {
                path: p,
                len: data.len(),
                written: 0,
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
    }
    tracing::info!(path = %p, bytes = data.len(), sndbuf, "bootstrap info written");
    Ok(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// The test stands in for qemu's listening end: the socket appears only
    /// after a while (send must retry), then everything until EOF is the
    /// padded JSON.
    #[test]
    fn retries_until_the_socket_exists_then_delivers_padded_json() {
        let dir = std::env::temp_dir().join(format!("kvm-agent-bs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("applianceVm.x");
        let _ = std::fs::remove_file(&sock);
        let s2 = sock.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            let l = UnixListener::bind(&s2).unwrap();
            let (mut c, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            c.read_to_end(&mut buf).unwrap();
            buf
        });
        let info: Map<String, Value> =
            serde_json::from_str(r#"{"uuid":"7c0de1f2a3b44c5d8e9f00112233aabb","sshPort":22}"#)
                .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let n = rt
            .block_on(send(&sock, &info, Duration::from_secs(10)))
            .unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), n);
        assert_eq!(got.len() % 4096, 0, "padded to the send buffer");
        let v: Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(v["sshPort"], 22);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_symlink_to_a_socket_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("kvm-agent-bs-ln-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _victim = UnixListener::bind(dir.join("victim")).unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("link")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(send(
                &dir.join("link"),
                &Map::new(),
                Duration::from_millis(300),
            ))
            .unwrap_err();
        assert!(matches!(e, BootstrapError::NoSocket { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_that_never_appears_is_a_clear_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(send(
                Path::new("/nonexistent/kvm-agent/sock"),
                &Map::new(),
                Duration::from_millis(500),
            ))
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "socket /nonexistent/kvm-agent/sock did not accept a connection within 0 s"
            ),
            "{e}"
        );
    }
}
