//! Rate limits (DESIGN.md section 14): `requests_per_minute`, `tokens_per_minute` and
//! `max_concurrent_requests` of a workspace and of its org, set through the admin API and
//! applied at once; each refusal a 429 in the provider's shape with `retry-after`; on SQLite
//! and on Postgres; and a limit changed while requests are in flight.

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_store::Store;

use crate::{ADMIN_TOKEN, App, chat, messages, start_server};

/// Which route a request goes to.
#[derive(Clone, Copy, Debug)]
enum Route {
    Messages,
    Chat,
    Responses,
}

impl Route {
    fn runtime(self) -> &'static str {
        match self {
            Route::Messages => "claude-code",
            Route::Chat | Route::Responses => "codex",
        }
    }

    /// A request body for `model` (a platform model of the route's protocol) asking for at
    /// most `max_tokens`.
    fn body(self, model: &str, max_tokens: u64) -> Value {
        match self {
            Route::Messages => messages(model, false, max_tokens),
            Route::Chat => {
                let mut b = chat(model, false, None);
                b["max_tokens"] = json!(max_tokens);
                b
            }
            Route::Responses => json!({"model": model, "input": "Say hello.", "max_output_tokens": max_tokens}),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Route::Messages => "/anthropic/v1/messages",
            Route::Chat => "/openai/v1/chat/completions",
            Route::Responses => "/openai/v1/responses",
        }
    }

    fn model(self, slow: bool) -> &'static str {
        match (self, slow) {
            (Route::Messages, false) => "platform/ok",
            (Route::Messages, true) => "platform/slow",
            (_, false) => "platform/gpt",
            (_, true) => "platform/gpt-slow",
        }
    }
}

/// A proxy and the admin API on one router over `store`, an org with plenty of credit.
async fn app_on(store: Arc<dyn Store>) -> (App, String) {
    let app = App::on(store.clone(), 100_000_000, None).await;
    let (_proxy, base) = start_server(store, &app.upstream.url()).await;
    (app, base)
}

async fn sqlite() -> (App, String) {
    let app = App::new(100_000_000).await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    (app, base)
}

async fn postgres() -> (App, String) {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    app_on(tollgate_store::connect(&url, crate::key()).await.unwrap()).await
}

/// `PATCH {base}{path}` with `limits`; asserts 200.
async fn set_limits(app: &App, base: &str, path: &str, limits: Value) {
    let r = app
        .http
        .patch(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"limits": limits}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
}

/// One request on `route` through `base`: (status, retry-after header, body).
async fn send(
    app: &App,
    base: &str,
    route: Route,
    token: &str,
    slow: bool,
    max_tokens: u64,
) -> (u16, Option<u64>, Value) {
    let r = app
        .http
        .post(format!("{base}{}", route.path()))
        .header("x-api-key", token)
        .bearer_auth(token)
        .header("anthropic-version", "2023-06-01")
        .json(&route.body(route.model(slow), max_tokens))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap())
}

/// Checks a 429 in `route`'s provider shape, naming `field`, with a `retry-after` of 1 to 62 s.
#[track_caller]
fn assert_rate_refusal(route: Route, (status, retry, body): &(u16, Option<u64>, Value), field: &str) {
    assert_eq!(*status, 429, "{body}");
    let retry = retry.unwrap_or_else(|| panic!("a 429 carries retry-after: {body}"));
    assert!((1..=62).contains(&retry), "retry-after {retry}");
    let message = match route {
        Route::Messages => {
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            body["error"]["message"].as_str().unwrap()
        }
        Route::Chat | Route::Responses => {
            assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
            assert_eq!(body["error"]["type"], "rate_limit_exceeded", "{body}");
            body["error"]["message"].as_str().unwrap()
        }
    };
    assert!(message.contains(field), "the message names the limit: {message}");
}

/// Every limit refuses in every provider's shape: requests per minute (the third request of a
/// limit of two), tokens per minute (a request whose worst case does not fit what is left,
/// then one that exceeds the limit itself), and concurrency (a second request while a slow
/// one is in flight, admitted again once it ended).
async fn each_refusal_in_each_shape((app, base): (App, String)) {
    for route in [Route::Messages, Route::Chat, Route::Responses] {
        let (ws, token) = app.workspace(route.runtime(), route.model(false)).await;
        let path = format!("/admin/workspaces/{ws}");

        set_limits(&app, &base, &path, json!({"requests_per_minute": 2})).await;
        assert_eq!(send(&app, &base, route, &token, false, 16).await.0, 200);
        assert_eq!(send(&app, &base, route, &token, false, 16).await.0, 200);
        assert_rate_refusal(route, &send(&app, &base, route, &token, false, 16).await, "requests_per_minute");

        // A request's worst case is its input estimate (over 512 tokens: half its bytes plus
        // 512) plus max_tokens: one of 1,400 in flight counts about 2,000 of 3,000, and
        // another does not fit; once the first is settled at its true usage (some 25 tokens),
        // one more fits.
        let (ws2, token2) = app.workspace(route.runtime(), route.model(false)).await;
        set_limits(&app, &base, &format!("/admin/workspaces/{ws2}"), json!({"tokens_per_minute": 3_000})).await;
        let seen = app.upstream.requests().len();
        let slow = spawn_slow(&app, &base, route, &token2, 1_400);
        wait_until(|| app.upstream.requests().len() > seen).await;
        assert_rate_refusal(route, &send(&app, &base, route, &token2, false, 1_400).await, "tokens_per_minute");
        slow.await.unwrap();
        // The settlement runs as the answer ends, and a correction that missed its slot is
        // written by the background task: poll (a bound only so that a broken test fails).
        let mut admitted = false;
        for _ in 0..100 {
            let (status, _, body) = send(&app, &base, route, &token2, false, 1_400).await;
            if status == 200 {
                admitted = true;
                break;
            }
            assert_eq!(status, 429, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(admitted, "settlement corrected the count");
        let (status, retry, body) = send(&app, &base, route, &token2, false, 5_000).await;
        assert_eq!((status, retry), (429, Some(60)), "never fits: {body}");
        assert!(body.to_string().contains("more than the limit allows"), "{body}");

        let (ws3, token3) = app.workspace(route.runtime(), route.model(false)).await;
        set_limits(&app, &base, &format!("/admin/workspaces/{ws3}"), json!({"max_concurrent_requests": 1})).await;
        // The slow request is in flight once the upstream has seen it.
        let seen = app.upstream.requests().len();
        let slow = spawn_slow(&app, &base, route, &token3, 16);
        wait_until(|| app.upstream.requests().len() > seen).await;
        assert_rate_refusal(route, &send(&app, &base, route, &token3, false, 16).await, "max_concurrent_requests");
        slow.await.unwrap();
        assert_eq!(send(&app, &base, route, &token3, false, 16).await.0, 200, "admitted again after the first ended");
    }
}

/// An org's limit covers all its workspaces together, and the refusal says it is the org's.
async fn an_org_limit_covers_its_workspaces((app, base): (App, String)) {
    set_limits(&app, &base, &format!("/admin/orgs/{}", app.org), json!({"requests_per_minute": 3})).await;
    let (_, a) = app.workspace("claude-code", "platform/ok").await;
    let (_, b) = app.workspace("claude-code", "platform/ok").await;
    let mut admitted = 0;
    for i in 0..6 {
        let token = if i % 2 == 0 { &a } else { &b };
        let r = send(&app, &base, Route::Messages, token, false, 16).await;
        if r.0 == 200 {
            admitted += 1;
        } else {
            assert_rate_refusal(Route::Messages, &r, "requests_per_minute");
            assert!(r.2.to_string().contains("org's"), "{}", r.2);
        }
    }
    assert_eq!(admitted, 3);
}

/// A limit lowered while requests are in flight binds at once: with four slow requests in
/// flight, lowering `max_concurrent_requests` from 8 to 2 refuses the next one until they end;
/// lowering `requests_per_minute` below what was admitted refuses at once; removing it admits.
async fn a_limit_changed_while_requests_are_in_flight((app, base): (App, String)) {
    let route = Route::Messages;
    let (ws, token) = app.workspace(route.runtime(), route.model(false)).await;
    let path = format!("/admin/workspaces/{ws}");
    set_limits(&app, &base, &path, json!({"max_concurrent_requests": 8, "requests_per_minute": 100})).await;
    let seen = app.upstream.requests().len();
    let mut slow = Vec::new();
    for _ in 0..4 {
        let (http, base, token) = (app.http.clone(), base.clone(), token.clone());
        slow.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/anthropic/v1/messages"))
                .header("x-api-key", &token)
                .json(&messages("platform/slow", true, 16))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            r.bytes().await.unwrap();
            status
        }));
    }
    wait_until(|| app.upstream.requests().len() >= seen + 4).await;
    set_limits(&app, &base, &path, json!({"max_concurrent_requests": 2})).await;
    assert_rate_refusal(route, &send(&app, &base, route, &token, false, 16).await, "max_concurrent_requests");
    set_limits(&app, &base, &path, json!({"requests_per_minute": 3})).await;
    for s in slow {
        assert_eq!(s.await.unwrap(), 200, "requests in flight finish");
    }
    assert_rate_refusal(route, &send(&app, &base, route, &token, false, 16).await, "requests_per_minute");
    set_limits(&app, &base, &path, json!({"requests_per_minute": null})).await;
    let (status, _, body) = send(&app, &base, route, &token, false, 16).await;
    assert_eq!(status, 200, "{body}");
}

/// A request refused for want of credit (402) was not admitted: it does not count against
/// the rate limit, so the two requests a limit of two allows are still admitted after credit
/// is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_refused_for_credit_does_not_count() {
    let app = App::new(0).await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    set_limits(&app, &base, &format!("/admin/workspaces/{ws}"), json!({"requests_per_minute": 2})).await;
    for _ in 0..3 {
        assert_eq!(send(&app, &base, Route::Messages, &token, false, 16).await.0, 402);
    }
    let r = app
        .http
        .post(format!("{base}/admin/orgs/{}/credit", app.org))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"delta_micros": 10_000_000, "reason": "top-up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(send(&app, &base, Route::Messages, &token, false, 16).await.0, 200);
    assert_eq!(send(&app, &base, Route::Messages, &token, false, 16).await.0, 200);
    assert_rate_refusal(
        Route::Messages,
        &send(&app, &base, Route::Messages, &token, false, 16).await,
        "requests_per_minute",
    );
}

/// Sends a request to a slow model (its answer takes a while) in a task; the task ends with
/// its answer read.
fn spawn_slow(app: &App, base: &str, route: Route, token: &str, max_tokens: u64) -> tokio::task::JoinHandle<()> {
    let (http, base, token) = (app.http.clone(), base.to_owned(), token.to_owned());
    let body = route.body(route.model(true), max_tokens);
    tokio::spawn(async move {
        let r = http
            .post(format!("{base}{}", route.path()))
            .header("x-api-key", &token)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    })
}

/// Polls `done` (no timing assertion: a bound only so that a broken test fails).
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_refusal_in_each_shape_on_sqlite() {
    each_refusal_in_each_shape(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_refusal_in_each_shape_on_postgres() {
    each_refusal_in_each_shape(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_limit_covers_its_workspaces_on_sqlite() {
    an_org_limit_covers_its_workspaces(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_limit_covers_its_workspaces_on_postgres() {
    an_org_limit_covers_its_workspaces(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_changed_while_requests_are_in_flight_on_sqlite() {
    a_limit_changed_while_requests_are_in_flight(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limit_changed_while_requests_are_in_flight_on_postgres() {
    a_limit_changed_while_requests_are_in_flight(postgres().await).await;
}
