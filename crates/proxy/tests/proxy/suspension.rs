//! Suspension (DESIGN.md section 14) at the proxy: a suspended workspace, or any workspace of
//! a suspended org, is refused with 403 `permission_error` in the route's provider shape
//! naming the reason; nothing reaches the upstream or the credit; the suspension binds on the
//! instance that made it at once and on every other instance through the invalidation
//! channel, not after the token cache's TTL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, App, chat, messages, start_server};

/// An admin POST to `base`: its status and body.
async fn admin_post(app: &App, base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app.http.post(format!("{base}{path}")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Sends one request for `model` on `path` to `base` with `token`: status and body.
async fn send(app: &App, base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{base}{path}"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn anthropic(app: &App, base: &str, token: &str, stream: bool) -> (u16, Value) {
    send(app, base, "/anthropic/v1/messages", token, messages("platform/ok", stream, 16)).await
}

/// Anthropic's 403 shape, naming `reason`.
fn assert_anthropic_suspended(status: u16, body: &Value, reason: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(reason), "names the reason: {body}");
}

/// OpenAI's 403 shape, naming `reason`.
fn assert_openai_suspended(status: u16, body: &Value, reason: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["code"], "permission_denied", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(reason), "names the reason: {body}");
}

/// One instance on SQLite: a workspace suspended through the admin API is refused on its
/// very next request, in each provider's shape, on every route (streaming or not, the model
/// list too); a suspended org stops all its workspaces and its reason wins; resuming serves
/// again. Refusals reach neither the upstream nor the credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspended_workspaces_and_orgs_are_refused_in_each_providers_shape() {
    let app = App::new(1_000_000).await;
    let (claude, claude_token) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex_token) = app.workspace("codex", "platform/gpt").await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    // Both tokens' authorisations are cached before the suspension.
    assert_eq!(anthropic(&app, &base, &claude_token, false).await.0, 200);
    let chat_path = "/openai/v1/chat/completions";
    assert_eq!(send(&app, &base, chat_path, &codex_token, chat("platform/gpt", false, None)).await.0, 200);
    let served = app.settled(2).await;

    let path = format!("/admin/workspaces/{claude}/suspend");
    assert_eq!(admin_post(&app, &base, &path, json!({"reason": "runaway agent"})).await.0, 200);
    let (status, body) = anthropic(&app, &base, &claude_token, false).await;
    assert_anthropic_suspended(status, &body, "this workspace is suspended: runaway agent");
    let (status, body) = anthropic(&app, &base, &claude_token, true).await;
    assert_anthropic_suspended(status, &body, "runaway agent");
    let r =
        app.http.get(format!("{base}/anthropic/v1/models")).header("x-api-key", &claude_token).send().await.unwrap();
    let status = r.status().as_u16();
    assert_anthropic_suspended(status, &r.json().await.unwrap(), "runaway agent");
    assert_eq!(
        send(&app, &base, chat_path, &codex_token, chat("platform/gpt", false, None)).await.0,
        200,
        "other workspaces are served"
    );

    let path = format!("/admin/orgs/{}/suspend", app.org);
    assert_eq!(admin_post(&app, &base, &path, json!({"reason": "unpaid invoice"})).await.0, 200);
    let (status, body) = send(&app, &base, chat_path, &codex_token, chat("platform/gpt", true, None)).await;
    assert_openai_suspended(status, &body, "this workspace's org is suspended: unpaid invoice");
    let responses = json!({"model": "platform/gpt", "input": "hello"});
    let (status, body) = send(&app, &base, "/openai/v1/responses", &codex_token, responses).await;
    assert_openai_suspended(status, &body, "unpaid invoice");
    let (status, body) = anthropic(&app, &base, &claude_token, false).await;
    assert_anthropic_suspended(status, &body, "org is suspended: unpaid invoice");

    assert_eq!(app.upstream.requests().len(), 3, "no refused request reached the upstream");
    let after = app.usage().await;
    assert_eq!((after.requests, after.cost_micros), (served.requests, served.cost_micros), "refusals cost nothing");

    let path = format!("/admin/orgs/{}/resume", app.org);
    assert_eq!(admin_post(&app, &base, &path, json!({})).await.0, 200);
    assert_eq!(send(&app, &base, chat_path, &codex_token, chat("platform/gpt", false, None)).await.0, 200);
    let (status, body) = anthropic(&app, &base, &claude_token, false).await;
    assert_anthropic_suspended(status, &body, "runaway agent");
    let path = format!("/admin/workspaces/{claude}/resume");
    assert_eq!(admin_post(&app, &base, &path, json!({})).await.0, 200);
    assert_eq!(anthropic(&app, &base, &claude_token, false).await.0, 200, "resumed");
}

/// Polls `base` until a request with `token` is refused (403); how long it took. Each poll
/// is a real request; nothing waits longer than the notice's round trip needs.
async fn until_refused(app: &App, base: &str, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = anthropic(app, base, token, false).await;
        match status {
            403 => {
                assert_anthropic_suspended(status, &body, "stop");
                return start.elapsed();
            }
            200 => assert!(start.elapsed() < limit, "still served after {limit:?}"),
            other => panic!("unexpected {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two instances on one Postgres, both with the workspace's authorisation cached: a
/// suspension made through A is refused on A's next request, and on B as soon as the
/// notice arrives (far under the cache's 30 s TTL); resuming through A serves on B again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspension_binds_on_every_instance_through_the_channel() {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    let store_a = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let store_b = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let app = App::on(store_a.clone(), 1_000_000, None).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy_a, base_a) = start_server(store_a, &app.upstream.url()).await;
    let (_proxy_b, base_b) = start_server(store_b, &app.upstream.url()).await;
    assert_eq!(anthropic(&app, &base_a, &token, false).await.0, 200);
    assert_eq!(anthropic(&app, &base_b, &token, false).await.0, 200);

    let (status, _) =
        admin_post(&app, &base_a, &format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "stop"})).await;
    assert_eq!(status, 200);
    let (status, body) = anthropic(&app, &base_a, &token, false).await;
    assert_anthropic_suspended(status, &body, "stop");
    let took = until_refused(&app, &base_b, &token, Duration::from_secs(5)).await;
    eprintln!("suspension reached instance B after {took:?}");

    let (status, _) = admin_post(&app, &base_a, &format!("/admin/workspaces/{ws}/resume"), json!({})).await;
    assert_eq!(status, 200);
    let start = Instant::now();
    while anthropic(&app, &base_b, &token, false).await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(5), "B still refuses after the resume");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The org's suspension, made through B, binds on A.
    let (status, _) =
        admin_post(&app, &base_b, &format!("/admin/orgs/{}/suspend", app.org), json!({"reason": "stop org"})).await;
    assert_eq!(status, 200);
    until_refused(&app, &base_a, &token, Duration::from_secs(5)).await;
}
