//! A small, fast stand-in for the Anthropic and OpenAI APIs.
//!
//! The metering proxy forwards platform-billed traffic to an upstream provider. Its tests and its
//! benchmark point it at this server instead of the real APIs: it speaks the providers' wire
//! formats faithfully enough for the real Anthropic and OpenAI SDKs and the Claude Code CLI,
//! answers deterministically, records what it received, and fails on request.
//!
//! Use [`Upstream::start`] in tests (it binds `127.0.0.1:0` and shuts down when dropped), or the
//! `tollgate-upstream` binary (`--listen ADDR`, default `127.0.0.1:0`; `--no-record`), which
//! prints `listening on http://ADDR` on stdout once it accepts connections.
//!
//! # Routes
//!
//! | route | protocol |
//! | --- | --- |
//! | `POST /v1/messages` (any query string, e.g. `?beta=true`) | Anthropic Messages, streaming or not |
//! | `POST /v1/messages/count_tokens` | Anthropic token counting: `{"input_tokens": N}` |
//! | `POST /v1/chat/completions` | OpenAI Chat Completions, streaming or not |
//! | `POST /v1/responses` | OpenAI Responses, streaming or not |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the model list, or one model, in Anthropic's shape when the request carries `anthropic-version` or `x-api-key`, else OpenAI's |
//!
//! Every other path answers 404 (in OpenAI's error shape under `/v1/chat/`, `/v1/responses/`,
//! `/v1/completions` and `/v1/embeddings`, in Anthropic's elsewhere), and every other method on
//! these routes 405, in the route's provider's shape.
//!
//! The model lists are fixed: [`ANTHROPIC_MODELS`] as `{"data": [{"type": "model", "id",
//! "display_name", "created_at"}], "has_more": false, "first_id", "last_id"}`, [`OPENAI_MODELS`]
//! as `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`. Any
//! `{id}` is a model (every model is served).
//! Requests may carry any extra field (tools, metadata, thinking, temperature, ...): they are
//! ignored. Missing required fields (`model` and `messages`, or `input` on `/v1/responses`; also
//! `max_tokens` on `/v1/messages`), a `max_tokens` (or `max_output_tokens`) of 0 and bodies that are not JSON answer 400
//! `invalid_request_error`. Bodies up to 32 MiB are accepted.
//!
//! Responses carry `content-type: application/json` or `text/event-stream; charset=utf-8`, and a
//! fresh `request-id` (Anthropic routes) or `x-request-id` (OpenAI) header.
//!
//! # Authentication
//!
//! Credentials are recorded, not checked, except that a request with neither an `x-api-key` nor
//! an `Authorization` header (or only empty ones) gets 401 in the provider's shape: Anthropic
//! `{"type":"error","error":{"type":"authentication_error","message":...}}`, OpenAI
//! `{"error":{"message":...,"type":"invalid_request_error","param":null,"code":null}}`.
//!
//! # Token counts
//!
//! Counts are deterministic functions of the request. Let the *text* of a value be the UTF-8
//! bytes of: the value itself if it is a string; the text of each element of an array; and for
//! an object, the text of its `text` and `content` fields (other fields, such as `type`, `role`,
//! a tool's `input` or an image's `source`, count nothing). An object with a non-null
//! `cache_control` field has all of its text *cached*. `tokens(b) = b / 4` (integer division).
//!
//! Anthropic (`/v1/messages`), with `S` the text of `system` and `M` the text of `messages`
//! (`tools` count nothing):
//!
//! - `cache_read_input_tokens = tokens(cached bytes of S)`: a stateless stand-in for Claude
//!   Code's pattern, where the system prompt is a cache hit ...
//! - `cache_creation_input_tokens = tokens(cached bytes of M)`: ... and the newest turn, marked
//!   with `cache_control`, is written to the cache;
//! - `input_tokens = max(1, tokens(bytes of S + bytes of M - cached bytes of S and M))`, the
//!   uncached rest, as the real API reports it;
//! - `output_tokens = min(max_tokens, REPLY_WORDS)`, where [`REPLY_WORDS`] is 10.
//!
//! The cache writes are split by TTL in `cache_creation`: `ephemeral_1h_input_tokens =
//! tokens(bytes of M under a cache_control with "ttl": "1h")`, `ephemeral_5m_input_tokens =
//! tokens(the other cached bytes of M)`, and `cache_creation_input_tokens` is their sum. The
//! usage of `message_delta` is cumulative and complete (the input side and the split too).
//!
//! OpenAI responses (chat and Responses, every chunk of a stream) report the `service_tier` the
//! request asked for when it is `priority` or `flex`, else `default`.
//!
//! `/v1/messages/count_tokens` answers `input_tokens = max(1, tokens(bytes of S + bytes of M))`,
//! cached or not.
//!
//! OpenAI, with `M` the text of `messages`: `prompt_tokens = max(1, tokens(bytes of M))`,
//! `prompt_tokens_details.cached_tokens = 0`, `completion_tokens = min(max_completion_tokens or
//! else max_tokens or else REPLY_WORDS, REPLY_WORDS)` and `total_tokens` their sum.
//!
//! OpenAI Responses (`/v1/responses`), with `I` the text of `instructions` and `N` the text of
//! `input` (a string, or the text of each item as above): `input_tokens = max(1, tokens(bytes
//! of I + bytes of N))`, of which `input_tokens_details.cached_tokens = tokens(bytes of I +
//! bytes of the items of N whose role is developer or system)` (a system prompt, resent every
//! turn, in `instructions` or, as Codex sends it, as developer messages: a stateless stand-in
//! for a prompt-cache hit). A request whose
//! `reasoning.effort` is set and is neither `none` nor `minimal` first spends
//! `output_tokens_details.reasoning_tokens = min(REASONING_TOKENS, max_output_tokens)`
//! ([`REASONING_TOKENS`] is 5), else 0; the reply then has `min(REPLY_WORDS, max_output_tokens -
//! reasoning_tokens)` words, and `output_tokens` is the reasoning tokens plus the words. A reply
//! cut short by `max_output_tokens` has status `incomplete` with `incomplete_details.reason
//! "max_output_tokens"`, otherwise `completed`. `total_tokens` is input plus output.
//!
//! The reply text is the first `output_tokens` words of [`REPLY`] ("Hello from the stand-in
//! upstream." twice), one word per token. When the reply is cut short by the token limit the
//! stop reason is `max_tokens` (OpenAI: finish reason `length`), otherwise `end_turn` (`stop`).
//!
//! # Streaming
//!
//! Anthropic (`"stream": true`): `message_start` (its usage as above, with `output_tokens: 1`),
//! `content_block_start`, `ping`, one `content_block_delta` (`text_delta`) per word,
//! `content_block_stop`, `message_delta` (stop reason and the cumulative `output_tokens`) and
//! `message_stop`, each as `event: NAME\ndata: JSON\n\n`.
//!
//! OpenAI (`"stream": true`): `data: JSON\n\n` chunks of `chat.completion.chunk`: one with the
//! role, one per word, one with the finish reason and an empty delta; then, only when the request
//! has `"stream_options": {"include_usage": true}`, a chunk with `"choices": []` and the usage
//! (and every earlier chunk carries `"usage": null`, as the real API does); then `data: [DONE]`.
//!
//! OpenAI Responses (`"stream": true`): events named as their `type`, each with its
//! `sequence_number` from 0: `response.created` and `response.in_progress` (the response,
//! `in_progress`, `usage: null`); for reasoning, `response.output_item.added` and
//! `response.output_item.done` of a `reasoning` item; `response.output_item.added` (a
//! `message`), `response.content_part.added`, one `response.output_text.delta` per word,
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`; then
//! the terminal event, `response.completed` or `response.incomplete`, whose `response` is the
//! non-streaming body (with `usage`). There is no `[DONE]`.
//!
//! Each event or chunk is its own body frame, and the server yields between frames so that each
//! is flushed by itself. There is no sleep on the normal path.
//!
//! # Fault modes
//!
//! A fault is chosen by the suffix of the request's `model`, so that it survives any proxy that
//! forwards the model (or maps an alias to such a model):
//!
//! | model ends with | Anthropic routes | OpenAI route |
//! | --- | --- | --- |
//! | `-overloaded` | 529 `overloaded_error` "Overloaded" | 503 `server_error` |
//! | `-unauthorized` | 401 `authentication_error` | 401 `invalid_request_error`, code `invalid_api_key` |
//! | `-cut` | streaming: `message_start`, `content_block_start`, `ping` and two deltas, then the connection is closed without the terminating chunk; not streaming: status 200 and half of the JSON body, then the same | streaming: the role chunk and two content chunks (Responses: every event through the second `response.output_text.delta`), then closed; not streaming: as Anthropic |
//! | `-nousage` | streaming: the whole content through `content_block_stop`, then closed without `message_delta` and `message_stop` (the usage); not streaming: answers normally | streaming: every chunk through the one with `finish_reason`, then closed without the usage chunk and `[DONE]` (Responses: every event but the terminal one); not streaming: answers normally |
//! | `-slow` | streams normally but with [`SLOW_CHUNK_DELAY`] (200 ms) between frames; not streaming: answers after 200 ms | the same |
//! | `-hang` | reads the request and never answers, until the server shuts down (then 529) | the same (then 503) |
//! | `-streams` | answers with an event stream even when the request did not ask for one (`stream` absent or `false`) | the same (Chat Completions; the usage chunk only if `stream_options.include_usage` is `true`) |
//! | `-trickle` | streaming: a slow stream held open, with `min(events, max_tokens)` content deltas (the reply's words over and over, one output token each) each after a pause of `every` ([`Trickle`], the binary's `--trickle-events` and `--trickle-every-ms`, default 30 events, one a second), the usage counting them; not streaming: answers normally | the same on Chat Completions (`max_completion_tokens` or `max_tokens` caps it); `/v1/responses` answers normally |
//!
//! The faults apply to `/v1/messages/count_tokens` too (`-cut` as not streaming). The model
//! lists have no faults. `/v1/responses` has one more, [`FAILED_SUFFIX`] (`-failed`): the
//! response fails after two words with status `failed`, an `error` `{"code": "server_error",
//! "message"}` and the usage so far; streaming, the text events stop after the second delta and
//! the terminal event is `response.failed`.
//!
//! # Recording
//!
//! Every request that reaches a route (including 401s, 404s and 405s, but not bodies over the
//! 32 MiB limit, which axum rejects with 413 first) is recorded, in the order received, as a
//! [`Recorded`]: method, path, query, headers (lower-case names, values as lossy UTF-8, in the
//! order sent) and the body as JSON (a body that is not JSON is recorded as a JSON string of its
//! text, an empty body as `null`). Recording keeps every body in memory: turn it off
//! ([`UpstreamState::new`]`(false)`, the binary's `--no-record`) for the benchmark.

mod anthropic;
mod common;
mod models;
mod openai;
mod responses;
mod usage;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::{fmt, io};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use axum::routing::any;
use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use common::{REPLY, REPLY_WORDS, SLOW_CHUNK_DELAY, Trickle};
pub use models::{ANTHROPIC_MODELS, OPENAI_MODELS};
pub use responses::{FAILED_SUFFIX, REASONING_TOKENS};

use common::Provider;

/// The largest request body accepted, as the real Anthropic API.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A running stand-in upstream on `127.0.0.1`. Dropping it shuts the server down: it stops
/// accepting connections, releases `-hang` requests and lets in-flight responses finish.
pub struct Upstream {
    addr: SocketAddr,
    state: UpstreamState,
    /// Dropping the sender resolves the server's shutdown signal.
    _shutdown: oneshot::Sender<()>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Upstream {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime, recording every request.
    pub async fn start() -> io::Result<Upstream> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = UpstreamState::new(true);
        let (shutdown, signal) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, state.clone(), async move {
            // Sent or dropped: either way the handle is gone.
            _ = signal.await;
        }));
        Ok(Upstream { addr, state, _shutdown: shutdown })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.state.clear();
    }

    /// Event streams dropped before their last frame (see [`UpstreamState::abandoned_streams`]).
    pub fn abandoned_streams(&self) -> u64 {
        self.state.abandoned_streams()
    }
}

/// One request as the upstream received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// `POST`, ...
    pub method: String,
    /// The path, e.g. `/v1/messages`.
    pub path: String,
    /// The query string without `?`, e.g. `beta=true`.
    pub query: Option<String>,
    /// Every header in the order received; names are lower case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; a body that is not JSON is a string of its text, an empty one `null`.
    pub body: Value,
}

impl Recorded {
    /// The first value of the header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The server's shared state: the request log and the shutdown signal for `-hang` requests.
/// Clones share it.
#[derive(Clone, Debug)]
pub struct UpstreamState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    record: bool,
    /// The pace of `-trickle` streams.
    trickle: Trickle,
    log: Mutex<Vec<Recorded>>,
    closing: watch::Sender<bool>,
    /// Streamed bodies dropped before their end.
    abandoned: AtomicU64,
}

impl UpstreamState {
    /// A fresh state; `record: false` keeps no log (for the benchmark). `-trickle` streams
    /// are paced by [`Trickle::default`].
    pub fn new(record: bool) -> UpstreamState {
        UpstreamState::with_trickle(record, Trickle::default())
    }

    /// A fresh state (as [`UpstreamState::new`]) whose `-trickle` streams are paced by `trickle`.
    pub fn with_trickle(record: bool, trickle: Trickle) -> UpstreamState {
        UpstreamState {
            shared: Arc::new(Shared {
                record,
                trickle,
                log: Mutex::new(Vec::new()),
                closing: watch::Sender::new(false),
                abandoned: AtomicU64::new(0),
            }),
        }
    }

    /// The pace of `-trickle` streams.
    pub fn trickle(&self) -> Trickle {
        self.shared.trickle
    }

    /// Every request received so far, in order (empty when not recording).
    pub fn requests(&self) -> Vec<Recorded> {
        self.log().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.log().clear();
    }

    /// Event streams dropped before their last frame: their client (the proxy) closed the
    /// connection, which is how a cancelled request looks from the upstream.
    pub fn abandoned_streams(&self) -> u64 {
        self.shared.abandoned.load(Ordering::Relaxed)
    }

    pub(crate) fn count_abandoned(&self) {
        self.shared.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Releases every `-hang` request, present and future, with an overloaded error. [`serve`]
    /// calls it when its shutdown signal resolves.
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    /// Resolves once [`UpstreamState::close`] has been called.
    async fn closed(&self) {
        let mut closing = self.shared.closing.subscribe();
        // The sender lives in `self`, so this can only return once the flag is set.
        _ = closing.wait_for(|closed| *closed).await;
    }

    fn log(&self) -> MutexGuard<'_, Vec<Recorded>> {
        // A panic while holding the lock cannot leave a half-pushed request behind.
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
        if !self.shared.record {
            return;
        }
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        let recorded = Recorded {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body,
        };
        self.log().push(recorded);
    }

    /// Records the request and answers what every route answers alike: 405 for a method other
    /// than `expected`, 401 without credentials. `None`: the route handles it.
    fn admit(
        &self,
        provider: Provider,
        expected: &Method,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Response> {
        self.record(method, uri, headers, body);
        if method != expected {
            return Some(provider.method_not_allowed());
        }
        let present = |name: &str| headers.get(name).is_some_and(|value| !value.as_bytes().trim_ascii().is_empty());
        if !present("x-api-key") && !present(header::AUTHORIZATION.as_str()) {
            return Some(provider.missing_credentials());
        }
        None
    }
}

/// The stand-in's routes over `state`, for the binary and for tests.
pub fn router(state: UpstreamState) -> Router {
    Router::new()
        .route("/v1/messages", any(messages))
        .route("/v1/messages/count_tokens", any(count_tokens))
        .route("/v1/chat/completions", any(chat_completions))
        .route("/v1/responses", any(responses))
        .route("/v1/models", any(models))
        .route("/v1/models/{id}", any(model))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves [`router`] on `listener` (with `TCP_NODELAY`) until `shutdown` resolves, then closes
/// `state` (releasing `-hang` requests) and waits for in-flight responses.
pub async fn serve<F>(listener: TcpListener, state: UpstreamState, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(state.clone());
    let listener = listener.tap_io(|tcp| {
        // Small SSE frames must not wait for Nagle; a socket that refuses still works.
        _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.close();
        })
        .await
}

async fn messages(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.admit(Provider::Anthropic, &Method::POST, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => anthropic::messages(&state, &body).await,
    }
}

async fn count_tokens(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.admit(Provider::Anthropic, &Method::POST, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => anthropic::count_tokens(&state, &body).await,
    }
}

async fn chat_completions(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.admit(Provider::OpenAi, &Method::POST, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => openai::chat_completions(&state, &body).await,
    }
}

async fn responses(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match state.admit(Provider::OpenAi, &Method::POST, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => responses::responses(&state, &body).await,
    }
}

async fn models(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = models::provider_of(&headers);
    match state.admit(provider, &Method::GET, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => models::list(provider),
    }
}

async fn model(
    State(state): State<UpstreamState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = models::provider_of(&headers);
    match state.admit(provider, &Method::GET, &method, &uri, &headers, &body) {
        Some(response) => response,
        None => models::retrieve(provider, &id),
    }
}

async fn not_found(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record(&method, &uri, &headers, &body);
    let path = uri.path();
    let openai = ["/v1/chat/", "/v1/responses/", "/v1/completions", "/v1/embeddings"];
    let provider =
        if openai.iter().any(|prefix| path.starts_with(prefix)) { Provider::OpenAi } else { Provider::Anthropic };
    provider.not_found(uri.path())
}
