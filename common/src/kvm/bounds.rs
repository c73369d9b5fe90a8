//! Bounds of wire fields, checked before a value is used, stored, logged or
//! echoed: a field outside them is a 400 naming the field, never a panic or
//! a 500 from the kernel, and never a 50 MB string in a reply or a log line.

use std::time::Duration;

use crate::agent::ApiError;
use crate::text::quoted;

/// Longest wait any command honours. The node derives some timeouts from
/// its message timeouts (KVMHost.rebootVm: `MILLISECONDS.toSeconds(msg
/// .getTimeout())`), which an operator may configure long, so a longer value
/// is clamped rather than refused; without a bound `Instant + u64::MAX s`
/// panics ("overflow when adding duration to instant").
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Longest free-text field (versions, repository URLs...).
pub const MAX_TEXT: usize = 1024;

/// Longest URL (the node's callback and command URLs are short).
pub const MAX_URL: usize = 2048;

/// Longest path (PATH_MAX).
pub const MAX_PATH: usize = 4096;

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("field {field}: {why}"))
}

/// A timeout in seconds: absent or 0 is `default`, beyond [`MAX_WAIT`] is
/// [`MAX_WAIT`].
pub fn timeout_secs(v: Option<u64>, default: u64) -> Duration {
    match v {
        None | Some(0) => Duration::from_secs(default).min(MAX_WAIT),
        Some(s) => Duration::from_secs(s).min(MAX_WAIT),
    }
}

/// Printable text (no control characters: a newline would forge a log
/// line) of at most `max` bytes.
pub fn text(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.len() > max {
        return Err(bad(
            field,
            format_args!("{} is {} bytes, more than {max}", quoted(v), v.len()),
        ));
    }
    if let Some((i, c)) = v.char_indices().find(|(_, c)| c.is_control()) {
        return Err(bad(
            field,
            format_args!("{} has a control character {:?} at byte {i}", quoted(v), c),
        ));
    }
    Ok(())
}

/// A ZStack uuid: 32 hex digits as the node writes them
/// (`Platform.getUuid()`), or the 36-character dashed form.
pub fn uuid(field: &str, v: &str) -> Result<(), ApiError> {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let dashed = v.len() == 36
        && v.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && hex(&v.replace('-', ""));
    if (v.len() == 32 && hex(v)) || dashed {
        Ok(())
    } else {
        Err(bad(
            field,
            format_args!("{} is not a uuid (32 hex digits)", quoted(v)),
        ))
    }
}

/// [`uuid`], or empty where the node may leave the field out.
pub fn optional_uuid(field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() { Ok(()) } else { uuid(field, v) }
}

/// An `http://` or `https://` URL of at most [`MAX_URL`] bytes.
pub fn url(field: &str, v: &str) -> Result<(), ApiError> {
    text(field, v, MAX_URL)?;
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(())
    } else {
        Err(bad(
            field,
            format_args!("{} is not an http(s) URL", quoted(v)),
        ))
    }
}

/// An absolute path without control characters, at most [`MAX_PATH`] bytes.
pub fn abs_path(field: &str, v: &str) -> Result<(), ApiError> {
    text(field, v, MAX_PATH)?;
    if v.starts_with('/') {
        Ok(())
    } else {
        Err(bad(
            field,
            format_args!("{} is not an absolute path", quoted(v)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_never_overflow_an_instant() {
        let t = timeout_secs(Some(u64::MAX), 300);
        assert_eq!(t, MAX_WAIT);
        let _ = std::time::Instant::now() + t;
        assert_eq!(timeout_secs(None, 300), Duration::from_secs(300));
        assert_eq!(timeout_secs(Some(0), 120), Duration::from_secs(120));
        assert_eq!(timeout_secs(Some(5), 120), Duration::from_secs(5));
    }

    #[test]
    fn strings_are_bounded_and_printable() {
        text("version", "5.2.0", 64).unwrap();
        let e = text("version", "5.2\n0", 64).unwrap_err();
        assert!(e.message.starts_with("field version:"), "{e}");
        assert!(e.message.contains("control character"), "{e}");
        let big = "x".repeat(50 << 20);
        let e = text("version", &big, 64).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message.len());
        uuid("hostUuid", "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b").unwrap();
        uuid("hostUuid", "3f1c2b7e-9a5d-4e0f-8b6a-1c2d3e4f5a6b").unwrap();
        for bad in [
            "",
            "x",
            "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6g",
            "3f1c2b7e9a5d4e0f8b6a1c2d3e4f5a6b\n",
        ] {
            assert!(uuid("hostUuid", bad).is_err(), "{bad:?}");
        }
        optional_uuid("l2NetworkUuid", "").unwrap();
        url(
            "sendCommandUrl",
            "http://10.0.0.10:8080/zstack/asyncrest/sendcommand",
        )
        .unwrap();
        assert!(url("sendCommandUrl", "file:///etc/passwd").is_err());
        abs_path("socketPath", "/var/lib/libvirt/qemu/x.sock").unwrap();
        assert!(abs_path("socketPath", "x.sock").is_err());
        assert!(abs_path("socketPath", "/x\0").is_err());
    }
}
