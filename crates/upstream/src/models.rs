//! The model lists: `GET /v1/models` and `GET /v1/models/{id}`, in the shape of the provider
//! the request looks like.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::common::{Provider, to_json};

/// The models the stand-in lists, Anthropic's and OpenAI's. Every model is served whatever
/// it is called: the lists are only for clients that discover models.
pub const ANTHROPIC_MODELS: [&str; 2] = ["claude-stub", "claude-stub-haiku"];
/// See [`ANTHROPIC_MODELS`].
pub const OPENAI_MODELS: [&str; 2] = ["gpt-stub", "gpt-stub-mini"];

/// When the listed models were created: a fixed time, so that answers are deterministic.
const CREATED_AT: &str = "2025-01-01T00:00:00Z";
const CREATED: u64 = 1_735_689_600;

/// A request is Anthropic's when it carries `anthropic-version` or `x-api-key` (the SDK and
/// Claude Code send both), else OpenAI's.
pub(crate) fn provider_of(headers: &HeaderMap) -> Provider {
    if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        Provider::Anthropic
    } else {
        Provider::OpenAi
    }
}

#[derive(Serialize)]
struct AnthropicModel<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

#[derive(Serialize)]
struct AnthropicList<'a> {
    data: Vec<AnthropicModel<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

#[derive(Serialize)]
struct OpenAiModel<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct OpenAiList<'a> {
    object: &'static str,
    data: Vec<OpenAiModel<'a>>,
}

fn anthropic_model(id: &str) -> AnthropicModel<'_> {
    AnthropicModel { kind: "model", id, display_name: id, created_at: CREATED_AT }
}

fn openai_model(id: &str) -> OpenAiModel<'_> {
    OpenAiModel { id, object: "model", created: CREATED, owned_by: "tollgate-upstream" }
}

/// `GET /v1/models`: the list in `provider`'s shape.
pub(crate) fn list(provider: Provider) -> Response {
    let body = match provider {
        Provider::Anthropic => to_json(&AnthropicList {
            data: ANTHROPIC_MODELS.iter().map(|id| anthropic_model(id)).collect(),
            has_more: false,
            first_id: ANTHROPIC_MODELS.first().copied(),
            last_id: ANTHROPIC_MODELS.last().copied(),
        }),
        Provider::OpenAi => {
            to_json(&OpenAiList { object: "list", data: OPENAI_MODELS.iter().map(|id| openai_model(id)).collect() })
        }
    };
    provider.json(StatusCode::OK, body)
}

/// `GET /v1/models/{id}`: one model in `provider`'s shape. Any id is a model (every model is
/// served), so this never answers 404.
pub(crate) fn retrieve(provider: Provider, id: &str) -> Response {
    let body = match provider {
        Provider::Anthropic => to_json(&anthropic_model(id)),
        Provider::OpenAi => to_json(&openai_model(id)),
    };
    provider.json(StatusCode::OK, body)
}
