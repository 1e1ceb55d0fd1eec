//! The OpenAI Responses route: shapes, usage with cached and reasoning tokens, the event
//! sequence, and its fault modes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_upstream::{REASONING_TOKENS, REPLY, REPLY_WORDS, SLOW_CHUNK_DELAY, Upstream};

use crate::{client, collect, concat, frames_of, header, parse_sse, with};

/// A Responses request as the OpenAI SDK (and Codex) sends it.
async fn responses(upstream: &Upstream, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/responses", upstream.url()))
        .bearer_auth("sk-openai-test-key")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// 40 bytes of instructions (10 tokens, all cached) and 41 bytes of input text (the
/// function call's output and the tools count nothing): 81 bytes, 20 input tokens.
fn request(model: &str) -> Value {
    json!({
        "model": model,
        "instructions": "i".repeat(40),
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u".repeat(41)}]},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "o".repeat(30)}
        ],
        "tools": [{"type": "function", "name": "shell", "description": "d".repeat(500), "parameters": {}}],
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "conversation-1"
    })
}

/// The usage of [`request`] for `reasoning` reasoning tokens and `words` words.
fn usage(reasoning: u64, words: u64) -> Value {
    json!({
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": reasoning + words,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": 20 + reasoning + words
    })
}

/// Events as (name, data), checking that each is named as its `type` and numbered in order.
fn events(text: &str) -> Vec<(String, Value)> {
    parse_sse(text)
        .into_iter()
        .enumerate()
        .map(|(at, (name, data))| {
            let name = name.expect("Responses events are named");
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], at);
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

fn delta_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect()
}

/// The event names of a streamed reply of `words` words, with a reasoning item or not, ending
/// in `terminal`.
fn expected_names(reasoning: bool, words: usize, terminal: &'static str) -> Vec<&'static str> {
    let mut names = vec!["response.created", "response.in_progress"];
    if reasoning {
        names.extend(["response.output_item.added", "response.output_item.done"]);
    }
    names.extend(["response.output_item.added", "response.content_part.added"]);
    names.extend(std::iter::repeat_n("response.output_text.delta", words));
    names.extend(["response.output_text.done", "response.content_part.done", "response.output_item.done", terminal]);
    names
}

#[tokio::test]
async fn a_response_has_the_documented_shape_and_usage() {
    let upstream = Upstream::start().await.unwrap();
    let response = responses(&upstream, &request("gpt-stub")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert!(header(&response, "x-request-id").starts_with("req_"));
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{id}");
    let message_id = body["output"][0]["id"].as_str().unwrap();
    assert!(message_id.starts_with("msg_"), "{message_id}");
    assert!(body["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        body,
        json!({
            "id": id,
            "object": "response",
            "created_at": body["created_at"],
            "status": "completed",
            "error": null,
            "incomplete_details": null,
            "model": "gpt-stub",
            "output": [{
                "type": "message",
                "id": message_id,
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": REPLY, "annotations": []}]
            }],
            "usage": usage(0, REPLY_WORDS),
            "service_tier": "default"
        })
    );
    // The tier asked for is the tier reported.
    for (asked, served) in [("priority", "priority"), ("flex", "flex"), ("auto", "default")] {
        let body: Value =
            responses(&upstream, &with(request("gpt-stub"), "service_tier", json!(asked))).await.json().await.unwrap();
        assert_eq!(body["service_tier"], served, "{asked}");
    }
    let input_only = json!({"model": "gpt-stub", "input": "x".repeat(9)});
    let body: Value = responses(&upstream, &input_only).await.json().await.unwrap();
    assert_eq!(
        (&body["usage"]["input_tokens"], &body["usage"]["input_tokens_details"]["cached_tokens"]),
        (&json!(2), &json!(0))
    );
    // Codex sends its system prompt as developer messages in `input`: cached too.
    let codex = json!({"model": "gpt-stub", "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "d".repeat(80)}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u".repeat(20)}]}
    ]});
    let body: Value = responses(&upstream, &codex).await.json().await.unwrap();
    let usage = &body["usage"];
    assert_eq!((&usage["input_tokens"], &usage["input_tokens_details"]["cached_tokens"]), (&json!(25), &json!(20)));
}

#[tokio::test]
async fn reasoning_tokens_count_as_output_within_max_output_tokens() {
    let upstream = Upstream::start().await.unwrap();
    let reasoning = |effort: &str| with(request("gpt-stub"), "reasoning", json!({"effort": effort, "summary": "auto"}));

    let body: Value = responses(&upstream, &reasoning("high")).await.json().await.unwrap();
    assert_eq!(body["usage"], usage(REASONING_TOKENS, REPLY_WORDS));
    assert_eq!(body["output"][0]["type"], "reasoning");
    assert!(body["output"][0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(body["output"][1]["content"][0]["text"], REPLY);
    assert_eq!(body["status"], "completed");

    for effort in ["minimal", "none"] {
        let body: Value = responses(&upstream, &reasoning(effort)).await.json().await.unwrap();
        assert_eq!(body["usage"], usage(0, REPLY_WORDS), "{effort}");
        assert_eq!(body["output"][0]["type"], "message", "{effort}");
    }

    // The limit takes the reasoning first, then cuts the reply short: incomplete.
    let body: Value =
        responses(&upstream, &with(reasoning("medium"), "max_output_tokens", json!(8))).await.json().await.unwrap();
    assert_eq!(body["usage"], usage(REASONING_TOKENS, 3));
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(body["output"][1]["content"][0]["text"], "Hello from the");
    let body: Value =
        responses(&upstream, &with(reasoning("low"), "max_output_tokens", json!(3))).await.json().await.unwrap();
    assert_eq!(body["usage"], usage(3, 0));
    assert_eq!(body["output"][1]["content"][0]["text"], "");

    let body: Value =
        responses(&upstream, &with(request("gpt-stub"), "max_output_tokens", json!(10))).await.json().await.unwrap();
    assert_eq!((&body["status"], &body["usage"]), (&json!("completed"), &usage(0, 10)), "exactly enough");
}

#[tokio::test]
async fn a_stream_is_the_exact_event_sequence() {
    let upstream = Upstream::start().await.unwrap();
    let response = responses(&upstream, &with(request("gpt-stub"), "stream", json!(true))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/event-stream; charset=utf-8");
    let events = events(&response.text().await.unwrap());
    assert_eq!(names(&events), expected_names(false, REPLY_WORDS as usize, "response.completed"));
    let created = &events[0].1["response"];
    assert_eq!(
        (&created["status"], &created["usage"], &created["output"]),
        (&json!("in_progress"), &Value::Null, &json!([]))
    );
    assert_eq!(events[1].1["response"], *created);
    let item_id = events[2].1["item"]["id"].as_str().unwrap();
    assert_eq!(
        events[2].1["item"],
        json!({"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []})
    );
    assert!(events[3..14].iter().all(|(_, data)| data["item_id"] == item_id && data["output_index"] == 0));
    assert_eq!(delta_text(&events), REPLY);
    assert_eq!(events[14].1["text"], REPLY);
    let done = &events[16].1["item"];
    assert_eq!((&done["status"], &done["content"][0]["text"]), (&json!("completed"), &json!(REPLY)));
    let finished = &events[17].1["response"];
    assert_eq!((&finished["id"], &finished["status"]), (&created["id"], &json!("completed")));
    assert_eq!(finished["usage"], usage(0, REPLY_WORDS));
    assert_eq!(finished["output"][0], *done);
}

#[tokio::test]
async fn a_stream_cut_short_by_its_limit_ends_incomplete() {
    let upstream = Upstream::start().await.unwrap();
    let request = with(request("gpt-stub"), "stream", json!(true));
    let request = with(with(request, "reasoning", json!({"effort": "high"})), "max_output_tokens", json!(7));
    let events = events(&responses(&upstream, &request).await.text().await.unwrap());
    assert_eq!(names(&events), expected_names(true, 2, "response.incomplete"));
    assert_eq!(events[2].1["item"]["type"], "reasoning");
    assert_eq!(events[4].1["output_index"], 1, "the message follows the reasoning item");
    assert_eq!(delta_text(&events), "Hello from");
    let finished = &events.last().unwrap().1["response"];
    assert_eq!(finished["status"], "incomplete");
    assert_eq!(finished["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(finished["usage"], usage(REASONING_TOKENS, 2));
}

#[tokio::test]
async fn every_event_is_its_own_frame() {
    let frames = frames_of("/v1/responses", &with(request("gpt-stub"), "stream", json!(true))).await;
    assert_eq!(frames.len(), expected_names(false, REPLY_WORDS as usize, "").len());
    for frame in &frames {
        assert!(frame.starts_with("event: response.") && frame.ends_with("\n\n"), "{frame:?}");
        assert_eq!(frame.matches("\n\n").count(), 1, "{frame:?}");
    }
}

#[tokio::test]
async fn overloaded_and_unauthorized_models_get_openais_errors() {
    let upstream = Upstream::start().await.unwrap();
    for stream in [false, true] {
        let response = responses(&upstream, &with(request("gpt-stub-overloaded"), "stream", json!(stream))).await;
        assert_eq!(response.status(), 503);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "server_error");
        let response = responses(&upstream, &with(request("gpt-stub-unauthorized"), "stream", json!(stream))).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
}

#[tokio::test]
async fn a_cut_stream_breaks_after_two_deltas_and_a_cut_body_mid_way() {
    let upstream = Upstream::start().await.unwrap();
    let response = responses(&upstream, &with(request("gpt-stub-cut"), "stream", json!(true))).await;
    assert_eq!(response.status(), 200);
    let (chunks, end) = collect(response).await;
    assert!(end.is_err(), "the body must end in an error, not cleanly");
    let events = events(&concat(&chunks));
    let mut expected = expected_names(false, 2, "");
    expected.truncate(6);
    assert_eq!(names(&events), expected);
    assert_eq!(delta_text(&events), "Hello from");

    let response = responses(&upstream, &request("gpt-stub-cut")).await;
    assert_eq!(response.status(), 200);
    let (chunks, end) = collect(response).await;
    assert!(end.is_err());
    let text = concat(&chunks);
    assert!(text.starts_with("{\"id\":\"resp_") && serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn a_failed_response_ends_with_response_failed_and_the_usage_so_far() {
    let upstream = Upstream::start().await.unwrap();
    let text =
        responses(&upstream, &with(request("gpt-stub-failed"), "stream", json!(true))).await.text().await.unwrap();
    let events = events(&text);
    let mut expected = expected_names(false, 2, "");
    expected.truncate(6);
    expected.push("response.failed");
    assert_eq!(names(&events), expected);
    let failed = &events[6].1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_error");
    assert_eq!(failed["usage"], usage(0, 2));

    let body: Value = responses(&upstream, &request("gpt-stub-failed")).await.json().await.unwrap();
    assert_eq!((&body["status"], &body["usage"]), (&json!("failed"), &usage(0, 2)));
}

#[tokio::test]
async fn slow_and_hanging_models() {
    let upstream = Upstream::start().await.unwrap();
    let request_slow = with(with(request("gpt-stub-slow"), "stream", json!(true)), "max_output_tokens", json!(1));
    let started = Instant::now();
    let (chunks, end) = collect(responses(&upstream, &request_slow).await).await;
    end.unwrap();
    let expected = expected_names(false, 1, "response.incomplete");
    assert!(started.elapsed() >= SLOW_CHUNK_DELAY * (expected.len() as u32 - 1));
    assert_eq!(chunks.len(), expected.len(), "each event arrived by itself");

    let timeout = client()
        .post(format!("{}/v1/responses", upstream.url()))
        .bearer_auth("k")
        .json(&request("gpt-stub-hang"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(timeout.is_timeout(), "{timeout:?}");
}

#[tokio::test]
async fn invalid_requests_get_openais_400_401_and_405() {
    let upstream = Upstream::start().await.unwrap();
    for body in
        [json!({"model": "gpt-stub"}), json!({"input": "hi"}), with(request("gpt-stub"), "max_output_tokens", json!(0))]
    {
        let response = responses(&upstream, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
    }
    let url = format!("{}/v1/responses", upstream.url());
    let response = client().post(&url).json(&request("gpt-stub")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("API key"));
    let response = client().get(&url).bearer_auth("k").send().await.unwrap();
    assert_eq!(response.status(), 405);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let response = client().get(format!("{url}/resp_123")).bearer_auth("k").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unknown_url", "OpenAI's shape under /v1/responses/");
}
