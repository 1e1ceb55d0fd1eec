//! The metering proxy's test harness: the proxy's routes on 127.0.0.1:0 over a real store,
//! forwarding to the stand-in upstream, with a test registry whose models select the
//! stand-in's fault modes.
#![expect(clippy::unwrap_used, reason = "test support: a failed step is a failed test")]

use std::sync::Arc;
use std::time::Duration;

use tollgate_policy::resolve::{PublicUrl, WorkspaceKind};
use tollgate_policy::{Micros, OrgId, Registry, WorkspaceId, WorkspaceToken};
use tollgate_proxy::{Proxy, ProxyConfig};
use tollgate_store::{
    Invalidation, MasterKey, NewOrg, NewWorkspace, ProvisionRecord, Store, TokenHash, UsageGroup, UsageQuery,
};
use tollgate_upstream::Upstream;

/// Platform models whose upstream names select the stand-in's fault modes. Prices are round:
/// input 1, output 2 micro-USD per token (1 and 2 USD per million), cache 3 and 0.5.
pub const REGISTRY: &str = r#"
runtimes:
  claude-code: {protocol: anthropic, base_url_env: ANTHROPIC_BASE_URL, token_env: ANTHROPIC_AUTH_TOKEN, model_env: ANTHROPIC_MODEL}
  codex: {protocol: openai, base_url_env: OPENAI_BASE_URL, token_env: OPENAI_API_KEY}
providers:
  - id: platform
    platform: true
    runtimes: [claude-code, codex]
    model_prefixes: ["platform/"]
    models:
      - {id: platform/ok, upstream: anthropic, upstream_model: stub-sonnet, price: {input: 1, output: 2, cache_write: 3, cache_read: 0.5}}
      - {id: platform/cut, upstream: anthropic, upstream_model: stub-sonnet-cut, price: {input: 1, output: 2}}
      - {id: platform/slow, upstream: anthropic, upstream_model: stub-sonnet-slow, price: {input: 1, output: 2}}
      - {id: platform/overloaded, upstream: anthropic, upstream_model: stub-sonnet-overloaded, price: {input: 1, output: 2}}
      - {id: platform/nousage, upstream: anthropic, upstream_model: stub-sonnet-nousage, price: {input: 1, output: 2}}
      - {id: platform/nofinal, upstream: anthropic, upstream_model: stub-sonnet-nofinal, price: {input: 1, output: 2}}
      - {id: platform/streams, upstream: anthropic, upstream_model: stub-sonnet-streams, price: {input: 1, output: 2}}
      - {id: platform/gpt, upstream: openai, upstream_model: stub-gpt, price: {input: 1, output: 2, cache_read: 0.5}}
      - {id: platform/gpt-cut, upstream: openai, upstream_model: stub-gpt-cut, price: {input: 1, output: 2}}
      - {id: platform/gpt-slow, upstream: openai, upstream_model: stub-gpt-slow, price: {input: 1, output: 2}}
      - {id: platform/gpt-failed, upstream: openai, upstream_model: stub-gpt-failed, price: {input: 1, output: 2, cache_read: 0.5}}
      - {id: platform/gpt-nousage, upstream: openai, upstream_model: stub-gpt-nousage, price: {input: 1, output: 2}}
      - {id: platform/o3-nousage, upstream: openai, upstream_model: o3-nousage, price: {input: 1, output: 2}}
      - {id: platform/gpt4o-nousage, upstream: openai, upstream_model: gpt-4o-nousage, price: {input: 1, output: 2}}
      - {id: platform/gpt-streams, upstream: openai, upstream_model: stub-gpt-streams, price: {input: 1, output: 2}}
    upstreams:
      anthropic: {url: "https://api.anthropic.invalid", key_env: TOLLGATE_UPSTREAM_ANTHROPIC_KEY}
      openai: {url: "https://api.openai.invalid", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}
  - id: minimax
    runtimes: [claude-code]
    auth_env: [MINIMAX_API_KEY]
    model_prefixes: ["MiniMax-"]
"#;

/// The platform's Anthropic key the proxy is configured with (the stand-in checks it).
pub const ANTHROPIC_KEY: &str = "sk-platform-anthropic-key-for-tests";
/// The platform's OpenAI key the proxy is configured with.
pub const OPENAI_KEY: &str = "sk-platform-openai-key-for-tests";

/// One proxy in front of the stand-in upstream, with an org and its workspaces.
#[expect(missing_debug_implementations, reason = "a test fixture")]
pub struct App {
    /// The stand-in upstream the proxy forwards to.
    pub upstream: Upstream,
    /// The store the proxy authorises and charges against.
    pub store: Arc<dyn Store>,
    /// The proxy under test.
    pub proxy: Proxy,
    /// The proxy's base URL, `http://127.0.0.1:<port>`.
    pub base: String,
    /// The client tests send requests with.
    pub http: reqwest::Client,
    /// The org whose credit pays for the requests.
    pub org: OrgId,
    _dir: Option<std::path::PathBuf>,
}

/// A fixed master key (test data only).
pub fn key() -> MasterKey {
    MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

/// The test registry: platform models served over both protocols, and a BYOK provider.
pub fn registry() -> Arc<Registry> {
    Arc::new(Registry::parse("test-providers.yaml", REGISTRY).unwrap())
}

/// Starts the proxy's routes on 127.0.0.1:0 over `store`, forwarding to `upstream_url`.
pub async fn start_proxy(store: Arc<dyn Store>, upstream_url: &str) -> (Proxy, String) {
    start_proxy_on(store, upstream_url, registry(), tollgate_proxy::Clock::default()).await
}

/// [`start_proxy`] with another registry (its upstreams named `anthropic` and `openai`).
pub async fn start_proxy_with(store: Arc<dyn Store>, upstream_url: &str, registry: Arc<Registry>) -> (Proxy, String) {
    start_proxy_on(store, upstream_url, registry, tollgate_proxy::Clock::default()).await
}

/// [`start_proxy`] with `clock` deciding the budget periods (to cross a day or a month).
pub async fn start_proxy_clocked(
    store: Arc<dyn Store>,
    upstream_url: &str,
    clock: tollgate_proxy::Clock,
) -> (Proxy, String) {
    start_proxy_on(store, upstream_url, registry(), clock).await
}

/// [`start_proxy`] with both a registry and a clock.
async fn start_proxy_on(
    store: Arc<dyn Store>,
    upstream_url: &str,
    registry: Arc<Registry>,
    clock: tollgate_proxy::Clock,
) -> (Proxy, String) {
    let url = upstream_url.to_owned();
    let mut config = ProxyConfig::from_env(&registry, |name| match name {
        "TOLLGATE_UPSTREAM_ANTHROPIC_URL" | "TOLLGATE_UPSTREAM_OPENAI_URL" => Some(url.clone()),
        "TOLLGATE_UPSTREAM_ANTHROPIC_KEY" => Some(ANTHROPIC_KEY.to_owned()),
        "TOLLGATE_UPSTREAM_OPENAI_KEY" => Some(OPENAI_KEY.to_owned()),
        _ => None,
    });
    config.clock = clock;
    let proxy = Proxy::new(store, registry, PublicUrl::parse("http://tollgate.test").unwrap(), config).unwrap();
    let follower = proxy.clone();
    tokio::spawn(async move { follower.follow_invalidations().await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = proxy.routes();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (proxy, base)
}

/// The admin token of servers started by [`start_server`] (test data only).
pub const ADMIN_TOKEN: &str = "tollgate-admin-token-for-proxy-tests-0123456789";

/// Starts what `tollgate serve` runs, on 127.0.0.1:0 over `store`: the admin API and the
/// proxy's routes on one router, the proxy following the store's invalidations, admin token
/// [`ADMIN_TOKEN`]. Returns the proxy and the base URL.
pub async fn start_server(store: Arc<dyn Store>, upstream_url: &str) -> (Proxy, String) {
    let printed = tollgate_server::bootstrap_admin_token(&*store, Some(ADMIN_TOKEN)).await.unwrap();
    assert!(printed.is_none(), "a configured token is not printed");
    let (proxy, _) = start_proxy(store.clone(), upstream_url).await;
    let state = tollgate_server::AppState::new(store, registry(), PublicUrl::parse("http://tollgate.test").unwrap())
        .with_proxy(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tollgate_server::serve(listener, state, std::future::pending()));
    (proxy, base)
}

impl App {
    /// A fresh SQLite store with an org holding `credit` micro-USD.
    pub async fn new(credit: i64) -> App {
        let dir = std::env::temp_dir().join(format!("tollgate-proxy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = tollgate_store::connect(&format!("sqlite://{}", dir.join("t.db").display()), key()).await.unwrap();
        Self::on(store, credit, Some(dir)).await
    }

    /// A proxy over `store` (already open), with a new org holding `credit` micro-USD;
    /// `dir` is removed with the app.
    pub async fn on(store: Arc<dyn Store>, credit: i64, dir: Option<std::path::PathBuf>) -> App {
        Self::on_with(store, credit, dir, registry()).await
    }

    /// A fresh SQLite store with an org holding `credit` micro-USD, the proxy charging with
    /// `registry`'s prices.
    pub async fn with_registry(credit: i64, registry: Arc<Registry>) -> App {
        let dir = std::env::temp_dir().join(format!("tollgate-proxy-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = tollgate_store::connect(&format!("sqlite://{}", dir.join("t.db").display()), key()).await.unwrap();
        Self::on_with(store, credit, Some(dir), registry).await
    }

    async fn on_with(
        store: Arc<dyn Store>,
        credit: i64,
        dir: Option<std::path::PathBuf>,
        registry: Arc<Registry>,
    ) -> App {
        let upstream = Upstream::start().await.unwrap();
        let (proxy, base) = start_proxy_with(store.clone(), &upstream.url(), registry).await;
        let org = store
            .create_org(&NewOrg {
                name: format!("org-{}", uuid::Uuid::new_v4().simple()),
                default_billing_mode: None,
                credit_micros: Micros::new(credit),
                ..NewOrg::default()
            })
            .await
            .unwrap()
            .id;
        App { upstream, store, proxy, base, http: reqwest::Client::new(), org, _dir: dir }
    }

    /// A workspace with `model`, provisioned: returns (workspace id, token).
    pub async fn workspace(&self, runtime: &str, model: &str) -> (WorkspaceId, String) {
        let ws = self
            .store
            .create_workspace(&NewWorkspace {
                org_id: self.org.clone(),
                name: format!("ws-{}", uuid::Uuid::new_v4().simple()),
                runtime: runtime.to_owned(),
                model: Some(model.to_owned()),
                billing_mode: None,
                kind: WorkspaceKind::Agent,
                limits: tollgate_policy::Limits::default(),
                alarms: None,
            })
            .await
            .unwrap();
        let token = self.provision(&ws.id).await;
        (ws.id, token)
    }

    /// Mints and stores a new token for `ws` (revoking the old one), as provisioning does.
    pub async fn provision(&self, ws: &WorkspaceId) -> String {
        let token = WorkspaceToken::mint(|b| getrandom::fill(b).unwrap());
        let record = ProvisionRecord {
            request_model: None,
            model_after: None,
            resolution_json: "{}".into(),
            token_hash: TokenHash::of(token.expose()),
            fingerprint: None,
        };
        let current = self.store.get_workspace(ws).await.unwrap();
        self.store.record_provision(ws, &ProvisionRecord { model_after: current.model, ..record }).await.unwrap();
        self.store.publish_invalidation(&Invalidation::Workspace(ws.clone())).await.unwrap();
        token.expose().to_owned()
    }

    /// The org's balance now, micro-USD (leased credit included).
    pub async fn credit(&self) -> i64 {
        self.store.get_org(&self.org).await.unwrap().credit_micros.get()
    }

    /// The org's usage totals over all models.
    pub async fn usage(&self) -> tollgate_store::UsageRow {
        let rows = self
            .store
            .usage(&UsageQuery {
                org_id: Some(self.org.clone()),
                group_by: UsageGroup::Workspace,
                ..UsageQuery::default()
            })
            .await
            .unwrap();
        let mut total = tollgate_store::UsageRow::default();
        for r in rows {
            total.requests += r.requests;
            total.errors += r.errors;
            total.input_tokens += r.input_tokens;
            total.output_tokens += r.output_tokens;
            total.cache_write_tokens += r.cache_write_tokens;
            total.cache_write_1h_tokens += r.cache_write_1h_tokens;
            total.cache_read_tokens += r.cache_read_tokens;
            total.provider_cost_micros += r.provider_cost_micros;
            total.cost_micros += r.cost_micros;
            total.estimated_requests += r.estimated_requests;
        }
        total
    }

    /// Waits until every request's ledger row is written (the credit bookkeeping writes them
    /// after the response).
    pub async fn settled(&self, requests: i64) -> tollgate_store::UsageRow {
        for _ in 0..200 {
            let u = self.usage().await;
            if u.requests == requests {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("requests not settled: {:?}", self.usage().await);
    }

    /// A POST of `body` to the proxy's `path`, with `token` in `x-api-key`.
    pub fn post(&self, path: &str, token: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", token)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    }
}

/// An Anthropic Messages request body.
pub fn messages(model: &str, stream: bool, max_tokens: u64) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello to the metering proxy, in a few words please."}]
    })
}

/// An OpenAI Chat Completions request body; `include_usage` sets `stream_options` if given.
pub fn chat(model: &str, stream: bool, include_usage: Option<bool>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "model": model,
        "stream": stream,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hello to the metering proxy, in a few words please."}]
    });
    if let Some(u) = include_usage {
        v["stream_options"] = serde_json::json!({"include_usage": u});
    }
    v
}
