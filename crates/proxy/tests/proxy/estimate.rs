//! Streams that end without their usage (DESIGN.md section 13): cut by the upstream after
//! the whole content (the stand-in's `-nousage` fault) or abandoned by the client. Each is
//! charged `max(usage seen, estimate of the content relayed)` at 3 characters per token,
//! the input at the reservation's estimate when no usage reported it, never more than the
//! worst case; the ledger counts it as estimated.

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_proxy::meter::relayed::estimate_input_tokens;

use crate::{App, chat, messages};

/// The characters per token the estimate assumes (the documented ratio).
const CHARS_PER_TOKEN: u64 = 3;
const CREDIT: i64 = 1_000_000;

/// Reads a response body to its end (or its break): the text the client got.
async fn read_all(r: reqwest::Response) -> String {
    let mut text = String::new();
    let mut stream = r.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// The JSON payloads of a stream's `data:` lines.
fn payloads(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect()
}

/// The content characters of the deltas a client received, by protocol.
fn anthropic_chars(text: &str) -> u64 {
    let deltas = payloads(text).into_iter().filter(|p| p["type"] == "content_block_delta");
    deltas.map(|p| p["delta"]["text"].as_str().unwrap_or("").chars().count() as u64).sum()
}

fn chat_chars(text: &str) -> u64 {
    let chunks = payloads(text);
    let contents = chunks.iter().flat_map(|p| p["choices"].as_array().cloned().unwrap_or_default());
    contents.map(|c| c["delta"]["content"].as_str().unwrap_or("").chars().count() as u64).sum()
}

fn responses_chars(text: &str) -> u64 {
    let deltas = payloads(text).into_iter().filter(|p| p["type"].as_str().is_some_and(|t| t.ends_with(".delta")));
    deltas.map(|p| p["delta"].as_str().unwrap_or("").chars().count() as u64).sum()
}

/// The `input_tokens` of an Anthropic stream's `message_start`.
fn message_start_input(text: &str) -> i64 {
    let start = payloads(text).into_iter().find(|p| p["type"] == "message_start").unwrap();
    start["message"]["usage"]["input_tokens"].as_i64().unwrap()
}

/// The input the reservation estimated for `body`, as the proxy receives it.
fn input_estimate(body: &Value) -> i64 {
    i64::try_from(estimate_input_tokens(serde_json::to_vec(body).unwrap().len())).unwrap()
}

fn tokens(chars: u64) -> i64 {
    i64::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap()
}

/// Prices of the test registry: input 1, output 2 micro-USD per token.
fn cost(input: i64, output: i64) -> i64 {
    input + 2 * output
}

#[tokio::test]
async fn anthropic_stream_cut_before_its_usage_is_charged_the_content_it_relayed() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/nousage", true, 50)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = read_all(r).await;
    assert!(text.contains("content_block_stop") && !text.contains("message_delta"), "{text}");
    let (input, output) = (message_start_input(&text), tokens(anthropic_chars(&text)));
    // The whole reply (10 words, 67 characters): 23 tokens estimated against the 10 the
    // stand-in reports when it sends its usage, instead of the 1 of `message_start`.
    assert_eq!(output, 23);
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.estimated_requests), (1, 1, 1));
    assert_eq!((u.input_tokens, u.output_tokens), (input, output));
    assert_eq!(u.cost_micros, cost(input, output));
    assert_eq!(app.credit().await, CREDIT - u.cost_micros);
}

#[tokio::test]
async fn a_complete_anthropic_stream_is_charged_its_reported_usage_not_an_estimate() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/slow", true, 50)).send().await.unwrap();
    let text = read_all(r).await;
    let u = app.settled(1).await;
    assert_eq!((u.errors, u.estimated_requests, u.output_tokens), (0, 0, 10));
    assert_eq!(u.input_tokens, message_start_input(&text));
}

#[tokio::test]
async fn openai_chat_stream_cut_before_its_usage_chunk_is_charged_the_content_and_the_input_estimate() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let mut body = chat("platform/gpt-nousage", true, None);
    body["max_tokens"] = json!(50);
    let r = app.post("/openai/v1/chat/completions", &token, body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = read_all(r).await;
    assert!(text.contains("finish_reason\":\"stop") && !text.contains("[DONE]"), "{text}");
    let (input, output) = (input_estimate(&body), tokens(chat_chars(&text)));
    assert_eq!(output, 23, "the whole reply, 67 characters");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.estimated_requests), (1, 1, 1));
    assert_eq!((u.input_tokens, u.output_tokens), (input, output), "was 0 and 0 before");
    assert_eq!(u.cost_micros, cost(input, output));
    assert_eq!(app.credit().await, CREDIT - u.cost_micros);
}

#[tokio::test]
async fn the_estimate_never_exceeds_the_output_limit_reserved() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    // max_tokens 8: 8 words (48 characters, 16 tokens estimated) are relayed; 8 are charged.
    let body = chat("platform/gpt-nousage", true, None);
    let text = read_all(app.post("/openai/v1/chat/completions", &token, body.clone()).send().await.unwrap()).await;
    assert_eq!(tokens(chat_chars(&text)), 16);
    let u = app.settled(1).await;
    assert_eq!((u.input_tokens, u.output_tokens, u.estimated_requests), (input_estimate(&body), 8, 1));
}

#[tokio::test]
async fn responses_stream_cut_before_its_terminal_event_is_charged_the_content_and_the_input_estimate() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let body = json!({
        "model": "platform/gpt-nousage",
        "stream": true,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u".repeat(80)}]}],
    });
    let r = app
        .http
        .post(format!("{}/openai/v1/responses", app.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = read_all(r).await;
    assert!(text.contains("response.output_text.done") && !text.contains("response.completed"), "{text}");
    let (input, output) = (input_estimate(&body), tokens(responses_chars(&text)));
    assert_eq!(output, 23, "the whole reply, 67 characters");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.estimated_requests), (1, 1, 1));
    assert_eq!((u.input_tokens, u.output_tokens), (input, output));
    assert_eq!(u.cost_micros, cost(input, output));
    assert_eq!(app.credit().await, CREDIT - u.cost_micros);
}

/// Reads a `-slow` stream until `enough` says the client has what it wants, then goes away.
/// Returns what it read.
async fn abandon(r: reqwest::Response, enough: impl Fn(&str) -> bool) -> String {
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let mut stream = r.bytes_stream();
    while !enough(&text) {
        let chunk = stream.next().await.unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    text
}

/// The client abandoned the stream after reading `read` output tokens' worth of content: the
/// charge covers at least that, and at most the worst case reserved.
async fn assert_abandoned_charge(app: &App, input: i64, read: i64, max_output: i64) {
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.estimated_requests), (1, 1, 1), "{u:?}");
    assert_eq!(u.input_tokens, input);
    assert!(u.output_tokens >= read && u.output_tokens <= max_output, "{u:?}, read {read}");
    assert_eq!(u.cost_micros, cost(u.input_tokens, u.output_tokens));
    assert_eq!(app.credit().await, CREDIT - u.cost_micros);
}

#[tokio::test]
async fn an_abandoned_anthropic_stream_is_charged_at_least_the_content_the_client_read() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/slow", true, 50)).send().await.unwrap();
    let text = abandon(r, |t| anthropic_chars(t) >= 10).await;
    assert_abandoned_charge(&app, message_start_input(&text), tokens(anthropic_chars(&text)), 50).await;
}

#[tokio::test]
async fn an_abandoned_openai_chat_stream_is_charged_at_least_the_content_the_client_read() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let mut body = chat("platform/gpt-slow", true, None);
    body["max_tokens"] = json!(50);
    let r = app.post("/openai/v1/chat/completions", &token, body.clone()).send().await.unwrap();
    let text = abandon(r, |t| chat_chars(t) >= 10).await;
    assert_abandoned_charge(&app, input_estimate(&body), tokens(chat_chars(&text)), 50).await;
}

#[tokio::test]
async fn an_abandoned_responses_stream_is_charged_at_least_the_content_the_client_read() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let body = json!({"model": "platform/gpt-slow", "stream": true, "max_output_tokens": 50, "input": "hello"});
    let r = app
        .http
        .post(format!("{}/openai/v1/responses", app.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = abandon(r, |t| responses_chars(t) >= 10).await;
    assert_abandoned_charge(&app, input_estimate(&body), tokens(responses_chars(&text)), 50).await;
}

/// Waits until the stand-in upstream has seen `n` streams dropped before their end.
async fn upstream_abandoned(app: &App, n: u64) {
    for _ in 0..400 {
        if app.upstream.abandoned_streams() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the upstream saw {} abandoned streams, not {n}", app.upstream.abandoned_streams());
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request_on_every_protocol() {
    let app = App::new(CREDIT).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex) = app.workspace("codex", "platform/gpt").await;
    // Read to the end, a stream is not abandoned: the count below is the proxy's doing.
    read_all(app.post("/anthropic/v1/messages", &claude, messages("platform/ok", true, 50)).send().await.unwrap())
        .await;
    app.settled(1).await;
    assert_eq!(app.upstream.abandoned_streams(), 0);

    // Each `-slow` stream would take seconds more; the client leaves after its first chunk.
    let r = app.post("/anthropic/v1/messages", &claude, messages("platform/slow", true, 50)).send().await.unwrap();
    abandon(r, |t| !t.is_empty()).await;
    upstream_abandoned(&app, 1).await;
    let r =
        app.post("/openai/v1/chat/completions", &codex, chat("platform/gpt-slow", true, None)).send().await.unwrap();
    abandon(r, |t| !t.is_empty()).await;
    upstream_abandoned(&app, 2).await;
    let body = json!({"model": "platform/gpt-slow", "stream": true, "input": "hello"});
    let url = format!("{}/openai/v1/responses", app.base);
    let r = app.http.post(url).bearer_auth(&codex).json(&body).send().await.unwrap();
    abandon(r, |t| !t.is_empty()).await;
    upstream_abandoned(&app, 3).await;
    app.settled(4).await;
}

/// A stream that ends properly (`message_stop`) without its final usage (`message_delta`):
/// the output is estimated from the content relayed, not the 1 token of `message_start`.
#[tokio::test]
async fn a_completed_anthropic_stream_without_its_final_usage_is_charged_the_estimate() {
    let app = App::new(CREDIT).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/nofinal", true, 50)).send().await.unwrap();
    let text = read_all(r).await;
    assert!(text.contains("message_stop") && !text.contains("message_delta"), "{text}");
    let (input, output) = (message_start_input(&text), tokens(anthropic_chars(&text)));
    assert_eq!(output, 23, "the whole reply, 67 characters");
    let u = app.settled(1).await;
    assert_eq!(u.estimated_requests, 1);
    assert_eq!((u.input_tokens, u.output_tokens), (input, output), "was 1 output token before");
    assert_eq!(u.cost_micros, cost(input, output));
}
