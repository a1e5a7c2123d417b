//! Log setup. The level comes from `IRONSEC_LOG` (tracing's filter syntax), default `info`;
//! the format from `--log-format` / `IRONSEC_LOG_FORMAT` ([`LogFormat`]):
//!
//! - `text`: one line per event on stderr, `LEVEL message key=value ...`. Every value is
//!   written the same way whatever the call site recorded (a `&str`, `%Display` or `?Debug`):
//!   bare, or quoted and escaped like a Rust string literal when it is empty or holds white
//!   space, `"`, `=` or a control character ([`TextFields`]), so a line splits into fields
//!   unambiguously (`error="No such device (os error 19)"`, `connection=site-b`).
//! - `json`: one JSON object per line on stderr (tracing-subscriber's JSON formatter):
//!   `timestamp`, `level`, `fields` (with the `message`), for log shippers.
//! - `journald`: the journal's native protocol (tracing-journald) on its socket: `PRIORITY`
//!   from the level (error 3, warning 4, info 6, debug and trace 7, so `journalctl -p warning`
//!   shows the warnings and errors) and each field as a journal field of its upper-case name
//!   (`CONNECTION=site-b`, `REMOTE=...`), the text in `MESSAGE`.
//! - `auto` (the default): `journald` when stderr is connected to the journal, as systemd
//!   documents for `JOURNAL_STREAM` (its `DEVICE:INODE` is stderr's), else `text`.
//!
//! Whatever the format, fields hold what the call sites put there: text a peer sent is only
//! ever logged through `ironsec_ike::PeerText` (escaped where it is made), and no secret is
//! ever a field or part of a message.

use std::ffi::OsStr;
use std::fmt;
use std::io;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal's native protocol when stderr is the journal (`JOURNAL_STREAM`), else text.
    #[default]
    Auto,
    /// `LEVEL message key=value ...` lines on stderr.
    Text,
    /// One JSON object per line on stderr: timestamp, level, fields (with the message).
    Json,
    /// The journal's native protocol: priorities and structured fields.
    Journald,
}

/// The format `auto` settled on (or the one asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    Text,
    Json,
    Journald,
}

/// Parses `JOURNAL_STREAM`: `DEVICE:INODE`, both decimal (systemd.exec(5)).
pub fn parse_journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// True when `JOURNAL_STREAM` names the file stderr is: systemd's own test for "my stderr goes
/// to the journal", which stays false when stderr was redirected (a shell pipe, a file) even
/// though the variable was inherited.
pub fn stderr_is_journal(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> bool {
    match (journal_stream.and_then(OsStr::to_str), stderr) {
        (Some(v), Some(id)) => parse_journal_stream(v) == Some(id),
        _ => false,
    }
}

/// Device and inode of the file open as stderr (fstat on a duplicate of descriptor 2).
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let m = std::fs::File::from(fd).metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// What `format` means here, given whether stderr is the journal.
pub fn resolve(format: LogFormat, stderr_is_journal: bool) -> Resolved {
    match format {
        LogFormat::Auto if stderr_is_journal => Resolved::Journald,
        LogFormat::Auto | LogFormat::Text => Resolved::Text,
        LogFormat::Json => Resolved::Json,
        LogFormat::Journald => Resolved::Journald,
    }
}

/// journald priorities for tracing's levels: syslog's meaning of each (tracing-journald's
/// default puts info at "notice", which would make every info line stand out).
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("IRONSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Installs the global subscriber. `Err` only when `journald` was asked for by name and the
/// journal's socket does not answer; `auto` falls back to text (and says so in the log).
pub fn init(format: LogFormat) -> Result<Resolved, String> {
    use tracing_subscriber::prelude::*;
    let journal = stderr_is_journal(std::env::var_os("JOURNAL_STREAM").as_deref(), stderr_id());
    let mut fell_back = None;
    let resolved = match resolve(format, journal) {
        Resolved::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_priority_mappings(priorities())
                    .with_syslog_identifier("ironsecd".into());
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .try_init();
                Resolved::Journald
            }
            Err(e) if format == LogFormat::Journald => {
                return Err(format!(
                    "--log-format journald: cannot reach the journal's socket: {e}"
                ));
            }
            Err(e) => {
                fell_back = Some(e);
                Resolved::Text
            }
        },
        r => r,
    };
    match resolved {
        Resolved::Journald => {}
        Resolved::Json => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_current_span(false)
                .with_span_list(false)
                .with_env_filter(filter())
                .with_writer(io::stderr)
                .with_target(false)
                .try_init();
        }
        Resolved::Text => {
            let _ = tracing_subscriber::fmt()
                .fmt_fields(TextFields)
                .with_env_filter(filter())
                .with_writer(io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
                .try_init();
        }
    }
    if let Some(e) = fell_back {
        tracing::warn!(error = %e, "stderr is the journal but its socket does not answer: logging text to stderr");
    }
    Ok(resolved)
}

/// The text format's field formatter (module doc): `message` first and bare, then
/// `name=value` pairs quoted only when a value needs it.
pub struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = TextVisitor {
            out: &mut writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct TextVisitor<'a, 'w> {
    out: &'a mut Writer<'w>,
    empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_, '_> {
    fn put(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.empty { "" } else { " " };
        self.empty = false;
        self.result = if field.name() == "message" {
            write!(self.out, "{sep}{value}")
        } else {
            write!(self.out, "{sep}{}={}", field.name(), Quoted(value))
        };
    }
}

impl Visit for TextVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here as a Debug that writes x's Display; a message is
        // `format_args!`, whose Debug is its text.
        self.put(field, &format!("{value:?}"));
    }
}

/// A field value as the text format writes it: bare when that reads back unambiguously,
/// otherwise quoted with Rust's string escapes.
pub struct Quoted<'a>(pub &'a str);

impl Quoted<'_> {
    fn needs_quotes(v: &str) -> bool {
        v.is_empty()
            || v.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=')
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Quoted::needs_quotes(self.0) {
            write!(f, "{:?}", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream(" 8:1"), None);
    }

    #[test]
    fn stderr_is_the_journal_only_when_device_and_inode_match() {
        let v = OsString::from("8:12345");
        assert!(stderr_is_journal(Some(&v), Some((8, 12345))));
        // Inherited by a process whose stderr was redirected: not the journal.
        assert!(!stderr_is_journal(Some(&v), Some((8, 99))));
        assert!(!stderr_is_journal(Some(&v), Some((9, 12345))));
        assert!(!stderr_is_journal(None, Some((8, 12345))));
        assert!(!stderr_is_journal(Some(&v), None));
        assert!(!stderr_is_journal(
            Some(&OsString::from("junk")),
            Some((8, 1))
        ));
    }

    #[test]
    fn auto_means_journald_under_the_journal_and_text_elsewhere() {
        assert_eq!(resolve(LogFormat::Auto, true), Resolved::Journald);
        assert_eq!(resolve(LogFormat::Auto, false), Resolved::Text);
        assert_eq!(resolve(LogFormat::Text, true), Resolved::Text);
        assert_eq!(resolve(LogFormat::Json, true), Resolved::Json);
        assert_eq!(resolve(LogFormat::Journald, false), Resolved::Journald);
    }

    #[test]
    fn this_process_stderr_has_an_identity() {
        let (dev, ino) = stderr_id().expect("fstat of stderr");
        let v = OsString::from(format!("{dev}:{ino}"));
        assert!(stderr_is_journal(Some(&v), stderr_id()));
    }

    #[test]
    fn text_values_are_quoted_only_when_needed() {
        let q = |v: &str| Quoted(v).to_string();
        assert_eq!(q("site-b"), "site-b");
        assert_eq!(q("192.0.2.2:4500"), "192.0.2.2:4500");
        assert_eq!(q("0x0000c1"), "0x0000c1");
        assert_eq!(q(""), "\"\"");
        assert_eq!(
            q("No such device (os error 19)"),
            "\"No such device (os error 19)\""
        );
        assert_eq!(q("a=b"), "\"a=b\"");
        assert_eq!(q("say \"hi\""), "\"say \\\"hi\\\"\"");
        // A control character never reaches the log raw, even from a value that is not
        // PeerText; a PeerText's own escapes (a backslash sequence) stay as they are when
        // nothing else needs quoting.
        assert_eq!(q("a\nb"), "\"a\\nb\"");
        assert_eq!(q("a\u{1b}b"), "\"a\\u{1b}b\"");
        assert_eq!(q("gw\\x1b"), "gw\\x1b");
    }

    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What a peer sent stays escaped in the text and JSON formats: no control byte in the
    /// output, and the JSON string holds PeerText's escaped form.
    #[test]
    fn peer_text_stays_escaped_in_text_and_json() {
        let hostile = b"gw-b.example\nFORGED INFO x\x1b]0;pwned\x07\xff";
        let log = |json: bool| {
            let buf = Buf::default();
            let w = buf.clone();
            let event = || {
                let id = ironsec_ike::PeerText::new(hostile);
                tracing::warn!(remote_id = %id, "negotiation failed: identity '{id}'");
            };
            if json {
                let sub = tracing_subscriber::fmt()
                    .json()
                    .with_writer(move || w.clone())
                    .finish();
                tracing::subscriber::with_default(sub, event);
            } else {
                let sub = tracing_subscriber::fmt()
                    .fmt_fields(TextFields)
                    .with_writer(move || w.clone())
                    .with_ansi(false)
                    .finish();
                tracing::subscriber::with_default(sub, event);
            }
            let out = buf.0.lock().unwrap().clone();
            String::from_utf8(out).unwrap()
        };
        for json in [false, true] {
            let out = log(json);
            assert_eq!(out.lines().count(), 1, "{out}");
            assert!(
                !out.trim_end().bytes().any(|b| b.is_ascii_control()),
                "{out:?}"
            );
            if json {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(
                    v["fields"]["remote_id"],
                    "gw-b.example\\nFORGED INFO x\\x1b]0;pwned\\x07\\xff"
                );
            } else {
                assert!(
                    out.contains("identity 'gw-b.example\\nFORGED INFO x\\x1b]0;pwned\\x07\\xff'"),
                    "{out}"
                );
            }
        }
    }

    /// The text formatter writes `%`, `?` and `&str` fields alike.
    #[test]
    fn call_site_style_does_not_change_the_text() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .fmt_fields(TextFields)
            .with_writer(move || w.clone())
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(sub, || {
            let name: &str = "site-b";
            let owned = String::from("site-b");
            tracing::info!(connection = name, "a");
            tracing::info!(connection = %owned, "a");
            tracing::info!(connection = ?name.to_string().as_str().trim(), n = 3, "b {}", 1);
            tracing::warn!(error = %io::Error::from_raw_os_error(19), ok = true, "c");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " INFO a connection=site-b");
        assert_eq!(lines[1], " INFO a connection=site-b");
        // A `?` of a &str is its Debug, quotes included: call sites use `%` (audited).
        assert_eq!(lines[2], " INFO b 1 connection=\"\\\"site-b\\\"\" n=3");
        assert_eq!(
            lines[3],
            " WARN c error=\"No such device (os error 19)\" ok=true"
        );
    }
}
