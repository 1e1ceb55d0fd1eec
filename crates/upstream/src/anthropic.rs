//! The Anthropic Messages API: `/v1/messages` and `/v1/messages/count_tokens`.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::UpstreamState;
use crate::common::{
    Fault, Provider, REPLY_WORDS, cycled, frames_body, new_id, output_words, reply_pieces, reply_text, sse, to_json,
    trickle_body,
};
use crate::usage::{Text, tokens};

const PROVIDER: Provider = Provider::Anthropic;

/// The fields of a Messages request that the answer depends on; every other field is ignored.
#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    max_tokens: u64,
    stream: Option<bool>,
    #[serde(default)]
    system: Text,
    messages: Text,
}

#[derive(Deserialize)]
struct CountTokensRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    system: Text,
    messages: Text,
}

#[derive(Clone, Copy, Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
}

/// The cache writes split by TTL, as the real API reports them.
#[derive(Clone, Copy, Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

impl Usage {
    /// The crate docs' formulas, with the output tokens left to the caller.
    fn of(system: Text, messages: Text, output_tokens: u64) -> Usage {
        let uncached = system.bytes + messages.bytes - system.cached - messages.cached;
        let one_hour = messages.cached_1h.min(messages.cached);
        let split = CacheCreation {
            ephemeral_5m_input_tokens: tokens(messages.cached - one_hour),
            ephemeral_1h_input_tokens: tokens(one_hour),
        };
        Usage {
            input_tokens: tokens(uncached).max(1),
            cache_creation_input_tokens: split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens,
            cache_read_input_tokens: tokens(system.cached),
            cache_creation: split,
            output_tokens,
        }
    }
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: &'a [TextBlock<'a>],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: Usage,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

/// `message_delta`'s usage: cumulative, the input side included (as the current API sends
/// it), so that a meter reading only the last event still sees the cache-write split.
#[derive(Serialize)]
struct OutputUsage {
    #[serde(flatten)]
    usage: Usage,
}

/// A streamed event; its `type` is also the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: Message<'a> },
    ContentBlockStart { index: u32, content_block: TextBlock<'a> },
    Ping,
    ContentBlockDelta { index: u32, delta: TextDelta<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopDelta, usage: OutputUsage },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }

    fn frame(&self) -> Bytes {
        sse(Some(self.name()), self)
    }
}

/// How many frames a `-cut` stream sends: `message_start`, `content_block_start`, `ping` and two
/// deltas.
const CUT_AFTER: usize = 5;

pub(crate) async fn messages(state: &UpstreamState, body: &[u8]) -> Response {
    let request: MessagesRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return PROVIDER.bad_request(&error.to_string()),
    };
    if request.max_tokens == 0 {
        return PROVIDER.bad_request("max_tokens: must be greater than or equal to 1");
    }
    let fault = Fault::of(&request.model);
    if let Some(response) = PROVIDER.fault_response(state, fault).await {
        return response;
    }
    if fault == Fault::Trickle && request.stream == Some(true) {
        return trickle(state, &request);
    }
    let words = output_words(Some(request.max_tokens));
    let stop_reason = if words < REPLY_WORDS { "max_tokens" } else { "end_turn" };
    let usage = Usage::of(request.system, request.messages, words);
    let id = new_id("msg_");
    if request.stream != Some(true) && fault != Fault::Streams {
        let message = Message {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &request.model,
            content: &[TextBlock { kind: "text", text: reply_text(words) }],
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage,
        };
        return PROVIDER.json_ok(fault, to_json(&message)).await;
    }

    let mut frames = Vec::with_capacity(6 + REPLY_WORDS as usize);
    let start = Message {
        id: &id,
        kind: "message",
        role: "assistant",
        model: &request.model,
        content: &[],
        stop_reason: None,
        stop_sequence: None,
        usage: Usage { output_tokens: 1, ..usage },
    };
    frames.push(Event::MessageStart { message: start }.frame());
    let block = TextBlock { kind: "text", text: "" };
    frames.push(Event::ContentBlockStart { index: 0, content_block: block }.frame());
    frames.push(Event::Ping.frame());
    for piece in reply_pieces(words) {
        let delta = TextDelta { kind: "text_delta", text: piece };
        frames.push(Event::ContentBlockDelta { index: 0, delta }.frame());
    }
    frames.push(Event::ContentBlockStop { index: 0 }.frame());
    let delta = StopDelta { stop_reason, stop_sequence: None };
    let output = OutputUsage { usage: Usage { output_tokens: words, ..usage } };
    frames.push(Event::MessageDelta { delta, usage: output }.frame());
    frames.push(Event::MessageStop.frame());

    let cut = matches!(fault, Fault::Cut | Fault::NoUsage);
    if fault == Fault::Cut {
        frames.truncate(CUT_AFTER);
    } else if fault == Fault::NoUsage {
        // Through `content_block_stop`: without `message_delta` and `message_stop`.
        frames.truncate(frames.len() - 2);
    } else if fault == Fault::NoFinal {
        // `message_stop` without the `message_delta` that carries the output count.
        frames.remove(frames.len() - 2);
    }
    PROVIDER.event_stream(frames_body(frames, fault, cut, Some(state)))
}

/// A `-trickle` stream: the usual events, with `min(events, max_tokens)` content deltas (the
/// reply's words over and over) paced by the server's [`crate::Trickle`].
fn trickle(state: &UpstreamState, request: &MessagesRequest<'_>) -> Response {
    let pace = state.trickle();
    let words = pace.events.min(request.max_tokens);
    let stop_reason = if words < pace.events { "max_tokens" } else { "end_turn" };
    let usage = Usage::of(request.system, request.messages, words);
    let id = new_id("msg_");
    let start = Message {
        id: &id,
        kind: "message",
        role: "assistant",
        model: &request.model,
        content: &[],
        stop_reason: None,
        stop_sequence: None,
        usage: Usage { output_tokens: 1, ..usage },
    };
    let block = TextBlock { kind: "text", text: "" };
    let head = vec![
        Event::MessageStart { message: start }.frame(),
        Event::ContentBlockStart { index: 0, content_block: block }.frame(),
        Event::Ping.frame(),
    ];
    let pieces = reply_pieces(REPLY_WORDS)
        .map(|piece| {
            Event::ContentBlockDelta { index: 0, delta: TextDelta { kind: "text_delta", text: piece } }.frame()
        })
        .collect();
    let delta = StopDelta { stop_reason, stop_sequence: None };
    let output = OutputUsage { usage: Usage { output_tokens: words, ..usage } };
    let tail = vec![
        Event::ContentBlockStop { index: 0 }.frame(),
        Event::MessageDelta { delta, usage: output }.frame(),
        Event::MessageStop.frame(),
    ];
    PROVIDER.event_stream(trickle_body(head, cycled(pieces, words), tail, pace.every, state))
}

pub(crate) async fn count_tokens(state: &UpstreamState, body: &[u8]) -> Response {
    #[derive(Serialize)]
    struct Count {
        input_tokens: u64,
    }

    let request: CountTokensRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return PROVIDER.bad_request(&error.to_string()),
    };
    let fault = Fault::of(&request.model);
    if let Some(response) = PROVIDER.fault_response(state, fault).await {
        return response;
    }
    let count = Count { input_tokens: tokens(request.system.bytes + request.messages.bytes).max(1) };
    PROVIDER.json_ok(fault, to_json(&count)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_splits_cached_text_by_place() {
        let system = Text { bytes: 410, cached: 400, cached_1h: 0 };
        let messages = Text { bytes: 230, cached: 200, cached_1h: 120 };
        let usage = Usage::of(system, messages, 7);
        assert_eq!(usage.cache_read_input_tokens, 100);
        assert_eq!(usage.cache_creation_input_tokens, 50);
        assert_eq!(
            (usage.cache_creation.ephemeral_5m_input_tokens, usage.cache_creation.ephemeral_1h_input_tokens),
            (20, 30),
            "80 bytes written for 5 minutes, 120 for an hour"
        );
        assert_eq!(usage.input_tokens, 10);
        assert_eq!(usage.output_tokens, 7);
        assert_eq!(Usage::of(Text::default(), Text::default(), 1).input_tokens, 1);
    }
}
