//! Text from logs and consoles, and input quoted into replies and logs.

/// How many characters of untrusted input an error message quotes.
pub const EXCERPT_CHARS: usize = 64;

/// `s` made safe to quote in a reply or a log line: control characters
/// (newlines, escapes, NUL...) escaped as `\n`, `\u{1b}`, and at most
/// `max_chars` characters kept, the rest replaced by a note of how many bytes
/// were cut. A 50 MB field or a newline in a uuid then cannot bloat a reply
/// or forge a log line.
pub fn excerpt_n(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 2));
    for (kept, (i, c)) in s.char_indices().enumerate() {
        if kept == max_chars {
            out.push_str(&format!("...({} more bytes)", s.len() - i));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as a quoted, escaped Rust string literal (`"eth0"`, `"a\nb"`) of
/// at most [`EXCERPT_CHARS`] characters, with a note of the bytes cut: the
/// bounded form of `format!("{s:?}")` for error messages.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        None => format!("{s:?}"),
        Some((i, _)) => format!("{:?}...({} more bytes)", &s[..i], s.len() - i),
    }
}

/// [`excerpt_n`] with [`EXCERPT_CHARS`].
pub fn excerpt(s: &str) -> String {
    excerpt_n(s, EXCERPT_CHARS)
}

/// Removes terminal control sequences (`ESC [ ... letter`, e.g. the colours
/// of a `tracing` log line), so log and console text can be matched.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time, like `uptime -s` on a UTC
/// host (Howard Hinnant's civil-from-days).
pub fn format_utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("eth0"), "eth0");
        assert_eq!(excerpt("a\nb\u{1b}[1m\0"), "a\\nb\\u{1b}[1m\\u{0}");
        let long = "x".repeat(50 << 20);
        let e = excerpt(&long);
        assert!(e.len() < 100, "{}", e.len());
        assert!(e.starts_with(&"x".repeat(EXCERPT_CHARS)));
        assert!(e.ends_with(&format!("...({} more bytes)", (50 << 20) - EXCERPT_CHARS)));
        // Multi-byte characters are never split.
        assert_eq!(excerpt_n("ééé", 2), "éé...(2 more bytes)");
        assert_eq!(quoted("eth0\n"), "\"eth0\\n\"");
        let q = quoted(&long);
        assert!(q.len() < 100 && q.starts_with("\"xxx"), "{q}");
    }

    #[test]
    fn colours_go_text_stays() {
        assert_eq!(
            super::strip_ansi("\u{1b}[32m INFO\u{1b}[0m serving \u{1b}[3mlisten\u{1b}[0m=1"),
            " INFO serving listen=1"
        );
    }

    #[test]
    fn utc_is_the_calendar_date() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(super::format_utc(1_796_300_000), "2026-12-03 12:13:20");
    }
}
