//! Hard budgets (DESIGN.md section 14): a request is admitted only if its worst case fits under
//! every budget of its workspace and org; a refusal is a 402 in the provider's shape naming
//! the limit, the period and when it resets; periods roll over at UTC midnight and on the
//! first of the month (an injected clock); a limit changed while requests are in flight binds
//! the next request.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use tollgate_policy::budget::{BudgetScope, Period, PeriodKind};
use tollgate_policy::limits::LimitsInput;
use tollgate_policy::{LimitsPatch, Micros};
use tollgate_store::{OrgPatch, Store, WorkspacePatch};

use crate::{ADMIN_TOKEN, App, chat, messages, start_proxy_clocked, start_server};

/// 2026-12-31T23:59:59Z.
const NEW_YEARS_EVE: i64 = 1_798_761_599_000;

fn limits(v: Value) -> LimitsPatch {
    serde_json::from_value::<LimitsInput>(v).unwrap().parse().unwrap()
}

async fn set_ws(store: &dyn Store, ws: &tollgate_policy::WorkspaceId, v: Value) {
    store.update_workspace(ws, &WorkspacePatch { limits: limits(v), ..WorkspacePatch::default() }).await.unwrap();
    store.publish_invalidation(&tollgate_store::Invalidation::Workspace(ws.clone())).await.unwrap();
}

async fn set_org(app: &App, v: Value) {
    app.store.update_org(&app.org, &OrgPatch { limits: limits(v), ..OrgPatch::default() }).await.unwrap();
    app.store.publish_invalidation(&tollgate_store::Invalidation::Org(app.org.clone())).await.unwrap();
}

/// The worst case the proxy reserves for `messages("platform/ok", false, max_tokens)`: the
/// input estimate at the dearest input price (cache write, 3) plus `max_tokens` at 2.
fn worst_case(max_tokens: u64) -> i64 {
    let body = serde_json::to_vec(&messages("platform/ok", false, max_tokens)).unwrap();
    let estimate = i64::try_from(tollgate_proxy::rewrite::estimate_input_tokens(body.len())).unwrap();
    3 * estimate + 2 * i64::try_from(max_tokens).unwrap()
}

async fn send_messages(app: &App, base: &str, token: &str, max_tokens: u64) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .json(&messages("platform/ok", false, max_tokens))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Checks a budget refusal's message: it names `field`, the period `key` and the reset time.
fn assert_names(message: &str, field: &str, key: &str, reset: &str) {
    for part in [field, key, reset] {
        assert!(message.contains(part), "`{message}` does not name {part}");
    }
}

async fn each_shape_refused(app: &App) {
    let (_, anthropic) = app.workspace("claude-code", "platform/ok").await;
    let (_, openai) = app.workspace("codex", "platform/gpt").await;
    let now = tollgate_store::Timestamp::now().0;
    let day = Period::containing(PeriodKind::Day, now);
    let month = Period::containing(PeriodKind::Month, now);

    // The workspace's own daily budget (1 micro-USD: no request fits).
    for ws in app.store.list_workspaces(Some(&app.org)).await.unwrap() {
        set_ws(app.store.as_ref(), &ws.id, json!({"budget_micros_per_day": 1})).await;
    }
    let r = app.post("/anthropic/v1/messages", &anthropic, messages("platform/ok", false, 16)).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "billing_error", "{body}");
    assert_names(body["error"]["message"].as_str().unwrap(), "budget_micros_per_day", &day.key, &day.reset_rfc3339());
    assert!(body["error"]["message"].as_str().unwrap().contains("workspace"), "{body}");

    let openai_routes = [
        ("/openai/v1/chat/completions", chat("platform/gpt", false, None)),
        ("/openai/v1/chat/completions", chat("platform/gpt", true, None)),
        ("/openai/v1/responses", json!({"model": "platform/gpt", "input": "hello", "max_output_tokens": 16})),
    ];
    for (path, req) in &openai_routes {
        let r = app.http.post(format!("{}{path}", app.base)).bearer_auth(&openai).json(req).send().await.unwrap();
        assert_eq!(r.status(), 402, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["type"], "billing_error", "{path}: {body}");
        assert!(body["error"].get("code").is_some(), "{path}: the OpenAI shape carries a code: {body}");
        assert_names(
            body["error"]["message"].as_str().unwrap(),
            "budget_micros_per_day",
            &day.key,
            &day.reset_rfc3339(),
        );
    }

    // The org's monthly budget binds every workspace, new ones included (fresh tokens: no
    // cached authorisation to wait for on Postgres, where invalidations arrive asynchronously).
    set_org(app, json!({"budget_micros_per_month": 1})).await;
    let (_, anthropic) = app.workspace("claude-code", "platform/ok").await;
    let (_, openai) = app.workspace("codex", "platform/gpt").await;
    let r = app.post("/anthropic/v1/messages", &anthropic, messages("platform/ok", true, 16)).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "billing_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_names(message, "budget_micros_per_month", &month.key, &month.reset_rfc3339());
    assert!(message.contains("org"), "{message}");
    let (path, req) = &openai_routes[2];
    let r = app.http.post(format!("{}{path}", app.base)).bearer_auth(&openai).json(req).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_names(
        body["error"]["message"].as_str().unwrap(),
        "budget_micros_per_month",
        &month.key,
        &month.reset_rfc3339(),
    );

    assert!(app.upstream.requests().is_empty(), "nothing refused reached the upstream");
    let u = app.settled(6).await;
    assert_eq!((u.requests, u.cost_micros), (6, 0), "each refusal has its ledger row and costs nothing");
    // Removing the budget admits again, once the change reaches the proxy.
    set_org(app, json!({"budget_micros_per_month": null})).await;
    let (path, req) = &openai_routes[0];
    let mut status = 0;
    for _ in 0..200 {
        let r = app.http.post(format!("{}{path}", app.base)).bearer_auth(&openai).json(req).send().await.unwrap();
        status = r.status().as_u16();
        if status != 402 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_refusals_in_each_provider_shape_sqlite() {
    each_shape_refused(&App::new(1_000_000_000).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budget_refusals_in_each_provider_shape_postgres() {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    let store = tollgate_store::connect(&url, crate::key()).await.unwrap();
    each_shape_refused(&App::on(store, 1_000_000_000, None).await).await;
}

/// Requests are admitted while their worst case fits what is left of the budget, and the
/// first refusal comes only when it no longer does: spend never passes the budget, and the
/// budget is not starved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admitted_while_the_worst_case_fits_then_refused() {
    let app = App::new(1_000_000_000).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let worst = worst_case(40);
    let budget = 4 * worst;
    set_ws(app.store.as_ref(), &ws, json!({"budget_micros_per_day": budget})).await;
    let day = Period::containing(PeriodKind::Day, tollgate_store::Timestamp::now().0);
    let mut admitted = 0;
    let refused_at = loop {
        let (status, body) = send_messages(&app, &app.base, &token, 40).await;
        // Settlement is off the response's path: wait until the hold is settled.
        let spent = loop {
            let (spent, reserved) =
                app.store.budget_usage(BudgetScope::Workspace, ws.as_str(), &day.key).await.unwrap();
            if reserved == Micros::ZERO {
                break spent.get();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert!(spent <= budget, "spent {spent} beyond the budget {budget}");
        if status == 402 {
            assert_eq!(body["error"]["type"], "billing_error");
            break spent;
        }
        assert_eq!(status, 200, "{body}");
        admitted += 1;
        assert!(admitted < 1000, "never refused");
    };
    assert!(
        refused_at + worst > budget,
        "refused only when the worst case no longer fits ({refused_at} + {worst} > {budget})"
    );
    let u = app.settled(admitted + 1).await;
    assert_eq!(u.cost_micros, refused_at, "the budget counts exactly what was charged");
}

/// A day budget spent at 23:59:59 on New Year's Eve admits again one second later; a month
/// budget spent in January stays spent on the 31st and admits again on 1 February.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn day_and_month_roll_over_with_an_injected_clock() {
    let app = App::new(1_000_000_000).await;
    let now = Arc::new(AtomicI64::new(NEW_YEARS_EVE));
    let clock = {
        let now = now.clone();
        tollgate_proxy::Clock::new(move || now.load(Ordering::SeqCst))
    };
    let (_proxy, base) = start_proxy_clocked(app.store.clone(), &app.upstream.url(), clock).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let worst = worst_case(40);
    set_ws(app.store.as_ref(), &ws, json!({"budget_micros_per_day": worst})).await;
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200, "the worst case fits exactly");
    let (status, body) = send_messages(&app, &base, &token, 40).await;
    assert_eq!(status, 402, "{body}");
    assert_names(
        body["error"]["message"].as_str().unwrap(),
        "budget_micros_per_day",
        "2026-12-31",
        "2027-01-01T00:00:00Z",
    );
    now.fetch_add(1_000, Ordering::SeqCst);
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200, "a new UTC day, a new budget");

    set_ws(app.store.as_ref(), &ws, json!({"budget_micros_per_day": null})).await;
    set_org(&app, json!({"budget_micros_per_month": worst})).await;
    now.store(NEW_YEARS_EVE + 15 * 86_400_000, Ordering::SeqCst); // 2027-01-15
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200);
    let (status, body) = send_messages(&app, &base, &token, 40).await;
    assert_eq!(status, 402, "{body}");
    assert_names(
        body["error"]["message"].as_str().unwrap(),
        "budget_micros_per_month",
        "2027-01",
        "2027-02-01T00:00:00Z",
    );
    now.store(NEW_YEARS_EVE + 31 * 86_400_000, Ordering::SeqCst); // 2027-01-31T23:59:59Z
    let (status, body) = send_messages(&app, &base, &token, 40).await;
    assert_eq!(status, 402, "still January: {body}");
    now.fetch_add(1_000, Ordering::SeqCst); // 2027-02-01T00:00:00Z
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200, "a new month, a new budget");
}

/// Lowering a budget while requests are in flight refuses the next request at once; the ones
/// in flight finish and are counted; raising it admits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_changed_while_requests_are_in_flight() {
    let app = App::new(1_000_000_000).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    let patch = |v: Value| {
        let (http, url) = (app.http.clone(), format!("{base}/admin/workspaces/{ws}"));
        async move {
            let r = http.patch(url).bearer_auth(ADMIN_TOKEN).json(&json!({"limits": v})).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let body = patch(json!({"budget_micros_per_day": 1_000_000})).await;
    assert_eq!(body["limits"]["budget_micros_per_day"], 1_000_000);
    let slow = || {
        let (http, base, token) = (app.http.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let r = http
                .post(format!("{base}/anthropic/v1/messages"))
                .header("x-api-key", token)
                .json(&messages("platform/slow", true, 40))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let _ = r.text().await;
            status
        })
    };
    let in_flight: Vec<_> = (0..4).map(|_| slow()).collect();
    while app.upstream.requests().len() < 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    patch(json!({"budget_micros_per_day": 1})).await;
    let (status, body) = send_messages(&app, &base, &token, 40).await;
    assert_eq!(status, 402, "the lowered budget binds the next request: {body}");
    for t in in_flight {
        assert_eq!(t.await.unwrap(), 200, "requests in flight finish");
    }
    let day = Period::containing(PeriodKind::Day, tollgate_store::Timestamp::now().0);
    let spent = loop {
        let (spent, reserved) = app.store.budget_usage(BudgetScope::Workspace, ws.as_str(), &day.key).await.unwrap();
        if reserved == Micros::ZERO {
            break spent.get();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let u = app.settled(5).await;
    assert_eq!(spent, u.cost_micros, "the requests in flight are counted against the budget");
    assert!(spent > 0);
    patch(json!({"budget_micros_per_day": 1_000_000})).await;
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200, "raised: admitted again");
    patch(json!({"budget_micros_per_day": null})).await;
    assert_eq!(send_messages(&app, &base, &token, 40).await.0, 200, "removed: admitted");
}
