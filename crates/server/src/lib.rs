//! Tollgate's HTTP API (DESIGN.md section 9): the admin routes, provisioning, the secrets
//! pull, health, metrics and the OpenAPI document.
//!
//! The API's JSON shapes are described here once ([`api`]; the CLI's admin client uses the
//! same types). It decides nothing about billing modes or credentials: every route that needs
//! a decision loads the stored state and calls [`fn@tollgate_policy::resolve`], so the read endpoint, provisioning and the
//! pull agree by construction (invariant I2).
//!
//! Secret values and tokens appear in exactly two response bodies (the provision response
//! and the pull) and nowhere else: not in errors, not in logs, not in metrics.

pub mod alarms;
pub mod api;
mod auth;
pub mod demo;
mod error;
mod extract;
mod http1;
pub mod notify;
mod openapi;
mod routes;
mod telemetry;
mod throttle;
pub mod tls;
mod ui;
mod validate;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use secrecy::SecretString;
use tollgate_policy::{PublicUrl, Registry};
use tollgate_store::{Invalidation, Store, StoreError, TokenHash};

pub use error::{ApiError, ApiErrorCode};
pub use routes::openapi;
pub use telemetry::set_trace_context;
pub use throttle::AdminThrottleConfig;

/// The largest request body the API reads, in bytes (512 KiB). Larger bodies are answered
/// 413 `PAYLOAD_TOO_LARGE`.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// The prefix of the admin token.
pub const ADMIN_TOKEN_PREFIX: &str = "tg_admin_";

/// Everything a request handler needs: the store, the registry in force and the public URL.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    public_url: Arc<PublicUrl>,
    proxy: Option<tollgate_proxy::Proxy>,
    admin_throttle: throttle::AdminThrottle,
    notifier: notify::Notifier,
}

impl AppState {
    /// A state over `store`, resolving against `registry` and planning with `public_url`
    /// (what workspaces use to reach this server).
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, public_url: PublicUrl) -> Self {
        let admin_throttle = throttle::AdminThrottle::new(AdminThrottleConfig::default());
        Self {
            store,
            registry,
            public_url: Arc::new(public_url),
            proxy: None,
            admin_throttle,
            notifier: notify::Notifier::disabled(),
        }
    }

    /// The same state, slowing failed admin-token attempts per source address by `config`
    /// instead of the default (5 at once, then 1 per second).
    #[must_use]
    pub fn with_admin_throttle(mut self, config: AdminThrottleConfig) -> Self {
        self.admin_throttle = throttle::AdminThrottle::new(config);
        self
    }

    pub(crate) fn admin_throttle(&self) -> &throttle::AdminThrottle {
        &self.admin_throttle
    }

    /// The same state, also serving the metering proxy's routes.
    #[must_use]
    pub fn with_proxy(mut self, proxy: tollgate_proxy::Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The same state, sending notifications through `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Where notifications go.
    pub fn notifier(&self) -> &notify::Notifier {
        &self.notifier
    }

    /// The metering proxy, when this server runs one.
    pub fn proxy(&self) -> Option<&tollgate_proxy::Proxy> {
        self.proxy.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The registry in force.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The public URL.
    pub fn public_url(&self) -> &PublicUrl {
        &self.public_url
    }

    /// Tells every instance that cached state about a workspace or an org is stale, after a
    /// change that may alter a resolution. The change has happened either way: a failed
    /// notification is logged, and caches expire on their own.
    ///
    /// This instance's proxy drops its stale authorisations at once, before the notice goes
    /// out: its follower would do it only when the notice comes back round, after the caller
    /// may already have answered (and a next request been served on the old state).
    pub async fn invalidate(&self, notice: Invalidation) {
        // This instance's proxy forgets at once, before the change is answered: the next
        // request here sees it (other instances learn it through the channel).
        if let Some(proxy) = &self.proxy {
            proxy.forget(&notice);
        }
        if let Err(e) = self.store.publish_invalidation(&notice).await {
            tracing::warn!(error = %e, notice = %notice.encode(), "could not publish a cache invalidation");
        }
    }
}

/// The whole API as an axum router, with its layers: sensitive headers, request tracing (no
/// bodies, no header values), the body limit, metrics and JSON fallbacks for unknown routes
/// and methods.
///
/// Installs the process-wide Prometheus recorder on first use.
pub fn router(state: AppState) -> Router {
    routes::build(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting connections
/// and drains in-flight requests (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "tollgate API listening");
    }
    // Relayed SSE frames are small: without TCP_NODELAY, Nagle's algorithm and the client's
    // delayed ACK hold each one back ~40 ms. A socket that refuses the option still works.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer address (`ConnectInfo`) keys the admin-token throttle.
    http1::serve(listener, app, shutdown).await;
    Ok(())
}

/// As [`serve`], over HTTPS: every connection completes a TLS handshake with `tls` first
/// (see [`tls::CertReloader::server_config`], whose certificate can be replaced while serving).
///
/// # Errors
/// When the listener's address cannot be read, or as [`serve`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Arc<tls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "tollgate API listening (HTTPS)");
    }
    // TCP_NODELAY is set before the handshake.
    http1::serve(tls::TlsListener::new(listener, tls)?, app, shutdown).await;
    Ok(())
}

/// Ensures an admin token exists.
///
/// - With `configured` (`TOLLGATE_ADMIN_TOKEN`, non-empty): stores its SHA-256 hash, replacing
///   any stored one, and returns `Ok(None)`.
/// - Else, if the store already has a hash: returns `Ok(None)`.
/// - Else mints `tg_admin_` + 43 base62 characters from the operating system's CSPRNG, stores
///   its hash and returns the token, which the caller prints once. It is never logged.
///
/// # Errors
/// The store's errors; `StoreError::Crypto` when the operating system's random source fails.
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<Option<SecretString>, StoreError> {
    if let Some(token) = configured.map(str::trim).filter(|t| !t.is_empty()) {
        store.set_admin_token_hash(&TokenHash::of(token)).await?;
        tracing::info!("admin token set from the configuration");
        return Ok(None);
    }
    if store.admin_token_hash().await?.is_some() {
        return Ok(None);
    }
    let token = auth::mint(ADMIN_TOKEN_PREFIX).ok_or(StoreError::Crypto)?;
    store.set_admin_token_hash(&TokenHash::of(secrecy::ExposeSecret::expose_secret(&token))).await?;
    tracing::info!("generated a new admin token");
    Ok(Some(token))
}
