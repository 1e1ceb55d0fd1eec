//! Logging and traces for long-running commands: `RUST_LOG` (default `info`) to standard
//! error, as text or, with `TOLLGATE_LOG_FORMAT=json`, one JSON object per line; and, when
//! the standard `OTEL_*` variables name an OTLP endpoint, OpenTelemetry traces (see
//! [`crate::otel`]).

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

impl Format {
    /// `TOLLGATE_LOG_FORMAT`: `json`, or anything else (unset) for text.
    fn from_env() -> Self {
        match std::env::var("TOLLGATE_LOG_FORMAT") {
            Ok(v) if v.trim().eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Text,
        }
    }
}

/// Installs the global subscriber once (later calls are no-ops) and, when configured, the
/// trace exporter, whose IO runs on `runtime`. Keep the returned value and call
/// [`crate::otel::Traces::shutdown`] before the runtime stops, to send the last spans.
pub(crate) fn init(runtime: &tokio::runtime::Handle) -> Option<crate::otel::Traces> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = match Format::from_env() {
        Format::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        Format::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
            // Colours on a terminal; elsewhere the same text, written without the styling.
            if ansi { layer.boxed() } else { layer.fmt_fields(PlainFields).boxed() }
        }
    };
    let (traces, problem) = match crate::otel::Traces::from_env(runtime) {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    let otel = traces.as_ref().map(crate::otel::Traces::layer);
    let installed = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init().is_ok();
    if let Some(e) = problem {
        tracing::warn!(error = %e, "OpenTelemetry export is off");
    }
    if installed && traces.is_some() {
        crate::otel::enable();
        tracing::info!("exporting OpenTelemetry traces over OTLP (http/protobuf)");
        traces
    } else {
        None
    }
}

/// Event and span fields as the default text formatter writes them without colours
/// (`name=value` separated by spaces, the message first and unquoted, its control characters
/// escaped), but without painting each name and `=` with an empty style: on the proxy's
/// per-request line of eighteen fields that painting was about a third of the line's cost.
struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = PlainVisitor { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes fields for [`PlainFields`].
struct PlainVisitor<'w> {
    writer: Writer<'w>,
    result: std::fmt::Result,
    first: bool,
}

impl PlainVisitor<'_> {
    /// Writes the separator and `name=`; `false` when nothing more may be written (an earlier
    /// write failed, or the field is the `log` crate's metadata, which the formatter shows
    /// elsewhere).
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = self.result.and_then(|()| self.writer.write_str(name)).and_then(|()| self.writer.write_char('='));
        self.result.is_ok()
    }

    /// Writes a plain value (a number, a boolean: nothing to quote or escape) as `name=value`.
    fn record_plain(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else if self.start(field) {
            self.result = self.writer.write_str(value);
        }
    }
}

/// Whether `Debug` writes `value` as itself between quotes: printable ASCII, no quote, no
/// backslash (ids, model names, modes: every string field of the per-request line).
fn debug_is_verbatim(value: &str) -> bool {
    value.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else if debug_is_verbatim(value) {
            // What `{value:?}` writes, without its formatter.
            if self.start(field) {
                self.result = self
                    .writer
                    .write_char('"')
                    .and_then(|()| self.writer.write_str(value))
                    .and_then(|()| self.writer.write_char('"'));
            }
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_plain(field, if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            if self.result.is_err() {
                return;
            }
            if !self.first {
                self.result = self.writer.write_char(' ');
            }
            self.first = false;
            self.result = self.result.and_then(|()| write!(EscapeControl(&mut self.writer), "{value:?}"));
        } else if self.start(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

/// Writes through, with control characters (a terminal's escape sequences, line breaks) escaped
/// as `\u{..}`, so that a message cannot forge lines or drive a terminal.
struct EscapeControl<'a, 'w>(&'a mut Writer<'w>);

impl std::fmt::Write for EscapeControl<'_, '_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if !s.contains(char::is_control) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_unicode())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` logs as text without colours or time, through [`PlainFields`] or (`plain`
    /// false) the default field formatter.
    fn capture(plain: bool, f: impl FnOnce()) -> String {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = {
            let buf = buf.clone();
            move || Sink(buf.clone())
        };
        let builder = tracing_subscriber::fmt().with_ansi(false).without_time().with_writer(writer);
        if plain {
            tracing::subscriber::with_default(builder.fmt_fields(PlainFields).finish(), f);
        } else {
            tracing::subscriber::with_default(builder.finish(), f);
        }
        let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_fields_write_what_the_default_formatter_writes_without_colours() {
        let event = || {
            let span = tracing::info_span!("request", method = "POST", r#type = 1);
            let _in = span.enter();
            tracing::info!(target: "t", request_id = "r-1", status = 200_u16, added_ms = Some(0.5), none = None::<&str>, ok = true, "proxied request");
            // Every fast path of `PlainVisitor` against the default formatter's `Debug`.
            tracing::info!(
                n = -5_i64,
                big = u64::MAX,
                off = false,
                quoted = "a\"b\\c",
                accent = "é\u{301}",
                tab = "a\tb",
                empty = ""
            );
            // The `log` crate's metadata is left out; a message that is a number is the message.
            tracing::info!(log.target = "dep", message = 7_u64, n = 1_u64);
            tracing::warn!(error = %"upstream \"down\"", "upstream unreachable");
        };
        let plain = capture(true, event);
        assert!(plain.contains("proxied request request_id=\"r-1\" status=200 added_ms=0.5 ok=true\n"), "{plain:?}");
        assert_eq!(plain, capture(false, event));
    }

    #[test]
    fn only_printable_ascii_without_quote_or_backslash_is_written_verbatim() {
        for plain in ["", "r-1", "platform/sonnet", "a b ~!#$%&'()*+,-./:;<=>?@[]^_`{|}"] {
            assert!(super::debug_is_verbatim(plain), "{plain:?}");
            assert_eq!(format!("{plain:?}"), format!("\"{plain}\""), "what Debug writes: {plain:?}");
        }
        for escaped in ["a\"b", "a\\b", "é", "a\tb", "a\nb", "\u{7f}", "\u{1b}[31m"] {
            assert!(!super::debug_is_verbatim(escaped), "{escaped:?}");
        }
    }

    #[test]
    fn a_message_cannot_forge_a_line_or_an_escape_sequence() {
        let plain = capture(true, || {
            let input = "a\nINFO forged\u{1b}[31m";
            tracing::warn!("bad {input}");
        });
        assert_eq!(plain.matches('\n').count(), 1, "{plain:?}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(plain.contains("bad a\\u{a}INFO forged\\u{1b}[31m"), "{plain:?}");
    }
}
