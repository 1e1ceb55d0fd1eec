//! Request tracing and Prometheus metrics.
//!
//! Spans carry the method, the route template and the path (ids and secret names, never
//! values); header values are marked sensitive before tracing sees them and bodies are never
//! logged. Metrics are labelled by method, route template and status, never by raw path.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tollgate_proxy::metric_names::{ADDED_LATENCY as PROXY_ADDED, UPSTREAM_LATENCY as PROXY_UPSTREAM};
use tower_http::LatencyUnit;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::{Level, Span};

use crate::error::{ApiError, ApiErrorCode};

/// Requests served, by method, route template and status.
pub(crate) const REQUESTS: &str = "tollgate_http_requests_total";
/// Request latency in seconds, by method and route template.
pub(crate) const DURATION: &str = "tollgate_http_request_duration_seconds";

/// Microseconds matter for the proxy's own share.
const ADDED_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls (another app in the same
/// process) reuse it. If another recorder was installed first, metrics are still rendered
/// from a private recorder, which then records nothing; that is logged.
pub(crate) fn install_recorder() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Full(DURATION.to_owned()), BUCKETS)?
                .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Full(PROXY_UPSTREAM.to_owned()), BUCKETS)?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(PROXY_ADDED.to_owned()),
                    ADDED_BUCKETS,
                )
        };
        let installed = builder().and_then(PrometheusBuilder::install_recorder);
        match installed {
            Ok(handle) => {
                metrics::describe_counter!(REQUESTS, "HTTP requests served, by method, route template and status");
                metrics::describe_histogram!(DURATION, metrics::Unit::Seconds, "HTTP request latency");
                tollgate_proxy::metric_names::describe();
                metrics::describe_counter!(
                    "tollgate_resolutions_total",
                    "Resolutions by caller (read, provision, pull) and outcome (ok or the error code)"
                );
                metrics::describe_counter!(
                    crate::notify::WEBHOOK_DELIVERIES,
                    "Webhook notifications by outcome (delivered, failed after retries, queue_full)"
                );
                metrics::describe_counter!(
                    crate::auth::ADMIN_AUTH_FAILURES,
                    "Refused admin-token attempts, by outcome (unauthorized, or rate_limited for an address that failed too often)"
                );
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// The metrics in Prometheus text format.
pub(crate) fn render() -> String {
    let handle = install_recorder();
    handle.run_upkeep();
    handle.render()
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One route's request counters (by method and status) and latency histograms (by method).
#[derive(Default)]
struct RouteSeries {
    requests: HashMap<(&'static str, u16), metrics::Counter>,
    durations: HashMap<&'static str, metrics::Histogram>,
}

/// Series handles by route template, registered with the recorder once each rather than looked
/// up by name and labels on every request. Bounded: route templates, methods and status codes
/// are finite sets.
static SERIES: OnceLock<Mutex<HashMap<String, RouteSeries>>> = OnceLock::new();

/// The request counter and the latency histogram of `method` on `route` answered `status`.
fn series(method: &'static str, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    let mut routes = SERIES.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if !routes.contains_key(route) {
        routes.insert(route.to_owned(), RouteSeries::default());
    }
    let Some(series) = routes.get_mut(route) else {
        return (metrics::Counter::noop(), metrics::Histogram::noop());
    };
    let requests = series
        .requests
        .entry((method, status))
        .or_insert_with(|| {
            let route = route.to_owned();
            metrics::counter!(REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        })
        .clone();
    let duration = series
        .durations
        .entry(method)
        .or_insert_with(|| metrics::histogram!(DURATION, "method" => method, "route" => route.to_owned()))
        .clone();
    (requests, duration)
}

/// Middleware: counts the request and records its latency.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) = series(method, route, response.status().as_u16());
    requests.increment(1);
    duration.record(start.elapsed().as_secs_f64());
    response
}

static TRACE_CONTEXT: AtomicBool = AtomicBool::new(false);

/// Turns on trace export's share of request tracing: each request span is named for
/// OpenTelemetry (`GET /admin/orgs`, by route template) and continues the W3C `traceparent`
/// the client sent (through the global propagator). Off (the default), spans are as before.
pub fn set_trace_context(on: bool) {
    TRACE_CONTEXT.store(on, Ordering::Relaxed);
}

fn make_span(req: &Request<Body>) -> Span {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    if !TRACE_CONTEXT.load(Ordering::Relaxed) {
        return tracing::info_span!("request", method = %req.method(), route, path = %req.uri().path());
    }
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        path = %req.uri().path(),
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
    });
    // A request without a (valid) traceparent starts its own trace.
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, parent);
    span
}

/// The request tracing layer's type.
pub(crate) type Trace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
>;

/// Request tracing: a span per request, "started" at DEBUG, "finished" with status and
/// latency at INFO, server errors at ERROR. No headers, no bodies.
pub(crate) fn trace_layer() -> Trace {
    TraceLayer::new_for_http()
        .make_span_with(make_span as fn(&Request<Body>) -> Span)
        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis))
        .on_failure(DefaultOnFailure::new().level(Level::ERROR).latency_unit(LatencyUnit::Millis))
}

/// The proxy's routes' request tracing type: no lines of its own.
pub(crate) type ProxyTrace =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, fn(&Request<Body>) -> Span, (), (), (), (), DefaultOnFailure>;

/// Request tracing of the proxy's routes, which log one `tollgate::request` line per request
/// themselves (`tollgate_proxy::observe`): no "finished" line beside it, and a span only when
/// traces are exported (it is the parent of the proxy's `chat` span and continues the client's
/// `traceparent`); otherwise no per-request span work at all. Server errors still log at ERROR.
pub(crate) fn proxy_trace_layer() -> ProxyTrace {
    TraceLayer::new_for_http()
        .make_span_with(make_proxy_span as fn(&Request<Body>) -> Span)
        .on_request(())
        .on_response(())
        .on_body_chunk(())
        .on_eos(())
        .on_failure(DefaultOnFailure::new().level(Level::ERROR).latency_unit(LatencyUnit::Millis))
}

fn make_proxy_span(req: &Request<Body>) -> Span {
    if TRACE_CONTEXT.load(Ordering::Relaxed) { make_span(req) } else { Span::none() }
}

/// A handler panicked: 500 with the generic message. The panic itself was reported by the
/// panic hook.
pub(crate) fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(ApiErrorCode::Internal, "internal error; the details are in the server log").into_response()
}
