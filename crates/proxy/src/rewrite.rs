//! Request bodies: reading and rewriting what the proxy forwards, and the credit estimate.
//!
//! The body is parsed once into a [`serde_json::Value`] ([`parse_request`]), read and rewritten
//! in place, and the proxy forwards *that* value re-serialised ([`to_body`]), never the
//! client's original bytes. So what is metered and reserved for is exactly what the upstream
//! receives, even for a body with duplicate keys (`{"max_tokens":1,"max_tokens":99999}`:
//! parsers disagree on which wins; after a round trip there is only one). Re-serialising does
//! not change the meaning of the request: object keys may come out in another order and
//! numbers in their shortest form (`1e3` as `1000.0`), which JSON consumers do not
//! distinguish.

use serde_json::{Map, Value};
use tollgate_policy::Protocol;

/// Why a request body cannot be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// Not JSON at all.
    #[error("the request body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
}

/// Parses a request body, which must be a JSON object.
pub fn parse_request(body: &[u8]) -> Result<Value, RewriteError> {
    let value: Value = serde_json::from_slice(body)?;
    if value.is_object() { Ok(value) } else { Err(RewriteError::NotAnObject) }
}

/// The JSON type a request field must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldType {
    String,
    Boolean,
    /// A non-negative integer.
    Count,
    Number,
    Object,
    Array,
    /// A string or an array (`system`, `stop`, `input`).
    StringOrArray,
}

impl FieldType {
    fn admits(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Boolean => v.is_boolean(),
            Self::Count => v.is_u64(),
            Self::Number => v.is_number(),
            Self::Object => v.is_object(),
            Self::Array => v.is_array(),
            Self::StringOrArray => v.is_string() || v.is_array(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Boolean => "a boolean",
            Self::Count => "a non-negative integer",
            Self::Number => "a number",
            Self::Object => "an object",
            Self::Array => "an array",
            Self::StringOrArray => "a string or an array",
        }
    }
}

/// Fields the proxy reads or that decide what the upstream sends back, with the type the
/// provider's API gives them. `null` is accepted where the field is optional (OpenAI documents
/// `null` as "not set"); `model` must be present.
const FIELDS: &[(&str, FieldType)] = &[
    ("model", FieldType::String),
    ("stream", FieldType::Boolean),
    ("max_tokens", FieldType::Count),
    ("max_completion_tokens", FieldType::Count),
    ("max_output_tokens", FieldType::Count),
    ("n", FieldType::Count),
    ("stream_options", FieldType::Object),
    ("messages", FieldType::Array),
    ("tools", FieldType::Array),
    ("metadata", FieldType::Object),
    ("temperature", FieldType::Number),
    ("top_p", FieldType::Number),
    ("system", FieldType::StringOrArray),
    ("stop", FieldType::StringOrArray),
    ("stop_sequences", FieldType::Array),
];

/// Checks the types of the request fields that decide metering and the credit reservation
/// (`model`, `stream`, the output limits, `stream_options.include_usage`...), so that a
/// request the proxy would read one way and the upstream another (`"stream": "true"`) is
/// refused before anything is forwarded. Returns the message of the 400 on the first wrong
/// field.
pub fn check_field_types(body: &Value) -> Result<(), String> {
    let Some(object) = body.as_object() else {
        return Err("the request body must be a JSON object".to_owned());
    };
    if !object.get("model").is_some_and(Value::is_string) {
        return Err("`model` must be a string".to_owned());
    }
    for (name, kind) in FIELDS {
        if let Some(v) = object.get(*name)
            && !v.is_null()
            && !kind.admits(v)
        {
            return Err(format!("`{name}` must be {}", kind.name()));
        }
    }
    if let Some(v) = object.get("stream_options").and_then(|o| o.get("include_usage"))
        && !v.is_null()
        && !v.is_boolean()
    {
        return Err("`stream_options.include_usage` must be a boolean".to_owned());
    }
    Ok(())
}

/// The bytes to forward for `body`.
pub fn to_body(body: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite. Straight
    // into bytes, not through `Display`'s formatter.
    serde_json::to_vec(body).unwrap_or_default()
}

/// The model the client asked for (the alias to map), if the body names one.
pub fn requested_model(body: &Value) -> Option<&str> {
    body.get("model")?.as_str()
}

/// Sets the model to forward, replacing the client's alias.
pub fn set_model(body: &mut Value, upstream_model: &str) -> Result<(), RewriteError> {
    let object = body.as_object_mut().ok_or(RewriteError::NotAnObject)?;
    object.insert("model".to_owned(), Value::String(upstream_model.to_owned()));
    Ok(())
}

/// Whether the request asks for a streamed response (`"stream": true`, both protocols).
pub fn wants_stream(body: &Value) -> bool {
    body.get("stream") == Some(&Value::Bool(true))
}

/// Makes a streaming OpenAI request report usage, and says whether the client had not asked.
///
/// For a request with `"stream": true` whose `stream_options.include_usage` is not `true`
/// (absent, `false`, or malformed), sets it to `true` and returns `true`: the client did not
/// ask for the usage chunk, so the proxy must remove it from what the client sees (see
/// [`crate::UsageChunkStripper`]). Otherwise changes nothing and returns `false`: a
/// non-streaming response always carries usage, and a client that asked sees the chunk.
/// Anthropic streams always carry usage; do not call this for them.
pub fn ensure_include_usage(body: &mut Value) -> bool {
    if !wants_stream(body) {
        return false;
    }
    let Some(object) = body.as_object_mut() else { return false };
    let options = object.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        // `null` or a value the upstream would reject anyway: replace it rather than leave the
        // response unmetered.
        *options = Value::Object(Map::new());
    }
    let Some(options) = options.as_object_mut() else { return false };
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return false;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    true
}

/// The most output tokens the request allows, for the credit reservation; `None` when the body
/// sets no limit (or not as a non-negative integer), in which case the caller must reserve for
/// the model's own maximum output.
///
/// Anthropic: `max_tokens` (required by the API; it includes any thinking budget). OpenAI:
/// `max_completion_tokens` (which includes reasoning tokens), the legacy `max_tokens`, or the
/// Responses API's `max_output_tokens` (which includes reasoning tokens), the largest if several
/// are set, times `n` when more than one choice is requested, since the usage then counts the
/// tokens of every choice.
pub fn max_output_tokens(body: &Value, protocol: Protocol) -> Option<u64> {
    let field = |name: &str| body.get(name).and_then(Value::as_u64);
    match protocol {
        Protocol::Anthropic => field("max_tokens"),
        Protocol::Openai => {
            let limits = [field("max_completion_tokens"), field("max_tokens"), field("max_output_tokens")];
            let per_choice = limits.into_iter().flatten().max()?;
            let choices = field("n").unwrap_or(1).max(1);
            Some(per_choice.saturating_mul(choices))
        }
    }
}

/// The most output tokens a request may cost: [`max_output_tokens`], or, when the request sets
/// no limit, `default` per choice (OpenAI's `n` choices each run to the default).
pub fn output_token_bound(body: &Value, protocol: Protocol, default: u64) -> u64 {
    max_output_tokens(body, protocol).unwrap_or_else(|| {
        let choices = match protocol {
            Protocol::Anthropic => 1,
            Protocol::Openai => body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1),
        };
        default.saturating_mul(choices)
    })
}

/// Tokens added to every input estimate for what the body does not carry: the provider's
/// chat template and, for an Anthropic request with tools, the tool-use system prompt that
/// the provider adds (documented at a few hundred tokens).
pub const ESTIMATE_OVERHEAD_TOKENS: u64 = 512;

/// A conservative estimate of a request's input tokens from the length of the body forwarded,
/// for the credit reservation: `ceil(body_len / 2) + ESTIMATE_OVERHEAD_TOKENS`.
///
/// # Why two bytes per token
///
/// The tokenizers in use (OpenAI's `cl100k`/`o200k`, Anthropic's) are byte-level BPE: a text
/// starts as its UTF-8 bytes and merges only ever join neighbours, so **no text has more
/// tokens than bytes**. Ordinary text has far fewer: English prose averages about 4 bytes per
/// token, source code about 3, and a common CJK character (3 bytes) is about one token. On top
/// of that, the body is JSON: keys, quotes, roles and the escapes of quotes and newlines (2
/// bytes for one character) are bytes that cost no or few tokens. So counting one token per 2
/// body bytes overestimates ordinary requests about twofold, and the constant covers the
/// framing that is not in the body.
///
/// # What this does not guarantee
///
/// - Text that tokenizes at under 2 bytes per token is under-estimated, by at most half under
///   the one-token-per-byte ceiling: long runs of digits split by punctuation (`1,2,3,4`,
///   numeric CSV) or spaces, hex strings and UUIDs (about 1.5 bytes per token), symbol soup,
///   and scripts a tokenizer covers poorly (Devanagari, Myanmar, ...) where characters fall
///   back to one token per UTF-8 byte.
/// - Inputs whose cost is not proportional to their bytes are not estimated at all: images and
///   PDF pages (priced by pixels, and a base64 image of a blank page is tiny), `url` or
///   `file_id` sources (a few bytes for a whole document), server tools' results.
/// - The estimate is in tokens; any of them may be written to the prompt cache, so the caller
///   should price them at the higher of the input and cache-write prices.
///
/// An under-estimate does not lose money: settlement charges the metered usage. It only means
/// that the reservation, which also holds the request's whole `max_tokens` at the output price
/// and is checked as one sum, may be exceeded, letting an org's balance go briefly below zero.
/// Reserving one token per byte would close the text cases at twice the cost of holding credit.
pub fn estimate_input_tokens(body_len: usize) -> u64 {
    u64::try_from(body_len).unwrap_or(u64::MAX).div_ceil(2).saturating_add(ESTIMATE_OVERHEAD_TOKENS)
}

#[cfg(test)]
mod tests;
