//! One logging set-up for the three binaries (issue 15):
//! * the level comes from `<BINARY>_LOG` (`VR_AGENT_LOG`, `KVM_AGENT_LOG`,
//!   `VRCTL_LOG`; `RUST_LOG` when that is unset), in `tracing`'s filter
//!   syntax (`info`, `debug`, `vr_agent=debug,info`);
//! * colour only when stderr is a terminal;
//! * under systemd (stderr is the journal stream systemd names in
//!   `JOURNAL_STREAM`) every line starts with its syslog priority (`<3>`
//!   for an error, `<4>` a warning, `<6>` info, `<7>` debug), which journald
//!   reads, so `journalctl -p err` finds errors; no timestamp (journald has
//!   its own).
//! * optionally a console (the VR's serial console) that gets only warnings
//!   and errors, plain text, besides the milestone lines the binary writes
//!   there itself ([`Console::line`]).

use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The syslog priority journald takes from a line's `<N>` prefix.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each event with its syslog priority.
pub struct JournalPriority<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Is stderr the journal stream systemd connected (`JOURNAL_STREAM` is
/// `device:inode` of it)?
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// The filter for `var`, else `RUST_LOG`, else `default`.
pub fn filter(var: &str, default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env(var)
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
}

/// Set up logging to stderr for a binary whose level variable is `var`.
pub fn init(var: &str, default: &str) {
    init_with_console(var, default, None);
}

/// Events whose target ends in this (e.g. `vr_agent::not_on_console`, so a
/// `vr_agent=debug` filter still covers them) go to stderr/the journal but
/// not to the console: the binary says them there in its own words.
pub const NOT_ON_CONSOLE: &str = "::not_on_console";

/// [`init`], and warnings and errors also on `console`.
pub fn init_with_console(var: &str, default: &str, console: Option<Console>) {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;
    let stderr = if stderr_is_journal() {
        let format = fmt::format().without_time().with_ansi(false);
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(JournalPriority(format))
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed()
    };
    let console = console.map(|c| {
        fmt::layer()
            .with_writer(c)
            .with_ansi(false)
            .without_time()
            .with_filter(filter_fn(|m| {
                *m.level() <= Level::WARN && !m.target().ends_with(NOT_ON_CONSOLE)
            }))
    });
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter(var, default)))
        .with(console)
        .init();
}

/// A console device (e.g. `/dev/console`, the serial line of a VM) shared
/// by the log layer and the binary's own lines. Writes are best effort: a
/// console that fails must not stop the service.
#[derive(Clone)]
pub struct Console(std::sync::Arc<std::sync::Mutex<std::fs::File>>);

impl Console {
    /// Opens `path` for writing without making it the controlling terminal.
    pub fn open(path: &std::path::Path) -> std::io::Result<Console> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)?;
        Ok(Console(std::sync::Arc::new(std::sync::Mutex::new(file))))
    }

    /// Writes one line (a newline is added).
    pub fn line(&self, text: &str) {
        use std::io::Write;
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{text}");
    }
}

impl std::io::Write for Console {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = Console;
    fn make_writer(&'a self) -> Console {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_carry_their_priority_and_no_escapes() {
        let buf = Buf::default();
        let out = buf.clone();
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_ansi(false);
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_max_level(Level::DEBUG)
            .event_format(JournalPriority(format))
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!(path = "/x", "failed");
            tracing::warn!("careful");
            tracing::info!("fine");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let prefixes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"], "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(
            text.lines().next().unwrap().contains("path=\"/x\""),
            "{text}"
        );
    }

    #[test]
    fn not_the_journal_without_a_matching_stream() {
        // Without the variable, never (the binaries' test covers a
        // matching stream).
        if std::env::var("JOURNAL_STREAM").is_err() {
            assert!(!stderr_is_journal());
        }
    }
}
