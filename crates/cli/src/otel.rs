//! OpenTelemetry traces over OTLP (http/protobuf), configured by the standard `OTEL_*`
//! variables and off when no endpoint is set (DESIGN.md section 19).
//!
//! Spans go through the SDK's batch processor: a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`,
//! default 2048) that a request only ever `try_send`s to, drained by the processor's own
//! thread. A receiver that is slow or hangs delays that thread (up to
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s, per batch), never a request: when the queue is
//! full, spans are dropped, and the SDK counts them. Spans of batches the receiver did not
//! take are counted in `tollgate_otel_spans_dropped_total`.
//!
//! The HTTP client is the workspace's `reqwest` (the admin client's and the notifier's; no
//! second HTTP stack): each export is a task on the server's runtime, awaited by the
//! processor's thread.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

/// Spans of batches the receiver refused or did not answer in time.
pub(crate) const SPANS_DROPPED: &str = "tollgate_otel_spans_dropped_total";

/// The trace pipeline, while exporting.
#[derive(Debug)]
pub(crate) struct Traces {
    provider: SdkTracerProvider,
}

/// Why traces are not exported although `OTEL_*` asks for them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OtelError {
    /// Only http/protobuf is built in.
    #[error("{var}={value} is not supported: set it to http/protobuf")]
    Protocol { var: &'static str, value: String },
    /// The exporter could not be built (e.g. an invalid endpoint URL).
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
}

/// The first non-empty value of `vars`, with its name.
fn first_set(env: &impl Fn(&str) -> Option<String>, vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter().find_map(|v| env(v).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).map(|s| (*v, s)))
}

/// Whether `OTEL_*` (read through `env`) asks for trace export: an OTLP endpoint is set, the
/// SDK is not disabled, and the traces exporter is not `none`. Errors when it asks for a
/// protocol other than http/protobuf.
pub(crate) fn wanted(env: impl Fn(&str) -> Option<String>) -> Result<bool, OtelError> {
    if first_set(&env, &["OTEL_SDK_DISABLED"]).is_some_and(|(_, v)| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    if first_set(&env, &["OTEL_TRACES_EXPORTER"]).is_some_and(|(_, v)| v.eq_ignore_ascii_case("none")) {
        return Ok(false);
    }
    if first_set(&env, &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]).is_none() {
        return Ok(false);
    }
    match first_set(&env, &["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
        Some((var, value)) if value != "http/protobuf" => Err(OtelError::Protocol { var, value }),
        _ => Ok(true),
    }
}

/// The per-request export timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
fn export_timeout(env: impl Fn(&str) -> Option<String>) -> Duration {
    first_set(&env, &["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"])
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

impl Traces {
    /// The pipeline `OTEL_*` asks for, `None` when it asks for none.
    pub(crate) fn from_env(runtime: &tokio::runtime::Handle) -> Result<Option<Self>, OtelError> {
        let env = |k: &str| std::env::var(k).ok();
        if !wanted(env)? {
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .timeout(export_timeout(env))
            .build()
            .map_err(|e| OtelError::Build(e.to_string()))?;
        // Endpoint, headers and compression come from the OTEL_* variables.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(OnRuntime { http, runtime: runtime.clone() })
            .build()
            .map_err(|e| OtelError::Build(e.to_string()))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if env("OTEL_SERVICE_NAME").is_none_or(|s| s.is_empty()) {
            resource = resource.with_service_name("tollgate");
        }
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(Counted(exporter)).with_resource(resource.build()).build();
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns Tollgate's spans (the server's request spans, the
    /// proxy's, provisioning's) into OpenTelemetry spans.
    pub(crate) fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let targets = Targets::new()
            .with_target("tollgate", LevelFilter::INFO)
            .with_target("tower_http", LevelFilter::INFO)
            .with_default(LevelFilter::OFF);
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("tollgate")).with_filter(targets)
    }

    /// Exports what is queued (within 5 s) and stops. Call it while the runtime still runs.
    pub(crate) fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "OpenTelemetry export did not finish cleanly");
        }
    }
}

/// Turns on what exporting needs beyond the layer: the W3C trace-context propagator (so an
/// incoming `traceparent` is continued) and the proxy's own spans.
pub(crate) fn enable() {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    tollgate_server::set_trace_context(true);
    tollgate_proxy::observe::set_spans_enabled(true);
}

/// The OTLP exporter, counting the spans of batches that were not delivered.
#[derive(Debug)]
struct Counted(opentelemetry_otlp::SpanExporter);

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let result = self.0.export(batch).await;
        if result.is_err() {
            metrics::counter!(SPANS_DROPPED).increment(n);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// An OTLP HTTP client whose requests run as tasks on the server's Tokio runtime, so that the
/// batch processor's thread (which has no runtime) can await them.
#[derive(Debug)]
struct OnRuntime {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let task = self.runtime.spawn(async move {
            let response = http.execute(request).await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = task.await??;
        Ok(Response::builder().status(status).body(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn export_is_off_unless_an_endpoint_is_set() {
        assert!(!wanted(env(&[])).unwrap_or(true));
        assert!(!wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])).unwrap_or(true));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])).unwrap_or(false));
        assert!(wanted(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")])).unwrap_or(false));
        let disabled = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_SDK_DISABLED", "true")];
        assert!(!wanted(env(&disabled)).unwrap_or(true));
        let none = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_TRACES_EXPORTER", "none")];
        assert!(!wanted(env(&none)).unwrap_or(true));
    }

    #[test]
    fn only_http_protobuf_is_spoken() {
        let grpc = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert!(matches!(wanted(env(&grpc)), Err(OtelError::Protocol { value, .. }) if value == "grpc"));
        let proto = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        assert!(wanted(env(&proto)).unwrap_or(false));
    }

    #[test]
    fn the_export_timeout_is_read_in_milliseconds() {
        assert_eq!(export_timeout(env(&[])), Duration::from_secs(10));
        assert_eq!(export_timeout(env(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "250")])), Duration::from_millis(250));
        let both = [("OTEL_EXPORTER_OTLP_TIMEOUT", "250"), ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "40")];
        assert_eq!(export_timeout(env(&both)), Duration::from_millis(40));
    }
}
