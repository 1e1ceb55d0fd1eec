//! The normal paths: forwarding, streaming, metering, charging; and authentication.

use serde_json::Value;

use crate::{ANTHROPIC_KEY, App, OPENAI_KEY, chat, messages};

/// The cost at the test registry's prices: 1 micro-USD per input token, 2 per output token.
fn cost(u: &Value) -> i64 {
    u["input_tokens"].as_i64().unwrap() + 2 * u["output_tokens"].as_i64().unwrap()
}

#[tokio::test]
async fn anthropic_request_is_forwarded_with_the_platform_key_and_charged_exactly() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app
        .post("/anthropic/v1/messages?beta=true", &token, messages("platform/ok", false, 50))
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("request-id").is_some(), "the upstream's request id is passed back");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    let spent = cost(&body["usage"]);
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.query.as_deref(), Some("beta=true"), "the query string is passed through");
    assert_eq!(req.header("x-api-key"), Some(ANTHROPIC_KEY), "the upstream sees the platform key");
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(req.body["model"], "stub-sonnet", "the alias is mapped to the upstream model");
    for (name, value) in &req.headers {
        assert!(!value.contains(&token), "the workspace token reached the upstream in {name}");
    }
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (1, 0, spent));
    assert_eq!(app.credit().await, 1_000_000 - spent, "the credit moved by exactly the metered cost");
}

#[tokio::test]
async fn anthropic_stream_is_relayed_chunk_by_chunk_and_metered() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app
        .http
        .post(format!("{}/anthropic/v1/messages", app.base))
        .bearer_auth(&token)
        .json(&messages("platform/ok", true, 6))
        .send()
        .await
        .unwrap();
    let (chunks, text) = crate::read_event_stream(r).await;
    assert!(chunks > 3, "relayed as it came, not buffered ({chunks} chunks)");
    assert!(text.contains("event: message_start") && text.contains("event: message_stop"));
    let delta_usage: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "message_delta")
        .collect();
    let output = delta_usage.last().unwrap()["usage"]["output_tokens"].as_i64().unwrap();
    let start: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("message_start"))
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    let input = start["message"]["usage"]["input_tokens"].as_i64().unwrap();
    let u = app.settled(1).await;
    assert_eq!(u.errors, 0, "a complete stream settles as a success, not through the drop guard");
    assert_eq!((u.input_tokens, u.output_tokens), (input, output));
    assert_eq!(app.credit().await, 1_000_000 - input - 2 * output);
}

#[tokio::test]
async fn openai_usage_is_requested_and_hidden_when_the_client_did_not_ask() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    for (asked, expect_usage_chunk) in [(None, false), (Some(false), false), (Some(true), true)] {
        let r = app
            .http
            .post(format!("{}/openai/v1/chat/completions", app.base))
            .bearer_auth(&token)
            .json(&chat("platform/gpt", true, asked))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let has_usage = text.lines().filter_map(|l| l.strip_prefix("data: ")).any(|d| d.contains("\"usage\":{"));
        assert_eq!(has_usage, expect_usage_chunk, "client asked {asked:?}:\n{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"));
        let sent = app.upstream.requests().pop().unwrap();
        assert_eq!(sent.body["stream_options"]["include_usage"], true, "the proxy always asks for usage");
        assert_eq!(sent.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
        assert_eq!(sent.body["model"], "stub-gpt");
    }
    let u = app.settled(3).await;
    assert_eq!(u.errors, 0);
    assert!(u.input_tokens > 0 && u.output_tokens > 0, "every request metered: {u:?}");
    assert_eq!(u.cost_micros, u.input_tokens + 2 * u.output_tokens);
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros);
    // Non-streaming.
    let r = app
        .http
        .post(format!("{}/openai/v1/chat/completions", app.base))
        .bearer_auth(&token)
        .json(&chat("platform/gpt", false, None))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let before = u.cost_micros;
    let u = app.settled(4).await;
    assert_eq!(
        u.cost_micros - before,
        body["usage"]["prompt_tokens"].as_i64().unwrap() + 2 * body["usage"]["completion_tokens"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn count_tokens_is_forwarded_and_free() {
    let app = App::new(1_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app
        .post("/anthropic/v1/messages/count_tokens", &token, messages("platform/ok", false, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["input_tokens"].as_i64().unwrap() > 0);
    let u = app.settled(1).await;
    assert_eq!(u.cost_micros, 0);
    assert_eq!(app.credit().await, 1_000);
}

/// The error's type and message: both providers put them at `error.type` and `error.message`.
fn error_type(v: &Value) -> (&str, &str) {
    (v["error"]["type"].as_str().unwrap(), v["error"]["message"].as_str().unwrap())
}

#[tokio::test]
async fn authentication_and_authorisation_errors_in_the_providers_shape() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (byok_ws, byok_token) = app.workspace("claude-code", "MiniMax-M2.7").await;
    let _ = byok_ws;
    let send = |path: &str, auth: Option<&str>, body: Value| {
        let mut r = app.http.post(format!("{}{path}", app.base)).json(&body);
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        r.send()
    };
    let r = send("/anthropic/v1/messages", None, messages("platform/ok", false, 5)).await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_type(&v).0, "authentication_error");
    let r = send(
        "/anthropic/v1/messages",
        Some("tg_ws_0000000000000000000000000000000000000000000"),
        messages("platform/ok", false, 5),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401, "an unknown token");
    let r = send("/anthropic/v1/messages", Some("sk-ant-oat01-stray-tenant-token"), messages("platform/ok", false, 5))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(error_type(&v).1.contains("workspace token"), "the OAuth case explains itself: {v}");
    assert!(!v.to_string().contains("stray-tenant"), "never echoes the credential");
    let r = send("/anthropic/v1/messages", Some(&byok_token), messages("platform/ok", false, 5)).await.unwrap();
    assert_eq!(r.status(), 403, "a BYOK workspace may not use the platform's key");
    assert_eq!(error_type(&r.json().await.unwrap()).0, "permission_error");
    let r = send("/anthropic/v1/messages", Some(&token), messages("claude-opus-4-5", false, 5)).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_type(&v).0, "not_found_error");
    assert!(error_type(&v).1.contains("platform/ok"), "lists what is served: {v}");
    let r = send("/openai/v1/chat/completions", Some(&token), chat("platform/ok", false, None)).await.unwrap();
    assert_eq!(r.status(), 404, "an anthropic model on the openai route");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found", "OpenAI's shape: {v}");
    let r = send("/openai/v1/chat/completions", Some("nope"), chat("platform/gpt", false, None)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    assert!(app.upstream.requests().is_empty(), "no refused request reached the upstream");
    assert_eq!(app.usage().await.requests, 0, "refused before any ledger row: not proxied");
}

#[tokio::test]
async fn a_reprovision_revokes_the_old_token_and_a_mode_change_is_seen_at_once() {
    let app = App::new(1_000_000).await;
    let (ws, old) = app.workspace("claude-code", "platform/ok").await;
    assert_eq!(
        app.post("/anthropic/v1/messages", &old, messages("platform/ok", false, 5)).send().await.unwrap().status(),
        200
    );
    let new = app.provision(&ws).await;
    // The invalidation is asynchronous (LISTEN/NOTIFY on Postgres); it lands within moments.
    let mut status = 200;
    for _ in 0..100 {
        status = app
            .post("/anthropic/v1/messages", &old, messages("platform/ok", false, 5))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "the revoked token is refused");
    assert_eq!(
        app.post("/anthropic/v1/messages", &new, messages("platform/ok", false, 5)).send().await.unwrap().status(),
        200
    );
    // The workspace turns BYOK: the cached authorisation is dropped and the proxy refuses it.
    app.store
        .update_workspace(
            &ws,
            &tollgate_store::WorkspacePatch { model: Some(Some("MiniMax-M2.7".into())), ..Default::default() },
        )
        .await
        .unwrap();
    app.store.publish_invalidation(&tollgate_store::Invalidation::Workspace(ws.clone())).await.unwrap();
    for _ in 0..100 {
        status = app
            .post("/anthropic/v1/messages", &new, messages("platform/ok", false, 5))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 403);
}
