//! The Anthropic Messages routes: shapes, usage, cache reads and writes, the event sequence.

use serde_json::{Value, json};
use tollgate_upstream::{REPLY, REPLY_WORDS, Upstream};

use crate::{
    anthropic, anthropic_events, cached_request, collect, concat, delta_text, expected_names, header, names,
    plain_request, with,
};

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
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
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
        "cache_read_input_tokens": 100,
        // 80 bytes written for 5 minutes, 120 for an hour.
        "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30}
    });
    let body: Value = anthropic(&upstream, "/v1/messages", &cached_request(false)).await.json().await.unwrap();
    assert_eq!(body["usage"], usage);

    let text = anthropic(&upstream, "/v1/messages", &cached_request(true)).await.text().await.unwrap();
    let events = anthropic_events(&text);
    assert_eq!(events[0].1["message"]["usage"], with(usage.clone(), "output_tokens", json!(1)));
    // The cumulative message_delta carries the whole usage, the split included.
    let delta = events.iter().find(|(name, _)| name == "message_delta").unwrap();
    assert_eq!(delta.1["usage"], usage);

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
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
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
            "usage": {
                "input_tokens": 30,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": REPLY_WORDS
            }
        })
    );
    assert_eq!(events[n - 1].1, json!({"type": "message_stop"}));
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
