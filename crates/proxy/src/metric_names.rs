//! The proxy's Prometheus metrics: their names (one definition, used where they are recorded
//! and where the server's recorder gives them buckets) and their descriptions.

/// Proxied requests, by the HTTP status the client got (`status`).
pub const REQUESTS: &str = "tollgate_proxy_requests_total";
/// Tokens metered, by `kind` (`input`, `output`, `cache_write`, `cache_read`).
pub const TOKENS: &str = "tollgate_proxy_tokens_total";
/// Cost charged to orgs' credit, micro-USD.
pub const COST_MICROS: &str = "tollgate_proxy_cost_micros_total";
/// Latency the proxy adds, in seconds: everything but the wait for the upstream's headers.
pub const ADDED_LATENCY: &str = "tollgate_proxy_added_latency_seconds";
/// Time from forwarding a request to the upstream's response headers, in seconds.
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
