//! The OpenAI Responses API: `/v1/responses`, the only API the Codex CLI speaks.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::UpstreamState;
use crate::common::{
    Fault, Provider, REPLY_WORDS, frames_body, new_id, reply_pieces, reply_text, served_tier, sse, to_json, unix_now,
};
use crate::usage::{ResponsesInput, Text, tokens};

const PROVIDER: Provider = Provider::OpenAi;

/// The reasoning tokens a request with a `reasoning.effort` other than `none` or `minimal`
/// spends before its reply (within `max_output_tokens`).
pub const REASONING_TOKENS: u64 = 5;

/// The fields of a request that the answer depends on; every other field is ignored.
#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    input: ResponsesInput,
    #[serde(default)]
    instructions: Text,
    stream: Option<bool>,
    max_output_tokens: Option<u64>,
    reasoning: Option<Reasoning<'a>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Reasoning<'a> {
    #[serde(borrow)]
    effort: Option<Cow<'a, str>>,
}

#[derive(Clone, Copy, Serialize)]
struct ResponseUsage {
    input_tokens: u64,
    input_tokens_details: InputTokensDetails,
    output_tokens: u64,
    output_tokens_details: OutputTokensDetails,
    total_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct InputTokensDetails {
    cached_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct OutputTokensDetails {
    reasoning_tokens: u64,
}

#[derive(Clone, Copy, Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
}

impl OutputText<'_> {
    fn of(text: &str) -> OutputText<'_> {
        OutputText { kind: "output_text", text, annotations: [] }
    }
}

/// An item of a response's `output`.
#[derive(Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Reasoning { id: &'a str, summary: [(); 0] },
    Message { id: &'a str, status: &'static str, role: &'static str, content: &'a [OutputText<'a>] },
}

#[derive(Clone, Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Clone, Serialize)]
struct ResponseError {
    code: &'static str,
    message: &'static str,
}

/// The response object: the non-streaming body, and `response` in the lifecycle events.
#[derive(Clone, Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: Option<ResponseError>,
    incomplete_details: Option<IncompleteDetails>,
    model: &'a str,
    output: &'a [Item<'a>],
    usage: Option<ResponseUsage>,
    service_tier: &'static str,
}

/// A streamed event; its `type` is also the SSE event name. [`Numbered`] adds its place.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Event<'a> {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject<'a> },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject<'a> },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: u32, item: Item<'a> },
    #[serde(rename = "response.content_part.added")]
    PartAdded { item_id: &'a str, output_index: u32, content_index: u32, part: OutputText<'a> },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { item_id: &'a str, output_index: u32, content_index: u32, delta: &'a str, logprobs: [(); 0] },
    #[serde(rename = "response.output_text.done")]
    TextDone { item_id: &'a str, output_index: u32, content_index: u32, text: &'a str },
    #[serde(rename = "response.content_part.done")]
    PartDone { item_id: &'a str, output_index: u32, content_index: u32, part: OutputText<'a> },
    #[serde(rename = "response.output_item.done")]
    ItemDone { output_index: u32, item: Item<'a> },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject<'a> },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject<'a> },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseObject<'a> },
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "response.created",
            Event::InProgress { .. } => "response.in_progress",
            Event::ItemAdded { .. } => "response.output_item.added",
            Event::PartAdded { .. } => "response.content_part.added",
            Event::TextDelta { .. } => "response.output_text.delta",
            Event::TextDone { .. } => "response.output_text.done",
            Event::PartDone { .. } => "response.content_part.done",
            Event::ItemDone { .. } => "response.output_item.done",
            Event::Completed { .. } => "response.completed",
            Event::Incomplete { .. } => "response.incomplete",
            Event::Failed { .. } => "response.failed",
        }
    }
}

/// An event with its `sequence_number`, as the API numbers them from 0.
#[derive(Serialize)]
struct Numbered<'a> {
    #[serde(flatten)]
    event: &'a Event<'a>,
    sequence_number: usize,
}

/// How a response ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    /// Cut short by `max_output_tokens`.
    Incomplete,
    /// The `-failed` fault: the response fails after two words.
    Failed,
}

/// The words of a `-failed` response and of a `-cut` stream before it stops.
const WORDS_BEFORE_FAULT: u64 = 2;

/// The model suffix of the Responses-only fault: the response fails after two words, with
/// status `failed` (streaming: a `response.failed` event) and the usage so far.
pub const FAILED_SUFFIX: &str = "-failed";

/// What the answer to a request is: its usage, its words and how it ends.
struct Plan {
    usage: ResponseUsage,
    words: u64,
    outcome: Outcome,
}

impl Plan {
    fn of(request: &ResponsesRequest<'_>, failed: bool) -> Plan {
        let limit = request.max_output_tokens.unwrap_or(u64::MAX);
        let reasons = request
            .reasoning
            .as_ref()
            .and_then(|reasoning| reasoning.effort.as_deref())
            .is_some_and(|effort| effort != "none" && effort != "minimal");
        let reasoning_tokens = if reasons { REASONING_TOKENS.min(limit) } else { 0 };
        let mut words = REPLY_WORDS.min(limit - reasoning_tokens);
        let mut outcome = if words < REPLY_WORDS { Outcome::Incomplete } else { Outcome::Completed };
        if failed {
            words = words.min(WORDS_BEFORE_FAULT);
            outcome = Outcome::Failed;
        }
        let (instructions, input) = (request.instructions, request.input.0);
        let input_tokens = tokens(instructions.bytes + input.bytes).max(1);
        let output_tokens = reasoning_tokens + words;
        let usage = ResponseUsage {
            input_tokens,
            input_tokens_details: InputTokensDetails { cached_tokens: tokens(instructions.bytes + input.cached) },
            output_tokens,
            output_tokens_details: OutputTokensDetails { reasoning_tokens },
            total_tokens: input_tokens + output_tokens,
        };
        Plan { usage, words, outcome }
    }

    fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Completed => "completed",
            Outcome::Incomplete => "incomplete",
            Outcome::Failed => "failed",
        }
    }

    fn incomplete_details(&self) -> Option<IncompleteDetails> {
        (self.outcome == Outcome::Incomplete).then_some(IncompleteDetails { reason: "max_output_tokens" })
    }

    fn error(&self) -> Option<ResponseError> {
        (self.outcome == Outcome::Failed)
            .then_some(ResponseError { code: "server_error", message: "The model failed to finish the response." })
    }
}

pub(crate) async fn responses(state: &UpstreamState, body: &[u8]) -> Response {
    let request: ResponsesRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return PROVIDER.bad_request(&error.to_string()),
    };
    if request.max_output_tokens == Some(0) {
        return PROVIDER.bad_request(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        );
    }
    let fault = Fault::of(&request.model);
    if let Some(response) = PROVIDER.fault_response(state, fault).await {
        return response;
    }
    let plan = Plan::of(&request, request.model.ends_with(FAILED_SUFFIX));
    let ids = Ids { response: new_id("resp_"), message: new_id("msg_"), reasoning: new_id("rs_") };
    let text = reply_text(plan.words);
    let content = [OutputText::of(text)];
    let mut output = Vec::with_capacity(2);
    if plan.usage.output_tokens_details.reasoning_tokens > 0 {
        output.push(Item::Reasoning { id: &ids.reasoning, summary: [] });
    }
    let message = Item::Message { id: &ids.message, status: plan.status(), role: "assistant", content: &content };
    output.push(message);
    let start = ResponseObject {
        id: &ids.response,
        object: "response",
        created_at: unix_now(),
        status: "in_progress",
        error: None,
        incomplete_details: None,
        model: &request.model,
        output: &[],
        usage: None,
        service_tier: served_tier(request.service_tier.as_deref()),
    };
    let finished = ResponseObject {
        status: plan.status(),
        error: plan.error(),
        incomplete_details: plan.incomplete_details(),
        output: &output,
        usage: Some(plan.usage),
        ..start
    };
    if request.stream != Some(true) {
        return PROVIDER.json_ok(fault, to_json(&finished)).await;
    }
    let (events, cut_after) = stream_events(&plan, &ids, &output, start, finished);
    let mut frames: Vec<Bytes> = events
        .iter()
        .enumerate()
        .map(|(sequence_number, event)| sse(Some(event.name()), &Numbered { event, sequence_number }))
        .collect();
    let cut = matches!(fault, Fault::Cut | Fault::NoUsage);
    if fault == Fault::Cut {
        frames.truncate(cut_after);
    } else if fault == Fault::NoUsage {
        // Every event but the terminal one, which carries the usage.
        frames.truncate(frames.len() - 1);
    }
    PROVIDER.event_stream(frames_body(frames, fault, cut, Some(state)))
}

/// The ids of one response and its output items.
struct Ids {
    response: String,
    message: String,
    reasoning: String,
}

/// The events of a streamed response, from `start` (in progress) to the terminal event carrying
/// `finished`; and how many of them a `-cut` stream sends (through the second text delta).
fn stream_events<'a>(
    plan: &Plan,
    ids: &'a Ids,
    output: &'a [Item<'a>],
    start: ResponseObject<'a>,
    finished: ResponseObject<'a>,
) -> (Vec<Event<'a>>, usize) {
    let mut events = vec![Event::Created { response: start.clone() }, Event::InProgress { response: start }];
    let (message, items) = output.split_last().map_or((None, output), |(last, rest)| (Some(last), rest));
    for (index, item) in items.iter().enumerate() {
        let output_index = u32::try_from(index).unwrap_or(u32::MAX);
        events.push(Event::ItemAdded { output_index, item: *item });
        events.push(Event::ItemDone { output_index, item: *item });
    }
    let output_index = u32::try_from(items.len()).unwrap_or(u32::MAX);
    let item_id = ids.message.as_str();
    let added = Item::Message { id: item_id, status: "in_progress", role: "assistant", content: &[] };
    events.push(Event::ItemAdded { output_index, item: added });
    let part = OutputText::of("");
    events.push(Event::PartAdded { item_id, output_index, content_index: 0, part });
    let mut cut_after = usize::MAX;
    for (at, delta) in reply_pieces(plan.words).enumerate() {
        events.push(Event::TextDelta { item_id, output_index, content_index: 0, delta, logprobs: [] });
        if at + 1 == WORDS_BEFORE_FAULT as usize {
            cut_after = events.len();
        }
    }
    if plan.outcome != Outcome::Failed {
        let text = reply_text(plan.words);
        events.push(Event::TextDone { item_id, output_index, content_index: 0, text });
        let part = OutputText::of(text);
        events.push(Event::PartDone { item_id, output_index, content_index: 0, part });
        if let Some(message) = message {
            events.push(Event::ItemDone { output_index, item: *message });
        }
    }
    events.push(match plan.outcome {
        Outcome::Completed => Event::Completed { response: finished },
        Outcome::Incomplete => Event::Incomplete { response: finished },
        Outcome::Failed => Event::Failed { response: finished },
    });
    (events, cut_after)
}
