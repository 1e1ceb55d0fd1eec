//! The stand-in upstream over real HTTP (and, for framing, in process): both protocols streaming
//! and not, the documented token counts, every fault mode, the recorder and the binary.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a test failure")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::Request;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_upstream::{REPLY, REPLY_WORDS, SLOW_CHUNK_DELAY, Upstream, UpstreamState, router};
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
                {"type": "text", "text": "v".repeat(200), "cache_control": {"type": "ephemeral", "ttl": "5m"}}
            ]}
        ]
    })
}

fn with(mut request: Value, field: &str, value: Value) -> Value {
    request[field] = value;
    request
}

#[tokio::test]
async fn anthropic_message_has_the_documented_shape_and_usage() {
    let upstream = Upstream::start().await.unwrap();
    let response = anthropic(&upstream, "/v1/messages?beta=true", &plain_request("claude-stub")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert!(header(&response, "request-id").starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() > 10, "{id}");
    assert_eq!(
        body,
        json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": "claude-stub",
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 30,
                "output_tokens": REPLY_WORDS,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0
            }
        })
    );
}

#[tokio::test]
async fn anthropic_ids_are_fresh() {
    let upstream = Upstream::start().await.unwrap();
    let first: Value = anthropic(&upstream, "/v1/messages", &plain_request("m")).await.json().await.unwrap();
    let second: Value = anthropic(&upstream, "/v1/messages", &plain_request("m")).await.json().await.unwrap();
    assert_ne!(first["id"], second["id"]);
}

#[tokio::test]
async fn anthropic_max_tokens_cuts_the_reply_short() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(plain_request("claude-stub"), "max_tokens", json!(3));
    let body: Value = anthropic(&upstream, "/v1/messages", &request).await.json().await.unwrap();
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hello from the"}]));
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["usage"]["output_tokens"], 3);

    let request = with(with(request, "max_tokens", json!(2)), "stream", json!(true));
    let text = anthropic(&upstream, "/v1/messages", &request).await.text().await.unwrap();
    let events = anthropic_events(&text);
    assert_eq!(names(&events), expected_names(2));
    assert_eq!(delta_text(&events), "Hello from");
    assert_eq!(events[6].1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(events[6].1["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn anthropic_cache_control_blocks_are_read_from_and_written_to_the_cache() {
    let upstream = Upstream::start().await.unwrap();
    let usage = json!({
        "input_tokens": 10,
        "output_tokens": REPLY_WORDS,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 100
    });
    let body: Value = anthropic(&upstream, "/v1/messages", &cached_request(false)).await.json().await.unwrap();
    assert_eq!(body["usage"], usage);

    let text = anthropic(&upstream, "/v1/messages", &cached_request(true)).await.text().await.unwrap();
    let events = anthropic_events(&text);
    assert_eq!(events[0].1["message"]["usage"], with(usage, "output_tokens", json!(1)));

    let count: Value =
        anthropic(&upstream, "/v1/messages/count_tokens", &cached_request(false)).await.json().await.unwrap();
    assert_eq!(count, json!({"input_tokens": 160}));
}

#[tokio::test]
async fn anthropic_stream_is_the_exact_event_sequence() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(plain_request("claude-stub"), "stream", json!(true));
    let response = anthropic(&upstream, "/v1/messages?beta=true", &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream; charset=utf-8");
    assert!(header(&response, "request-id").starts_with("req_"));
    let (chunks, end) = collect(response).await;
    end.unwrap();
    let text = concat(&chunks);
    assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
    let events = anthropic_events(&text);
    assert_eq!(names(&events), expected_names(REPLY_WORDS as usize));

    let message = &events[0].1["message"];
    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(
        events[0].1,
        json!({"type": "message_start", "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": "claude-stub",
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {
                "input_tokens": 30,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1
            }
        }})
    );
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(events[2].1, json!({"type": "ping"}));
    assert_eq!(
        events[3].1,
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
    );
    assert_eq!(delta_text(&events), REPLY);
    let n = events.len();
    assert_eq!(events[n - 3].1, json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        events[n - 2].1,
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": REPLY_WORDS}
        })
    );
    assert_eq!(events[n - 1].1, json!({"type": "message_stop"}));
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

#[tokio::test]
async fn every_event_is_its_own_frame() {
    let request = with(plain_request("claude-stub"), "stream", json!(true));
    let frames = frames_of("/v1/messages", &request).await;
    assert_eq!(frames.len(), expected_names(REPLY_WORDS as usize).len());
    for frame in &frames {
        assert!(frame.starts_with("event: ") && frame.ends_with("\n\n"), "{frame:?}");
        assert_eq!(frame.matches("\n\n").count(), 1, "{frame:?}");
    }

    let request = json!({
        "model": "gpt-stub",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let frames = frames_of("/v1/chat/completions", &request).await;
    // Role, one per word, finish, usage, [DONE].
    assert_eq!(frames.len(), REPLY_WORDS as usize + 4);
    for frame in &frames {
        assert!(frame.starts_with("data: ") && frame.ends_with("\n\n"), "{frame:?}");
        assert_eq!(frame.matches("\n\n").count(), 1, "{frame:?}");
    }
}

#[tokio::test]
async fn count_tokens_counts_system_and_messages() {
    let upstream = Upstream::start().await.unwrap();
    let mut request = plain_request("claude-stub");
    request.as_object_mut().unwrap().remove("max_tokens");
    let response = anthropic(&upstream, "/v1/messages/count_tokens?beta=true", &request).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "request-id").starts_with("req_"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": 30}));

    let tiny = json!({"model": "claude-stub", "messages": [{"role": "user", "content": "hi"}]});
    let count: Value = anthropic(&upstream, "/v1/messages/count_tokens", &tiny).await.json().await.unwrap();
    assert_eq!(count, json!({"input_tokens": 1}), "at least one token");
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

#[tokio::test]
async fn openai_completion_has_the_documented_shape_and_usage() {
    let upstream = Upstream::start().await.unwrap();
    let response = openai(&upstream, &chat_request("gpt-stub")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert!(header(&response, "x-request-id").starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"), "{id}");
    let created = body["created"].as_u64().unwrap();
    assert!(created > 1_700_000_000);
    assert_eq!(
        body,
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": "gpt-stub",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": REPLY_WORDS,
                "total_tokens": 10 + REPLY_WORDS,
                "prompt_tokens_details": {"cached_tokens": 0}
            }
        })
    );
}

#[tokio::test]
async fn openai_token_limits_cut_the_reply_short() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(chat_request("gpt-stub"), "max_completion_tokens", json!(4));
    let body: Value = openai(&upstream, &request).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the stand-in");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 4);
    assert_eq!(body["usage"]["total_tokens"], 14);

    let request = with(chat_request("gpt-stub"), "max_tokens", json!(2));
    let body: Value = openai(&upstream, &request).await.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 2);

    // max_completion_tokens wins over the deprecated max_tokens.
    let request = with(with(request, "max_completion_tokens", json!(5)), "max_tokens", json!(2));
    let body: Value = openai(&upstream, &request).await.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5);

    let request = with(chat_request("gpt-stub"), "max_tokens", json!(null));
    let body: Value = openai(&upstream, &request).await.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], REPLY_WORDS);
}

#[tokio::test]
async fn openai_stream_without_include_usage_has_no_usage_chunk() {
    let upstream = Upstream::start().await.unwrap();
    for request in [
        with(chat_request("gpt-stub"), "stream", json!(true)),
        with(with(chat_request("gpt-stub"), "stream", json!(true)), "stream_options", json!({"include_usage": false})),
    ] {
        let response = openai(&upstream, &request).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "text/event-stream; charset=utf-8");
        assert!(header(&response, "x-request-id").starts_with("req_"));
        let text = response.text().await.unwrap();
        let chunks = openai_chunks(&text, true);
        assert_eq!(chunks.len(), REPLY_WORDS as usize + 2, "role, words, finish");
        let id = chunks[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-"));
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], id);
            assert_eq!(chunk["model"], "gpt-stub");
            assert!(chunk.get("usage").is_none(), "no usage without include_usage: {chunk}");
            assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
        }
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "Hello"}));
        assert_eq!(openai_text(&chunks), REPLY);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["delta"], json!({}));
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn openai_stream_with_include_usage_ends_with_a_usage_chunk() {
    let upstream = Upstream::start().await.unwrap();
    let request = json!({
        "model": "gpt-stub",
        "messages": [{"role": "user", "content": "u".repeat(80)}],
        "max_tokens": 3,
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let text = openai(&upstream, &request).await.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = openai_chunks(&text, true);
    assert_eq!(chunks.len(), 3 + 3, "role, 3 words, finish, usage");
    let (usage, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk.get("usage").is_some(), "every chunk carries usage: null");
    }
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "length");
    assert_eq!(openai_text(rest), "Hello from the");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["object"], "chat.completion.chunk");
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23, "prompt_tokens_details": {"cached_tokens": 0}})
    );
}

#[tokio::test]
async fn overloaded_models_get_the_providers_overloaded_error() {
    let upstream = Upstream::start().await.unwrap();
    for stream in [false, true] {
        let request = with(plain_request("claude-stub-overloaded"), "stream", json!(stream));
        let response = anthropic(&upstream, "/v1/messages", &request).await;
        assert_eq!(response.status().as_u16(), 529);
        assert_eq!(header(&response, "content-type"), "application/json");
        assert!(header(&response, "request-id").starts_with("req_"));
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        );

        let request = with(chat_request("gpt-stub-overloaded"), "stream", json!(stream));
        let response = openai(&upstream, &request).await;
        assert_eq!(response.status().as_u16(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(body["error"]["code"], Value::Null);
        assert!(body["error"]["message"].as_str().unwrap().contains("overloaded"));
    }
    let count = anthropic(&upstream, "/v1/messages/count_tokens", &plain_request("claude-overloaded")).await;
    assert_eq!(count.status().as_u16(), 529);
}

#[tokio::test]
async fn unauthorized_models_get_the_providers_401() {
    let upstream = Upstream::start().await.unwrap();
    let response = anthropic(&upstream, "/v1/messages", &plain_request("claude-stub-unauthorized")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );

    let response = openai(&upstream, &chat_request("gpt-stub-unauthorized")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": null,
            "code": "invalid_api_key"
        }})
    );
}

#[tokio::test]
async fn cut_anthropic_stream_breaks_after_two_deltas() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(plain_request("claude-stub-cut"), "stream", json!(true));
    let response = anthropic(&upstream, "/v1/messages", &request).await;
    assert_eq!(response.status(), 200);
    let (chunks, end) = collect(response).await;
    assert!(end.is_err(), "the body must end in an error, not cleanly");
    let events = anthropic_events(&concat(&chunks));
    assert_eq!(
        names(&events),
        ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta"]
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 30);
    assert_eq!(delta_text(&events), "Hello from");
}

#[tokio::test]
async fn cut_openai_stream_breaks_after_two_chunks() {
    let upstream = Upstream::start().await.unwrap();
    let request = json!({
        "model": "gpt-stub-cut",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let response = openai(&upstream, &request).await;
    assert_eq!(response.status(), 200);
    let (chunks, end) = collect(response).await;
    assert!(end.is_err(), "the body must end in an error, not cleanly");
    let chunks = openai_chunks(&concat(&chunks), false);
    assert_eq!(chunks.len(), 3, "the role chunk and two content chunks");
    assert_eq!(openai_text(&chunks), "Hello from");
    assert!(chunks.iter().all(|chunk| chunk["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn cut_non_streaming_responses_break_mid_body() {
    let upstream = Upstream::start().await.unwrap();
    let response = anthropic(&upstream, "/v1/messages", &plain_request("claude-stub-cut")).await;
    assert_eq!(response.status(), 200);
    let (chunks, end) = collect(response).await;
    assert!(end.is_err());
    let text = concat(&chunks);
    assert!(text.starts_with("{\"id\":\"msg_") && serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let response = openai(&upstream, &chat_request("gpt-stub-cut")).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn slow_streams_pause_between_frames_and_arrive_one_frame_at_a_time() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(with(plain_request("claude-stub-slow"), "stream", json!(true)), "max_tokens", json!(2));
    let started = Instant::now();
    let response = anthropic(&upstream, "/v1/messages", &request).await;
    let (chunks, end) = collect(response).await;
    end.unwrap();
    let elapsed = started.elapsed();
    let expected = expected_names(2);
    assert!(elapsed >= SLOW_CHUNK_DELAY * (expected.len() as u32 - 1), "{elapsed:?}");
    assert_eq!(chunks.len(), expected.len(), "each event arrived by itself");
    let events = anthropic_events(&concat(&chunks));
    assert_eq!(names(&events), expected);
    assert_eq!(events[6].1["usage"]["output_tokens"], 2);

    let request = json!({
        "model": "gpt-stub-slow",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 1,
        "stream": true
    });
    let started = Instant::now();
    let (chunks, end) = collect(openai(&upstream, &request).await).await;
    end.unwrap();
    assert!(started.elapsed() >= SLOW_CHUNK_DELAY * 3, "role, word, finish, [DONE]");
    assert_eq!(chunks.len(), 4);

    let started = Instant::now();
    let body: Value =
        anthropic(&upstream, "/v1/messages", &plain_request("claude-stub-slow")).await.json().await.unwrap();
    assert!(started.elapsed() >= SLOW_CHUNK_DELAY);
    assert_eq!(body["content"][0]["text"], REPLY);
}

#[tokio::test]
async fn hanging_requests_are_never_answered_until_shutdown() {
    let upstream = Upstream::start().await.unwrap();
    let timeout = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .header("x-api-key", KEY)
        .json(&plain_request("claude-stub-hang"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(timeout.is_timeout(), "{timeout:?}");
    assert_eq!(upstream.requests().len(), 1, "the hanging request was received");

    // One still waiting when the upstream is dropped is released with an overloaded error.
    let url = upstream.url();
    let waiting = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth("k")
            .json(&with(chat_request("gpt-stub-hang"), "stream", json!(true)))
            .send()
            .await
    });
    while upstream.requests().len() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    drop(upstream);
    let response = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn the_recorder_keeps_every_request_in_order() {
    let upstream = Upstream::start().await.unwrap();
    let body = plain_request("claude-stub");
    let response = client()
        .post(format!("{}/v1/messages?beta=true", upstream.url()))
        .header("X-Api-Key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("X-Custom", "Mixed Case Value")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chat = chat_request("gpt-stub");
    assert_eq!(openai(&upstream, &chat).await.status(), 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.query.as_deref(), Some("beta=true"));
    assert_eq!(first.body, body);
    assert_eq!(first.header("x-api-key"), Some(KEY));
    assert_eq!(first.header("X-API-KEY"), Some(KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(first.header("x-custom"), Some("Mixed Case Value"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("authorization"), None);
    assert!(first.headers.iter().all(|(name, _)| *name == name.to_lowercase()));
    let second = &requests[1];
    assert_eq!((second.path.as_str(), second.query.as_deref()), ("/v1/chat/completions", None));
    assert_eq!(second.header("Authorization"), Some("Bearer sk-openai-test-key"));
    assert_eq!(second.body, chat);

    upstream.clear();
    assert!(upstream.requests().is_empty());

    // Bodies that are not JSON, empty bodies and unknown paths are recorded too.
    let not_json = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .header("x-api-key", KEY)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let empty = client().post(format!("{}/v1/messages", upstream.url())).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(empty.status(), 400);
    let missing = client().get(format!("{}/v1/models?limit=5", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body, json!("not json"));
    assert_eq!(requests[1].body, Value::Null);
    assert_eq!(requests[2].method, "GET");
    assert_eq!(requests[2].path, "/v1/models");
    assert_eq!(requests[2].query.as_deref(), Some("limit=5"));
}

#[tokio::test]
async fn requests_without_credentials_get_the_providers_401() {
    let upstream = Upstream::start().await.unwrap();
    let response = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .header("anthropic-version", "2023-06-01")
        .json(&plain_request("claude-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(header(&response, "request-id").starts_with("req_"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}})
    );
    let response = client()
        .post(format!("{}/v1/chat/completions", upstream.url()))
        .header("authorization", "")
        .json(&chat_request("gpt-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(body["error"]["code"], Value::Null);
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"));
    assert_eq!(upstream.requests().len(), 2, "rejected requests are recorded");

    // Any credential will do, in either header, on either route.
    let bearer = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .bearer_auth("tg_ws_anything")
        .json(&plain_request("claude-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let api_key = client()
        .post(format!("{}/v1/chat/completions", upstream.url()))
        .header("x-api-key", "whatever")
        .json(&chat_request("gpt-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(api_key.status(), 200);
}

#[tokio::test]
async fn invalid_requests_get_the_providers_400_404_and_405() {
    let upstream = Upstream::start().await.unwrap();
    let mut no_max_tokens = plain_request("claude-stub");
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    for request in [no_max_tokens, with(plain_request("claude-stub"), "max_tokens", json!(0)), json!({"max_tokens": 5})]
    {
        let response = anthropic(&upstream, "/v1/messages", &request).await;
        assert_eq!(response.status(), 400, "{request}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let response = openai(&upstream, &json!({"model": "gpt-stub"})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("messages"));

    let get = client().get(format!("{}/v1/messages", upstream.url())).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.json::<Value>().await.unwrap()["type"], "error");
    let missing = client().post(format!("{}/v1/complete", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
    let missing = client().post(format!("{}/v1/responses", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn dropping_the_handle_shuts_the_server_down() {
    let upstream = Upstream::start().await.unwrap();
    let url = upstream.url();
    assert!(url.starts_with("http://127.0.0.1:"));
    assert_eq!(anthropic(&upstream, "/v1/messages", &plain_request("m")).await.status(), 200);
    drop(upstream);
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    loop {
        let sent =
            fresh.post(format!("{url}/v1/messages")).header("x-api-key", KEY).json(&plain_request("m")).send().await;
        if sent.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still answering after the handle was dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the binary when a test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate-upstream"))
        .args(["--listen", "127.0.0.1:0", "--no-record"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", KEY)
        .json(&with(plain_request("claude-stub"), "stream", json!(true)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = anthropic_events(&response.text().await.unwrap());
    assert_eq!(names(&events), expected_names(REPLY_WORDS as usize));
}

#[test]
fn the_binary_rejects_unknown_arguments() {
    let binary = env!("CARGO_BIN_EXE_tollgate-upstream");
    let help = Command::new(binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--listen"));
    let bad = Command::new(binary).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bogus"));
    let taken = Command::new(binary).args(["--listen", "not-an-address"]).output().unwrap();
    assert_eq!(taken.status.code(), Some(1));
}
