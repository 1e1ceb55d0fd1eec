//! Logging and traces for long-running commands: `RUST_LOG` (default `info`) to standard
//! error, as text or, with `TOLLGATE_LOG_FORMAT=json`, one JSON object per line; and, when
//! the standard `OTEL_*` variables name an OTLP endpoint, OpenTelemetry traces (see
//! [`crate::otel`]).

use tracing_subscriber::Layer;
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
            tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
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
