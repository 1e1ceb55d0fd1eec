//! The OpenAI Chat Completions route, and the framing of both protocols' streams.

use serde_json::{Value, json};
use tollgate_upstream::{REPLY, REPLY_WORDS, Upstream};

use crate::{chat_request, expected_names, frames_of, header, openai, openai_chunks, openai_text, plain_request, with};

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
            },
            "service_tier": "default"
        })
    );
    // The tier asked for is the tier reported, in a body and in every chunk of a stream.
    let priority = with(chat_request("gpt-stub"), "service_tier", json!("priority"));
    let body: Value = openai(&upstream, &priority).await.json().await.unwrap();
    assert_eq!(body["service_tier"], "priority");
    let streamed = with(with(priority, "stream", json!(true)), "stream_options", json!({"include_usage": true}));
    let frames = frames_of("/v1/chat/completions", &streamed).await;
    let chunks = frames.iter().filter(|f| !f.contains("[DONE]"));
    for frame in chunks {
        let chunk: Value = serde_json::from_str(frame.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(chunk["service_tier"], "priority", "{frame}");
    }
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
