//! The Responses API route (`POST /openai/v1/responses`, what Codex speaks): forwarded with the
//! platform key and the upstream model, reserved for `max_output_tokens` (else the default),
//! metered from the terminal event to the exact micro-USD, one ledger row whatever happens.

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_proxy::DEFAULT_MAX_OUTPUT_TOKENS;

use crate::{App, OPENAI_KEY};

const ROUTE: &str = "/openai/v1/responses";

/// 400 bytes of instructions (100 tokens, which the stand-in reports as cached) and 80 bytes of
/// input text (20 tokens): 120 input tokens, of which 100 are cached. With reasoning, 5
/// reasoning and 10 text tokens of output.
fn request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "instructions": "i".repeat(400),
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u".repeat(80)}]}],
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "conversation-1"
    })
}

/// The price of `output` output tokens after [`request`]'s input on `platform/gpt` (input 1,
/// output 2, cache read 0.5 micro-USD per token): 20 uncached + 100 cached at 0.5 = 70.
fn cost(output: i64) -> i64 {
    20 + 50 + 2 * output
}

/// A Responses request as the OpenAI SDK and Codex send it: the token as a bearer, with
/// headers Codex 0.169.0 sends (seen by pointing it at a capturing server).
fn responses(app: &App, token: &str, body: &Value) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}{ROUTE}", app.base))
        .bearer_auth(token)
        .header("openai-beta", "responses=experimental")
        .header("session-id", "conversation-1")
        .header("originator", "codex_exec")
        .header("x-codex-turn-metadata", r#"{"installation_id":"i-1","sandbox":"seccomp"}"#)
        .header("openai-organization", "org-customer")
        .json(body)
}

/// The events of a Responses stream, by name.
fn event_names(text: &str) -> Vec<String> {
    text.lines().filter_map(|line| line.strip_prefix("event: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_response_is_forwarded_with_the_platform_key_and_charged_exactly() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let r = responses(&app, &token, &request("platform/gpt", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some(), "the request id is returned");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["usage"]["input_tokens"], 120);
    assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 100);
    assert_eq!(body["usage"]["output_tokens"], 15);
    assert_eq!(body["usage"]["output_tokens_details"]["reasoning_tokens"], 5);

    let sent = &app.upstream.requests()[0];
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.body["model"], "stub-gpt", "the alias is mapped to the upstream model");
    assert_eq!(sent.body["instructions"], request("platform/gpt", false)["instructions"]);
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(sent.header("openai-beta"), Some("responses=experimental"));
    assert_eq!(sent.header("session-id"), Some("conversation-1"));
    assert_eq!(sent.header("x-codex-turn-metadata"), None, "the customer's machine is nobody else's business");
    assert_eq!(sent.header("openai-organization"), None, "the customer's org is not the platform key's");
    assert!(
        sent.headers.iter().all(|(_, v)| !v.contains(&token)) && !sent.body.to_string().contains(&token),
        "the workspace token never reaches the upstream"
    );

    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors), (1, 0));
    assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (20, 100, 15));
    assert_eq!(u.cost_micros, cost(15), "cached tokens at the cache-read price, reasoning inside output");
    assert_eq!(app.credit().await, 1_000_000 - cost(15));
}

#[tokio::test]
async fn a_stream_is_relayed_unchanged_and_metered_from_its_terminal_event() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let r = responses(&app, &token, &request("platform/gpt", true)).send().await.unwrap();
    let (chunks, text) = crate::read_event_stream(r).await;
    let names = event_names(&text);
    assert_eq!(names.first().map(String::as_str), Some("response.created"));
    assert_eq!(names.last().map(String::as_str), Some("response.completed"));
    assert_eq!(names.iter().filter(|n| *n == "response.output_text.delta").count(), 10);
    assert!(chunks > 10, "relayed event by event, not buffered: {chunks} chunks");
    let sent = &app.upstream.requests()[0];
    assert_eq!(sent.body.get("stream_options"), None, "nothing added to a Responses request");
    assert_eq!(sent.body["stream"], true);

    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (1, 0, cost(15)));
    assert_eq!(app.credit().await, 1_000_000 - cost(15));
}

#[tokio::test]
async fn incomplete_and_failed_responses_are_charged_what_their_terminal_event_says() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    // The limit takes the 5 reasoning tokens and 3 words: response.incomplete, 8 output tokens.
    let limited = {
        let mut r = request("platform/gpt", true);
        r["max_output_tokens"] = json!(8);
        r
    };
    let text = responses(&app, &token, &limited).send().await.unwrap().text().await.unwrap();
    assert_eq!(event_names(&text).last().map(String::as_str), Some("response.incomplete"));
    let u = app.settled(1).await;
    assert_eq!(u.cost_micros, cost(8));

    // The stand-in's `-failed` model fails after 2 words (plus the 5 reasoning tokens).
    let text =
        responses(&app, &token, &request("platform/gpt-failed", true)).send().await.unwrap().text().await.unwrap();
    assert_eq!(event_names(&text).last().map(String::as_str), Some("response.failed"));
    let u = app.settled(2).await;
    assert_eq!(u.cost_micros, cost(8) + cost(7));
    assert_eq!(app.credit().await, 1_000_000 - cost(8) - cost(7));
}

#[tokio::test]
async fn the_reservation_is_max_output_tokens_else_the_default() {
    // 40 000 micro-USD: the default output limit (32 000 tokens at 2) does not fit, 1 000 does.
    let app = App::new(40_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    const { assert!(2 * DEFAULT_MAX_OUTPUT_TOKENS > 40_000) };
    let r = responses(&app, &token, &request("platform/gpt", false)).send().await.unwrap();
    assert_eq!(r.status(), 402, "no max_output_tokens: reserved for the default");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "billing_error");
    let mut limited = request("platform/gpt", false);
    limited["max_output_tokens"] = json!(1_000);
    let r = responses(&app, &token, &limited).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    assert_eq!(app.upstream.requests().len(), 1, "only the reserved request was forwarded");
    let u = app.settled(2).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (2, 1, cost(15)));
    assert_eq!(app.credit().await, 40_000 - cost(15));
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_is_one_ledger_row() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let r = responses(&app, &token, &request("platform/gpt-cut", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut broke = false;
    let mut text = String::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => broke = true,
        }
    }
    assert!(broke, "the client sees the break, not a clean end");
    assert_eq!(event_names(&text).last().map(String::as_str), Some("response.output_text.delta"));
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors), (1, 1), "one row, recorded as failed");
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros, "charged what was seen, the rest released");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_one_ledger_row() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let r = responses(&app, &token, &request("platform/gpt-slow", true)).send().await.unwrap();
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: response.created"));
    drop(stream); // the client goes away while the upstream is still sending
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors), (1, 1), "settled by the drop guard, as failed (499)");
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros);
    // And nothing more is written later.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.usage().await.requests, 1);
}

#[tokio::test]
async fn auth_and_model_errors_in_openais_shape() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let r = app.http.post(format!("{}{ROUTE}", app.base)).json(&request("platform/gpt", false)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key", "OpenAI's shape: {v}");
    let r = responses(&app, &token, &request("platform/ok", false)).send().await.unwrap();
    assert_eq!(r.status(), 404, "an Anthropic model on the OpenAI route");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("platform/gpt"), "lists what is served: {v}");
    assert!(app.upstream.requests().is_empty());
}
