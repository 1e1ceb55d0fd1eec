//! The OpenAI Responses API meter (`POST /v1/responses`, what the Codex CLI speaks).
//!
//! Usage arrives once, in the terminal event of a stream (`response.completed`,
//! `response.incomplete` or `response.failed`) at `response.usage`, or at `usage` of a
//! non-streaming body. `input_tokens` *includes* `input_tokens_details.cached_tokens`, so
//! `input_tokens = input - cached` and `cache_read_tokens = cached` (charged at the cache-read
//! price); `output_tokens` includes `output_tokens_details.reasoning_tokens` and is charged
//! whole. No cache writes are reported. The response's `service_tier` says at which tier it is
//! billed. Every other event (`response.created`, the text
//! deltas, ...) carries no usage and is not parsed when its `event:` field names it.

use serde::Deserialize;
use tollgate_policy::{ServiceTier, Usage};

use crate::meter::{may_carry_usage, relayed};
use crate::sse::{EventRef, SseParser};

/// The terminal events, which carry the usage and end the stream.
const TERMINAL: [&[u8]; 3] = [b"response.completed", b"response.incomplete", b"response.failed"];

/// Meters an OpenAI Responses API response; see the module docs.
#[derive(Debug, Default)]
pub struct ResponsesMeter {
    parser: SseParser,
    state: ResponsesState,
}

#[derive(Debug, Default)]
struct ResponsesState {
    usage: Usage,
    /// The terminal event carried usage.
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

/// A streamed event: `type` and, for the lifecycle events, the response.
#[derive(Deserialize)]
struct EventPayload {
    #[serde(rename = "type")]
    kind: Option<String>,
    response: Option<ResponseBody>,
}

/// A response object (a non-streaming body, or an event's `response`).
#[derive(Deserialize)]
struct ResponseBody {
    usage: Option<ResponsesUsage>,
    service_tier: Option<String>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputTokensDetails>,
}

#[derive(Deserialize)]
struct InputTokensDetails {
    cached_tokens: Option<u64>,
}

impl ResponsesUsage {
    fn to_usage(&self, service_tier: Option<&str>) -> Usage {
        let input = self.input_tokens.unwrap_or(0);
        // Cached tokens are part of the input; a report claiming more cached than input tokens
        // is clamped so that input + cache_read is always the input count.
        let cached = self.input_tokens_details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0).min(input);
        Usage {
            input_tokens: input - cached,
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            cache_read_tokens: cached,
            service_tier: service_tier.and_then(ServiceTier::from_response),
        }
    }
}

impl ResponsesMeter {
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
        match serde_json::from_slice::<ResponseBody>(body) {
            Ok(ResponseBody { usage: Some(usage), service_tier }) => {
                self.state.usage = usage.to_usage(service_tier.as_deref());
                self.state.reported = true;
                self.state.completed = true;
            }
            Ok(_) => {}
            Err(_) => self.state.malformed += 1,
        }
    }

    /// The usage seen so far: zero until the terminal event arrives.
    pub fn usage(&self) -> Usage {
        self.state.usage
    }

    /// Whether the response completed: a terminal event (completed, incomplete or failed: each
    /// is a complete, billed answer), or a whole body with usage.
    pub fn completed(&self) -> bool {
        self.state.completed
    }

    /// Whether a usage object arrived (in the terminal event or a whole body).
    pub fn usage_reported(&self) -> bool {
        self.state.reported
    }

    /// Terminal events (or bodies) that did not parse.
    pub fn malformed_events(&self) -> u64 {
        self.state.malformed
    }

    /// Content characters relayed so far (output text, reasoning, function-call arguments).
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

    /// The bytes its SSE parser holds allocated ([`crate::sse::SseParser::retained_bytes`]).
    pub fn retained_bytes(&self) -> usize {
        self.parser.retained_bytes()
    }
}

impl ResponsesState {
    fn on_event(&mut self, event: EventRef<'_>) {
        if event.event.is_empty() || event.event.ends_with(b".delta") {
            let (counter, chars, tokens) = (self.counter, &mut self.relayed_chars, &mut self.relayed_tokens);
            relayed::responses_delta_pieces(event.data, |piece| {
                *chars += piece.len() as u64;
                *tokens += counter.tokens(piece).unwrap_or(0);
            });
        }
        // The `event:` field names the payload's type: skip the bulk unparsed. Without the
        // field, only a payload that may carry a usage is parsed.
        let worth_parsing = TERMINAL.contains(&event.event) || (event.event.is_empty() && may_carry_usage(event.data));
        if !worth_parsing {
            return;
        }
        match serde_json::from_slice::<EventPayload>(event.data) {
            Ok(payload) => {
                let terminal = payload.kind.as_deref().is_some_and(|kind| TERMINAL.contains(&kind.as_bytes()));
                if !terminal {
                    return;
                }
                match payload.response {
                    Some(ResponseBody { usage: Some(usage), service_tier }) => {
                        self.usage = usage.to_usage(service_tier.as_deref());
                        self.reported = true;
                    }
                    _ => self.malformed += 1,
                }
                self.completed = true;
            }
            Err(_) => self.malformed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, cache_read: u64) -> Usage {
        Usage { input_tokens: input, output_tokens: output, cache_read_tokens: cache_read, ..Usage::default() }
    }

    const COMPLETED: &str = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":120,\"input_tokens_details\":{\"cached_tokens\":100},\"output_tokens\":15,\"output_tokens_details\":{\"reasoning_tokens\":5},\"total_tokens\":135}}}\n\n";

    #[test]
    fn the_terminal_event_carries_the_usage_with_cached_tokens_split_off() {
        let stream = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"usage\":null}}}}\n\n\
             event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"delta\":\"usage\"}}\n\n{COMPLETED}"
        );
        // Every split point: usage is read across chunk boundaries.
        for at in 0..stream.len() {
            let mut meter = ResponsesMeter::new();
            meter.observe_chunk(&stream.as_bytes()[..at]);
            assert!(!meter.completed(), "complete before its last byte");
            meter.observe_chunk(&stream.as_bytes()[at..]);
            assert!(meter.completed());
            assert_eq!(meter.usage(), usage(20, 15, 100));
            assert_eq!(meter.malformed_events(), 0);
        }
    }

    #[test]
    fn incomplete_and_failed_are_terminal_too() {
        for kind in ["response.incomplete", "response.failed"] {
            let event = COMPLETED.replace("response.completed", kind);
            let mut meter = ResponsesMeter::new();
            meter.observe_chunk(event.as_bytes());
            assert!(meter.completed(), "{kind}");
            assert_eq!(meter.usage(), usage(20, 15, 100), "{kind}");
        }
    }

    #[test]
    fn unnamed_events_are_read_by_their_type() {
        let unnamed = COMPLETED.replace("event: response.completed\n", "");
        let mut meter = ResponsesMeter::new();
        meter.observe_chunk(b"data: {\"type\":\"response.in_progress\",\"response\":{\"usage\":null}}\n\n");
        assert!(!meter.completed());
        meter.observe_chunk(unnamed.as_bytes());
        assert!(meter.completed());
        assert_eq!(meter.usage(), usage(20, 15, 100));
    }

    #[test]
    fn a_stream_cut_before_its_terminal_event_has_no_usage() {
        let mut meter = ResponsesMeter::new();
        meter.observe_chunk(
            b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n",
        );
        meter.observe_chunk(&COMPLETED.as_bytes()[..COMPLETED.len() - 3]);
        assert!(!meter.completed());
        assert_eq!(meter.usage(), Usage::default());
    }

    #[test]
    fn a_body_has_the_same_usage_and_cached_tokens_are_clamped() {
        let mut meter = ResponsesMeter::new();
        meter.observe_body(br#"{"object":"response","usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":9},"output_tokens":3}}"#);
        assert!(meter.completed());
        assert_eq!(meter.usage(), usage(0, 3, 7));
        let mut meter = ResponsesMeter::new();
        meter.observe_body(b"not json");
        assert!(!meter.completed());
        assert_eq!(meter.malformed_events(), 1);
    }

    #[test]
    fn a_terminal_event_without_usage_is_malformed() {
        let mut meter = ResponsesMeter::new();
        meter.observe_chunk(
            b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\"}}\n\n",
        );
        assert!(meter.completed());
        assert_eq!(meter.malformed_events(), 1);
        assert_eq!(meter.usage(), Usage::default());
    }
}
