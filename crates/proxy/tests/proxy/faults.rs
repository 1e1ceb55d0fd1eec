//! Faults: upstream errors, cut streams, client disconnects, no credit, upstream down,
//! concurrent load on two instances. Nothing lost, nothing charged twice.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::{App, messages, start_proxy};

#[tokio::test]
async fn an_upstream_error_is_returned_as_it_came_and_costs_nothing() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/overloaded", false, 5)).send().await.unwrap();
    assert_eq!(r.status(), 529, "Claude Code's retry logic reads the upstream's own status");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (1, 1, 0));
    assert_eq!(app.credit().await, 1_000_000, "the reservation is released in full");
    // And the proxy is healthy after it.
    assert_eq!(
        app.post("/anthropic/v1/messages", &token, messages("platform/ok", false, 5)).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_is_settled_with_the_usage_seen() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/cut", true, 50)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let mut broke = false;
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => broke = true,
        }
    }
    assert!(broke || !text.contains("message_stop"), "the client sees the stream end early");
    let start: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("message_start"))
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap();
    let input = start["message"]["usage"]["input_tokens"].as_i64().unwrap();
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors), (1, 1), "counted once, as failed");
    assert_eq!(u.input_tokens, input, "the input seen in message_start is charged");
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_settled_once() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/slow", true, 50)).send().await.unwrap();
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream); // the client goes away while the upstream is still sending
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors), (1, 1), "settled by the drop guard, as failed (499)");
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros, "charged the usage seen, the rest released");
    assert!(u.cost_micros < 2 * 50, "not the worst case: {u:?}");
}

#[tokio::test]
async fn without_credit_it_is_402_and_the_upstream_is_not_called() {
    let app = App::new(10).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/ok", false, 1_000)).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "billing_error");
    assert!(app.upstream.requests().is_empty(), "nothing forwarded");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (1, 1, 0), "one ledger row for the refused request");
    assert_eq!(app.credit().await, 10);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_releases_the_reservation() {
    let app = App::new(1_000_000).await;
    // A proxy whose upstream URL points at a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (_, base) = start_proxy(app.store.clone(), &closed).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app
        .http
        .post(format!("{base}/anthropic/v1/messages"))
        .bearer_auth(&token)
        .json(&messages("platform/ok", false, 5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "api_error");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.errors, u.cost_micros), (1, 1, 0));
    assert_eq!(app.credit().await, 1_000_000);
}

/// Two proxy instances on one Postgres database under concurrent load: a request is
/// forwarded only if its worst case was reserved, the credit never goes below zero, and
/// every request has exactly one ledger row, charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_never_overspend() {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    let store_a = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let store_b = tollgate_store::connect(&url, crate::key()).await.unwrap();
    // Credit for about three worst cases at a time.
    let app = App::on(store_a, 0, None).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (_, base_b) = start_proxy(store_b, &app.upstream.url()).await;
    let body = messages("platform/ok", false, 20);
    // The input estimate is priced at the dearer of input (1) and cache write (3).
    let estimate =
        i64::try_from(tollgate_proxy::rewrite::estimate_input_tokens(serde_json::to_vec(&body).unwrap().len()))
            .unwrap();
    let worst = 3 * estimate + 2 * 20;
    app.store
        .adjust_credit(
            &app.org,
            tollgate_policy::Micros::new(3 * worst + worst / 2),
            "test",
            tollgate_store::Overdraft::Refuse,
        )
        .await
        .unwrap();
    let start = app.credit().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let base = if i % 2 == 0 { app.base.clone() } else { base_b.clone() };
        let (http, token, body) = (app.http.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.post(format!("{base}/anthropic/v1/messages")).header("x-api-key", token).json(&body).send();
            let r = r.await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (402, _) => {}
            (other, body) => panic!("unexpected status {other}: {body}"),
        }
    }
    let u = app.settled(40).await;
    assert!(ok >= 3, "at least the credit's worth went through ({ok})");
    assert_eq!(app.upstream.requests().len(), ok, "only reserved requests reached the upstream");
    assert_eq!(u.requests, 40, "one ledger row per request");
    assert_eq!(u.errors, 40 - i64::try_from(ok).unwrap());
    let end = app.credit().await;
    assert_eq!(end, start - u.cost_micros, "each request charged exactly once");
    assert!(end >= 0, "never overspent: {end}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A whole (non-stream) body that the upstream breaks after its 200 never shows its usage, but
/// the provider bills the whole answer: it is charged the worst case it was reserved for,
/// marked estimated, and never more than that. The proxy reads a whole answer before sending
/// it, so the client is told in its provider's error shape (502), not left with half a body.
#[tokio::test]
async fn a_whole_body_cut_after_its_success_status_is_charged_its_reservation() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/cut", false, 50)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let error: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error["type"], "error", "Anthropic's error shape: {error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("broke off"), "{error}");
    let u = app.settled(1).await;
    assert_eq!((u.requests, u.estimated_requests), (1, 1), "one row, its usage estimated");
    assert_eq!(u.output_tokens, 50, "the output limit the request was admitted for");
    assert!(u.cost_micros > 0, "not free: {u:?}");
    assert_eq!(app.credit().await, 1_000_000 - u.cost_micros, "charged once");
}

/// A whole answer larger than the proxy reads before sending (1 MiB) is relayed as it comes:
/// the client gets every byte, in order, and it is metered from the whole body (its usage
/// charged, not estimated), the part read first included.
#[tokio::test]
async fn a_whole_answer_too_large_to_hold_is_relayed_whole_and_metered() {
    use axum::routing::post;
    let app = App::new(1_000_000_000).await;
    let text = "word ".repeat(600_000);
    let answer = serde_json::json!({
        "id": "msg_large", "type": "message", "role": "assistant", "model": "stub-sonnet",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 11, "output_tokens": 600_000}
    })
    .to_string();
    assert!(answer.len() > 2 * 1024 * 1024, "well over what the proxy holds");
    // The body goes out in small pieces, as a provider's would over a real network.
    let pieces: Vec<Vec<u8>> = answer.as_bytes().chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let large = post(move || {
        let pieces = pieces.clone();
        async move {
            let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
            ([("content-type", "application/json")], axum::body::Body::from_stream(stream))
        }
    });
    let r = through_own_upstream(&app, large, messages("platform/ok", false, 1_000_000)).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body == answer.as_bytes(), "every byte, in order ({} of {})", body.len(), answer.len());
    let u = app.settled(1).await;
    assert_eq!((u.estimated_requests, u.input_tokens, u.output_tokens), (0, 11, 600_000), "{u:?}");
    // platform/ok: 1 USD per million input tokens, 2 per million output.
    assert_eq!(u.cost_micros, 11 + 2 * 600_000);
}

/// A client that closes its connection once it has the stream's terminal event, without
/// waiting for the body's end (Codex does), had the whole answer: its row has the answer's
/// status (not 499, not an error) and the usage the stream reported, not an estimate.
#[tokio::test]
async fn a_client_that_leaves_after_the_terminal_event_had_the_whole_answer() {
    use axum::routing::post;
    let app = App::new(1_000_000_000).await;
    let events = include_str!("../fixtures/anthropic_text.sse");
    // The whole stream, then a body that never ends: only the client's leaving ends it.
    let endless = post(move || async move {
        let all = futures_util::stream::iter([Ok::<_, std::io::Error>(events.as_bytes().to_vec())])
            .chain(futures_util::stream::pending());
        ([("content-type", "text/event-stream")], axum::body::Body::from_stream(all))
    });
    let r = through_own_upstream(&app, endless, messages("platform/ok", true, 1_000)).await;
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("message_stop") {
        seen.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
    }
    drop(body);
    let u = app.settled(1).await;
    assert_eq!((u.errors, u.estimated_requests), (0, 0), "the answer's status, its own usage: {u:?}");
    assert_eq!((u.input_tokens, u.output_tokens), (472, 15), "{u:?}");
}

/// Sends `body` to `POST /anthropic/v1/messages` of a proxy (over `app`'s store and org) whose
/// upstream answers `/v1/messages` with `answer`: for answers the stand-in upstream does not give.
async fn through_own_upstream(app: &App, answer: axum::routing::MethodRouter, body: Value) -> reqwest::Response {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/v1/messages", answer)).await });
    let (_, base) = start_proxy(app.store.clone(), &upstream).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    app.http.post(format!("{base}/anthropic/v1/messages")).header("x-api-key", &token).json(&body).send().await.unwrap()
}
