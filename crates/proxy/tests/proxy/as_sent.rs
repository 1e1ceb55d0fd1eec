//! Metered as sent (DESIGN.md section 13): a response is metered by what the upstream sent,
//! and a request field of the wrong type is refused before anything is forwarded.

use serde_json::{Value, json};

use crate::{App, chat, messages};

/// Posts `body` to `path` and returns (status, JSON body).
async fn post(app: &App, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, token, body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Each protocol answers a field of the wrong type with a 400 in its own error shape, naming
/// the field, and forwards nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fields_of_the_wrong_type_are_refused_before_forwarding() {
    let app = App::new(1_000_000_000).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex) = app.workspace("codex", "platform/gpt").await;
    let with = |mut body: Value, field: &str, value: Value| {
        body[field] = value;
        body
    };
    let anthropic = [
        (with(messages("platform/ok", false, 20), "stream", json!("true")), "`stream`"),
        (with(messages("platform/ok", false, 20), "max_tokens", json!("20")), "`max_tokens`"),
        (with(messages("platform/ok", false, 20), "model", json!(["platform/ok"])), "`model`"),
    ];
    for (body, field) in anthropic {
        let (status, answer) = post(&app, "/anthropic/v1/messages", &claude, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["type"], "error", "Anthropic's shape: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
    let openai = [
        ("/openai/v1/chat/completions", with(chat("platform/gpt", false, None), "stream", json!("true")), "`stream`"),
        (
            "/openai/v1/chat/completions",
            with(chat("platform/gpt", true, None), "stream_options", json!("x")),
            "`stream_options`",
        ),
        (
            "/openai/v1/chat/completions",
            with(chat("platform/gpt", false, None), "max_tokens", json!(1.5)),
            "`max_tokens`",
        ),
        ("/openai/v1/chat/completions", with(chat("platform/gpt", false, None), "model", json!(1)), "`model`"),
        ("/openai/v1/responses", json!({"model": "platform/gpt", "input": "hi", "stream": "true"}), "`stream`"),
        (
            "/openai/v1/responses",
            json!({"model": "platform/gpt", "input": "hi", "max_output_tokens": "9"}),
            "`max_output_tokens`",
        ),
    ];
    for (path, body, field) in openai {
        let (status, answer) = post(&app, path, &codex, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "OpenAI's shape: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
}

/// An Anthropic upstream that streams a request that did not ask for it is metered as the
/// stream it sent: the same usage and cost as the same request asked as a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_anthropic_stream_not_asked_for_is_metered_as_a_stream() {
    let app = App::new(1_000_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/ok", true, 50)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let asked = r.text().await.unwrap();
    assert!(asked.contains("message_stop"));
    let streamed = app.settled(1).await;
    for stream in [json!(false), Value::Null] {
        let mut body = messages("platform/streams", false, 50);
        body["stream"] = stream;
        let r = app.post("/anthropic/v1/messages", &token, body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "the upstream streamed: {content_type}");
        assert!(r.text().await.unwrap().contains("message_stop"));
    }
    let all = app.settled(3).await;
    assert_eq!(all.errors, 0);
    assert!(streamed.output_tokens > 1, "the asked stream's usage: {streamed:?}");
    assert_eq!(all.output_tokens, 3 * streamed.output_tokens, "each unasked stream metered in full: {all:?}");
    assert_eq!(all.input_tokens, 3 * streamed.input_tokens);
    assert_eq!(all.cost_micros, 3 * streamed.cost_micros);
}

/// An OpenAI upstream that streams a non-streaming request is metered from the stream it
/// sent (its usage chunk), not read as a JSON body; the client, which asked for the usage,
/// sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_stream_not_asked_for_is_metered_as_a_stream() {
    let app = App::new(1_000_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let (status, completion) =
        post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", false, None)).await;
    assert_eq!(status, 200);
    let json_usage = app.settled(1).await;
    assert_eq!(json_usage.output_tokens, completion["usage"]["completion_tokens"].as_i64().unwrap());
    let r = app
        .post("/openai/v1/chat/completions", &token, chat("platform/gpt-streams", false, Some(true)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.contains("\"usage\"") && text.contains("[DONE]"), "{text}");
    let all = app.settled(2).await;
    assert_eq!(all.errors, 0);
    assert_eq!(all.output_tokens, 2 * json_usage.output_tokens, "the stream's usage chunk was metered: {all:?}");
    assert_eq!(all.cost_micros, 2 * json_usage.cost_micros);
}
