//! The proxy's HTTP side: authenticate the workspace token, reserve credit, forward to the
//! platform upstream with the platform key, stream the response back chunk by chunk while
//! metering it, and settle exactly once, even when the stream breaks (a drop guard).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use futures_util::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tollgate_policy::money::Usage;
use tollgate_policy::registry::Protocol;
use tollgate_policy::resolve::{BillingMode, Context, PublicUrl};
use tollgate_policy::suspension::suspension_in_force;
use tollgate_policy::token::{WORKSPACE_TOKEN_PREFIX, has_token_shape};
use tollgate_policy::{Charge, Limits, Markup, Micros, ModelRefusal, OrgId, Pricing, Registry, WorkspaceId};
use tollgate_store::{Invalidation, LedgerEntry, RequestId, ResolutionInputs, Settlement, Store, Timestamp, TokenHash};
use tracing::Instrument;

use crate::credit::{Credit, CreditConfig, Hold, Refusal};
use crate::rate::{RateHandles, RatePermit, RateRefusal, Rates};

use crate::meter::{self, Meter};
use crate::metric_names;
use crate::models;
use crate::observe::Observed;
use crate::rewrite;
use crate::strip::UsageChunkStripper;
use crate::upstream::{self, ClientBuildError, UpstreamBody, UpstreamClient};

/// Output tokens reserved for a request that sets no limit (OpenAI's `max_tokens` is optional).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 32_000;
/// The largest request body the proxy accepts.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// How long an authorisation stays cached without an invalidation.
pub(crate) const AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

/// Where one platform upstream is and the key the proxy sends it.
#[derive(Clone)]
pub struct UpstreamTarget {
    /// Base URL, no trailing slash.
    pub url: String,
    /// The platform key; `None` when the server was started without it (requests then fail
    /// with 502 and a message naming the missing variable).
    pub key: Option<SecretString>,
    /// The variable the key comes from, for that message.
    pub key_env: String,
    /// The key as each protocol sends it, built once at start and marked sensitive; `None`
    /// without a key, or with one no header can carry (then requests fail with 502).
    auth: Option<AuthHeaders>,
    /// Where `url` points, and its pooled connections; `None` for a URL the client cannot
    /// use (then requests fail with 502 and a log line naming the URL).
    endpoint: Option<Arc<upstream::Endpoint>>,
}

/// The platform key as the upstream request's header value: Anthropic's `x-api-key` and
/// OpenAI's `Authorization: Bearer`. Cloned per request (a reference count), never formatted.
#[derive(Clone)]
struct AuthHeaders {
    x_api_key: HeaderValue,
    bearer: HeaderValue,
}

impl AuthHeaders {
    fn of(key: &SecretString) -> Option<Self> {
        let sensitive = |mut v: HeaderValue| {
            v.set_sensitive(true);
            v
        };
        Some(Self {
            x_api_key: sensitive(HeaderValue::from_str(key.expose_secret()).ok()?),
            bearer: sensitive(HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).ok()?),
        })
    }
}

impl std::fmt::Debug for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTarget")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The platform upstreams, read from the server's environment at start.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    upstreams: BTreeMap<String, UpstreamTarget>,
    /// How credit leases are kept.
    pub credit: CreditConfig,
    /// The time that decides a request's budget periods (the system clock but in tests).
    pub clock: crate::budget::Clock,
}

impl ProxyConfig {
    /// For each upstream of the registry's platform provider: the key from its `key_env`
    /// (`TOLLGATE_UPSTREAM_<NAME>_KEY`) and the URL from `TOLLGATE_UPSTREAM_<NAME>_URL` if set,
    /// else the registry's. `env` reads a variable (the CLI passes `std::env::var`).
    pub fn from_env(registry: &Registry, env: impl Fn(&str) -> Option<String>) -> Self {
        let mut upstreams = BTreeMap::new();
        if let Some(platform) = registry.platform() {
            for u in platform.upstreams() {
                let name = u.name().to_ascii_uppercase().replace(['-', '.'], "_");
                let url = env(&format!("TOLLGATE_UPSTREAM_{name}_URL"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| u.url().to_owned());
                let key = env(u.key_env().as_str()).filter(|s| !s.is_empty()).map(SecretString::from);
                let auth = key.as_ref().and_then(AuthHeaders::of);
                let url = url.trim_end_matches('/').to_owned();
                let endpoint = upstream::Endpoint::parse(&url).ok().map(Arc::new);
                upstreams.insert(
                    u.name().to_owned(),
                    UpstreamTarget { url, key, key_env: u.key_env().as_str().to_owned(), auth, endpoint },
                );
            }
        }
        Self { upstreams, credit: CreditConfig::default(), clock: crate::budget::Clock::default() }
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamTarget> {
        self.upstreams.get(name)
    }

    /// Every upstream, by name.
    pub fn upstreams(&self) -> impl Iterator<Item = (&str, &UpstreamTarget)> {
        self.upstreams.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// What a cached token lookup remembers: who the workspace is and whether it may use the
/// proxy right now.
#[derive(Clone, Debug)]
struct Authorized {
    workspace_id: WorkspaceId,
    org_id: OrgId,
    mode: Option<BillingMode>,
    /// The workspace's runtime id: its protocol decides which platform models the token buys.
    runtime: String,
    /// Its `allowed_models` and its org's together (section 14), `None` for no narrowing.
    allowed_models: Option<Vec<String>>,
    /// The org's price plan (section 20): what it is charged over the provider's price.
    markup: Markup,
    /// The refusal's message when the workspace or its org is suspended (section 14).
    suspended: Option<String>,
    /// The org's limits (its budgets apply to every workspace).
    org_limits: Limits,
    /// The workspace's limits.
    limits: Limits,
    /// The rate limiters of the workspace and its org; `None` when neither sets a limit.
    rate: Option<Arc<RateHandles>>,
}

/// The metering proxy. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    public_url: PublicUrl,
    config: ProxyConfig,
    client: UpstreamClient,
    cache: moka::future::Cache<[u8; 32], Arc<Authorized>>,
    /// Counts invalidations: an authorisation loaded while one arrived may predate it, and is
    /// not kept (see [`Proxy::authorize`]).
    generation: std::sync::atomic::AtomicU64,
    credit: Credit,
    rates: Rates,
    /// This instance's budget leases.
    budgets: crate::budget::Budgets,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over `store`, charging with `registry`'s prices and forwarding per `config`.
    /// Call it within a Tokio runtime: it starts the credit bookkeeping task (see
    /// [`crate::credit`]), which lives as long as the proxy.
    ///
    /// # Errors
    /// [`ClientBuildError`] when the upstream HTTP client (with its connect and read
    /// timeouts) cannot be built.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        public_url: PublicUrl,
        config: ProxyConfig,
    ) -> Result<Self, ClientBuildError> {
        let client = upstream::client()?;
        let cache = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(AUTH_CACHE_TTL)
            .support_invalidation_closures()
            .build();
        let credit = Credit::new(store.clone(), config.credit.clone());
        // OpenAI's tokenizer parses its embedded ranks once per process: off the first
        // OpenAI request's path, and only for the vocabularies the registry's models use.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let models: Vec<String> = registry
                .platform_models_for(Protocol::Openai)
                .filter_map(|m| m.serving().map(|s| s.upstream_model().to_owned()))
                .collect();
            drop(handle.spawn_blocking(move || {
                meter::relayed::TokenCounter::warm_up(models.iter().map(String::as_str));
            }));
        }
        let rates = Rates::new(store.clone());
        let budgets = crate::budget::Budgets::new(store.clone(), config.credit.flush_interval, config.credit.lease_ttl);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                registry,
                public_url,
                config,
                client,
                cache,
                generation: std::sync::atomic::AtomicU64::new(0),
                credit,
                rates,
                budgets,
            }),
        })
    }

    /// The proxy's routes: `POST /anthropic/v1/messages` (any query string),
    /// `POST /anthropic/v1/messages/count_tokens`, `POST /openai/v1/chat/completions`,
    /// `POST /openai/v1/responses`, and the model lists `GET /anthropic/v1/models` and
    /// `GET /openai/v1/models` (and one model, `GET .../models/{id}`), and Claude Code's
    /// connectivity probe `GET`/`HEAD /anthropic/api/hello`.
    ///
    /// Every refusal under `/anthropic` and `/openai`, including a body over
    /// [`MAX_REQUEST_BYTES`] (413), an unknown path (404) and a wrong method (405), is answered
    /// as JSON in that provider's error shape, so that agents' SDKs read it.
    pub fn routes(&self) -> Router {
        let anthropic = |m: MethodRouter<Proxy>| m.fallback(anthropic_bad_method);
        let openai = |m: MethodRouter<Proxy>| m.fallback(openai_bad_method);
        Router::new()
            .route("/anthropic/v1/messages", anthropic(post(anthropic_messages)))
            .route("/anthropic/v1/messages/count_tokens", anthropic(post(anthropic_count_tokens)))
            .route("/openai/v1/chat/completions", openai(post(openai_chat)))
            .route("/openai/v1/responses", openai(post(openai_responses)))
            .route("/anthropic/v1/models", anthropic(get(anthropic_models)))
            .route("/anthropic/v1/models/{*id}", anthropic(get(anthropic_model)))
            .route("/openai/v1/models", openai(get(openai_models)))
            .route("/openai/v1/models/{*id}", openai(get(openai_model)))
            .route("/anthropic/api/hello", anthropic(get(hello)))
            .route("/anthropic", any(anthropic_no_route))
            .route("/anthropic/{*rest}", any(anthropic_no_route))
            .route("/openai", any(openai_no_route))
            .route("/openai/{*rest}", any(openai_no_route))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self.clone())
    }

    /// Writes every pending ledger row and returns this instance's credit leases to their
    /// orgs and its budget leases to their budgets. Call it after the server has drained its
    /// in-flight requests.
    pub async fn shutdown(&self) -> Result<(), tollgate_store::StoreError> {
        self.inner.budgets.shutdown().await;
        self.inner.credit.shutdown().await
    }

    /// Obeys a debit of `org_id`'s credit (the store closed its leases): drops this
    /// instance's lease of the org before any further admission, so that requests from now on
    /// lease from the new balance. Call it on the instance that made the debit before
    /// answering; other instances do it on the [`Invalidation::CreditCut`] notice.
    ///
    /// Returns the lease ids this instance no longer spends from.
    pub async fn credit_cut(&self, org_id: &tollgate_policy::OrgId) -> Vec<tollgate_store::LeaseId> {
        self.inner.credit.cut(org_id).await
    }

    /// Drops cached authorisations when any instance publishes an invalidation (a workspace,
    /// an org or all), and returns leased credit another instance recalls. Runs until the
    /// store's channel closes.
    pub async fn follow_invalidations(&self) {
        let Ok(mut rx) = self.inner.store.invalidations().await else {
            tracing::warn!("no invalidation channel: the token cache relies on its TTL");
            return;
        };
        loop {
            match rx.recv().await {
                Ok(Invalidation::CreditRecall { org, from }) => self.inner.credit.recall(&org, &from).await,
                Ok(Invalidation::CreditCut(org)) => {
                    // Confirm only after the lease is dropped: the debit answers once every
                    // closed lease is confirmed, so nothing is admitted from it after that.
                    let left = self.credit_cut(&org).await;
                    self.confirm_cuts(left).await;
                }
                Ok(Invalidation::CreditCutDone(_)) => {}
                Ok(Invalidation::All) => {
                    // Notices were lost with a connection: a debit's cut may be among them.
                    self.inner.cache.invalidate_all();
                    self.inner.budgets.cut_all();
                    let left = self.inner.credit.cut_all().await;
                    self.confirm_cuts(left).await;
                }
                Ok(notice) => self.invalidate(notice),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Skipped notices may hold anything, a debit's cut or a recall included:
                    // everything changed. Drop every authorisation and every lease.
                    self.inner.cache.invalidate_all();
                    self.inner.budgets.cut_all();
                    let left = self.inner.credit.cut_all().await;
                    self.confirm_cuts(left).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Tells the debit waiting for them that this instance no longer spends from `leases`.
    async fn confirm_cuts(&self, leases: Vec<tollgate_store::LeaseId>) {
        for lease in leases {
            let done = Invalidation::CreditCutDone(lease);
            if let Err(e) = self.inner.store.publish_invalidation(&done).await {
                tracing::warn!(error = %e, "could not confirm a credit cut");
            }
        }
    }

    /// Drops this instance's cached authorisations that `notice` makes stale (a workspace, an
    /// org, or all), now, without waiting for the notice to come back through the store's
    /// channel: the admin API calls it before answering a change. Credit notices are ignored
    /// here (they are answered by [`Proxy::follow_invalidations`]).
    pub fn forget(&self, notice: &Invalidation) {
        match notice {
            Invalidation::Workspace(_) | Invalidation::Org(_) | Invalidation::All => self.invalidate(notice.clone()),
            Invalidation::CreditRecall { .. } | Invalidation::CreditCut(_) | Invalidation::CreditCutDone(_) => {}
        }
    }

    fn invalidate(&self, notice: Invalidation) {
        if matches!(notice, Invalidation::CreditCutDone(_)) {
            return;
        }
        // Counted before the entries go, so a load racing this one sees the change.
        self.inner.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cut_budget_leases(&notice);
        let cache = &self.inner.cache;
        match notice {
            Invalidation::Workspace(ws) => {
                let _ = cache.invalidate_entries_if(move |_, a| a.workspace_id == ws);
            }
            Invalidation::Org(org) => {
                let _ = cache.invalidate_entries_if(move |_, a| a.org_id == org);
            }
            Invalidation::CreditRecall { .. }
            | Invalidation::CreditCut(_)
            | Invalidation::CreditCutDone(_)
            | Invalidation::All => cache.invalidate_all(),
        }
    }

    /// Retires the budget leases whose limits `notice` may have changed (a workspace's, an
    /// org's, or all): requests from now on lease under the new budgets.
    fn cut_budget_leases(&self, notice: &Invalidation) {
        match notice {
            Invalidation::Workspace(ws) => self.inner.budgets.cut_owner(ws.as_str()),
            Invalidation::Org(org) => self.inner.budgets.cut_owner(org.as_str()),
            Invalidation::All => self.inner.budgets.cut_all(),
            Invalidation::CreditRecall { .. } | Invalidation::CreditCut(_) | Invalidation::CreditCutDone(_) => {}
        }
    }

    async fn authorize(&self, token: &str) -> Result<Arc<Authorized>, ProxyError> {
        let hash = TokenHash::of(token);
        let inner = &self.inner;
        // Failures are not cached (moka caches only values): a token minted a moment ago on
        // another instance works at once, and a database hiccup is retried next request.
        let generation = inner.generation.load(std::sync::atomic::Ordering::SeqCst);
        let found = inner
            .cache
            .try_get_with(*hash.as_bytes(), async {
                let ws = inner.store.workspace_for_token(&hash).await.map_err(Lookup::Store)?.ok_or(Lookup::Unknown)?;
                let inputs = ResolutionInputs::for_workspace(inner.store.as_ref(), ws).await.map_err(Lookup::Store)?;
                let ctx = Context { registry: &inner.registry, public_url: &inner.public_url };
                let r = inputs.resolve(&ctx, None).into_resolution();
                let (ws_rates, org_rates) = crate::rate::limits_of(&inputs);
                let rate = inner.rates.handles(&inputs.workspace.id, &ws_rates, &inputs.org.id, &org_rates);
                Ok::<_, Lookup>(Arc::new(Authorized {
                    workspace_id: inputs.workspace.id,
                    org_id: inputs.org.id,
                    mode: r.resolved_mode,
                    runtime: inputs.workspace.runtime.clone(),
                    allowed_models: Limits::allowed_models_with(
                        inputs.org.limits.allowed_models.as_deref(),
                        inputs.workspace.limits.allowed_models.as_deref(),
                    ),
                    org_limits: inputs.org.limits.clone(),
                    limits: inputs.workspace.limits.clone(),
                    markup: inputs.org.markup_percent,
                    suspended: suspension_in_force(inputs.org.suspended.as_ref(), inputs.workspace.suspended.as_ref())
                        .map(|refusal| refusal.message()),
                    rate,
                }))
            })
            .await;
        // An invalidation arrived while this was loaded or read: the value may predate it
        // (moka's predicates spare entries inserted after them). Serve it, as a request
        // concurrent with the change, but do not keep it for the next one.
        if inner.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            inner.cache.invalidate(hash.as_bytes()).await;
        }
        found.map_err(|e| match &*e {
            Lookup::Unknown => {
                ProxyError::new(StatusCode::UNAUTHORIZED, Kind::Authentication, "unknown or revoked workspace token")
            }
            Lookup::Store(e) => {
                tracing::error!(error = %e, "token lookup failed");
                ProxyError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Kind::Api,
                    "the proxy cannot reach its database; try again",
                )
            }
        })
    }
}

/// Why a token lookup found nothing to cache.
#[derive(Debug)]
enum Lookup {
    Unknown,
    Store(tollgate_store::StoreError),
}

/// The provider's own error kinds, so that agents' retry logic reads them.
#[derive(Clone, Copy, Debug)]
enum Kind {
    InvalidRequest,
    /// A body over [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// A path under the provider's prefix that the proxy does not serve.
    NoRoute,
    /// A served path asked with a method it does not take.
    BadMethod,
    Authentication,
    Permission,
    NotFound,
    Billing,
    /// A rate limit (section 14): 429 with `retry-after`.
    RateLimit,
    Api,
}

/// An error answered in the provider's shape (Anthropic or OpenAI, by route).
#[derive(Debug)]
struct ProxyError {
    status: StatusCode,
    kind: Kind,
    message: String,
    /// Seconds for a `retry-after` header.
    retry_after: Option<u64>,
}

impl ProxyError {
    fn new(status: StatusCode, kind: Kind, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), retry_after: None }
    }

    fn into_response(self, protocol: Protocol) -> Response {
        let body = match protocol {
            Protocol::Anthropic => {
                let kind = match self.kind {
                    Kind::InvalidRequest | Kind::BadMethod => "invalid_request_error",
                    Kind::TooLarge => "request_too_large",
                    Kind::NoRoute => "not_found_error",
                    Kind::Authentication => "authentication_error",
                    Kind::Permission => "permission_error",
                    Kind::NotFound => "not_found_error",
                    Kind::Billing => "billing_error",
                    Kind::RateLimit => "rate_limit_error",
                    Kind::Api => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": self.message}})
            }
            Protocol::Openai => {
                let (kind, code) = match self.kind {
                    Kind::InvalidRequest => ("invalid_request_error", Value::Null),
                    Kind::TooLarge => ("invalid_request_error", json!("request_too_large")),
                    Kind::NoRoute => ("invalid_request_error", json!("unknown_url")),
                    Kind::BadMethod => ("invalid_request_error", json!("method_not_allowed")),
                    Kind::Authentication => ("invalid_request_error", json!("invalid_api_key")),
                    Kind::Permission => ("permission_error", json!("permission_denied")),
                    Kind::NotFound => ("invalid_request_error", json!("model_not_found")),
                    Kind::Billing => ("billing_error", json!("insufficient_credit")),
                    Kind::RateLimit => ("rate_limit_exceeded", json!("rate_limit_exceeded")),
                    Kind::Api => ("server_error", Value::Null),
                };
                json!({"error": {"message": self.message, "type": kind, "param": null, "code": code}})
            }
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

async fn anthropic_messages(
    State(p): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.handle(Protocol::Anthropic, "/v1/messages", &uri, &headers, body).await
}

async fn anthropic_count_tokens(
    State(p): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.handle(Protocol::Anthropic, "/v1/messages/count_tokens", &uri, &headers, body).await
}

async fn openai_chat(
    State(p): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.handle(Protocol::Openai, "/v1/chat/completions", &uri, &headers, body).await
}

/// The Responses API's upstream path: it meters differently, and always streams its usage.
const RESPONSES_PATH: &str = "/v1/responses";

async fn openai_responses(
    State(p): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    p.handle(Protocol::Openai, RESPONSES_PATH, &uri, &headers, body).await
}

/// A body the proxy could not read: over [`MAX_REQUEST_BYTES`] (413), or cut off (400).
fn unreadable_body(rejection: &BytesRejection) -> ProxyError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ProxyError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Kind::TooLarge,
            format!("the request body is over the proxy's limit of {MAX_REQUEST_BYTES} bytes"),
        )
    } else {
        ProxyError::new(StatusCode::BAD_REQUEST, Kind::InvalidRequest, "the request body could not be read")
    }
}

/// A refusal before any handler ran, counted like every other refusal.
fn refused(e: ProxyError, protocol: Protocol) -> Response {
    metric_names::count_request(e.status.as_u16());
    e.into_response(protocol)
}

fn no_route(method: &axum::http::Method, uri: &Uri) -> ProxyError {
    ProxyError::new(StatusCode::NOT_FOUND, Kind::NoRoute, format!("no such route: {method} {}", uri.path()))
}

fn bad_method(method: &axum::http::Method, uri: &Uri) -> ProxyError {
    ProxyError::new(StatusCode::METHOD_NOT_ALLOWED, Kind::BadMethod, format!("{} does not accept {method}", uri.path()))
}

async fn anthropic_no_route(method: axum::http::Method, uri: Uri) -> Response {
    crate::observe::with_request_id(refused(no_route(&method, &uri), Protocol::Anthropic))
}

async fn openai_no_route(method: axum::http::Method, uri: Uri) -> Response {
    crate::observe::with_request_id(refused(no_route(&method, &uri), Protocol::Openai))
}

async fn anthropic_bad_method(method: axum::http::Method, uri: Uri) -> Response {
    crate::observe::with_request_id(refused(bad_method(&method, &uri), Protocol::Anthropic))
}

async fn openai_bad_method(method: axum::http::Method, uri: Uri) -> Response {
    crate::observe::with_request_id(refused(bad_method(&method, &uri), Protocol::Openai))
}

/// Claude Code's connectivity probe (`HEAD {base}/api/hello` at start, before any request):
/// 200 without credentials, as it reveals nothing and a 404 reads as an unreachable API.
async fn hello() -> Response {
    axum::Json(json!({"message": "hello"})).into_response()
}

async fn anthropic_models(State(p): State<Proxy>, headers: HeaderMap) -> Response {
    p.models(Protocol::Anthropic, &headers, None).await
}

async fn anthropic_model(State(p): State<Proxy>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    p.models(Protocol::Anthropic, &headers, Some(&id)).await
}

async fn openai_models(State(p): State<Proxy>, headers: HeaderMap) -> Response {
    p.models(Protocol::Openai, &headers, None).await
}

async fn openai_model(State(p): State<Proxy>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    p.models(Protocol::Openai, &headers, Some(&id)).await
}

/// The token a request presents to the proxy: `x-api-key` (Anthropic's convention), else
/// `Authorization: Bearer`.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    crate::credentials::api_key(headers).or_else(|| crate::credentials::bearer(headers))
}

/// Request headers passed upstream as they came; everything else (credentials, hop-by-hop
/// headers, the client's host, the customer's `openai-organization` and `openai-project`, to
/// which the platform key does not belong, and Codex's `x-codex-*` telemetry about the
/// customer's machine) is dropped. `openai-beta` opts in to API features; Codex's session id
/// (`session-id` since 0.169, `session_id` before) keeps a conversation on one prompt cache.
static PASS_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("openai-beta"),
    HeaderName::from_static("session-id"),
    HeaderName::from_static("session_id"),
    HeaderName::from_static("content-type"),
    HeaderName::from_static("accept"),
];
/// Response headers passed back to the client.
/// Not the upstream's `x-request-id`: that header carries the proxy's own (the ledger's) id.
static RETURN_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("content-type"),
    HeaderName::from_static("request-id"),
    HeaderName::from_static("retry-after"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
];

impl Proxy {
    /// Answers a model list (with `id`, one model) for a platform-managed workspace's token:
    /// the platform models served on `protocol`'s route that the workspace may use (section
    /// 14), in its provider's shape; an `id` not among them is 404.
    async fn models(&self, protocol: Protocol, headers: &HeaderMap, id: Option<&str>) -> Response {
        let who = match self.authenticate(headers).await {
            Ok(who) => who,
            Err(e) => return e.into_response(protocol),
        };
        let registry = &self.inner.registry;
        let mut served = models::served_models(registry, protocol);
        served.retain(|m| registry.model_access(&who.runtime, who.allowed_models.as_deref(), protocol, m).is_ok());
        let body = match id {
            None => models::list_body(protocol, &served),
            Some(id) if served.contains(&id) => models::model_body(protocol, id),
            Some(id) => return self.not_served(id, protocol).into_response(protocol),
        };
        axum::Json(body).into_response()
    }

    async fn handle(
        &self,
        protocol: Protocol,
        path: &'static str,
        uri: &Uri,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Response {
        let mut obs = Observed::begin(protocol, headers);
        let result = match body {
            Ok(body) => self.forward(protocol, path, uri, headers, body, &mut obs).await,
            Err(rejection) => Err(unreadable_body(&rejection)),
        };
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                obs.refused(e.status.as_u16());
                refused(e, protocol)
            }
        };
        obs.stamp(&mut response);
        response
    }

    /// One request's life in order: authenticate, admit the model, reserve credit, send it
    /// upstream, relay the answer. Every step that fails answers in the provider's shape; once
    /// credit is reserved it is settled exactly once (see [`SettleGuard`]).
    async fn forward(
        &self,
        protocol: Protocol,
        path: &'static str,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
        obs: &mut Observed,
    ) -> Result<Response, ProxyError> {
        let who = self.authenticate(headers).await?;
        obs.who(&who.workspace_id, &who.org_id, who.mode);
        let admitted = self.admit(&who, protocol, path, &body)?;
        obs.model(&admitted.model);
        let amount = if admitted.count_only {
            Micros::ZERO
        } else {
            worst_case(&admitted.price, &admitted.json, body.len(), protocol, who.markup)
        };
        let upstream_model = rewrite::requested_model(&admitted.json).unwrap_or_default();
        let meter = if path == RESPONSES_PATH { Meter::responses() } else { Meter::new(protocol) };
        let meter = meter.with_counter(meter::relayed::TokenCounter::for_model(protocol, upstream_model));
        let bounds = EstimateBounds {
            input_tokens: meter::relayed::estimate_input_tokens(body.len()),
            max_output_tokens: rewrite::output_token_bound(&admitted.json, protocol, DEFAULT_MAX_OUTPUT_TOKENS),
            hidden_reasoning: protocol == Protocol::Openai
                && meter::relayed::hides_reasoning(upstream_model, &admitted.json),
        };
        let worst_tokens = rewrite::estimate_input_tokens(body.len()).saturating_add(bounds.max_output_tokens);
        let permit = self.limit_rate(&who, worst_tokens).await?;
        let reserved =
            self.reserve(&who, meter, bounds, admitted.price.clone(), amount, obs).instrument(obs.span.clone()).await;
        let mut guard = match reserved {
            Ok(guard) => guard,
            Err(e) => {
                // Refused (budget or credit): not admitted, so not counted.
                if let Some(permit) = permit {
                    permit.cancel();
                }
                return Err(e);
            }
        };
        obs.handed_over = true;
        guard.rate = permit;
        let (upstream_response, upstream_latency) =
            self.send(protocol, path, uri, headers, &admitted, &mut guard).instrument(obs.span.clone()).await?;
        relay(upstream_response, guard, admitted.strip_usage, upstream_latency).await
    }

    /// Authentication: a workspace token is presented, is known, and its workspace resolves
    /// to platform-managed billing (the only mode the proxy serves).
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Authorized>, ProxyError> {
        let token = workspace_token(headers)?;
        let who = self.authorize(token).await?;
        if let Some(message) = &who.suspended {
            return Err(ProxyError::new(StatusCode::FORBIDDEN, Kind::Permission, message.clone()));
        }
        if who.mode != Some(BillingMode::PlatformManaged) {
            let now = who.mode.map_or("not resolvable", BillingMode::as_str);
            return Err(ProxyError::new(
                StatusCode::FORBIDDEN,
                Kind::Permission,
                format!(
                    "this workspace is {now}, not platform_managed: the proxy serves only platform-managed workspaces"
                ),
            ));
        }
        Ok(who)
    }

    /// Admits the request: a bounded JSON body naming a model the platform serves on this
    /// route, an upstream configured with its key; the body rewritten for that upstream.
    fn admit(
        &self,
        who: &Authorized,
        protocol: Protocol,
        path: &'static str,
        body: &Bytes,
    ) -> Result<Admitted<'_>, ProxyError> {
        let inner = &self.inner;
        if body.len() > MAX_REQUEST_BYTES {
            return Err(ProxyError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Kind::TooLarge,
                "the request body is too large",
            ));
        }
        let not_object =
            |_| ProxyError::new(StatusCode::BAD_REQUEST, Kind::InvalidRequest, "the request body is not a JSON object");
        let mut json: Value = rewrite::parse_request(body).map_err(not_object)?;
        // Before anything is read from it: a field of the wrong type would be metered one way
        // here and answered another way upstream.
        rewrite::check_field_types(&json)
            .map_err(|message| ProxyError::new(StatusCode::BAD_REQUEST, Kind::InvalidRequest, message))?;
        let model = rewrite::requested_model(&json).unwrap_or_default().to_owned();
        let allowed = who.allowed_models.as_deref();
        let (platform_model, upstream) = match inner.registry.model_access(&who.runtime, allowed, protocol, &model) {
            Ok(found) => found,
            Err(ModelRefusal::NotServed) => return Err(self.not_served(&model, protocol)),
            Err(refusal) => return Err(refused_model(&model, &who.runtime, &refusal)),
        };
        let Some(target) = inner.config.upstream(upstream.name()) else {
            return Err(ProxyError::new(StatusCode::BAD_GATEWAY, Kind::Api, "the platform upstream is not configured"));
        };
        if target.key.is_none() {
            tracing::error!(key_env = %target.key_env, "platform upstream key missing from the server's environment");
            return Err(ProxyError::new(
                StatusCode::BAD_GATEWAY,
                Kind::Api,
                format!("the server has no platform key for this upstream (set {})", target.key_env),
            ));
        }
        let streaming = rewrite::wants_stream(&json);
        rewrite::set_model(&mut json, platform_model.upstream_model()).map_err(not_object)?;
        // A Responses stream always carries its usage (in the terminal event).
        let strip_usage = protocol == Protocol::Openai
            && path != RESPONSES_PATH
            && streaming
            && rewrite::ensure_include_usage(&mut json);
        Ok(Admitted {
            json,
            model,
            price: platform_model.price().clone(),
            target,
            count_only: path.ends_with("count_tokens"),
            strip_usage,
        })
    }

    /// The 404 for a model the platform does not serve on `protocol`'s route, listing those
    /// it does.
    fn not_served(&self, model: &str, protocol: Protocol) -> ProxyError {
        let names = models::served_models(&self.inner.registry, protocol);
        ProxyError::new(
            StatusCode::NOT_FOUND,
            Kind::NotFound,
            format!(
                "model `{}` is not served by the platform on this route; served: {}",
                tollgate_policy::text::truncate(model, 80),
                names.join(", ")
            ),
        )
    }

    /// Counts the request against the workspace's and the org's rate limits (section 14), its
    /// tokens at their worst case (the reservation's input estimate plus the output limit);
    /// 429 with `retry-after` when one is reached.
    async fn limit_rate(&self, who: &Authorized, tokens: u64) -> Result<Option<RatePermit>, ProxyError> {
        let Some(handles) = who.rate.as_deref() else {
            return Ok(None);
        };
        match self.inner.rates.admit(handles, tokens, Timestamp::now().0).await {
            Ok(permit) => Ok(Some(permit)),
            Err(refusal) => Err(rate_refused(&refusal)),
        }
    }

    /// Reserves `amount` (the worst case) from the org's credit before anything is forwarded.
    /// A refusal is recorded in the ledger and answered 402; on success the returned guard
    /// settles the reservation exactly once, whatever happens next. The ledger row takes its
    /// id, session and model from `obs`.
    async fn reserve(
        &self,
        who: &Authorized,
        meter: Meter,
        bounds: EstimateBounds,
        price: Pricing,
        amount: Micros,
        obs: &Observed,
    ) -> Result<SettleGuard, ProxyError> {
        let credit = &self.inner.credit;
        let request_id = obs.request_id.clone();
        let model = obs.model.clone().unwrap_or_default();
        let created_at = Timestamp::now();
        let refusal_row = |request_id: RequestId, model: String| LedgerEntry {
            request_id,
            workspace_id: who.workspace_id.clone(),
            model,
            reserved: Micros::ZERO,
            settlement: Settlement {
                usage: Usage::default(),
                cost: Micros::ZERO,
                provider_cost: Micros::ZERO,
                http_status: Some(StatusCode::PAYMENT_REQUIRED.as_u16()),
                estimated: false,
            },
            rejected: true,
            created_at,
            session_id: obs.session.clone(),
        };
        let budget = match self.reserve_budget(who, amount).await {
            Ok(ticket) => ticket,
            Err(e) => {
                if e.status == StatusCode::PAYMENT_REQUIRED {
                    credit.record_refusal(&who.org_id, refusal_row(request_id, model));
                }
                return Err(e);
            }
        };
        match credit.reserve(&who.org_id, amount).await {
            Ok(hold) => Ok(SettleGuard {
                credit: credit.clone(),
                pending: Some(Pending { hold, request_id, workspace_id: who.workspace_id.clone(), model }),
                budget,
                obs: obs.clone(),
                created_at,
                price,
                markup: who.markup,
                meter,
                bounds,
                streamed: false,
                status: None,
                rate: None,
            }),
            Err(Refusal::Insufficient { available }) => {
                if let Some(ticket) = budget {
                    ticket.settle(Micros::ZERO);
                }
                credit.record_refusal(&who.org_id, refusal_row(request_id, model));
                Err(ProxyError::new(
                    StatusCode::PAYMENT_REQUIRED,
                    Kind::Billing,
                    format!(
                        "the org's credit ({available}) does not cover this request's worst case ({amount}); add credit or lower max_tokens"
                    ),
                ))
            }
            Err(Refusal::Store(e)) => {
                if let Some(ticket) = budget {
                    ticket.settle(Micros::ZERO);
                }
                tracing::error!(error = %e, "credit reservation failed");
                Err(ProxyError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Kind::Api,
                    "the proxy cannot reach its database; try again",
                ))
            }
            Err(Refusal::Backlog { rows, bytes }) => {
                if let Some(ticket) = budget {
                    ticket.settle(Micros::ZERO);
                }
                Err(backlog_refusal(rows, bytes))
            }
        }
    }

    /// Reserves `amount` under the hard budgets of the workspace and its org (section 14);
    /// none set: no IO. A budget that does not cover it is a 402 naming the budget, its period
    /// and when it resets.
    async fn reserve_budget(
        &self,
        who: &Authorized,
        amount: Micros,
    ) -> Result<Option<crate::budget::BudgetTicket>, ProxyError> {
        let reserved = self
            .inner
            .budgets
            .reserve(
                &self.inner.config.clock,
                (who.org_id.as_str(), &who.org_limits),
                (who.workspace_id.as_str(), &who.limits),
                amount,
            )
            .await;
        reserved.map_err(|denied| match denied {
            crate::budget::BudgetDenied::Refused(refusal) => {
                ProxyError::new(StatusCode::PAYMENT_REQUIRED, Kind::Billing, refusal.to_string())
            }
            crate::budget::BudgetDenied::Store(e) => {
                tracing::error!(error = %e, "budget reservation failed");
                ProxyError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Kind::Api,
                    "the proxy cannot reach its database; try again",
                )
            }
        })
    }

    /// Sends exactly what was priced (the re-serialised body, not the client's bytes) to the
    /// upstream with the platform key, and returns its response head and how long it took.
    /// An unreachable upstream settles `guard` as 502.
    async fn send(
        &self,
        protocol: Protocol,
        path: &'static str,
        uri: &Uri,
        headers: &HeaderMap,
        admitted: &Admitted<'_>,
        guard: &mut SettleGuard,
    ) -> Result<(axum::http::Response<UpstreamBody>, Duration), ProxyError> {
        let unreachable = |guard: &mut SettleGuard| {
            guard.finish(Some(StatusCode::BAD_GATEWAY.as_u16()));
            ProxyError::new(StatusCode::BAD_GATEWAY, Kind::Api, "the upstream provider could not be reached")
        };
        let Some(endpoint) = &admitted.target.endpoint else {
            tracing::warn!(upstream = %admitted.target.url, "the upstream's URL is not an http(s) URL the proxy can use");
            return Err(unreachable(guard));
        };
        let Some(auth) = &admitted.target.auth else {
            // A key with a character no header may carry: named by its variable, never shown.
            tracing::error!(key_env = %admitted.target.key_env, "the platform key is not a valid header value");
            return Err(unreachable(guard));
        };
        let body = rewrite::to_body(&admitted.json);
        let mut head = endpoint.post(path, uri.query(), body.len());
        let mut content_type = false;
        for name in &PASS_HEADERS {
            for v in headers.get_all(name) {
                content_type |= name == axum::http::header::CONTENT_TYPE;
                head.header(name, v);
            }
        }
        match protocol {
            Protocol::Anthropic => head.header(&X_API_KEY, &auth.x_api_key),
            Protocol::Openai => head.header(&axum::http::header::AUTHORIZATION, &auth.bearer),
        }
        if !content_type {
            head.header(&axum::http::header::CONTENT_TYPE, &HeaderValue::from_static("application/json"));
        }
        let head = head.finish();
        let sent = Instant::now();
        match tokio::time::timeout(upstream::READ_TIMEOUT, self.inner.client.send(endpoint, &head, &body)).await {
            Ok(Ok(r)) => Ok((r, sent.elapsed())),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream unreachable");
                Err(unreachable(guard))
            }
            Err(_) => {
                tracing::warn!(timeout_s = upstream::READ_TIMEOUT.as_secs(), "upstream sent no response head in time");
                Err(unreachable(guard))
            }
        }
    }
}

/// The header Anthropic's API takes its key in (the one a workspace may present its token in).
static X_API_KEY: HeaderName = HeaderName::from_static(crate::credentials::X_API_KEY);

/// The workspace token a request presents, refused (401) when absent, OAuth-shaped (a client
/// configured for subscription login) or not shaped like a workspace token.
fn workspace_token(headers: &HeaderMap) -> Result<&str, ProxyError> {
    let Some(token) = presented_token(headers) else {
        return Err(ProxyError::new(
            StatusCode::UNAUTHORIZED,
            Kind::Authentication,
            "no workspace token: send it in x-api-key or Authorization: Bearer",
        ));
    };
    if tollgate_policy::token::is_oauth_shaped(token) {
        return Err(ProxyError::new(
            StatusCode::UNAUTHORIZED,
            Kind::Authentication,
            "an OAuth token was sent to the Tollgate proxy: platform-managed workspaces must send their workspace token (tg_ws_...), not CLAUDE_CODE_OAUTH_TOKEN",
        ));
    }
    if !has_token_shape(token, WORKSPACE_TOKEN_PREFIX) {
        return Err(ProxyError::new(
            StatusCode::UNAUTHORIZED,
            Kind::Authentication,
            "not a workspace token: platform-managed workspaces send their workspace token (tg_ws_...)",
        ));
    }
    Ok(token)
}

/// An admitted request: the body rewritten for the upstream, and what pricing and sending
/// it need.
struct Admitted<'a> {
    /// The body as it will be forwarded (model replaced, usage requested).
    json: Value,
    /// The model the client asked for, as the ledger records it.
    model: String,
    price: Pricing,
    target: &'a UpstreamTarget,
    /// A token count: priced at zero.
    count_only: bool,
    /// The proxy asked for OpenAI's usage chunk on the client's behalf and removes it.
    strip_usage: bool,
}

/// Relays the upstream's answer with its status and allowed headers, and settles `guard`.
///
/// An event stream is relayed as it comes, metered on the way, and settled when it ends or
/// breaks ([`Metered`]). A whole (JSON) answer is read first, up to [`WHOLE_BODY_BYTES`],
/// metered and settled, then sent in one piece: one write with its head, with a
/// `content-length`, and no wake-up of the connection per chunk. One larger than that is
/// relayed as it comes, like a stream.
async fn relay(
    upstream_response: axum::http::Response<UpstreamBody>,
    mut guard: SettleGuard,
    strip_usage: bool,
    upstream_latency: Duration,
) -> Result<Response, ProxyError> {
    let status = upstream_response.status();
    guard.status = Some(status.as_u16());
    let mut response = Response::builder().status(status.as_u16());
    for name in &RETURN_HEADERS {
        // The client copied the values out of its read buffer: a clone holds no connection memory.
        if let Some(v) = upstream_response.headers().get(name) {
            response = response.header(name.clone(), v.clone());
        }
    }
    let sse = upstream_response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    guard.streamed = sse;
    let mut upstream_latency = upstream_latency;
    let body = if sse {
        responded(&mut guard, upstream_latency);
        Body::from_stream(Metered::new(upstream_response.into_body(), guard, true, strip_usage, None))
    } else {
        let reading = Instant::now();
        let whole = read_whole(upstream_response.into_body()).await;
        // The wait for the body is the upstream's time, not the proxy's.
        upstream_latency += reading.elapsed();
        responded(&mut guard, upstream_latency);
        match whole {
            Whole::Read(bytes) => {
                guard.meter.observe_body(&bytes);
                guard.finish(guard.status);
                Body::from(bytes)
            }
            Whole::TooLarge(head, rest) => Body::from_stream(Metered::new(rest, guard, false, false, Some(head))),
            Whole::Broken(error) => {
                // The provider bills an answer it broke off: charged (see `charge_body`), and
                // the client told so in its provider's error shape (and counted as a 502).
                tracing::warn!(error = %error, "the upstream broke off its answer");
                guard.finish(None);
                return Err(ProxyError::new(
                    StatusCode::BAD_GATEWAY,
                    Kind::Api,
                    "the upstream provider broke off its answer",
                ));
            }
        }
    };
    metric_names::count_request(status.as_u16());
    response
        .body(body)
        .map_err(|_| ProxyError::new(StatusCode::BAD_GATEWAY, Kind::Api, "the upstream's answer could not be relayed"))
}

/// Records what the proxy added to the request's time: everything but `upstream`, the wait
/// for the upstream's answer.
fn responded(guard: &mut SettleGuard, upstream: Duration) {
    let m = metric_names::handles();
    m.upstream_latency.record(upstream.as_secs_f64());
    guard.obs.responded(upstream);
    m.added_latency.record(guard.obs.added_latency.unwrap_or_default().as_secs_f64());
}

/// The most of a whole (non-stream) answer read before it is sent: LLM answers are far
/// smaller; a larger one is relayed as it comes.
const WHOLE_BODY_BYTES: usize = 1024 * 1024;

/// A whole answer as [`read_whole`] found it.
enum Whole {
    /// All of it.
    Read(Bytes),
    /// Its first [`WHOLE_BODY_BYTES`] or more, and the rest to relay.
    TooLarge(Bytes, UpstreamBody),
    /// The upstream broke it off, went silent for [`upstream::READ_TIMEOUT`], or sent more
    /// than it announced.
    Broken(std::io::Error),
}

/// Reads `body` to its end, or to [`WHOLE_BODY_BYTES`]. A body that comes in one frame (the
/// usual case) is kept as that frame, not copied.
async fn read_whole(mut body: UpstreamBody) -> Whole {
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let joined = |first: Option<Bytes>, more: Vec<u8>| match first {
        Some(f) if more.is_empty() => f,
        Some(f) => {
            let mut all = Vec::with_capacity(f.len() + more.len());
            all.extend_from_slice(&f);
            all.extend_from_slice(&more);
            Bytes::from(all)
        }
        None => Bytes::new(),
    };
    loop {
        let data = match tokio::time::timeout(upstream::READ_TIMEOUT, body.chunk()).await {
            Ok(Some(Ok(data))) => data,
            Ok(None) => return Whole::Read(joined(first, more)),
            Ok(Some(Err(e))) => return Whole::Broken(std::io::Error::other(e)),
            Err(_) => return Whole::Broken(std::io::ErrorKind::TimedOut.into()),
        };
        match &first {
            None => first = Some(data),
            Some(_) => more.extend_from_slice(&data),
        }
        let read = first.as_ref().map_or(0, Bytes::len) + more.len();
        if read >= WHOLE_BODY_BYTES {
            return Whole::TooLarge(joined(first, more), body);
        }
    }
}

/// The worst-case charge of a request with the org's `markup`: its input (estimated from the
/// body) at the dearest input-side rate and its output limit at the dearest output rate, over
/// every input-size tier that input can reach and every service tier
/// ([`Pricing::worst_case`]).
fn worst_case(price: &Pricing, json: &Value, body_len: usize, protocol: Protocol, markup: Markup) -> Micros {
    let input = rewrite::estimate_input_tokens(body_len);
    let output = rewrite::output_token_bound(json, protocol, DEFAULT_MAX_OUTPUT_TOKENS);
    price.worst_case(input, output, markup)
}

/// Settles one reservation exactly once: explicitly at the end of the response, or on drop
/// (a stream cut by the upstream or abandoned by the client) with the usage seen so far.
struct SettleGuard {
    credit: Credit,
    /// `None` once settled.
    pending: Option<Pending>,
    /// The request's budget hold, if a budget applies; settled with the credit.
    budget: Option<crate::budget::BudgetTicket>,
    /// The request's id, session, span and timings, for its log line and span.
    obs: Observed,
    created_at: Timestamp,
    price: Pricing,
    /// The org's price plan.
    markup: Markup,
    meter: Meter,
    /// What the estimate of a stream without its usage may charge.
    bounds: EstimateBounds,
    /// The response is an event stream (whose end must carry its usage).
    streamed: bool,
    status: Option<u16>,
    /// The request's rate-limit counts: its tokens corrected, its request slots freed.
    rate: Option<RatePermit>,
}

/// The reservation's own figures, which bound the estimate of a stream that ended without its
/// usage: the input estimated from the body, and the output limit.
#[derive(Clone, Copy, Debug)]
struct EstimateBounds {
    input_tokens: u64,
    max_output_tokens: u64,
    /// The answer may hold reasoning the stream never shows (an OpenAI reasoning model).
    hidden_reasoning: bool,
}

/// What settling consumes: the reservation and the ledger row's identity.
struct Pending {
    hold: Hold,
    request_id: RequestId,
    workspace_id: WorkspaceId,
    model: String,
}

/// The status recorded for a response the client abandoned (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

impl SettleGuard {
    /// Settles now with `status` (`None`: the stream broke). In memory: the ledger row is
    /// written by the credit bookkeeping, off the response's path.
    fn finish(&mut self, status: Option<u16>) {
        let Some(Pending { hold, request_id, workspace_id, model }) = self.pending.take() else {
            return;
        };
        let (usage, charge, estimated) = self.charge(hold.amount());
        if estimated {
            metric_names::handles().estimated.increment(1);
        }
        if let Some(permit) = self.rate.take() {
            let used =
                usage.input_tokens.saturating_add(usage.cache_write_tokens).saturating_add(usage.cache_read_tokens);
            permit.settle(used.saturating_add(usage.output_tokens));
        }
        if let Some(ticket) = self.budget.take() {
            ticket.settle(charge.cost);
        }
        let settlement =
            Settlement { usage, cost: charge.cost, provider_cost: charge.provider, http_status: status, estimated };
        self.obs.finish(status, &usage, charge.cost, estimated);
        let m = metric_names::handles();
        m.cost.increment(u64::try_from(settlement.cost.get()).unwrap_or(0));
        let [input, output, cache_write, cache_read] = &m.tokens;
        input.increment(usage.input_tokens);
        output.increment(usage.output_tokens);
        cache_write.increment(usage.cache_write_tokens);
        cache_read.increment(usage.cache_read_tokens);
        let entry = LedgerEntry {
            request_id,
            workspace_id,
            model,
            reserved: hold.amount(),
            settlement,
            rejected: false,
            created_at: self.created_at,
            session_id: self.obs.session.clone(),
        };
        self.credit.settle(hold, entry);
    }
}

impl SettleGuard {
    /// The usage and cost to charge, and whether they were estimated: a stream that ended
    /// without its usage (cut, abandoned, or finished without reporting output for content it
    /// relayed) is charged `max(usage seen, estimate of what was relayed)`, never more than
    /// `reserved` (DESIGN.md section 13).
    fn charge(&self, reserved: Micros) -> (Usage, Charge, bool) {
        let seen = self.meter.usage();
        if !self.streamed {
            return self.charge_body(seen, reserved);
        }
        let relayed = self.meter.relayed_chars();
        let relayed_tokens = self.meter.relayed_tokens();
        // Completed is not enough: an Anthropic stream that ends (`message_stop`) without its
        // `message_delta` shows only the 1 output token of `message_start`.
        let unreported = !self.meter.usage_reported() || (seen.output_tokens == 0 && relayed > 0);
        if self.meter.completed() && !unreported {
            return (seen, self.price.charge(&seen, self.markup), false);
        }
        let EstimateBounds { input_tokens, max_output_tokens, hidden_reasoning } = self.bounds;
        let usage = if hidden_reasoning {
            meter::relayed::estimated_usage_hiding_reasoning(seen, relayed_tokens, input_tokens, max_output_tokens)
        } else {
            meter::relayed::estimated_usage(seen, relayed_tokens, input_tokens, max_output_tokens)
        };
        (usage, meter::relayed::estimated_charge(&self.price, &usage, self.markup, reserved), true)
    }
}

impl SettleGuard {
    /// The charge of a whole (non-stream) body: its usage once it arrived whole; after a
    /// success status, a body that never did (the client left, the upstream broke it, or it was
    /// too large to keep) is charged the worst case it was admitted for, since the provider
    /// bills the whole answer; an error answer, or a free call, is charged what it reported.
    fn charge_body(&self, seen: Usage, reserved: Micros) -> (Usage, Charge, bool) {
        let success = self.status.is_some_and(|s| (200..300).contains(&s));
        // Nothing reserved: a free call (count_tokens), which reports no usage.
        if self.meter.completed() || !success || reserved == Micros::ZERO {
            return (seen, self.price.charge(&seen, self.markup), false);
        }
        let usage = Usage {
            input_tokens: seen.input_tokens.max(self.bounds.input_tokens),
            output_tokens: seen.output_tokens.max(self.bounds.max_output_tokens),
            ..seen
        };
        (usage, meter::relayed::estimated_charge(&self.price, &usage, self.markup, reserved), true)
    }
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // Dropped before the end. After the stream's terminal event (its usage seen), the
            // client had the whole answer and may close without waiting for the body's end
            // (Codex does): the answer's status. Before it: the client went away mid-response.
            let status = if self.streamed && self.meter.completed() { self.status } else { Some(CLIENT_CLOSED) };
            self.finish(status);
        }
    }
}

/// The upstream's body, relayed chunk by chunk while the meter reads it.
struct Metered {
    /// Relayed before `inner`: what [`read_whole`] read of an answer too large to hold.
    head: Option<Bytes>,
    inner: UpstreamBody,
    /// The read timeout ([`upstream::READ_TIMEOUT`]): armed when the upstream first makes the
    /// relay wait, re-armed after a wait that ended with bytes.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes arrived since the timeout was last armed.
    progressed: bool,
    sse: bool,
    /// A non-streaming body, kept (bounded) for the meter; never delays the relay.
    body: Vec<u8>,
    stripper: Option<UsageChunkStripper>,
    guard: Option<SettleGuard>,
}

impl Metered {
    /// Relays `inner` after `head` (a part already read), metering it as an event stream
    /// (`sse`) or as a whole body; strips OpenAI's usage chunk when `strip_usage` (streams only).
    fn new(inner: UpstreamBody, guard: SettleGuard, sse: bool, strip_usage: bool, head: Option<Bytes>) -> Self {
        Self {
            head,
            inner,
            idle: None,
            progressed: false,
            sse,
            body: Vec::new(),
            stripper: (strip_usage && sse).then(UsageChunkStripper::new),
            guard: Some(guard),
        }
    }
}

/// The most of a non-streaming body kept for metering.
const MAX_METERED_BODY: usize = 16 * 1024 * 1024;

impl Stream for Metered {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let chunk = if let Some(head) = this.head.take() {
                head
            } else {
                match this.inner.poll_chunk(cx) {
                    Poll::Pending => {
                        if this.waited_too_long(cx) {
                            // The upstream went silent: settle with what was seen, as for a break.
                            if let Some(mut guard) = this.guard.take() {
                                guard.finish(None);
                            }
                            tracing::warn!(timeout_s = upstream::READ_TIMEOUT.as_secs(), "upstream stream went silent");
                            return Poll::Ready(Some(Err(std::io::ErrorKind::TimedOut.into())));
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok(chunk))) => chunk,
                    Poll::Ready(Some(Err(e))) => {
                        // The upstream broke the stream: settle with what was seen.
                        if let Some(mut guard) = this.guard.take() {
                            guard.finish(None);
                        }
                        return Poll::Ready(Some(Err(std::io::Error::other(e))));
                    }
                    Poll::Ready(None) => {
                        if let Some(mut guard) = this.guard.take() {
                            if !this.sse {
                                guard.meter.observe_body(&this.body);
                            }
                            // A stream that ended without its terminating event was cut.
                            let status = if this.sse && !guard.meter.completed() { None } else { guard.status };
                            guard.finish(status);
                        }
                        if let Some(rest) =
                            this.stripper.as_mut().map(UsageChunkStripper::finish).filter(|b| !b.is_empty())
                        {
                            return Poll::Ready(Some(Ok(rest)));
                        }
                        return Poll::Ready(None);
                    }
                }
            };
            this.progressed = true;
            if let Some(guard) = this.guard.as_mut() {
                if this.sse {
                    guard.meter.observe_chunk(&chunk);
                } else if this.body.len() + chunk.len() <= MAX_METERED_BODY {
                    this.body.extend_from_slice(&chunk);
                }
            }
            let out = match this.stripper.as_mut() {
                Some(s) => s.push(chunk),
                None => chunk,
            };
            if out.is_empty() {
                continue;
            }
            return Poll::Ready(Some(Ok(out)));
        }
    }
}

impl Metered {
    /// Called when the upstream makes the relay wait: whether it has now been silent for
    /// [`upstream::READ_TIMEOUT`]. The timer is made on the first wait only (a short answer
    /// that arrives with its head never needs one) and re-armed after a wait that ended with
    /// bytes.
    fn waited_too_long(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(upstream::READ_TIMEOUT)));
        if std::mem::take(&mut self.progressed) {
            idle.as_mut().reset(tokio::time::Instant::now() + upstream::READ_TIMEOUT);
        }
        idle.as_mut().poll(cx).is_ready()
    }
}

/// The 403 for a model the workspace may not use (section 14), naming the model and why.
fn refused_model(model: &str, runtime: &str, refusal: &ModelRefusal) -> ProxyError {
    let model = tollgate_policy::text::truncate(model, 80);
    let why = match refusal {
        ModelRefusal::WrongProtocol { runtime: Some(p) } => {
            format!(
                "a `{runtime}` workspace may use only the platform models of the {} protocol, on its route",
                p.as_str()
            )
        }
        ModelRefusal::WrongProtocol { runtime: None } => format!("the workspace's runtime `{runtime}` is not known"),
        ModelRefusal::NotAllowed | ModelRefusal::NotServed => {
            "it is not in the allowed_models of the workspace or its org".to_owned()
        }
    };
    ProxyError::new(
        StatusCode::FORBIDDEN,
        Kind::Permission,
        format!("model `{model}` is not allowed for this workspace: {why}"),
    )
}

/// The answer to a request refused because the ledger backlog is full (the database has been
/// unreachable for a while): 503 in the provider's shape, retryable.
fn backlog_refusal(rows: usize, bytes: usize) -> ProxyError {
    tracing::error!(rows, bytes, "ledger backlog full: refusing requests until the database is back");
    ProxyError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Kind::Api,
        "the proxy cannot record usage right now (its ledger backlog is full); try again later",
    )
}

impl Proxy {
    /// The platform upstreams (registry names) this proxy holds a key for; the audit's
    /// `PLATFORM_KEY_MISSING` reports platform-managed workspaces whose upstream is not among them.
    pub fn keyed_upstreams(&self) -> std::collections::BTreeSet<String> {
        self.inner.config.upstreams().filter(|(_, t)| t.key.is_some()).map(|(name, _)| name.to_owned()).collect()
    }
}

/// The 429 of a rate limit (section 14), naming the limit and when to come back.
fn rate_refused(refusal: &RateRefusal) -> ProxyError {
    match refusal {
        RateRefusal::Limited { scope, kind, limit, need, retry_after } => {
            let field = kind.field();
            let message = match retry_after {
                Some(secs) => format!("the {scope}'s {field} limit of {limit} is reached; retry after {secs} s"),
                None => format!(
                    "this request needs {need} of the {scope}'s {field} limit of {limit}, more than the limit allows in a minute; lower max_tokens"
                ),
            };
            let mut e = ProxyError::new(StatusCode::TOO_MANY_REQUESTS, Kind::RateLimit, message);
            e.retry_after = Some(retry_after.unwrap_or(60));
            e
        }
        RateRefusal::Store(e) => {
            tracing::error!(error = %e, "rate limit check failed");
            ProxyError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Kind::Api,
                "the proxy cannot reach its database; try again",
            )
        }
    }
}
