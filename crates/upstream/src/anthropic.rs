//! The Anthropic Messages API: `/v1/messages` and `/v1/messages/count_tokens`.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::UpstreamState;
use crate::common::{
    Fault, Provider, REPLY_WORDS, frames_body, new_id, output_words, reply_pieces, reply_text, sse, to_json,
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
    output_tokens: u64,
}

impl Usage {
    /// The crate docs' formulas, with the output tokens left to the caller.
    fn of(system: Text, messages: Text, output_tokens: u64) -> Usage {
        let uncached = system.bytes + messages.bytes - system.cached - messages.cached;
        Usage {
            input_tokens: tokens(uncached).max(1),
            cache_creation_input_tokens: tokens(messages.cached),
            cache_read_input_tokens: tokens(system.cached),
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

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
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
    let output = OutputUsage { output_tokens: words };
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
        let system = Text { bytes: 410, cached: 400 };
        let messages = Text { bytes: 230, cached: 200 };
        let usage = Usage::of(system, messages, 7);
        assert_eq!(usage.cache_read_input_tokens, 100);
        assert_eq!(usage.cache_creation_input_tokens, 50);
        assert_eq!(usage.input_tokens, 10);
        assert_eq!(usage.output_tokens, 7);
        assert_eq!(Usage::of(Text::default(), Text::default(), 1).input_tokens, 1);
    }
}
