//! Writes the bootstrap payload into a VR's channel socket (reference 5,
//! step 4): connect to the unix socket qemu listens on (mode='bind'), set a
//! 4 KiB send buffer, write the padded JSON, close. The guest reads until EOF.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

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

/// Blocking. Retries the connect until the socket exists and accepts (qemu
/// creates it when the domain starts), for at most `timeout` overall.
/// Returns the number of bytes written.
pub fn send(
    path: &Path,
    info: &Map<String, Value>,
    timeout: Duration,
) -> Result<usize, BootstrapError> {
    let deadline = Instant::now() + timeout;
    let p = path.display().to_string();
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(e) if Instant::now() + RETRY < deadline => {
                tracing::debug!(path = %p, error = %e, "channel socket not ready; retrying");
                std::thread::sleep(RETRY);
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
    let _ = stream.set_write_timeout(Some(left));
    let mut s = &stream;
    let mut written = 0;
    while written < data.len() {
        match s.write(&data[written..]) {
            Ok(0) => {
                return Err(BootstrapError::Write {
                    path: p,
                    len: data.len(),
                    written,
                    source: std::io::ErrorKind::WriteZero.into(),
                });
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(BootstrapError::Write {
                    path: p,
                    len: data.len(),
                    written,
                    source: e,
                });
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    tracing::info!(path = %p, bytes = written, sndbuf, "bootstrap info written");
    Ok(written)
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
        let n = send(&sock, &info, Duration::from_secs(10)).unwrap();
        let got = reader.join().unwrap();
        assert_eq!(got.len(), n);
        assert_eq!(got.len() % 4096, 0, "padded to the send buffer");
        let v: Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(v["sshPort"], 22);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_socket_that_never_appears_is_a_clear_error() {
        let e = send(
            Path::new("/nonexistent/kvm-agent/sock"),
            &Map::new(),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "socket /nonexistent/kvm-agent/sock did not accept a connection within 0 s"
            ),
            "{e}"
        );
    }
}
