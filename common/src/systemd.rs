//! Readiness for systemd (`Type=notify`): tell the service manager we serve.
//!
//! The protocol is one datagram `READY=1` to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! `@`). Without the variable (not under systemd, tests) nothing happens.

use std::os::unix::net::UnixDatagram;

/// Send `READY=1`; errors are returned for the caller to log, never fatal.
pub fn notify_ready() -> std::io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => notify_ready_to(&path).map(|()| true),
        None => Ok(false),
    }
}

/// Send `READY=1` to the socket `path` names (`@name`: abstract).
pub fn notify_ready_to(path: &std::ffi::OsStr) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(b"READY=1", &addr)?;
    } else {
        sock.send_to(b"READY=1", path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_to_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_ready_to(path.as_os_str()).unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_names_work_too() {
        let name = format!("vr-agent-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_ready_to(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
