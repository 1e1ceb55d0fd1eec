//! The proxy's Prometheus metrics: their names (one definition, used where they are recorded
//! and where the server's recorder gives them buckets) and their descriptions.

use std::sync::OnceLock;

/// Proxied requests, by the HTTP status the client got (`status`).
pub const REQUESTS: &str = "tollgate_proxy_requests_total";
/// Tokens metered, by `kind` (`input`, `output`, `cache_write`, `cache_read`).
pub const TOKENS: &str = "tollgate_proxy_tokens_total";
/// Cost charged to orgs' credit, micro-USD.
pub const COST_MICROS: &str = "tollgate_proxy_cost_micros_total";
/// Latency the proxy adds, in seconds: everything but the wait for the upstream (its headers;
/// for a whole answer, its body too).
pub const ADDED_LATENCY: &str = "tollgate_proxy_added_latency_seconds";
/// Time from forwarding a request to the upstream's response headers (for a whole, non-stream
/// answer: to its end), in seconds.
pub const UPSTREAM_LATENCY: &str = "tollgate_proxy_upstream_latency_seconds";
/// Settlements charged on an estimate: streams that ended without their usage.
pub const ESTIMATED_SETTLEMENTS: &str = "tollgate_proxy_estimated_settlements_total";

/// Describes the metrics above to the installed recorder (units and help texts).
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "Proxied requests by HTTP status");
    metrics::describe_counter!(TOKENS, "Tokens metered, by kind");
    metrics::describe_counter!(COST_MICROS, "Cost charged to orgs' credit, micro-USD");
    metrics::describe_counter!(
        ESTIMATED_SETTLEMENTS,
        "Settlements charged on an estimate of the content relayed: streams that ended without their usage"
    );
    metrics::describe_histogram!(
        ADDED_LATENCY,
        metrics::Unit::Seconds,
        "Latency the proxy adds to a request: everything but the wait for the upstream's response headers"
    );
    metrics::describe_histogram!(
        UPSTREAM_LATENCY,
        metrics::Unit::Seconds,
        "Time from forwarding a request to the upstream's response headers"
    );
}

/// The proxy's series as handles, registered with the recorder once, at the first request
/// (after the server installed its recorder), rather than looked up by name and labels on every
/// request. A recorder installed after that first request would not see them.
pub(crate) struct Handles {
    /// [`UPSTREAM_LATENCY`].
    pub(crate) upstream_latency: metrics::Histogram,
    /// [`ADDED_LATENCY`].
    pub(crate) added_latency: metrics::Histogram,
    /// [`COST_MICROS`].
    pub(crate) cost: metrics::Counter,
    /// [`ESTIMATED_SETTLEMENTS`].
    pub(crate) estimated: metrics::Counter,
    /// [`TOKENS`] by kind: input, output, cache_write, cache_read.
    pub(crate) tokens: [metrics::Counter; 4],
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The first status code [`count_request`] keeps a handle for, and how many follow it.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;
static STATUS_COUNTERS: [OnceLock<metrics::Counter>; STATUSES] = [const { OnceLock::new() }; STATUSES];

/// The handles of the proxy's unlabelled (or fixed-label) series.
pub(crate) fn handles() -> &'static Handles {
    HANDLES.get_or_init(|| Handles {
        upstream_latency: metrics::histogram!(UPSTREAM_LATENCY),
        added_latency: metrics::histogram!(ADDED_LATENCY),
        cost: metrics::counter!(COST_MICROS),
        estimated: metrics::counter!(ESTIMATED_SETTLEMENTS),
        tokens: [
            metrics::counter!(TOKENS, "kind" => "input"),
            metrics::counter!(TOKENS, "kind" => "output"),
            metrics::counter!(TOKENS, "kind" => "cache_write"),
            metrics::counter!(TOKENS, "kind" => "cache_read"),
        ],
    })
}

/// Counts one request answered `status` in [`REQUESTS`]: a cached handle per status code
/// (100 to 599), a look-up for anything else.
pub(crate) fn count_request(status: u16) {
    let register = || metrics::counter!(REQUESTS, "status" => status.to_string());
    match STATUS_COUNTERS.get(usize::from(status.wrapping_sub(FIRST_STATUS))) {
        Some(slot) => slot.get_or_init(register).increment(1),
        None => register().increment(1),
    }
}
