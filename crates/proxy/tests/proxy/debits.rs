//! Debits that bind (DESIGN.md section 14): a debit takes effect before any further
//! admission, on the instance that made it and on every other; a debit beyond the balance is
//! refused unless allowed; balances are bounded.

use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, App, messages, start_server};

/// An admin call to `base`: (status, body).
async fn admin(http: &reqwest::Client, base: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{base}{path}");
    let req = match body {
        Some(b) => http.post(url).json(&b),
        None => http.get(url),
    };
    let resp = req.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The org's balance as the admin API shows it.
async fn shown(app: &App, base: &str) -> i64 {
    let (status, org) = admin(&app.http, base, &format!("/admin/orgs/{}", app.org), None).await;
    assert_eq!(status, 200);
    org["credit_micros"].as_i64().unwrap()
}

/// Debits the whole shown balance through `base`'s admin API; returns the new balance.
async fn debit_all(app: &App, base: &str) -> i64 {
    let balance = shown(app, base).await;
    assert!(balance > 0);
    let path = format!("/admin/orgs/{}/credit", app.org);
    let (status, body) =
        admin(&app.http, base, &path, Some(json!({"delta_micros": -balance, "reason": "clawback"}))).await;
    assert_eq!(status, 200, "{body}");
    body["credit_micros"].as_i64().unwrap()
}

/// Sends one small Messages request to `base`; its status.
async fn send(app: &App, base: &str, token: &str) -> u16 {
    app.http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .json(&messages("platform/ok", false, 20))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// One instance on SQLite: after a request the instance holds a lease (an eighth of the
/// org's 1,000,000); a debit of the whole shown balance leaves nothing to admit: every later
/// request is a 402, and the balance stays at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_debit_binds_on_the_instance_that_made_it() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    assert_eq!(send(&app, &base, &token).await, 200);
    let first = app.settled(1).await;
    assert!(app.store.leased_credit(&app.org).await.unwrap().get() > 0, "the instance leased credit");
    assert_eq!(shown(&app, &base).await, 1_000_000 - first.cost_micros);
    assert_eq!(debit_all(&app, &base).await, 0);
    assert_eq!(app.store.leased_credit(&app.org).await.unwrap().get(), 0, "the debit closed the lease");
    let mut admitted = 0;
    for _ in 0..100 {
        match send(&app, &base, &token).await {
            200 => admitted += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, 0, "nothing is admitted after a debit to zero");
    let u = app.settled(101).await;
    assert_eq!((u.requests, u.errors), (101, 100));
    assert_eq!(app.upstream.requests().len(), 1, "no refused request reached the upstream");
    assert_eq!(app.credit().await, 0, "the balance never goes below zero");
}

/// A debit beyond the balance is 409 `INSUFFICIENT_CREDIT` and changes nothing, unless the
/// body says `allow_negative`; a negative balance admits nothing; the balance stays within
/// ±10^15 (400 `INVALID_CREDIT` otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debits_beyond_the_balance_need_allow_negative_and_balances_are_bounded() {
    let app = App::new(1_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    let path = format!("/admin/orgs/{}/credit", app.org);
    let post = |body: Value| admin(&app.http, &base, &path, Some(body));
    let (status, body) = post(json!({"delta_micros": -1_001, "reason": "too much"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("INSUFFICIENT_CREDIT")), "{body}");
    assert_eq!(shown(&app, &base).await, 1_000, "a refused debit changes nothing");
    let (status, body) = post(json!({"delta_micros": -1_001, "reason": "fee", "allow_negative": true})).await;
    assert_eq!((status, body["credit_micros"].as_i64()), (200, Some(-1)), "{body}");
    assert_eq!(send(&app, &base, &token).await, 402, "a negative balance admits nothing");
    let max = 1_000_000_000_000_000_i64;
    let (status, body) = post(json!({"delta_micros": -max, "reason": "floor", "allow_negative": true})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_CREDIT")), "{body}");
    let (status, body) = post(json!({"delta_micros": max, "reason": "ceiling"})).await;
    assert_eq!((status, body["credit_micros"].as_i64()), (200, Some(max - 1)), "{body}");
    let (status, body) = post(json!({"delta_micros": 2, "reason": "over"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_CREDIT")), "{body}");
    assert_eq!(shown(&app, &base).await, max - 1);
    let (status, body) = post(json!({"delta_micros": 1, "reason": "x", "allow_negative": "yes"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_JSON")), "{body}");
}

/// Two instances on one Postgres, both holding leases: after a debit to zero through one
/// instance's admin API, neither admits anything, and the balance ends at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_debit_binds_on_every_instance() {
    let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
    let store_a = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let store_b = tollgate_store::connect(&url, crate::key()).await.unwrap();
    let app = App::on(store_a.clone(), 1_000_000, None).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy_a, base_a) = start_server(store_a, &app.upstream.url()).await;
    let (_proxy_b, base_b) = start_server(store_b, &app.upstream.url()).await;
    assert_eq!(send(&app, &base_a, &token).await, 200);
    assert_eq!(send(&app, &base_b, &token).await, 200);
    let before = app.settled(2).await;
    let leased = app.store.leased_credit(&app.org).await.unwrap().get();
    assert!(leased > 125_000, "both instances hold a lease: {leased}");
    assert_eq!(shown(&app, &base_a).await, 1_000_000 - before.cost_micros);
    assert_eq!(debit_all(&app, &base_a).await, 0);
    let mut admitted = 0;
    for i in 0..200 {
        // B first: the instance that learns of the debit only through the notice.
        let base = if i % 2 == 0 { &base_b } else { &base_a };
        match send(&app, base, &token).await {
            200 => admitted += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, 0, "nothing is admitted anywhere after a debit to zero");
    let u = app.settled(202).await;
    assert_eq!((u.requests, u.errors), (202, 200));
    assert_eq!(app.credit().await, 0, "the balance never goes below zero");
    assert_eq!(app.store.leased_credit(&app.org).await.unwrap().get(), 0);
}

/// A receiver that lags behind the invalidation channel loses notices, a debit's cut among
/// them: the proxy then treats everything as changed and drops every lease (their credit goes
/// back to the org), instead of spending on from a lease the debit closed.
#[tokio::test(flavor = "current_thread")]
async fn a_lagging_follower_drops_every_lease() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    assert_eq!(send(&app, &app.base, &token).await, 200);
    app.settled(1).await;
    assert!(app.store.leased_credit(&app.org).await.unwrap().get() > 0, "the instance holds a lease");
    // On this one thread the follower cannot run until the test yields: the cut, then more
    // notices than the channel keeps (1024), so the cut is lost to it.
    let store = &app.store;
    store.publish_invalidation(&tollgate_store::Invalidation::CreditCut(app.org.clone())).await.unwrap();
    for i in 0..2_000 {
        let ws = tollgate_policy::WorkspaceId::parse(&format!("ws-{i}")).unwrap();
        store.publish_invalidation(&tollgate_store::Invalidation::Workspace(ws)).await.unwrap();
    }
    for _ in 0..200 {
        if app.store.leased_credit(&app.org).await.unwrap().get() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the lease survived a lost cut: {:?}", app.store.leased_credit(&app.org).await);
}
