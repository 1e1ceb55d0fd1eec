//! Model access (DESIGN.md section 14): a workspace's token buys only the platform models of
//! its runtime's protocol, on that protocol's routes; anything else is a 403 in the route's
//! provider shape naming the model, and nothing reaches the upstream or the credit.

use serde_json::{Value, json};

use crate::{App, chat, messages};

/// Posts `body` to `path` with `token` and returns the status and JSON body.
async fn post(app: &App, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, token, body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Asserts `body` is OpenAI's 403 shape naming `model`.
fn assert_openai_refusal(status: u16, body: &Value, model: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["code"], "permission_denied", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(model), "the message names the model: {body}");
}

/// Asserts `body` is Anthropic's 403 shape naming `model`.
fn assert_anthropic_refusal(status: u16, body: &Value, model: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(model), "the message names the model: {body}");
}

#[tokio::test]
async fn a_claude_code_token_does_not_buy_gpt_on_the_openai_routes() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let before = app.credit().await;

    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", false, None)).await;
    assert_openai_refusal(status, &body, "platform/gpt");
    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", true, None)).await;
    assert_openai_refusal(status, &body, "platform/gpt");
    let responses = json!({"model": "platform/gpt", "input": "hello"});
    let (status, body) = post(&app, "/openai/v1/responses", &token, responses).await;
    assert_openai_refusal(status, &body, "platform/gpt");

    assert!(app.upstream.requests().is_empty(), "a refused request never reaches the upstream");
    assert_eq!(app.credit().await, before, "a refused request reserves nothing");

    // The same token on its own protocol's route is served.
    let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/ok", false, 16)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_codex_token_does_not_buy_anthropic_models_on_the_anthropic_routes() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let before = app.credit().await;

    let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/ok", false, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");
    let (status, body) =
        post(&app, "/anthropic/v1/messages?beta=true", &token, messages("platform/ok", true, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");
    let (status, body) =
        post(&app, "/anthropic/v1/messages/count_tokens", &token, messages("platform/ok", false, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");

    assert!(app.upstream.requests().is_empty(), "a refused request never reaches the upstream");
    assert_eq!(app.credit().await, before, "a refused request reserves nothing");

    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", false, None)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_model_the_route_does_not_serve_is_still_404_for_either_runtime() {
    let app = App::new(1_000_000).await;
    for (runtime, model) in [("claude-code", "platform/ok"), ("codex", "platform/gpt")] {
        let (_, token) = app.workspace(runtime, model).await;
        let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/gpt", false, 16)).await;
        assert_eq!(status, 404, "{runtime}: {body}");
        let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/ok", false, None)).await;
        assert_eq!(status, 404, "{runtime}: {body}");
    }
    assert!(app.upstream.requests().is_empty());
}
