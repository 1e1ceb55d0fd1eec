//! Request ids and agent sessions (DESIGN.md section 19): every answer carries the ledger's
//! `request_id` in `x-request-id`, refusals included; the agent's session id is stored with
//! the row, bounded and validated; a client's `traceparent` never reaches the upstream.

use std::sync::Arc;

use sqlx::Connection;
use tollgate_store::{UsageGroup, UsageQuery};

use crate::{App, chat, key, messages};

/// An app over a SQLite file the test can also read directly.
async fn app_with_db(credit: i64) -> (App, String) {
    let dir = std::env::temp_dir().join(format!("tollgate-obs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = tollgate_store::connect(&url, key()).await.unwrap();
    (App::on(Arc::clone(&store), credit, Some(dir)).await, url)
}

/// The ledger's (request_id, session_id, http_status) rows, in arrival order.
async fn ledger(url: &str) -> Vec<(String, Option<String>, Option<i64>)> {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT request_id, session_id, http_status FROM ledger ORDER BY created_at, request_id")
        .fetch_all(&mut c)
        .await
        .unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_answer_carries_the_ledgers_request_id() {
    let (app, url) = app_with_db(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let ok = app.post("/anthropic/v1/messages", &token, messages("platform/ok", false, 50)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok_id = request_id(&ok);
    let stream = app.post("/anthropic/v1/messages", &token, messages("platform/ok", true, 50)).send().await.unwrap();
    let stream_id = request_id(&stream);
    let _ = stream.text().await.unwrap();
    assert_ne!(ok_id, stream_id, "one id per request");
    // Refusals too: an unknown token, an unknown model.
    let unknown = app.post("/anthropic/v1/messages", "tg_ws_nope", messages("platform/ok", false, 5)).send().await;
    let unknown = unknown.unwrap();
    assert_eq!(unknown.status(), 401);
    assert!(!request_id(&unknown).is_empty());
    let no_model = app.post("/anthropic/v1/messages", &token, messages("nope", false, 5)).send().await.unwrap();
    assert_eq!(no_model.status(), 404);
    assert!(!request_id(&no_model).is_empty());
    let no_route = app.post("/openai/v1/embeddings", &token, messages("platform/ok", false, 5)).send().await.unwrap();
    assert_eq!(no_route.status(), 404);
    assert!(!request_id(&no_route).is_empty());
    let bad_method = app.http.delete(format!("{}/anthropic/v1/messages", app.base)).send().await.unwrap();
    assert_eq!(bad_method.status(), 405);
    assert!(!request_id(&bad_method).is_empty());
    let too_big = app
        .http
        .post(format!("{}/anthropic/v1/messages", app.base))
        .header("x-api-key", &token)
        .body(vec![b' '; tollgate_proxy::MAX_REQUEST_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert!(!request_id(&too_big).is_empty());
    app.settled(2).await;
    let rows = ledger(&url).await;
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert!(ids.contains(&ok_id.as_str()) && ids.contains(&stream_id.as_str()), "{ids:?} vs {ok_id}, {stream_id}");
}

#[tokio::test]
async fn a_credit_refusal_is_answered_with_its_ledger_rows_id() {
    let (app, url) = app_with_db(10).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = app.post("/anthropic/v1/messages", &token, messages("platform/ok", false, 50_000)).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let id = request_id(&r);
    app.settled(1).await;
    assert_eq!(ledger(&url).await, [(id, None, Some(402))]);
}

#[tokio::test]
async fn agent_sessions_are_stored_bounded_and_grouped() {
    let (app, url) = app_with_db(1_000_000).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex) = app.workspace("codex", "platform/gpt").await;
    let send = |token: &str, anthropic: bool, header: Option<(&str, String)>| {
        let mut b = if anthropic {
            app.post("/anthropic/v1/messages", token, messages("platform/ok", false, 20))
        } else {
            app.post("/openai/v1/chat/completions", token, chat("platform/gpt", false, None))
        };
        if let Some((name, value)) = header {
            b = b.header(name, value);
        }
        async move {
            let r = b.send().await.unwrap();
            assert_eq!(r.status(), 200);
            request_id(&r)
        }
    };
    let a = "0b5e7f2c-6a1d-4c1e-9a51-3d1f0c7e8a90".to_owned();
    let b = "codex-session-b".to_owned();
    send(&claude, true, Some(("X-Claude-Code-Session-Id", a.clone()))).await;
    send(&claude, true, Some(("x-claude-code-session-id", a.clone()))).await;
    send(&codex, false, Some(("session-id", b.clone()))).await;
    let long = send(&codex, false, Some(("session-id", "x".repeat(129)))).await;
    let odd = send(&claude, true, Some(("x-claude-code-session-id", "a b;DROP TABLE".to_owned()))).await;
    let none = send(&claude, true, None).await;
    app.settled(6).await;
    let rows = ledger(&url).await;
    for refused in [&long, &odd, &none] {
        let row = rows.iter().find(|r| &r.0 == refused).unwrap();
        assert_eq!(row.1, None, "an over-long, odd or absent session id is not stored");
    }
    let by_session = app
        .store
        .usage(&UsageQuery { org_id: Some(app.org.clone()), group_by: UsageGroup::Session, ..UsageQuery::default() })
        .await
        .unwrap();
    let keys: Vec<(&str, i64)> = by_session.iter().map(|r| (r.key.as_str(), r.requests)).collect();
    assert_eq!(keys, [("", 3), (a.as_str(), 2), (b.as_str(), 1)]);
    assert!(by_session.iter().all(|r| r.cost_micros > 0), "each session has its own totals");
    // Codex's session id still reaches the upstream (it keys the prompt cache).
    let seen = app.upstream.requests();
    assert!(seen.iter().any(|s| s.header("session-id") == Some(b.as_str())));
}

#[tokio::test]
async fn a_clients_traceparent_is_never_forwarded_upstream() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = app
        .post("/anthropic/v1/messages", &token, messages("platform/ok", false, 20))
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=secret")
        .header("baggage", "user=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = app.upstream.requests();
    assert_eq!(seen.len(), 1);
    for name in ["traceparent", "tracestate", "baggage"] {
        assert_eq!(seen[0].header(name), None, "{name} reached the upstream");
    }
    for (name, value) in &seen[0].headers {
        assert!(!value.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "the trace id reached the upstream in {name}");
    }
}
