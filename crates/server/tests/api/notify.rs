//! Webhook notifications (DESIGN.md section 15): events recorded through the store and handed
//! to the server's notifier, as the alarm evaluator does, against local receivers that accept,
//! fail, or hang. Checks the body (the event as `GET /admin/events` shows it), its HMAC
//! signature, the global and per-org destinations, retries, and `webhook.failed`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use tollgate_policy::{Actor, EventKind, OrgId, WebhookUrl, WorkspaceId};
use tollgate_server::notify::NotifierConfig;
use tollgate_store::{Event, NewEvent};
use tollgate_testkit::webhook::{Behaviour, Hit, Receiver};

use crate::both_backends;
use crate::support::{Backend, Options, TestApp, spawn_with};

both_backends!(
    delivered_once_signed_with_the_event,
    org_and_global_urls_both_receive,
    org_webhook_url_is_validated_and_redacted,
    the_documented_url_grammar_is_the_validated_one,
    a_failing_receiver_is_retried_then_recorded,
    a_refusing_receiver_is_not_retried,
    a_hanging_receiver_times_out_and_is_recorded,
    a_receiver_that_fails_once_gets_it_next_time,
    admin_events_and_failures_are_not_sent,
    a_full_queue_is_recorded,
    the_alarm_evaluators_firings_are_delivered_signed,
    a_drain_at_shutdown_waits_for_deliveries_under_way_within_its_deadline,
);

const SECRET: &str = "whsec-test-7d1c0b9a";
/// The part of a Slack URL that is the credential: it must never leave the request.
const URL_SECRET: &str = "T0001-B0001-pathsecret9f8e7d";
/// Long enough for any delivery on a loaded machine, short enough to fail a test.
const WAIT: Duration = Duration::from_secs(20);

/// Fast retries for tests: 3 attempts, millisecond backoff, one delivery at a time (so a
/// later event is delivered after an earlier one is done with: an ordering barrier).
fn config(global: Option<&Receiver>) -> NotifierConfig {
    NotifierConfig {
        global_url: global.map(|r| WebhookUrl::parse(&r.url).unwrap()),
        secret: Some(SecretString::from(SECRET)),
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        queue: 64,
        concurrency: 1,
    }
}

async fn app_with(backend: Backend, config: NotifierConfig) -> TestApp {
    spawn_with(backend, Options { notifier: Some(config), ..Options::default() }).await
}

/// An org with a workspace, created through the API: (org id, workspace id).
async fn org_and_workspace(app: &TestApp, name: &str) -> (String, String) {
    let org = app.org(name).await;
    let ws = app.workspace(&org, "agent-1", "claude-code", json!({})).await;
    (org, ws)
}

/// Records a system event through the store and hands it to the notifier, as the alarm
/// evaluator does.
async fn fire(app: &TestApp, kind: EventKind, org: &str, ws: Option<&str>, detail: Value) -> Event {
    let event = app
        .store
        .record_event(&NewEvent {
            kind,
            actor: Actor::System,
            org_id: Some(OrgId::try_from(org.to_owned()).unwrap()),
            workspace_id: ws.map(|w| WorkspaceId::try_from(w.to_owned()).unwrap()),
            detail,
        })
        .await
        .unwrap();
    app.notifier.notify(&event);
    event
}

fn alarm_detail() -> Value {
    json!({"window_minutes": 60, "cost_micros": 12_340_000, "max_cost_micros": 10_000_000, "action": "suspend"})
}

/// Checks `hit`'s signature against the body bytes it came with.
fn assert_signed(hit: &Hit) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&hit.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hit.header("x-tollgate-signature"), Some(format!("sha256={expected}")));
}

/// The `webhook.failed` events, newest first, once there are at least `n` (or the deadline).
async fn failures(app: &TestApp, n: usize) -> Vec<Value> {
    let end = std::time::Instant::now() + WAIT;
    loop {
        let page = app.get("/admin/events?kind=webhook.failed").await.assert_status(200).clone();
        let events = page["events"].as_array().unwrap().clone();
        if events.len() >= n || std::time::Instant::now() >= end {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fires a notified event and waits until `receiver` has `before + 1` requests: everything
/// queued earlier (one delivery at a time) has been dealt with.
async fn barrier(app: &TestApp, receiver: &Receiver, org: &str, before: usize) -> Event {
    let event = fire(app, EventKind::BudgetExhausted, org, None, json!({"period": "day"})).await;
    let hits = receiver.wait_for(before + 1, WAIT).await;
    assert_eq!(hits.len(), before + 1, "the barrier event arrived alone");
    assert_eq!(hits[before].json()["event"]["id"], event.id);
    event
}

async fn delivered_once_signed_with_the_event(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Accept, URL_SECRET).await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    app.secret("orgs", &org, "ANTHROPIC_API_KEY", "sk-ant-api03-never-in-a-webhook").await;
    let event = fire(&app, EventKind::AlarmFired, &org, Some(&ws), alarm_detail()).await;
    let hits = receiver.wait_for(1, WAIT).await;
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_signed(hit);
    assert_eq!(hit.header("content-type").as_deref(), Some("application/json"));
    let body = hit.json();
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["event", "text"]);
    // The event exactly as the event log shows it.
    let logged = app.get(&format!("/admin/events?kind=alarm.fired&org_id={org}")).await.assert_status(200).clone();
    assert_eq!(body["event"], logged["events"][0]);
    assert_eq!(body["event"]["id"], event.id);
    assert_eq!(body["event"]["detail"], alarm_detail());
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with(&format!(":rotating_light: Tollgate alarm on workspace {ws} (org {org}): ")), "{text}");
    assert!(text.contains("cost $12.34") && text.contains("max cost $10.00"), "{text}");
    // Once: the next event is the next request.
    barrier(&app, &receiver, &org, 1).await;
    let all: String = receiver.hits().iter().map(|h| String::from_utf8_lossy(&h.body).into_owned()).collect();
    assert!(!all.contains("sk-ant-api03") && !all.contains(URL_SECRET) && !all.contains(SECRET), "{all}");
    assert!(failures(&app, 0).await.is_empty());
}

async fn org_and_global_urls_both_receive(backend: Backend) {
    let global = Receiver::start(Behaviour::Accept, "global").await;
    let own = Receiver::start(Behaviour::Accept, URL_SECRET).await;
    let app = app_with(backend, config(Some(&global))).await;
    let (org, _) = org_and_workspace(&app, "acme").await;
    let other = app.org("other").await;
    app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": own.url})).await.assert_status(200);
    let event = fire(&app, EventKind::BudgetExhausted, &org, None, json!({"budget_micros": 5_000_000})).await;
    let (g, o) = (global.wait_for(1, WAIT).await, own.wait_for(1, WAIT).await);
    assert_eq!((g.len(), o.len()), (1, 1));
    assert_eq!(g[0].body, o[0].body, "the same body to both");
    assert_signed(&o[0]);
    assert_eq!(o[0].json()["event"]["id"], event.id);
    // Another org's event goes to the global URL only; removing the org's URL stops its own.
    fire(&app, EventKind::BudgetExhausted, &other, None, json!({})).await;
    app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": null})).await.assert_status(200);
    fire(&app, EventKind::BudgetExhausted, &org, None, json!({})).await;
    barrier(&app, &global, &other, 3).await;
    assert_eq!(own.hits().len(), 1, "the org's URL got its own org's first event only");
}

async fn org_webhook_url_is_validated_and_redacted(backend: Backend) {
    let app = app_with(backend, config(None)).await;
    let url = format!("https://hooks.slack.com/services/{URL_SECRET}");
    let created = app.create_org(json!({"name": "acme", "alert_webhook_url": url})).await;
    assert_eq!(created["alert_webhook_url"], "https://hooks.slack.com/…");
    let org = created["id"].as_str().unwrap().to_owned();
    for bad in [
        json!("hooks.slack.com/x"),
        json!("ftp://example.com/x"),
        json!(""),
        json!(format!("https://e.com/{}", "a".repeat(2100))),
    ] {
        let r = app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": bad})).await;
        r.assert_error(400, "INVALID_WEBHOOK_URL");
    }
    let r = app.post("/admin/orgs", json!({"name": "b", "alert_webhook_url": "javascript:alert(1)"})).await;
    r.assert_error(400, "INVALID_WEBHOOK_URL");
    let read = app.get(&format!("/admin/orgs/{org}")).await.assert_status(200).clone();
    assert_eq!(read["alert_webhook_url"], "https://hooks.slack.com/…", "a refused change changes nothing");
    let listed = app.get("/admin/orgs").await.text;
    let events = app.get("/admin/events").await.text;
    for text in [&listed, &events, &read.to_string()] {
        assert!(!text.contains(URL_SECRET), "{text}");
    }
    let cleared = app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": null})).await;
    assert_eq!(cleared.assert_status(200)["alert_webhook_url"], Value::Null);
}

async fn a_failing_receiver_is_retried_then_recorded(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Status(500), URL_SECRET).await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    let event = fire(&app, EventKind::AlarmFired, &org, Some(&ws), alarm_detail()).await;
    let failed = failures(&app, 1).await;
    assert_eq!(failed.len(), 1, "one webhook.failed");
    assert_eq!(receiver.hits().len(), 3, "three attempts");
    let hits = receiver.hits();
    assert!(hits.iter().all(|h| h.body == hits[0].body), "the same body each time");
    let f = &failed[0];
    assert_eq!(
        (f["actor"].as_str(), f["org_id"].as_str(), f["workspace_id"].as_str()),
        (Some("system"), Some(org.as_str()), Some(ws.as_str()))
    );
    let origin = receiver.url.split("/hook/").next().unwrap();
    assert_eq!(
        f["detail"],
        json!({"event_id": event.id, "event_kind": "alarm.fired", "target": "global", "destination": origin, "attempts": 3, "last_status": 500})
    );
    assert!(!f.to_string().contains(URL_SECRET));
}

async fn a_refusing_receiver_is_not_retried(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Status(404), "gone").await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let (org, _) = org_and_workspace(&app, "acme").await;
    fire(&app, EventKind::BudgetSoftCrossed, &org, None, json!({"percent": 80})).await;
    let failed = failures(&app, 1).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["detail"]["attempts"].as_u64(), failed[0]["detail"]["last_status"].as_u64()),
        (Some(1), Some(404))
    );
    assert_eq!(receiver.hits().len(), 1, "a 4xx other than 429 is not retried");
}

async fn a_hanging_receiver_times_out_and_is_recorded(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Hang, URL_SECRET).await;
    let cfg = NotifierConfig { attempts: 2, timeout: Duration::from_millis(300), ..config(Some(&receiver)) };
    let app = app_with(backend, cfg).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    fire(&app, EventKind::AlarmFired, &org, Some(&ws), alarm_detail()).await;
    // `notify` returned before even the first attempt timed out.
    assert!(failures(&app, 0).await.is_empty());
    let failed = failures(&app, 1).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["attempts"], 2);
    assert_eq!(failed[0]["detail"]["last_error"], "timeout");
    assert_eq!(receiver.hits().len(), 2, "each attempt reached the receiver");
}

async fn a_receiver_that_fails_once_gets_it_next_time(backend: Backend) {
    let receiver = Receiver::start(Behaviour::FailFirst(1, 503), URL_SECRET).await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    fire(&app, EventKind::AlarmFired, &org, Some(&ws), alarm_detail()).await;
    let hits = receiver.wait_for(2, WAIT).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].body, hits[1].body);
    assert_signed(&hits[1]);
    barrier(&app, &receiver, &org, 2).await;
    assert!(failures(&app, 0).await.is_empty(), "delivered: no webhook.failed");
}

async fn admin_events_and_failures_are_not_sent(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Accept, URL_SECRET).await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-secret-value").await;
    app.post(&format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "by hand"})).await.assert_status(200);
    app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await.assert_status(200);
    app.post(&format!("/admin/orgs/{org}/credit"), json!({"delta_micros": 5, "reason": "top-up"}))
        .await
        .assert_status(200);
    // Every admin event of the log, handed over as a careless caller might.
    let page = app.store.list_events(&tollgate_store::EventQuery { limit: 1000, ..Default::default() }).await.unwrap();
    assert!(page.events.len() >= 6, "{:?}", page.events.len());
    assert!(page.events.iter().any(|e| e.kind == EventKind::Suspended && e.actor == Actor::Admin));
    for event in &page.events {
        app.notifier.notify(event);
    }
    fire(&app, EventKind::WebhookFailed, &org, None, json!({"event_id": 1})).await;
    barrier(&app, &receiver, &org, 0).await;
    // A suspension by Tollgate itself is sent.
    fire(&app, EventKind::Suspended, &org, Some(&ws), json!({"reason": "drain alarm"})).await;
    let hits = receiver.wait_for(2, WAIT).await;
    assert_eq!(hits[1].json()["event"]["kind"], "suspended");
    assert!(hits[1].json()["text"].as_str().unwrap().contains("drain alarm"));
}

async fn a_full_queue_is_recorded(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Hang, URL_SECRET).await;
    let cfg = NotifierConfig { attempts: 1, timeout: Duration::from_secs(30), queue: 1, ..config(Some(&receiver)) };
    let app = app_with(backend, cfg).await;
    let (org, _) = org_and_workspace(&app, "acme").await;
    // One event hangs in delivery, one waits in the queue of one: at least one of three
    // finds it full, and is recorded rather than dropped silently.
    for _ in 0..3 {
        fire(&app, EventKind::BudgetExhausted, &org, None, json!({})).await;
    }
    let failed = failures(&app, 1).await;
    assert!(!failed.is_empty());
    assert_eq!(failed[0]["detail"]["last_error"], "queue_full");
    assert_eq!(failed[0]["detail"]["attempts"], 0);
}

/// The OpenAPI document states the grammar the server checks, for both request bodies.
async fn the_documented_url_grammar_is_the_validated_one(backend: Backend) {
    let app = app_with(backend, config(None)).await;
    let doc = app.get("/openapi.json").await.assert_status(200).clone();
    for schema in ["CreateOrg", "PatchOrg"] {
        let field = &doc["components"]["schemas"][schema]["properties"]["alert_webhook_url"];
        assert_eq!(field["pattern"], tollgate_policy::webhook::WEBHOOK_URL_PATTERN, "{schema}");
        assert_eq!(field["maxLength"], tollgate_policy::webhook::MAX_WEBHOOK_URL_BYTES, "{schema}");
    }
    // The notification body is documented too, for receivers.
    let body = &doc["components"]["schemas"]["Notification"];
    assert_eq!(body["required"], json!(["text", "event"]));
    assert_eq!(body["properties"]["event"]["$ref"], "#/components/schemas/EventOut");
}

/// End to end: the demo's week and drain through the ledger, the alarm evaluator's pass, and
/// the webhook: both rules that fire (the drain workspace's cap, the org's default rule) are
/// delivered once, signed, and a second pass (still over, same crossing) sends nothing.
async fn the_alarm_evaluators_firings_are_delivered_signed(backend: Backend) {
    let receiver = Receiver::start(Behaviour::Accept, URL_SECRET).await;
    let app = app_with(backend, config(Some(&receiver))).await;
    let registry = std::sync::Arc::new(tollgate_policy::Registry::embedded().unwrap());
    let now = tollgate_store::Timestamp::now();
    let demo = tollgate_server::demo::seed(app.store.as_ref(), &registry, now).await.unwrap();
    let state = tollgate_server::AppState::new(
        app.store.clone(),
        registry,
        tollgate_policy::PublicUrl::parse("http://tollgate.test").unwrap(),
    )
    .with_notifier(app.notifier.clone());
    let first = tollgate_server::alarms::evaluate_once(&state, now).await.unwrap();
    assert_eq!(first.recorded.iter().filter(|k| **k == EventKind::AlarmFired).count(), 2, "{:?}", first.recorded);
    let hits = receiver.wait_for(2, WAIT).await;
    assert_eq!(hits.len(), 2);
    let drain_ws = demo.workspaces.iter().find(|w| w.name == tollgate_server::demo::DRAIN_WORKSPACE).unwrap();
    let mut scopes = Vec::new();
    for hit in &hits {
        assert_signed(hit);
        let body = hit.json();
        assert_eq!(body["event"]["kind"], "alarm.fired");
        assert_eq!(body["event"]["org_id"], demo.org.id.to_string());
        assert!(body["text"].as_str().unwrap().contains("drain alarm"), "{body}");
        scopes.push(body["event"]["workspace_id"].as_str().map(str::to_owned));
    }
    scopes.sort();
    assert_eq!(scopes, [None, Some(drain_ws.id.to_string())], "the org's default rule and the workspace's rule");
    let again = tollgate_server::alarms::evaluate_once(&state, tollgate_store::Timestamp(now.0 + 1_000)).await.unwrap();
    assert!(!again.recorded.contains(&EventKind::AlarmFired), "once per crossing: {:?}", again.recorded);
    // A barrier: anything the second pass had sent would have arrived before it.
    barrier(&app, &receiver, demo.org.id.as_ref(), 2).await;
    app.stop().await;
}

/// `serve`'s shutdown: `drain` returns once a delivery under way (here after one retry) is
/// done, and gives up on a receiver that hangs at its deadline.
async fn a_drain_at_shutdown_waits_for_deliveries_under_way_within_its_deadline(backend: Backend) {
    let app = spawn_with(backend, Options::default()).await;
    let (org, ws) = org_and_workspace(&app, "acme").await;
    let event = app
        .store
        .record_event(&NewEvent {
            kind: EventKind::AlarmFired,
            actor: Actor::System,
            org_id: Some(OrgId::try_from(org.clone()).unwrap()),
            workspace_id: Some(WorkspaceId::try_from(ws).unwrap()),
            detail: alarm_detail(),
        })
        .await
        .unwrap();
    let flaky = Receiver::start(Behaviour::FailFirst(1, 503), URL_SECRET).await;
    let notifier = tollgate_server::notify::Notifier::new(app.store.clone(), config(Some(&flaky))).unwrap();
    notifier.notify(&event);
    assert!(notifier.drain(WAIT).await, "the delivery finished within the deadline");
    assert_eq!(flaky.hits().len(), 2, "the retry happened before the drain returned");

    let hanging = Receiver::start(Behaviour::Hang, URL_SECRET).await;
    let notifier = tollgate_server::notify::Notifier::new(app.store.clone(), config(Some(&hanging))).unwrap();
    notifier.notify(&event);
    hanging.wait_for(1, WAIT).await;
    assert!(!notifier.drain(Duration::from_millis(200)).await, "a hanging receiver does not hold the shutdown");
    app.stop().await;
}
