//! Usage meters: token counts read from an upstream response as it streams.
//!
//! A meter observes a copy of every chunk the proxy forwards ([`AnthropicMeter::observe_chunk`])
//! or the whole body of a non-streaming response ([`AnthropicMeter::observe_body`]), and can
//! report [`Usage`] at any moment: a stream cut midway reports what it had seen, which is what
//! the settlement of a broken stream charges. Meters never fail and never panic on bad input;
//! events that should carry usage but do not parse are counted in `malformed_events`.
//!
//! # Anthropic (Messages API)
//!
//! - `message_start.message.usage` carries `input_tokens`, `cache_creation_input_tokens`
//!   (tokens written to the cache), `cache_read_input_tokens` and an initial `output_tokens`,
//!   and may split the writes by TTL in `cache_creation.ephemeral_5m_input_tokens` and
//!   `ephemeral_1h_input_tokens` (Claude Code writes part of its cache for an hour). Without the
//!   split, every write is a 5-minute write; the writes counted are never fewer than the split's
//!   sum.
//! - `message_delta.usage` is **cumulative**: each one carries the total so far, so the output
//!   count is the latest one seen, never a sum. Newer API versions also put the input and cache
//!   fields there; for those the meter keeps the largest value seen in any event.
//! - `message_stop` completes the stream. `ping`, `content_block_*` and `error` carry no usage
//!   and are not even parsed when the `event:` field names them.
//! - A non-streaming body is one `message` object with the same `usage` fields.
//!
//! # OpenAI (Chat Completions)
//!
//! `usage.prompt_tokens` *includes* the cached tokens `usage.prompt_tokens_details.cached_tokens`,
//! so `input_tokens = prompt_tokens - cached_tokens`, `cache_read_tokens = cached_tokens`,
//! `output_tokens = completion_tokens` (which includes reasoning tokens); OpenAI reports no cache
//! writes. The top-level `service_tier` (`default`, `priority`, `flex`, ...) of a body or of the
//! chunk that carries the usage says at which tier the request is billed. A stream carries usage only when the request set `stream_options.include_usage`
//! (see [`crate::rewrite::ensure_include_usage`]), in a final chunk whose `choices` is empty; the
//! stream then ends with `data: [DONE]`. If several chunks carry usage (some compatible servers
//! report it cumulatively on every chunk), the latest wins.
//!
//! # OpenAI (Responses)
//!
//! See [`ResponsesMeter`]: the usage is in the terminal event, with the same split of cached
//! tokens.

use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tollgate_policy::{Protocol, ServiceTier, Usage};

use crate::sse::{EventRef, SseParser};

pub mod relayed;
mod responses;

pub use responses::ResponsesMeter;

/// Meters an Anthropic Messages API response; see the module docs.
#[derive(Debug, Default)]
pub struct AnthropicMeter {
    parser: SseParser,
    state: AnthropicState,
}

#[derive(Debug, Default)]
struct AnthropicState {
    input: u64,
    cache_write: u64,
    /// The 1-hour part of the cache writes, when the usage splits them by TTL.
    cache_write_1h: u64,
    cache_read: u64,
    /// `output_tokens` of `message_start`: the count before any `message_delta`.
    initial_output: u64,
    /// `output_tokens` of the latest `message_delta` (or of a non-streaming body).
    latest_output: Option<u64>,
    completed: bool,
    malformed: u64,
    /// Content characters relayed (see [`relayed`]).
    relayed_chars: u64,
}

#[derive(Deserialize)]
struct AnthropicPayload {
    #[serde(rename = "type")]
    kind: AnthropicType,
    message: Option<AnthropicMessage>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AnthropicType {
    MessageStart,
    MessageDelta,
    MessageStop,
    Message,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
}

/// The cache writes split by TTL.
#[derive(Deserialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

impl AnthropicMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observes the next chunk of an event stream.
    pub fn observe_chunk(&mut self, chunk: &[u8]) {
        let Self { parser, state } = self;
        parser.feed_with(chunk, |event| state.on_event(event));
    }

    /// Observes the whole body of a non-streaming response.
    pub fn observe_body(&mut self, body: &[u8]) {
        match serde_json::from_slice::<AnthropicPayload>(body) {
            Ok(AnthropicPayload { kind: AnthropicType::Message, usage: Some(usage), .. }) => {
                self.state.merge(&usage, Stage::Final);
                self.state.completed = true;
            }
            Ok(_) => {}
            Err(_) => self.state.malformed += 1,
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Usage {
        let s = &self.state;
        Usage {
            input_tokens: s.input,
            output_tokens: s.latest_output.unwrap_or(s.initial_output),
            cache_write_tokens: s.cache_write,
            cache_write_1h_tokens: s.cache_write_1h.min(s.cache_write),
            cache_read_tokens: s.cache_read,
            service_tier: None,
        }
    }

    /// Whether the response completed: `message_stop` was seen, or a whole message body.
    pub fn completed(&self) -> bool {
        self.state.completed
    }

    /// Whether the final output count arrived (a `message_delta` with usage, or a whole
    /// body's usage): without it the output is only `message_start`'s initial count.
    pub fn usage_reported(&self) -> bool {
        self.state.latest_output.is_some()
    }

    /// Events that should have carried usage but did not parse.
    pub fn malformed_events(&self) -> u64 {
        self.state.malformed
    }

    /// Content characters relayed so far (text, thinking, tool-call arguments).
    pub fn relayed_chars(&self) -> u64 {
        self.state.relayed_chars
    }

    /// Events dropped for exceeding the SSE parser's size limit.
    pub fn oversized_events(&self) -> u64 {
        self.parser.dropped_events()
    }

    /// The bytes its SSE parser holds allocated ([`SseParser::retained_bytes`]).
    pub fn retained_bytes(&self) -> usize {
        self.parser.retained_bytes()
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Start,
    Final,
}

impl AnthropicState {
    fn on_event(&mut self, event: EventRef<'_>) {
        // Content deltas are counted for the estimate of a stream cut before its usage.
        if matches!(event.event, b"" | b"content_block_delta") {
            self.relayed_chars += relayed::anthropic_delta_chars(event.data);
        }
        // The `event:` field names the payload's type; skip the rest of the bulk (content
        // deltas, pings) without parsing. Without the field, the payload's `type` decides.
        if !matches!(event.event, b"" | b"message_start" | b"message_delta" | b"message_stop") {
            return;
        }
        match serde_json::from_slice::<AnthropicPayload>(event.data) {
            Ok(payload) => match payload.kind {
                AnthropicType::MessageStart => {
                    if let Some(usage) = payload.message.and_then(|m| m.usage) {
                        self.merge(&usage, Stage::Start);
                    }
                }
                AnthropicType::MessageDelta => {
                    if let Some(usage) = payload.usage {
                        self.merge(&usage, Stage::Final);
                    }
                }
                AnthropicType::MessageStop => self.completed = true,
                AnthropicType::Message | AnthropicType::Other => {}
            },
            Err(_) => self.malformed += 1,
        }
    }

    fn merge(&mut self, usage: &AnthropicUsage, stage: Stage) {
        let max = |current: &mut u64, seen: Option<u64>| *current = (*current).max(seen.unwrap_or(0));
        max(&mut self.input, usage.input_tokens);
        max(&mut self.cache_write, usage.cache_creation_input_tokens);
        if let Some(split) = &usage.cache_creation {
            let (five, hour) = (split.ephemeral_5m_input_tokens.unwrap_or(0), split.ephemeral_1h_input_tokens);
            // A split larger than the total counts whole: the provider bills each part.
            max(&mut self.cache_write, Some(five.saturating_add(hour.unwrap_or(0))));
            max(&mut self.cache_write_1h, hour);
        }
        max(&mut self.cache_read, usage.cache_read_input_tokens);
        if let Some(output) = usage.output_tokens {
            match stage {
                Stage::Start => self.initial_output = output,
                Stage::Final => self.latest_output = Some(output),
            }
        }
    }
}

/// Meters an OpenAI Chat Completions response; see the module docs.
#[derive(Debug, Default)]
pub struct OpenAiMeter {
    parser: SseParser,
    state: OpenAiState,
}

#[derive(Debug, Default)]
struct OpenAiState {
    usage: Usage,
    /// A usage object was read.
    reported: bool,
    completed: bool,
    malformed: u64,
    /// Content characters relayed (see [`relayed`]).
    relayed_chars: u64,
    /// How relayed content is counted in tokens.
    counter: relayed::TokenCounter,
    /// Relayed content in tokens, when `counter` tokenizes.
    relayed_tokens: u64,
}

/// The parts of a chunk (or of a whole completion) that matter for usage.
#[derive(Deserialize)]
pub(crate) struct OpenAiPayload {
    pub(crate) choices: Option<Vec<IgnoredAny>>,
    pub(crate) usage: Option<OpenAiUsage>,
    /// The tier the request was served (and is billed) at.
    pub(crate) service_tier: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

impl OpenAiUsage {
    fn to_usage(&self, service_tier: Option<&str>) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        // Cached tokens are part of the prompt; a report claiming more cached than prompt
        // tokens is clamped so that input + cache_read is always the prompt count.
        let cached = self.prompt_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0).min(prompt);
        Usage {
            input_tokens: prompt - cached,
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            cache_read_tokens: cached,
            service_tier: service_tier.and_then(ServiceTier::from_response),
        }
    }
}

impl OpenAiPayload {
    /// The final usage chunk of a stream: `"choices": []` and a `usage` object.
    pub(crate) fn is_usage_chunk(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty)
    }
}

/// Whether `data` may hold a non-null `usage` member: a cheap scan that spares parsing the
/// (many) content chunks, including those with `"usage":null` that `include_usage` adds to
/// every chunk. A false positive only costs a parse.
pub(crate) fn may_carry_usage(data: &[u8]) -> bool {
    const KEY: &[u8] = b"\"usage\"";
    let skip_ws = |s: &[u8]| -> usize { s.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).count() };
    memmem::find_iter(data, KEY).any(|at| {
        let rest = &data[at + KEY.len()..];
        let rest = &rest[skip_ws(rest)..];
        rest.strip_prefix(b":").is_some_and(|value| !value[skip_ws(value)..].starts_with(b"null"))
    })
}

/// Whether an event is the `[DONE]` sentinel that ends an OpenAI stream.
pub(crate) fn is_done(data: &[u8]) -> bool {
    data.trim_ascii() == b"[DONE]"
}

impl OpenAiMeter {
    /// A meter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observes the next chunk of an event stream.
    pub fn observe_chunk(&mut self, chunk: &[u8]) {
        let Self { parser, state } = self;
        parser.feed_with(chunk, |event| state.on_event(event.data));
    }

    /// Observes the whole body of a non-streaming response.
    pub fn observe_body(&mut self, body: &[u8]) {
        match serde_json::from_slice::<OpenAiPayload>(body) {
            Ok(OpenAiPayload { usage: Some(usage), service_tier, .. }) => {
                self.state.usage = usage.to_usage(service_tier.as_deref());
                self.state.reported = true;
                self.state.completed = true;
            }
            Ok(_) => {}
            Err(_) => self.state.malformed += 1,
        }
    }

    /// The usage seen so far: zero until a chunk with usage arrives.
    pub fn usage(&self) -> Usage {
        self.state.usage
    }

    /// Whether the response completed: `[DONE]` or the final usage chunk was seen, or a whole
    /// body with usage.
    pub fn completed(&self) -> bool {
        self.state.completed
    }

    /// Whether a usage object arrived.
    pub fn usage_reported(&self) -> bool {
        self.state.reported
    }

    /// Chunks that looked as if they carried usage but did not parse.
    pub fn malformed_events(&self) -> u64 {
        self.state.malformed
    }

    /// Content characters relayed so far (text, thinking, tool-call arguments).
    pub fn relayed_chars(&self) -> u64 {
        self.state.relayed_chars
    }

    /// Counts relayed content with `counter` from now on (set it before the first chunk).
    pub fn set_counter(&mut self, counter: relayed::TokenCounter) {
        self.state.counter = counter;
    }

    /// The output tokens of the content relayed so far ([`relayed::relayed_output_tokens`]).
    pub fn relayed_tokens(&self) -> u64 {
        let tokenized = self.state.counter.tokenizes().then_some(self.state.relayed_tokens);
        relayed::relayed_output_tokens(self.state.relayed_chars, tokenized)
    }

    /// Events dropped for exceeding the SSE parser's size limit.
    pub fn oversized_events(&self) -> u64 {
        self.parser.dropped_events()
    }

    /// The bytes its SSE parser holds allocated ([`SseParser::retained_bytes`]).
    pub fn retained_bytes(&self) -> usize {
        self.parser.retained_bytes()
    }
}

impl OpenAiState {
    fn on_event(&mut self, data: &[u8]) {
        if is_done(data) {
            self.completed = true;
            return;
        }
        let (counter, chars, tokens) = (self.counter, &mut self.relayed_chars, &mut self.relayed_tokens);
        relayed::openai_chunk_pieces(data, |piece| {
            *chars += piece.len() as u64;
            *tokens += counter.tokens(piece).unwrap_or(0);
        });
        if !may_carry_usage(data) {
            return;
        }
        match serde_json::from_slice::<OpenAiPayload>(data) {
            Ok(payload) => {
                if let Some(usage) = &payload.usage {
                    self.usage = usage.to_usage(payload.service_tier.as_deref());
                    self.reported = true;
                    self.completed |= payload.is_usage_chunk();
                }
            }
            Err(_) => self.malformed += 1,
        }
    }
}

/// A meter for either protocol, for code that handles both.
#[derive(Debug)]
pub enum Meter {
    /// Anthropic Messages API.
    Anthropic(AnthropicMeter),
    /// OpenAI Chat Completions API.
    OpenAi(OpenAiMeter),
    /// OpenAI Responses API.
    Responses(ResponsesMeter),
}

impl Meter {
    /// A fresh meter for `protocol`'s main API: Anthropic Messages or OpenAI Chat Completions.
    pub fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Anthropic => Self::Anthropic(AnthropicMeter::new()),
            Protocol::Openai => Self::OpenAi(OpenAiMeter::new()),
        }
    }

    /// A fresh meter for the OpenAI Responses API.
    pub fn responses() -> Self {
        Self::Responses(ResponsesMeter::new())
    }

    /// Observes the next chunk of an event stream.
    pub fn observe_chunk(&mut self, chunk: &[u8]) {
        match self {
            Self::Anthropic(m) => m.observe_chunk(chunk),
            Self::OpenAi(m) => m.observe_chunk(chunk),
            Self::Responses(m) => m.observe_chunk(chunk),
        }
    }

    /// Observes the whole body of a non-streaming response.
    pub fn observe_body(&mut self, body: &[u8]) {
        match self {
            Self::Anthropic(m) => m.observe_body(body),
            Self::OpenAi(m) => m.observe_body(body),
            Self::Responses(m) => m.observe_body(body),
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Usage {
        match self {
            Self::Anthropic(m) => m.usage(),
            Self::OpenAi(m) => m.usage(),
            Self::Responses(m) => m.usage(),
        }
    }

    /// Whether the response completed.
    pub fn completed(&self) -> bool {
        match self {
            Self::Anthropic(m) => m.completed(),
            Self::OpenAi(m) => m.completed(),
            Self::Responses(m) => m.completed(),
        }
    }

    /// Counts the content relayed with `counter` (OpenAI's meters; the Anthropic one keeps the
    /// ratio, its tokenizer being unpublished). Call it before the first chunk.
    #[must_use]
    pub fn with_counter(mut self, counter: relayed::TokenCounter) -> Self {
        match &mut self {
            Self::Anthropic(_) => {}
            Self::OpenAi(m) => m.set_counter(counter),
            Self::Responses(m) => m.set_counter(counter),
        }
        self
    }

    /// The output tokens of the content relayed so far: OpenAI's tokenizer's count where the
    /// meter has one, else [`relayed::estimate_tokens`] of its characters.
    pub fn relayed_tokens(&self) -> u64 {
        match self {
            Self::Anthropic(m) => relayed::estimate_tokens(m.relayed_chars()),
            Self::OpenAi(m) => m.relayed_tokens(),
            Self::Responses(m) => m.relayed_tokens(),
        }
    }

    /// Whether the response's usage (its final output count) arrived: a stream that
    /// completed without it is charged the estimate, like a cut one.
    pub fn usage_reported(&self) -> bool {
        match self {
            Self::Anthropic(m) => m.usage_reported(),
            Self::OpenAi(m) => m.usage_reported(),
            Self::Responses(m) => m.usage_reported(),
        }
    }

    /// Content characters relayed so far (text, thinking, tool-call arguments).
    pub fn relayed_chars(&self) -> u64 {
        match self {
            Self::Anthropic(m) => m.relayed_chars(),
            Self::OpenAi(m) => m.relayed_chars(),
            Self::Responses(m) => m.relayed_chars(),
        }
    }

    /// The bytes the meter holds allocated for the stream (its SSE parser's buffers): bounded
    /// by the largest event, whatever the stream's length.
    pub fn retained_bytes(&self) -> usize {
        match self {
            Self::Anthropic(m) => m.retained_bytes(),
            Self::OpenAi(m) => m.retained_bytes(),
            Self::Responses(m) => m.retained_bytes(),
        }
    }

    /// Events that should have carried usage but did not parse, plus events dropped for size.
    pub fn anomalies(&self) -> u64 {
        match self {
            Self::Anthropic(m) => m.malformed_events() + m.oversized_events(),
            Self::OpenAi(m) => m.malformed_events() + m.oversized_events(),
            Self::Responses(m) => m.malformed_events() + m.oversized_events(),
        }
    }
}

#[cfg(test)]
mod tests;
