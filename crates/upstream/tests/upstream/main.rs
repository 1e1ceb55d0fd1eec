//! The stand-in upstream over real HTTP (and, for framing, in process): both protocols streaming
//! and not, the documented token counts, every fault mode, the recorder and the binary.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a test failure")]

mod chat;
mod faults;
mod messages;
mod models;
mod responses;
mod server;

use axum::body::{Body, Bytes};
use axum::http::Request;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_upstream::{Upstream, UpstreamState, router};
use tower::ServiceExt;

const KEY: &str = "sk-ant-test-key";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// An Anthropic request as the SDK sends it.
async fn anthropic(upstream: &Upstream, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", upstream.url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An OpenAI request as the SDK sends it.
async fn openai(upstream: &Upstream, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", upstream.url()))
        .bearer_auth("sk-openai-test-key")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

/// The chunks of a body as they arrived, and how the body ended.
async fn collect(response: reqwest::Response) -> (Vec<Bytes>, Result<(), reqwest::Error>) {
    let mut stream = response.bytes_stream();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => chunks.push(chunk),
            Err(error) => return (chunks, Err(error)),
        }
    }
    (chunks, Ok(()))
}

fn concat(chunks: &[Bytes]) -> String {
    String::from_utf8(chunks.concat()).unwrap()
}

/// Server-sent events as (event name, data).
fn parse_sse(text: &str) -> Vec<(Option<String>, String)> {
    assert!(text.ends_with("\n\n"), "an event stream ends with a blank line: {text:?}");
    text.split_terminator("\n\n")
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = Some(json.to_owned());
                } else {
                    panic!("unexpected line {line:?} in {text:?}");
                }
            }
            (event, data.expect("every event has data"))
        })
        .collect()
}

/// Anthropic events as (name, data), checking that each name is its data's `type`.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    parse_sse(text)
        .into_iter()
        .map(|(name, data)| {
            let name = name.expect("Anthropic events are named");
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

/// OpenAI chunks, without the final `[DONE]`, which this checks is there when `done`.
fn openai_chunks(text: &str, done: bool) -> Vec<Value> {
    let mut events = parse_sse(text);
    assert!(events.iter().all(|(name, _)| name.is_none()), "OpenAI events are unnamed");
    if done {
        assert_eq!(events.pop().unwrap().1, "[DONE]");
    }
    events
        .into_iter()
        .map(|(_, data)| {
            assert_ne!(data, "[DONE]");
            serde_json::from_str(&data).unwrap()
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The full event sequence for a reply of `words` deltas.
fn expected_names(words: usize) -> Vec<&'static str> {
    let mut names = vec!["message_start", "content_block_start", "ping"];
    names.extend(std::iter::repeat_n("content_block_delta", words));
    names.extend(["content_block_stop", "message_delta", "message_stop"]);
    names
}

fn delta_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, data)| {
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap()
        })
        .collect()
}

fn openai_text(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect()
}

/// A request whose text is 40 bytes of system prompt and 81 of messages: 121 bytes, 30 tokens.
/// Tools, metadata and the other fields count nothing.
fn plain_request(model: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "system": "s".repeat(40),
        "messages": [
            {"role": "user", "content": "u".repeat(41)},
            {"role": "assistant", "content": [
                {"type": "text", "text": "a".repeat(20)},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/etc/hosts"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r".repeat(20)}
            ]}
        ],
        "tools": [{"name": "Read", "description": "d".repeat(5000), "input_schema": {"type": "object"}}],
        "metadata": {"user_id": "user_abc"},
        "temperature": 1,
        "thinking": {"type": "disabled"}
    })
}

/// 400 bytes of cached and 10 of uncached system prompt, 200 of cached and 30 of uncached
/// messages: 100 tokens read from the cache, 50 written, 10 uncached, 160 in all.
fn cached_request(stream: bool) -> Value {
    json!({
        "model": "claude-stub",
        "max_tokens": 64000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "s".repeat(400), "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "t".repeat(10)}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "u".repeat(30)},
                {"type": "text", "text": "v".repeat(80), "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "text", "text": "w".repeat(120), "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ]}
        ]
    })
}

fn with(mut request: Value, field: &str, value: Value) -> Value {
    request[field] = value;
    request
}

/// Collects the frames of a response produced in process: each is one body frame as the
/// server hands it to hyper.
async fn frames_of(path: &str, body: &Value) -> Vec<String> {
    let request = Request::post(path)
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(UpstreamState::new(false)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.into_body().into_data_stream();
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(String::from_utf8(frame.unwrap().to_vec()).unwrap());
    }
    frames
}

/// 20 bytes of system message and 20 of user text parts: 10 prompt tokens. Other fields and
/// non-text parts count nothing.
fn chat_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "s".repeat(20)},
            {"role": "user", "content": [
                {"type": "text", "text": "u".repeat(20)},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}
        ],
        "temperature": 0.2,
        "user": "someone"
    })
}
