//! Text from logs and consoles.

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

#[cfg(test)]
mod tests {
    #[test]
    fn colours_go_text_stays() {
        assert_eq!(
            super::strip_ansi("\u{1b}[32m INFO\u{1b}[0m serving \u{1b}[3mlisten\u{1b}[0m=1"),
            " INFO serving listen=1"
        );
    }
}
