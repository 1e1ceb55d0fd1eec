//! The fault modes chosen by the model suffix: overloaded, unauthorized, cut, slow, hang, trickle.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_upstream::{REPLY, SLOW_CHUNK_DELAY, Trickle, Upstream, UpstreamState, router};
use tower::ServiceExt;

use crate::{
    KEY, anthropic, anthropic_events, chat_request, client, collect, concat, delta_text, expected_names, header, names,
    openai, openai_chunks, openai_text, plain_request, with,
};

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

/// The frames of `body` posted to `path` on a stand-in whose trickle is `trickle`, in process.
async fn trickle_frames(trickle: Trickle, path: &str, body: &Value) -> Vec<String> {
    let request = Request::post(path)
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(UpstreamState::with_trickle(false, trickle)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.into_body().into_data_stream();
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(String::from_utf8(frame.unwrap().to_vec()).unwrap());
    }
    frames
}

#[tokio::test]
async fn trickle_streams_send_the_configured_number_of_deltas_with_matching_usage() {
    let trickle = Trickle { every: Duration::from_millis(1), events: 25 };
    let request = with(plain_request("claude-sonnet-4-5-trickle"), "stream", json!(true));
    let frames = trickle_frames(trickle, "/v1/messages", &request).await;
    let events = anthropic_events(&frames.concat());
    assert_eq!(frames.len(), events.len(), "each event is a frame of its own");
    assert_eq!(names(&events), expected_names(25));
    let text = delta_text(&events);
    assert!(text.starts_with(&format!("{REPLY}{REPLY}")), "the reply's words over and over: {text:?}");
    assert_eq!(text.split_inclusive(' ').count(), 25 - 2, "25 words, two of them joined at the reply's ends");
    assert_eq!(events[events.len() - 2].1["usage"]["output_tokens"], 25);
    assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "end_turn");

    // The token limit caps the trickle.
    let capped = with(request.clone(), "max_tokens", json!(7));
    let events = anthropic_events(&trickle_frames(trickle, "/v1/messages", &capped).await.concat());
    assert_eq!(names(&events), expected_names(7));
    assert_eq!(events[events.len() - 2].1["delta"]["stop_reason"], "max_tokens");

    let chat = json!({
        "model": "gpt-5-trickle",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let frames = trickle_frames(trickle, "/v1/chat/completions", &chat).await;
    let chunks = openai_chunks(&frames.concat(), true);
    assert_eq!(chunks.len(), 1 + 25 + 2, "role, 25 words, finish, usage");
    assert_eq!(chunks[26]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[27]["usage"]["completion_tokens"], 25);
    assert!(openai_text(&chunks).starts_with(REPLY));

    // Not streaming: an ordinary answer.
    let body = trickle_frames(trickle, "/v1/messages", &plain_request("claude-sonnet-4-5-trickle")).await.concat();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["content"][0]["text"], REPLY);
}
