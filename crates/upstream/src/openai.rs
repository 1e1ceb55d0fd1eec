//! The OpenAI Chat Completions API: `/v1/chat/completions`.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::UpstreamState;
use crate::common::{
    Fault, Provider, REPLY_WORDS, cycled, frames_body, new_id, output_words, reply_pieces, reply_text, served_tier,
    sse, to_json, trickle_body, unix_now,
};
use crate::usage::{Text, tokens};

const PROVIDER: Provider = Provider::OpenAi;

/// The fields of a request that the answer depends on; every other field is ignored.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    messages: Text,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Serialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsage,
    service_tier: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChoiceMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChoiceMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<&'a str>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    service_tier: &'static str,
    /// Absent without `include_usage`; with it, `null` on every chunk but the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a ChatUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

/// How many frames a `-cut` stream sends: the role chunk and two content chunks.
const CUT_AFTER: usize = 3;

pub(crate) async fn chat_completions(state: &UpstreamState, body: &[u8]) -> Response {
    let request: ChatRequest<'_> = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return PROVIDER.bad_request(&error.to_string()),
    };
    let limit = request.max_completion_tokens.or(request.max_tokens);
    if limit == Some(0) {
        return PROVIDER.bad_request(
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 \
             instead.",
        );
    }
    let fault = Fault::of(&request.model);
    if let Some(response) = PROVIDER.fault_response(state, fault).await {
        return response;
    }
    let trickling = fault == Fault::Trickle && request.stream == Some(true);
    let (words, finish_reason) = if trickling {
        let events = state.trickle().events;
        let words = limit.map_or(events, |limit| limit.min(events));
        (words, if words < events { "length" } else { "stop" })
    } else {
        let words = output_words(limit);
        (words, if words < REPLY_WORDS { "length" } else { "stop" })
    };
    let prompt_tokens = tokens(request.messages.bytes).max(1);
    let usage = ChatUsage {
        prompt_tokens,
        completion_tokens: words,
        total_tokens: prompt_tokens + words,
        prompt_tokens_details: PromptTokensDetails { cached_tokens: 0 },
    };
    let id = new_id("chatcmpl-");
    let created = unix_now();
    let service_tier = served_tier(request.service_tier.as_deref());
    if request.stream != Some(true) && fault != Fault::Streams {
        let completion = Completion {
            id: &id,
            object: "chat.completion",
            created,
            model: &request.model,
            choices: [Choice {
                index: 0,
                message: ChoiceMessage { role: "assistant", content: reply_text(words), refusal: None },
                logprobs: None,
                finish_reason,
            }],
            usage,
            service_tier,
        };
        return PROVIDER.json_ok(fault, to_json(&completion)).await;
    }

    let include_usage = request.stream_options.and_then(|options| options.include_usage).unwrap_or(false);
    let chunk = |delta: Delta<'_>, finish_reason: Option<&'static str>| -> Bytes {
        let choice = ChunkChoice { index: 0, delta, logprobs: None, finish_reason };
        sse(
            None,
            &Chunk {
                id: &id,
                object: "chat.completion.chunk",
                created,
                model: &request.model,
                choices: &[choice],
                service_tier,
                usage: include_usage.then_some(None),
            },
        )
    };
    let role = Delta { role: Some("assistant"), content: Some("") };
    let usage_chunk = || {
        let last = Chunk {
            id: &id,
            object: "chat.completion.chunk",
            created,
            model: &request.model,
            choices: &[],
            service_tier,
            usage: Some(Some(&usage)),
        };
        sse(None, &last)
    };
    if trickling {
        // The reply's words over and over, `words` of them, paced by the server's trickle.
        let pieces = reply_pieces(REPLY_WORDS).map(|piece| chunk(Delta { role: None, content: Some(piece) }, None));
        let mut tail = vec![chunk(Delta::default(), Some(finish_reason))];
        tail.extend(include_usage.then(usage_chunk));
        tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let content = cycled(pieces.collect(), words);
        return PROVIDER.event_stream(trickle_body(
            vec![chunk(role, None)],
            content,
            tail,
            state.trickle().every,
            state,
        ));
    }
    let mut frames = Vec::with_capacity(4 + REPLY_WORDS as usize);
    frames.push(chunk(role, None));
    for piece in reply_pieces(words) {
        let content = Delta { role: None, content: Some(piece) };
        frames.push(chunk(content, None));
    }
    frames.push(chunk(Delta::default(), Some(finish_reason)));
    if include_usage {
        frames.push(usage_chunk());
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));

    let cut = matches!(fault, Fault::Cut | Fault::NoUsage);
    if fault == Fault::Cut {
        frames.truncate(CUT_AFTER);
    } else if fault == Fault::NoUsage {
        // Through the chunk with `finish_reason`: without the usage chunk and `[DONE]`.
        frames.truncate(2 + usize::try_from(words).unwrap_or(usize::MAX));
    }
    PROVIDER.event_stream(frames_body(frames, fault, cut, Some(state)))
}
