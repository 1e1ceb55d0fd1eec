//! The proxy's HTTP client to the platform upstreams: hyper's pooled HTTP/1.1 client over
//! rustls, used directly rather than through `reqwest`.
//!
//! Why not `reqwest` (which the rest of the workspace uses for its own calls): on the proxy's
//! path it parsed each request's URL three times (once to build it, once in its redirect layer,
//! once to send it) and wrapped every request in a redirect-following layer the proxy must not
//! use: about 8% of the proxy's instructions per request under callgrind
//! (`scripts/profile-proxy`).
//!
//! The read buffers stay hyper's adaptive ones (8 KiB, growing for large bodies): hyper's
//! fixed-size alternative also caps the response head at that size, and a provider's head
//! with its rate-limit and CDN headers must never be refused for its length.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long connecting to an upstream may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the proxy waits for the upstream's response head, and then for each read of its
/// body: a long stream lives as long as bytes keep coming.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// The pooled client: `http://` and `https://` upstreams, HTTP/1.1.
pub(crate) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The proxy's HTTP client could not be built: its TLS configuration was refused.
/// The proxy does not start without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the proxy's HTTP client: {0}")]
pub struct ClientBuildError(#[source] rustls::Error);

/// The client: TLS verified against the Mozilla roots (`webpki-roots`) and the system's, as
/// the workspace's `reqwest` clients do; TCP_NODELAY (a relayed request is one write); the
/// timeouts above (the read timeout is applied by the caller, per read).
///
/// # Errors
/// [`ClientBuildError`] when rustls refuses the configuration (its crypto provider supports
/// no safe protocol version).
pub(crate) fn client() -> Result<UpstreamClient, ClientBuildError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // The system's store may be absent or partly unreadable: what loads is added, the rest is
    // left out (as reqwest does), never a reason not to start.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(ClientBuildError)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(https))
}
