//! Counting the content a stream relayed, for the estimate that charges a stream ending
//! without its usage (DESIGN.md section 13).
//!
//! What counts: the text, thinking and tool-call argument deltas of each protocol, decoded
//! (JSON escapes resolved), in UTF-8 bytes ("chars" in the names below means these bytes).
//! Framing, ids and pings do not count: they are not tokens the provider bills.
//!
//! For OpenAI models the relayed content is counted with OpenAI's published tokenizer (see
//! [`TokenCounter`]: `o200k_base` for current models, `cl100k_base` for older ones, the ranks
//! embedded in the `tiktoken-rs` crate, nothing fetched at run time), each delta on its own,
//! which is never below the count of the whole text by more than a token per delta boundary
//! and, as OpenAI streams about a token per delta, in practice the count itself. Other models
//! (Anthropic's tokenizer is not published) use a ratio:
//!
//! The estimate is `ceil(bytes / CHARS_PER_TOKEN)`. Three bytes per token is conservative for
//! the provider: English prose runs about four characters (bytes) per token with the Claude and
//! OpenAI tokenizers, code fewer; a CJK character is three bytes and about one token. Counting
//! characters instead would charge CJK text a third of its tokens. The estimate never exceeds
//! the request's worst case (the settlement caps it).

use std::borrow::Cow;

use serde::Deserialize;
use tollgate_policy::{Charge, Markup, Micros, Pricing, Usage};

/// Characters per output token assumed by the estimate; see the module docs.
pub const CHARS_PER_TOKEN: u64 = 3;

/// The tokens `chars` relayed characters are estimated at: `ceil(chars / CHARS_PER_TOKEN)`.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

/// The input tokens charged to a stream that ended before reporting any input:
/// `ceil(body_len / CHARS_PER_TOKEN)` of the body forwarded. The body's JSON framing counts
/// too, so this is above the provider's count for any prompt, but unlike the reservation's
/// estimate (`rewrite::estimate_input_tokens`, twice as dear per byte plus a fixed overhead,
/// sized to cover the worst case) it stays near what was sent.
pub fn estimate_input_tokens(body_len: usize) -> u64 {
    estimate_tokens(u64::try_from(body_len).unwrap_or(u64::MAX))
}

/// How the content a stream relayed is turned into output tokens.
#[derive(Clone, Copy, Default)]
pub enum TokenCounter {
    /// [`estimate_tokens`] of the UTF-8 bytes: for models whose tokenizer is not published.
    #[default]
    Ratio,
    /// OpenAI's published tokenizer for the model.
    Tiktoken(&'static tiktoken_rs::CoreBPE),
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ratio => "Ratio",
            Self::Tiktoken(_) => "Tiktoken",
        })
    }
}

impl TokenCounter {
    /// The counter for `upstream_model` (the name the upstream knows) on a route of
    /// `protocol`: OpenAI's tokenizer for a model `tiktoken-rs` knows as OpenAI's (`o200k_base`
    /// for the `gpt-4o`, `gpt-4.1`, `gpt-5` and o-series families, `cl100k_base` for
    /// `gpt-4`/`gpt-3.5`), else [`TokenCounter::Ratio`].
    pub fn for_model(protocol: tollgate_policy::Protocol, upstream_model: &str) -> Self {
        use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
        if protocol != tollgate_policy::Protocol::Openai {
            return Self::Ratio;
        }
        let model = upstream_model.rsplit('/').next().unwrap_or(upstream_model);
        match get_tokenizer(model) {
            Some(Tokenizer::O200kBase | Tokenizer::O200kHarmony) => Self::Tiktoken(tiktoken_rs::o200k_base_singleton()),
            Some(Tokenizer::Cl100kBase) => Self::Tiktoken(tiktoken_rs::cl100k_base_singleton()),
            _ => Self::Ratio,
        }
    }

    /// Loads the tokenizers `upstream_models` (the OpenAI models a registry serves) count with
    /// (a one-time parse of their embedded ranks), so that the first stream counted does not
    /// wait for it. Only those: each vocabulary parsed stays resident for the life of the
    /// process (tens of MiB for `o200k_base`), so one no served model uses is never loaded.
    pub fn warm_up<'a>(upstream_models: impl IntoIterator<Item = &'a str>) {
        for model in upstream_models {
            // `for_model` returns the loaded singleton: loading is the point.
            let _ = Self::for_model(tollgate_policy::Protocol::Openai, model);
        }
    }

    /// Whether this counter tokenizes (else it counts bytes for [`estimate_tokens`]).
    pub fn tokenizes(&self) -> bool {
        matches!(self, Self::Tiktoken(_))
    }

    /// The tokens of one relayed piece of content, when this counter tokenizes (`None` for
    /// [`TokenCounter::Ratio`], which counts bytes instead).
    pub fn tokens(&self, text: &str) -> Option<u64> {
        match self {
            Self::Ratio => None,
            Self::Tiktoken(bpe) => Some(bpe.encode_ordinary(text).len() as u64),
        }
    }
}

/// The output tokens of relayed content: `tokenized` when a tokenizer counted it, else
/// [`estimate_tokens`] of its `chars`.
pub fn relayed_output_tokens(chars: u64, tokenized: Option<u64>) -> u64 {
    tokenized.unwrap_or_else(|| estimate_tokens(chars))
}

/// The usage a stream that ended without its usage is charged: `max(usage seen, estimate)`.
///
/// Output: the larger of the output seen and `relayed_tokens` (the estimate of the content
/// relayed, [`relayed_output_tokens`]), the estimate capped at `max_output` (the request's
/// output limit, which the reservation covered). Input: `input_estimate`
/// ([`estimate_input_tokens`] of the body) when the stream reported no input at all, else
/// what it reported. Each component is at least what was seen.
pub fn estimated_usage(seen: Usage, relayed_tokens: u64, input_estimate: u64, max_output: u64) -> Usage {
    let no_input = seen.input_tokens == 0 && seen.cache_read_tokens == 0 && seen.cache_write_tokens == 0;
    Usage {
        input_tokens: if no_input { input_estimate } else { seen.input_tokens },
        output_tokens: seen.output_tokens.max(relayed_tokens.min(max_output)),
        ..seen
    }
}

/// The charge of an estimated `usage` at `pricing` with `markup`: what the org is charged is
/// never more than `reserved` (the request's worst case, which the client was admitted for);
/// the provider's price is reported as computed.
pub fn estimated_charge(pricing: &Pricing, usage: &Usage, markup: Markup, reserved: Micros) -> Charge {
    let charge = pricing.charge(usage, markup);
    Charge { cost: charge.cost.min(reserved), ..charge }
}

/// Whether a request's answer may hold reasoning the stream never shows: an OpenAI reasoning
/// model (`o1`, `o3`, `o4-mini`, the `gpt-5` family: `upstream_model` as the upstream knows
/// it) whose request does not turn reasoning off (`reasoning_effort` or `reasoning.effort`
/// `"none"`). Its reasoning tokens are billed as output but never relayed (the Responses API
/// relays at most a summary), so nothing the proxy saw measures them.
pub fn hides_reasoning(upstream_model: &str, body: &serde_json::Value) -> bool {
    let model = upstream_model.rsplit('/').next().unwrap_or(upstream_model);
    let o_series = model.strip_prefix('o').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let reasoning_model = o_series || model.starts_with("gpt-5");
    let effort = body
        .get("reasoning_effort")
        .or_else(|| body.get("reasoning").and_then(|r| r.get("effort")))
        .and_then(serde_json::Value::as_str);
    reasoning_model && effort != Some("none")
}

/// The usage a stream that ended without its usage is charged when its answer hides
/// reasoning ([`hides_reasoning`]): the output limit reserved (`max_output`), since the hidden
/// reasoning may have used any part of it, and never less than [`estimated_usage`]. The
/// reservation covered exactly this, so the charge stays within the worst case.
pub fn estimated_usage_hiding_reasoning(
    seen: Usage,
    relayed_chars: u64,
    input_estimate: u64,
    max_output: u64,
) -> Usage {
    let usage = estimated_usage(seen, relayed_chars, input_estimate, max_output);
    Usage { output_tokens: usage.output_tokens.max(max_output), ..usage }
}

fn count(text: Option<&Cow<'_, str>>) -> u64 {
    text.map_or(0, |t| t.len() as u64)
}

#[derive(Deserialize)]
struct AnthropicDeltaEvent<'a> {
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
}

/// `text_delta.text`, `thinking_delta.thinking`, `input_json_delta.partial_json`.
#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
}

/// The content characters of an Anthropic `content_block_delta` payload (0 for anything else
/// or anything that does not parse).
pub fn anthropic_delta_chars(data: &[u8]) -> u64 {
    match serde_json::from_slice::<AnthropicDeltaEvent<'_>>(data) {
        Ok(AnthropicDeltaEvent { delta: Some(d) }) => {
            count(d.text.as_ref()) + count(d.thinking.as_ref()) + count(d.partial_json.as_ref())
        }
        _ => 0,
    }
}

/// Calls `piece` with each content piece of an OpenAI Chat Completions chunk (what
/// [`openai_chunk_chars`] counts).
pub fn openai_chunk_pieces(data: &[u8], mut piece: impl FnMut(&str)) {
    let Ok(chunk) = serde_json::from_slice::<OpenAiChunk<'_>>(data) else {
        return;
    };
    for d in chunk.choices.iter().flatten().filter_map(|c| c.delta.as_ref()) {
        for text in [&d.content, &d.reasoning_content, &d.refusal].into_iter().flatten() {
            piece(text);
        }
        for f in d.tool_calls.iter().flatten().filter_map(|t| t.function.as_ref()) {
            for text in [&f.name, &f.arguments].into_iter().flatten() {
                piece(text);
            }
        }
    }
}

/// Calls `piece` with the string `delta` of an OpenAI Responses `*.delta` event (what
/// [`responses_delta_chars`] counts).
pub fn responses_delta_pieces(data: &[u8], mut piece: impl FnMut(&str)) {
    if let Ok(ResponsesDelta { kind: Some(kind), delta: Some(delta) }) = serde_json::from_slice(data)
        && kind.ends_with(".delta")
    {
        piece(&delta);
    }
}

#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<OpenAiChoice<'a>>>,
}

#[derive(Deserialize)]
struct OpenAiChoice<'a> {
    #[serde(borrow)]
    delta: Option<OpenAiDelta<'a>>,
}

/// `content`, `reasoning_content` (compatible servers' thinking), `refusal`, and each tool
/// call's `function.arguments`.
#[derive(Deserialize)]
struct OpenAiDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<OpenAiToolCall<'a>>>,
}

#[derive(Deserialize)]
struct OpenAiToolCall<'a> {
    #[serde(borrow)]
    function: Option<OpenAiFunction<'a>>,
}

#[derive(Deserialize)]
struct OpenAiFunction<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// The content characters of an OpenAI Chat Completions chunk (0 for anything that does not
/// parse).
pub fn openai_chunk_chars(data: &[u8]) -> u64 {
    let Ok(chunk) = serde_json::from_slice::<OpenAiChunk<'_>>(data) else {
        return 0;
    };
    chunk
        .choices
        .iter()
        .flatten()
        .filter_map(|c| c.delta.as_ref())
        .map(|d| {
            let calls = d.tool_calls.iter().flatten().filter_map(|t| t.function.as_ref());
            count(d.content.as_ref())
                + count(d.reasoning_content.as_ref())
                + count(d.refusal.as_ref())
                + calls.map(|f| count(f.name.as_ref()) + count(f.arguments.as_ref())).sum::<u64>()
        })
        .sum()
}

#[derive(Deserialize)]
struct ResponsesDelta<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
}

/// The content characters of an OpenAI Responses event: the string `delta` of any
/// `*.delta` event (output text, reasoning text and summaries, function-call arguments,
/// refusals). 0 for anything else.
pub fn responses_delta_chars(data: &[u8]) -> u64 {
    match serde_json::from_slice::<ResponsesDelta<'_>>(data) {
        Ok(ResponsesDelta { kind: Some(kind), delta }) if kind.ends_with(".delta") => count(delta.as_ref()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_counts_text_thinking_and_tool_arguments_decoded() {
        let text = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"h\u00e9llo\n"}}"#;
        assert_eq!(anthropic_delta_chars(text), 7, "decoded UTF-8 bytes: é is two");
        let thinking = br#"{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"abcd"}}"#;
        assert_eq!(anthropic_delta_chars(thinking), 4);
        let json = br#"{"type":"content_block_delta","delta":{"type":"input_json_delta","partial_json":"{\"a\":1"}}"#;
        assert_eq!(anthropic_delta_chars(json), 6);
        assert_eq!(anthropic_delta_chars(br#"{"type":"ping"}"#), 0);
        assert_eq!(anthropic_delta_chars(b"not json"), 0);
    }

    #[test]
    fn openai_counts_content_and_tool_call_arguments_of_every_choice() {
        let chunk = br#"{"choices":[{"delta":{"content":"abc"}},{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"x\""}}]}}]}"#;
        assert_eq!(openai_chunk_chars(chunk), 3 + 1 + 4);
        assert_eq!(openai_chunk_chars(br#"{"choices":[],"usage":{"prompt_tokens":3}}"#), 0);
        assert_eq!(openai_chunk_chars(b"[DONE]"), 0);
    }

    #[test]
    fn responses_counts_string_deltas_only() {
        assert_eq!(responses_delta_chars(br#"{"type":"response.output_text.delta","delta":"abcde"}"#), 5);
        assert_eq!(responses_delta_chars(br#"{"type":"response.function_call_arguments.delta","delta":"{}"}"#), 2);
        assert_eq!(responses_delta_chars(br#"{"type":"response.output_text.done","text":"abcde"}"#), 0);
    }

    #[test]
    fn the_estimated_usage_is_at_least_what_was_seen_and_the_output_estimate_is_capped() {
        let seen = Usage { input_tokens: 25, output_tokens: 1, ..Usage::default() };
        let u = estimated_usage(seen, relayed_output_tokens(30, None), 999, 1000);
        assert_eq!((u.input_tokens, u.output_tokens), (25, 10));
        let u = estimated_usage(Usage::default(), 10, 40, 4);
        assert_eq!((u.input_tokens, u.output_tokens), (40, 4));
        let seen = Usage { output_tokens: 50, ..seen };
        assert_eq!(estimated_usage(seen, 10, 999, 4).output_tokens, 50);
    }

    #[test]
    fn openai_models_are_counted_with_their_tokenizer_and_others_by_ratio() {
        use tollgate_policy::Protocol;
        let text = "Hello, world! The metering proxy counts what it relayed.";
        let o200k = TokenCounter::for_model(Protocol::Openai, "gpt-5");
        let counted = o200k.tokens(text);
        assert_eq!(counted, Some(tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64));
        assert!(counted.is_some_and(|n| n > 5 && n < 20), "{counted:?}");
        assert!(matches!(TokenCounter::for_model(Protocol::Openai, "gpt-4o-mini"), TokenCounter::Tiktoken(_)));
        assert!(matches!(TokenCounter::for_model(Protocol::Openai, "stub-gpt"), TokenCounter::Ratio));
        assert!(matches!(TokenCounter::for_model(Protocol::Anthropic, "gpt-5"), TokenCounter::Ratio));
        assert_eq!(TokenCounter::Ratio.tokens(text), None);
        assert_eq!(relayed_output_tokens(7, None), 3);
        assert_eq!(relayed_output_tokens(7, Some(1)), 1);
    }

    #[test]
    fn the_piece_visitors_see_what_the_counters_count() {
        let chunk = br#"{"choices":[{"delta":{"content":"abc"}},{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"x\""}}]}}]}"#;
        let mut seen = Vec::new();
        openai_chunk_pieces(chunk, |p| seen.push(p.to_owned()));
        assert_eq!(seen, ["abc", "f", "{\"x\""]);
        assert_eq!(seen.iter().map(|p| p.len() as u64).sum::<u64>(), openai_chunk_chars(chunk));
        let mut seen = Vec::new();
        responses_delta_pieces(br#"{"type":"response.output_text.delta","delta":"abcde"}"#, |p| {
            seen.push(p.to_owned())
        });
        assert_eq!(seen, ["abcde"]);
    }

    #[test]
    fn openai_reasoning_models_hide_reasoning_unless_it_is_turned_off() {
        let none = serde_json::json!({});
        assert!(hides_reasoning("gpt-5", &none));
        assert!(hides_reasoning("gpt-5-mini", &none));
        assert!(hides_reasoning("o3", &none));
        assert!(hides_reasoning("o4-mini", &none));
        assert!(!hides_reasoning("gpt-4.1", &none));
        assert!(!hides_reasoning("omni-moderation", &none));
        assert!(!hides_reasoning("gpt-5", &serde_json::json!({"reasoning_effort": "none"})));
        assert!(!hides_reasoning("gpt-5", &serde_json::json!({"reasoning": {"effort": "none"}})));
        assert!(hides_reasoning("gpt-5", &serde_json::json!({"reasoning": {"effort": "low"}})));
    }

    #[test]
    fn hidden_reasoning_is_charged_the_output_limit_and_at_least_the_estimate() {
        let seen = Usage { input_tokens: 25, ..Usage::default() };
        assert_eq!(estimated_usage_hiding_reasoning(seen, 30, 99, 1000).output_tokens, 1000);
        let more = Usage { output_tokens: 2000, ..seen };
        assert_eq!(estimated_usage_hiding_reasoning(more, 30, 99, 1000).output_tokens, 2000);
    }

    #[test]
    fn the_estimate_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(3), 1);
        assert_eq!(estimate_tokens(4), 2);
    }
}
