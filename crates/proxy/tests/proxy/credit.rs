//! Credit leases: the bookkeeping that keeps the database off the request's path must still
//! never overspend, lose a row or strand credit.

use std::time::Duration;

use tollgate_policy::Micros;

use tollgate_store::Overdraft;

use crate::{App, messages, start_proxy};

/// The worst case the proxy reserves for `body` on the test registry's `platform/ok`: the
/// input estimate at the dearer of input (1) and cache write (3), plus `max_tokens` at 2.
fn worst_case(body: &serde_json::Value, max_tokens: i64) -> i64 {
    let estimate =
        i64::try_from(tollgate_proxy::rewrite::estimate_input_tokens(serde_json::to_vec(body).unwrap().len())).unwrap();
    3 * estimate + 2 * max_tokens
}

/// Credit another instance leased but is not using is recalled before a request is refused:
/// without the recall, instance B's third request would be a 402 while A sits on the credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_leased_by_an_idle_instance_is_recalled_not_refused() {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    let store_a = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let store_b = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let app = App::on(store_a, 0, None).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (proxy_b, base_b) = start_proxy(store_b, &app.upstream.url()).await;
    let body = messages("platform/ok", false, 20);
    let worst = worst_case(&body, 20);
    // Two worst cases and one micro-USD: each instance's first lease takes one worst case.
    app.store.adjust_credit(&app.org, Micros::new(2 * worst + 1), "test", Overdraft::Refuse).await.unwrap();
    let start = app.credit().await;
    let send = |base: String| {
        let (http, token, body) = (app.http.clone(), token.clone(), body.clone());
        async move {
            http.post(format!("{base}/anthropic/v1/messages"))
                .header("x-api-key", token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(app.base.clone()).await, 200, "A leases one worst case");
    assert_eq!(send(base_b.clone()).await, 200, "B leases the other");
    app.settled(2).await;
    assert!(
        app.store.leased_credit(&app.org).await.unwrap().get() > worst,
        "both instances still hold their unspent leases"
    );
    assert_eq!(send(base_b.clone()).await, 200, "B's lease and the balance do not cover it: A's is recalled");
    let u = app.settled(3).await;
    assert_eq!((u.requests, u.errors), (3, 0));
    assert_eq!(app.upstream.requests().len(), 3);
    assert_eq!(app.credit().await, start - u.cost_micros, "each request charged exactly once");
    // Shutting both down returns every lease.
    app.proxy.shutdown().await.unwrap();
    proxy_b.shutdown().await.unwrap();
    assert_eq!(app.store.leased_credit(&app.org).await.unwrap(), Micros::ZERO);
    assert_eq!(app.credit().await, start - u.cost_micros);
}

/// Requests are served from the lease in memory: many requests take few leases, every one
/// still has its row, and shutdown writes the rows and returns the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_share_one_lease_and_shutdown_returns_it() {
    let app = App::new(1_000_000_000).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let body = messages("platform/ok", false, 20);
    let worst = worst_case(&body, 20);
    for _ in 0..30 {
        let r = app.post("/anthropic/v1/messages", &token, body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // One lease of 64 worst cases covered them all: a second grant would hold more.
    let leased = app.store.leased_credit(&app.org).await.unwrap().get();
    assert!(leased > 0 && leased <= 64 * worst, "one lease: {leased} of at most {}", 64 * worst);
    // Written by the shutdown, not by waiting.
    app.proxy.shutdown().await.unwrap();
    let u = app.usage().await;
    assert_eq!((u.requests, u.errors), (30, 0), "one ledger row per request");
    assert_eq!(app.store.leased_credit(&app.org).await.unwrap(), Micros::ZERO, "the lease went back");
    assert_eq!(app.credit().await, 1_000_000_000 - u.cost_micros);
    let rows = app
        .store
        .usage(&tollgate_store::UsageQuery {
            workspace_id: Some(ws),
            group_by: tollgate_store::UsageGroup::Model,
            ..tollgate_store::UsageQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows[0].requests, 30);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// OpenAI's `n` asks for that many choices, each up to the output limit; without a limit
/// each choice may run to the default, so the worst case is `n` times the default output.
/// An org whose credit covers one choice's default worst case but not four is refused
/// (402) a request for `n: 4` without a limit, before anything reaches the upstream.
#[tokio::test]
async fn n_choices_without_an_output_limit_reserve_n_times_the_default() {
    // 32,000 default output tokens at 2 µUSD: 64,000 per choice.
    let app = App::new(100_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let mut body = crate::chat("platform/gpt", false, None);
    body.as_object_mut().unwrap().remove("max_tokens");
    let one = app.post("/openai/v1/chat/completions", &token, body.clone()).send().await.unwrap();
    assert_eq!(one.status(), 200, "one choice fits");
    body["n"] = serde_json::json!(4);
    let four = app.post("/openai/v1/chat/completions", &token, body).send().await.unwrap();
    assert_eq!(four.status(), 402, "four choices of 32,000 tokens do not fit in 100,000 µUSD");
    assert_eq!(app.upstream.requests().len(), 1);
}
