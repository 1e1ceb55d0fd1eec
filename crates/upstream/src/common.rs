//! What both providers share: the reply, fault modes, ids, error shapes and streamed bodies.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use crate::UpstreamState;

/// The full reply; a reply of `n` tokens is its first `n` words.
pub const REPLY: &str = "Hello from the stand-in upstream. Hello from the stand-in upstream.";

/// The number of words in [`REPLY`]: the output token count when `max_tokens` does not cut it.
pub const REPLY_WORDS: u64 = 10;

/// The pause between streamed frames (and before a non-streamed answer) of a `-slow` model.
pub const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(200);

/// The shape of a `-trickle` stream: `events` content deltas, one every `every` (a slow
/// stream held open for `events * every`), for the benchmark of many concurrent streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trickle {
    /// The pause before each content delta.
    pub every: Duration,
    /// How many content deltas (words, one output token each) the stream sends, at most the
    /// request's token limit.
    pub events: u64,
}

impl Default for Trickle {
    /// One event a second for 30 seconds.
    fn default() -> Self {
        Self { every: Duration::from_secs(1), events: 30 }
    }
}

/// `n` content pieces cycling through `pieces` (the reply's words, again and again), each a
/// clone of a prebuilt frame: a long stream allocates nothing per event.
pub(crate) fn cycled(pieces: Vec<Bytes>, n: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    let len = pieces.len();
    let n = if len == 0 { 0 } else { n };
    (0..n).map(move |i| {
        let at = usize::try_from(i).unwrap_or(usize::MAX) % len;
        pieces.get(at).cloned().unwrap_or_default()
    })
}

/// The first `words` words of [`REPLY`], each but the first with its leading space: streamed
/// deltas, which concatenate to [`reply_text`].
pub(crate) fn reply_pieces(words: u64) -> impl Iterator<Item = &'static str> {
    let ends = REPLY.match_indices(' ').map(|(at, _)| at).chain(std::iter::once(REPLY.len()));
    let mut start = 0;
    ends.take(usize::try_from(words).unwrap_or(usize::MAX)).map(move |end| {
        let piece = REPLY.get(start..end).unwrap_or_default();
        start = end;
        piece
    })
}

/// The first `words` words of [`REPLY`].
pub(crate) fn reply_text(words: u64) -> &'static str {
    let len = reply_pieces(words).map(str::len).sum::<usize>();
    REPLY.get(..len).unwrap_or(REPLY)
}

/// The number of output tokens for a request's token limit.
pub(crate) fn output_words(limit: Option<u64>) -> u64 {
    limit.map_or(REPLY_WORDS, |limit| limit.min(REPLY_WORDS))
}

/// The `service_tier` an OpenAI response reports for the one its request asked for: `priority`
/// and `flex` as asked, anything else (`auto`, `default`, none) served at `default`.
pub(crate) fn served_tier(requested: Option<&str>) -> &'static str {
    match requested {
        Some("priority") => "priority",
        Some("flex") => "flex",
        _ => "default",
    }
}

/// The fault a request asks for through the suffix of its model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Overloaded,
    Unauthorized,
    Cut,
    /// Streams the whole content, then closes before the usage (see each provider).
    NoUsage,
    /// Anthropic: ends the stream properly (`message_stop`) but never sends the final usage
    /// (`message_delta`); others: as `None`.
    NoFinal,
    Slow,
    Hang,
    /// Streams whatever the request's `stream` said (an upstream that ignores it).
    Streams,
    /// A slow stream: the content deltas paced by the server's [`Trickle`] (Messages and Chat
    /// Completions; elsewhere, and not streaming, as `None`).
    Trickle,
}

impl Fault {
    pub(crate) fn of(model: &str) -> Fault {
        [
            ("-overloaded", Fault::Overloaded),
            ("-unauthorized", Fault::Unauthorized),
            ("-cut", Fault::Cut),
            ("-nousage", Fault::NoUsage),
            ("-nofinal", Fault::NoFinal),
            ("-slow", Fault::Slow),
            ("-hang", Fault::Hang),
            ("-streams", Fault::Streams),
            ("-trickle", Fault::Trickle),
        ]
        .into_iter()
        .find(|(suffix, _)| model.ends_with(suffix))
        .map_or(Fault::None, |(_, fault)| fault)
    }

    fn pace(self) -> Option<Duration> {
        (self == Fault::Slow).then_some(SLOW_CHUNK_DELAY)
    }
}

/// A fresh id: `prefix` and 24 hex digits, unique within the process and unlikely to repeat
/// across processes.
pub(crate) fn new_id(prefix: &str) -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
        // Truncation is fine: this only spreads ids of different processes apart.
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    });
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{seed:016x}{next:08x}")
}

/// Seconds since the Unix epoch, for OpenAI's `created`.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Serialises one of this crate's response types.
#[expect(
    clippy::expect_used,
    reason = "the response types are plain structs of strings and numbers, which always serialise"
)]
pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("response types serialise")
}

/// One server-sent event: `event: NAME\n` (when named) and `data: JSON\n\n`.
pub(crate) fn sse(name: Option<&str>, data: &impl Serialize) -> Bytes {
    let mut frame = Vec::with_capacity(256);
    if let Some(name) = name {
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(name.as_bytes());
        frame.push(b'\n');
    }
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(&to_json(data));
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// What comes before a frame of a streamed body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pause {
    /// Nothing (the first frame).
    None,
    /// A yield to the runtime, so that the frame before is flushed by itself.
    Yield,
    /// A sleep (`-slow`, `-trickle`).
    Sleep(Duration),
}

/// A body of `frames`, one frame at a time: the task yields between frames (or sleeps, for
/// `-slow`) so that each is flushed by itself. With `cut`, the body ends in an error after the
/// last frame, which makes the server close the connection without the terminating chunk.
/// With `tally`, a body dropped before its end (the client went away) is counted in it (see
/// [`UpstreamState::abandoned_streams`]).
pub(crate) fn frames_body(frames: Vec<Bytes>, fault: Fault, cut: bool, tally: Option<&UpstreamState>) -> Body {
    let pause = fault.pace().map_or(Pause::Yield, Pause::Sleep);
    let paced = frames.into_iter().enumerate().map(move |(i, frame)| (if i == 0 { Pause::None } else { pause }, frame));
    paced_body(paced, cut.then_some(pause), tally)
}

/// A `-trickle` body: `head` at once, then `content` with `every` before each frame, then
/// `tail` at once (each frame still flushed by itself). Generated as it is sent, so a long
/// stream holds no frame list.
pub(crate) fn trickle_body(
    head: Vec<Bytes>,
    content: impl Iterator<Item = Bytes> + Send + 'static,
    tail: Vec<Bytes>,
    every: Duration,
    tally: &UpstreamState,
) -> Body {
    let head = head.into_iter().enumerate().map(|(i, frame)| (if i == 0 { Pause::None } else { Pause::Yield }, frame));
    let content = content.map(move |frame| (Pause::Sleep(every), frame));
    let tail = tail.into_iter().map(|frame| (Pause::Yield, frame));
    paced_body(head.chain(content).chain(tail), None, Some(tally))
}

/// A body of `frames`, each after its pause. `cut`: after the last frame, the pause and then an
/// error (the connection is closed without the terminating chunk). `tally`: see [`frames_body`].
fn paced_body(
    frames: impl Iterator<Item = (Pause, Bytes)> + Send + 'static,
    cut: Option<Pause>,
    tally: Option<&UpstreamState>,
) -> Body {
    struct Frames<I> {
        rest: I,
        cut: Option<Pause>,
        /// Every frame (and the cut) was sent.
        ended: bool,
        tally: Option<UpstreamState>,
    }
    impl<I> Drop for Frames<I> {
        fn drop(&mut self) {
            if let (false, Some(tally)) = (self.ended, &self.tally) {
                tally.count_abandoned();
            }
        }
    }
    async fn pause(pause: Pause) {
        match pause {
            Pause::None => {}
            Pause::Yield => tokio::task::yield_now().await,
            Pause::Sleep(duration) => tokio::time::sleep(duration).await,
        }
    }
    let frames = Frames { rest: frames, cut, ended: false, tally: tally.cloned() };
    let stream = futures_util::stream::unfold(frames, |mut frames| async move {
        match frames.rest.next() {
            Some((before, frame)) => {
                pause(before).await;
                Some((Ok(frame), frames))
            }
            None => {
                frames.ended = true;
                let before = frames.cut.take()?;
                pause(before).await;
                let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "-cut fault");
                Some((Err(cut), frames))
            }
        }
    });
    Body::from_stream(stream)
}

/// The two wire formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    Anthropic,
    OpenAi,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorBody<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl Provider {
    fn request_id_header(self) -> HeaderName {
        match self {
            Provider::Anthropic => HeaderName::from_static("request-id"),
            Provider::OpenAi => HeaderName::from_static("x-request-id"),
        }
    }

    fn respond(self, status: StatusCode, content_type: &'static str, body: Body) -> Response {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(id) = HeaderValue::try_from(new_id("req_")) {
            headers.insert(self.request_id_header(), id);
        }
        response
    }

    /// A JSON response.
    pub(crate) fn json(self, status: StatusCode, body: Vec<u8>) -> Response {
        self.respond(status, "application/json", Body::from(body))
    }

    /// A 200 JSON response, with the faults that apply to a whole body: `-slow` answers late,
    /// `-cut` sends half of it and breaks the connection.
    pub(crate) async fn json_ok(self, fault: Fault, body: Vec<u8>) -> Response {
        match fault {
            Fault::Slow => {
                tokio::time::sleep(SLOW_CHUNK_DELAY).await;
                self.json(StatusCode::OK, body)
            }
            Fault::Cut => {
                let mut half = body;
                half.truncate(half.len() / 2);
                let body = frames_body(vec![Bytes::from(half)], Fault::None, true, None);
                self.respond(StatusCode::OK, "application/json", body)
            }
            _ => self.json(StatusCode::OK, body),
        }
    }

    /// A 200 server-sent-events response.
    pub(crate) fn event_stream(self, body: Body) -> Response {
        let mut response = self.respond(StatusCode::OK, "text/event-stream; charset=utf-8", body);
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// An error in the provider's shape. `code` is OpenAI's `code` (Anthropic has none).
    pub(crate) fn error(self, status: StatusCode, kind: &str, message: &str, code: Option<&str>) -> Response {
        let body = match self {
            Provider::Anthropic => {
                to_json(&AnthropicError { kind: "error", error: AnthropicErrorBody { kind, message } })
            }
            Provider::OpenAi => to_json(&OpenAiError { error: OpenAiErrorBody { message, kind, param: None, code } }),
        };
        self.json(status, body)
    }

    pub(crate) fn bad_request(self, message: &str) -> Response {
        self.error(StatusCode::BAD_REQUEST, "invalid_request_error", message, None)
    }

    pub(crate) fn missing_credentials(self) -> Response {
        match self {
            Provider::Anthropic => {
                self.error(StatusCode::UNAUTHORIZED, "authentication_error", "x-api-key header is required", None)
            }
            Provider::OpenAi => self.error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
            ),
        }
    }

    /// The `-unauthorized` fault: the credentials were sent but are not valid.
    pub(crate) fn invalid_credentials(self) -> Response {
        match self {
            Provider::Anthropic => {
                self.error(StatusCode::UNAUTHORIZED, "authentication_error", "invalid x-api-key", None)
            }
            Provider::OpenAi => self.error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
                Some("invalid_api_key"),
            ),
        }
    }

    pub(crate) fn overloaded(self) -> Response {
        match self {
            Provider::Anthropic => self.error(
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                "overloaded_error",
                "Overloaded",
                None,
            ),
            Provider::OpenAi => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "The server is overloaded or not ready yet.",
                None,
            ),
        }
    }

    pub(crate) fn not_found(self, path: &str) -> Response {
        let message = format!("Not found: {path}");
        match self {
            Provider::Anthropic => self.error(StatusCode::NOT_FOUND, "not_found_error", &message, None),
            Provider::OpenAi => {
                self.error(StatusCode::NOT_FOUND, "invalid_request_error", &message, Some("unknown_url"))
            }
        }
    }

    pub(crate) fn method_not_allowed(self) -> Response {
        self.error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "Method not allowed", None)
    }

    /// The faults that replace the whole answer, or `None` to answer normally.
    pub(crate) async fn fault_response(self, state: &UpstreamState, fault: Fault) -> Option<Response> {
        match fault {
            Fault::Overloaded => Some(self.overloaded()),
            Fault::Unauthorized => Some(self.invalid_credentials()),
            Fault::Hang => {
                state.closed().await;
                Some(self.overloaded())
            }
            Fault::None
            | Fault::Cut
            | Fault::NoUsage
            | Fault::NoFinal
            | Fault::Slow
            | Fault::Streams
            | Fault::Trickle => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_reply_prefix() {
        assert_eq!(reply_pieces(REPLY_WORDS).count() as u64, REPLY_WORDS);
        assert_eq!(reply_pieces(REPLY_WORDS).collect::<String>(), REPLY);
        assert_eq!(reply_pieces(3).collect::<Vec<_>>(), ["Hello", " from", " the"]);
        assert_eq!(reply_text(3), "Hello from the");
        assert_eq!(reply_text(0), "");
        assert_eq!(reply_text(99), REPLY);
    }

    #[test]
    fn faults_come_from_the_model_suffix() {
        assert_eq!(Fault::of("claude-x-overloaded"), Fault::Overloaded);
        assert_eq!(Fault::of("gpt-unauthorized"), Fault::Unauthorized);
        assert_eq!(Fault::of("m-cut"), Fault::Cut);
        assert_eq!(Fault::of("m-slow"), Fault::Slow);
        assert_eq!(Fault::of("m-hang"), Fault::Hang);
        assert_eq!(Fault::of("m-hang-not"), Fault::None);
        assert_eq!(Fault::of("m-streams"), Fault::Streams);
        assert_eq!(Fault::of("claude-sonnet-4-5-trickle"), Fault::Trickle);
        assert_eq!(Fault::of("claude-sonnet-4-5"), Fault::None);
    }
}
