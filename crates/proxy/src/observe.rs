//! What the proxy tells operators about each request (DESIGN.md section 19): its id (the
//! ledger's `request_id`, returned in `x-request-id`), the agent session it belongs to, one
//! structured log line, and, when OpenTelemetry export is on, a span with the GenAI semantic
//! convention attributes. Never a credential.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use tollgate_policy::money::Usage;
use tollgate_policy::registry::Protocol;
use tollgate_policy::resolve::BillingMode;
use tollgate_policy::{Micros, OrgId, WorkspaceId};
use tollgate_store::{AgentSessionId, RequestId};
use tracing::Span;
use tracing::field::Empty;

/// The log target of the per-request line, so that it can be filtered on its own.
pub const REQUEST_LOG_TARGET: &str = "tollgate::request";

/// The headers an agent names its session in, in order of preference: Claude Code's, then
/// Codex's (`session-id` since 0.169, `session_id` before).
pub const SESSION_HEADERS: [&str; 3] = ["x-claude-code-session-id", "session-id", "session_id"];

static SPANS: AtomicBool = AtomicBool::new(false);

/// Turns the per-request span on or off (the server turns it on when it exports traces).
/// Off, the request path does no span work of its own.
pub fn set_spans_enabled(on: bool) {
    SPANS.store(on, Ordering::Relaxed);
}

/// Whether the per-request span is made.
pub fn spans_enabled() -> bool {
    SPANS.load(Ordering::Relaxed)
}

/// The agent's session id from the request's headers: the first of [`SESSION_HEADERS`]
/// present; a value that is not a valid [`AgentSessionId`] (too long, odd characters, not
/// text) is dropped, never stored.
pub fn session_from(headers: &HeaderMap) -> Option<AgentSessionId> {
    let value = SESSION_HEADERS.iter().find_map(|name| headers.get(*name))?;
    AgentSessionId::parse(value.to_str().ok()?)
}

/// Sets a fresh `x-request-id` on a refusal that no handler saw (an unknown path or method
/// under the proxy's prefixes), so that every answer there carries one.
pub(crate) fn with_request_id(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(RequestId::mint().as_str()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// One request's observable facts, filled in as the request goes.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub(crate) request_id: RequestId,
    pub(crate) session: Option<AgentSessionId>,
    pub(crate) span: Span,
    pub(crate) started: Instant,
    pub(crate) protocol: Protocol,
    pub(crate) workspace_id: Option<WorkspaceId>,
    pub(crate) org_id: Option<OrgId>,
    pub(crate) mode: Option<BillingMode>,
    pub(crate) model: Option<String>,
    /// Until the upstream's response head arrived.
    pub(crate) upstream_latency: Option<Duration>,
    /// The proxy's own share of the time to the response head.
    pub(crate) added_latency: Option<Duration>,
    /// A settlement guard owns the rest of the request's story (and logs it).
    pub(crate) handed_over: bool,
}

fn system(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Anthropic => "anthropic",
        Protocol::Openai => "openai",
    }
}

impl Observed {
    /// A new request: a fresh id and the agent's session from `headers`. Its span is made once
    /// the model is known (see [`Observed::model`]).
    pub(crate) fn begin(protocol: Protocol, headers: &HeaderMap) -> Self {
        Self {
            request_id: RequestId::mint(),
            session: session_from(headers),
            span: Span::none(),
            started: Instant::now(),
            protocol,
            workspace_id: None,
            org_id: None,
            mode: None,
            model: None,
            upstream_latency: None,
            added_latency: None,
            handed_over: false,
        }
    }

    /// The request's workspace, org and billing mode are known.
    pub(crate) fn who(&mut self, workspace_id: &WorkspaceId, org_id: &OrgId, mode: Option<BillingMode>) {
        self.workspace_id = Some(workspace_id.clone());
        self.org_id = Some(org_id.clone());
        self.mode = mode;
    }

    /// The model the client asked for is known: when spans are enabled, the request's span
    /// (named `chat {model}`, a child of the current span) is made now, since OpenTelemetry
    /// names a span once.
    pub(crate) fn model(&mut self, model: &str) {
        self.model = Some(model.to_owned());
        if !spans_enabled() {
            return;
        }
        self.span = tracing::info_span!(
            target: "tollgate::proxy",
            "proxy",
            otel.name = format!("chat {model}"),
            otel.kind = "server",
            otel.status_code = Empty,
            gen_ai.system = system(self.protocol),
            gen_ai.operation.name = "chat",
            gen_ai.request.model = model,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            tollgate.request_id = self.request_id.as_str(),
            tollgate.session_id = self.session.as_ref().map(AgentSessionId::as_str),
            tollgate.workspace_id = self.workspace_id.as_ref().map(WorkspaceId::as_str),
            tollgate.org_id = self.org_id.as_ref().map(OrgId::as_str),
            tollgate.billing_mode = self.mode.map(BillingMode::as_str),
            tollgate.cost_micros = Empty,
            tollgate.estimated = Empty,
            http.response.status_code = Empty,
        );
    }

    /// The upstream answered after `upstream` of the request's life so far (its head; a whole
    /// answer, its body too).
    pub(crate) fn responded(&mut self, upstream: Duration) {
        self.upstream_latency = Some(upstream);
        self.added_latency = Some(self.started.elapsed().saturating_sub(upstream));
    }

    /// Sets `x-request-id` on the response to the client.
    pub(crate) fn stamp(&self, response: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(self.request_id.as_str()) {
            response.headers_mut().insert("x-request-id", v);
        }
    }

    /// The request ended: logs its one line and completes its span. `status` is `None` for a
    /// stream that broke before its end (logged as status 0).
    pub(crate) fn finish(&self, status: Option<u16>, usage: &Usage, cost: Micros, estimated: bool) {
        let status = status.unwrap_or(0);
        let span = &self.span;
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
        span.record("tollgate.cost_micros", cost.get());
        span.record("tollgate.estimated", estimated);
        span.record("http.response.status_code", status);
        if status == 0 || status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            target: REQUEST_LOG_TARGET,
            request_id = self.request_id.as_str(),
            workspace_id = self.workspace_id.as_ref().map(WorkspaceId::as_str),
            org_id = self.org_id.as_ref().map(OrgId::as_str),
            session_id = self.session.as_ref().map(AgentSessionId::as_str),
            provider = system(self.protocol),
            billing_mode = self.mode.map(BillingMode::as_str),
            model = self.model.as_deref(),
            status,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cache_write_tokens = usage.cache_write_tokens,
            cache_read_tokens = usage.cache_read_tokens,
            cost_micros = cost.get(),
            estimated,
            upstream_ms = ms(self.upstream_latency),
            added_ms = ms(self.added_latency.or_else(|| Some(self.started.elapsed()))),
            "proxied request"
        );
    }

    /// The request was refused before anything was forwarded (and before any reservation
    /// owned it): logs its line with what was known.
    pub(crate) fn refused(&self, status: u16) {
        if !self.handed_over {
            self.finish(Some(status), &Usage::default(), Micros::ZERO, false);
        }
    }
}
