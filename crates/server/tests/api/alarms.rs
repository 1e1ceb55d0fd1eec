//! Drain alarms and budget notices (DESIGN.md section 15) end to end: spend through the real
//! proxy against the stand-in upstream (or, for history, ledger rows written through the
//! store), the evaluator run on it, the events recorded, the proxy refusing a suspended
//! workspace. Times are passed to `evaluate_once`, so nothing waits for a window to pass.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_policy::{AlarmRuleSpec, AlarmRules, Micros, OrgId, PublicUrl, WorkspaceId};
use tollgate_server::AppState;
use tollgate_server::alarms::{evaluate_once, run_alarms};
use tollgate_store::{
    EventKind, EventQuery, LeaseId, LeaseRequest, LedgerEntry, RequestId, Settlement, Store, Timestamp, WorkspacePatch,
};
use tollgate_testkit::both_backends;
use tollgate_testkit::proxy_app::{App, messages, registry};
use tollgate_testkit::server_app::Backend;

const MINUTE: i64 = 60_000;

async fn app(backend: Backend) -> App {
    match backend {
        Backend::Sqlite => App::new(1_000_000_000).await,
        Backend::Postgres => {
            let url = tollgate_testkit::postgres().fresh_database().await.unwrap();
            let store = tollgate_store::connect(&url, tollgate_testkit::proxy_app::key()).await.unwrap();
            App::on(store, 1_000_000_000, None).await
        }
    }
}

fn state(app: &App) -> AppState {
    AppState::new(app.store.clone(), registry(), PublicUrl::parse("http://tollgate.test").unwrap())
        .with_proxy(app.proxy.clone())
}

fn rules(v: serde_json::Value) -> AlarmRules {
    let specs: Vec<AlarmRuleSpec> = serde_json::from_value(v).unwrap();
    AlarmRules::parse(&specs).unwrap()
}

async fn set_ws_alarms(app: &App, ws: &WorkspaceId, v: serde_json::Value) {
    let patch = WorkspacePatch { alarms: Some(Some(rules(v))), ..WorkspacePatch::default() };
    app.store.update_workspace(ws, &patch).await.unwrap();
}

/// One request through the proxy; returns its status and body.
async fn request(app: &App, token: &str) -> (u16, serde_json::Value) {
    let r = app.post("/anthropic/v1/messages", token, messages("platform/ok", false, 16)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Ledger rows of `cost` each at the given times, written through the store (history the
/// proxy could only write in real time).
async fn ledger(store: &dyn Store, org: &OrgId, ws: &WorkspaceId, rows: &[(i64, i64)]) {
    let lease = LeaseId::parse(&format!("hist-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let one = Micros::new(1);
    let req = LeaseRequest {
        lease_id: lease.clone(),
        org_id: org.clone(),
        need: one,
        want: one,
        ttl: Duration::from_secs(60),
    };
    store.lease_credit(&req).await.unwrap();
    let entries: Vec<LedgerEntry> = rows
        .iter()
        .map(|(at, cost)| LedgerEntry {
            request_id: RequestId::parse(&uuid::Uuid::new_v4().simple().to_string()).unwrap(),
            workspace_id: ws.clone(),
            model: "platform/ok".into(),
            reserved: Micros::new(*cost),
            settlement: Settlement {
                usage: tollgate_policy::Usage::default(),
                cost: Micros::new(*cost),
                provider_cost: Micros::new(*cost),
                http_status: Some(200),
                estimated: false,
            },
            rejected: false,
            created_at: Timestamp(*at),
            session_id: None,
        })
        .collect();
    store.record_usage(&lease, org, &entries, Duration::from_secs(60)).await.unwrap();
}

async fn events(store: &dyn Store, kind: EventKind) -> Vec<tollgate_store::Event> {
    store.list_events(&EventQuery { kind: Some(kind), limit: 100, ..EventQuery::default() }).await.unwrap().events
}

both_backends!(a_cap_fires_once_per_crossing_and_rearms, over_baseline_fires_against_seven_days_of_history);

/// A rule with a cap below one request's cost fires on the request (once: evaluating again
/// while the spend is in the window records nothing), re-arms when the window has passed,
/// and fires again on the next crossing.
async fn a_cap_fires_once_per_crossing_and_rearms(backend: Backend) {
    let app = app(backend).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    assert_eq!(request(&app, &token).await.0, 200);
    let cost = app.settled(1).await.cost_micros;
    assert!(cost > 1, "a request costs something: {cost}");
    set_ws_alarms(&app, &ws, json!([{"window_minutes": 5, "max_cost_micros": cost - 1, "action": "notify"}])).await;
    let state = state(&app);
    let t0 = Timestamp::now().0 + 1_000;

    let first = evaluate_once(&state, Timestamp(t0)).await.unwrap();
    assert_eq!(first.recorded, vec![EventKind::AlarmFired]);
    let again = evaluate_once(&state, Timestamp(t0 + MINUTE)).await.unwrap();
    assert_eq!((again.recorded.len(), again.holding), (0, 1), "still above: not again");
    let fired = events(&*app.store, EventKind::AlarmFired).await;
    assert_eq!(fired.len(), 1);
    let e = &fired[0];
    assert_eq!(
        (e.actor, e.org_id.as_ref(), e.workspace_id.as_ref()),
        (tollgate_store::Actor::System, Some(&app.org), Some(&ws))
    );
    assert_eq!(e.detail["cost_micros"], cost);
    assert_eq!(e.detail["max_cost_micros"], cost - 1);
    assert!(e.detail["reason"].as_str().unwrap().contains("over the cap"), "{}", e.detail);

    let cleared = evaluate_once(&state, Timestamp(t0 + 6 * MINUTE)).await.unwrap();
    assert_eq!((cleared.rearmed, cleared.holding), (1, 0), "the window has passed: re-armed");
    ledger(&*app.store, &app.org, &ws, &[(t0 + 7 * MINUTE, cost)]).await;
    let second = evaluate_once(&state, Timestamp(t0 + 8 * MINUTE)).await.unwrap();
    assert_eq!(second.recorded, vec![EventKind::AlarmFired], "the next crossing fires");
    assert_eq!(events(&*app.store, EventKind::AlarmFired).await.len(), 2);
}

/// Over-baseline: against 7 days of history the window fires only above the factor times the
/// average window, and the event names the baseline.
async fn over_baseline_fires_against_seven_days_of_history(backend: Backend) {
    let app = app(backend).await;
    let (ws, _) = app.workspace("claude-code", "platform/ok").await;
    set_ws_alarms(&app, &ws, json!([{"window_minutes": 60, "over_baseline_factor": 2, "action": "notify"}])).await;
    let now = Timestamp::now().0;
    // 7,000 micro-USD over the 7 days before the window: 41 per hour on average.
    let history: Vec<(i64, i64)> = (0..7).map(|d| (now - 2 * 60 * MINUTE - d * 24 * 60 * MINUTE, 1_000)).collect();
    ledger(&*app.store, &app.org, &ws, &history).await;
    ledger(&*app.store, &app.org, &ws, &[(now - 10 * MINUTE, 80)]).await;
    let state = state(&app);
    let below = evaluate_once(&state, Timestamp(now)).await.unwrap();
    assert!(below.recorded.is_empty(), "80 is not over 2 x 41: {below:?}");
    ledger(&*app.store, &app.org, &ws, &[(now - 5 * MINUTE, 20)]).await;
    let over = evaluate_once(&state, Timestamp(now + 1)).await.unwrap();
    assert_eq!(over.recorded, vec![EventKind::AlarmFired]);
    let e = &events(&*app.store, EventKind::AlarmFired).await[0];
    assert_eq!((e.detail["baseline_micros"].as_i64(), e.detail["cost_micros"].as_i64()), (Some(41), Some(100)));
}

/// An org with no rules gets the default rule (60 minutes, over 5x its baseline and at least
/// 5 USD); an org whose rules are `[]` does not.
#[tokio::test]
async fn the_default_rule_fires_for_an_org_with_no_rules() {
    let app = app(Backend::Sqlite).await;
    let (ws, _) = app.workspace("claude-code", "platform/ok").await;
    let now = Timestamp::now().0;
    ledger(&*app.store, &app.org, &ws, &[(now - 30 * MINUTE, 4_000_000)]).await;
    let state = state(&app);
    assert!(evaluate_once(&state, Timestamp(now)).await.unwrap().recorded.is_empty(), "below 5 USD");
    ledger(&*app.store, &app.org, &ws, &[(now - 20 * MINUTE, 2_000_000)]).await;
    assert_eq!(evaluate_once(&state, Timestamp(now + 1)).await.unwrap().recorded, vec![EventKind::AlarmFired]);
    let e = &events(&*app.store, EventKind::AlarmFired).await[0];
    assert_eq!((e.org_id.as_ref(), e.workspace_id.as_ref()), (Some(&app.org), None));
    assert_eq!(e.detail["rule_key"], tollgate_policy::AlarmRule::DEFAULT.key());
    assert_eq!(e.detail["scope"], "org");

    let other = App::on(app.store.clone(), 1_000_000, None).await;
    let (ows, _) = other.workspace("claude-code", "platform/ok").await;
    let patch = tollgate_store::OrgPatch { alarms: Some(Some(AlarmRules::default())), ..Default::default() };
    app.store.update_org(&other.org, &patch).await.unwrap();
    ledger(&*app.store, &other.org, &ows, &[(now - 20 * MINUTE, 9_000_000)]).await;
    assert!(evaluate_once(&state, Timestamp(now + 2)).await.unwrap().recorded.is_empty(), "`[]` turns it off");
}

/// Action `suspend`, run by the background task at a short interval: the workspace is
/// suspended by the alarm (`by` names it, actor `system`, the reason names the rule's
/// threshold and the spend) and the proxy refuses its next request with 403 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suspend_rule_makes_the_proxy_refuse() {
    let app = app(Backend::Sqlite).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    assert_eq!(request(&app, &token).await.0, 200);
    let cost = app.settled(1).await.cost_micros;
    set_ws_alarms(&app, &ws, json!([{"window_minutes": 10, "max_cost_micros": cost - 1, "action": "suspend"}])).await;
    let task =
        tokio::spawn(run_alarms(state(&app), Duration::from_millis(50), || Timestamp::now().0, std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let suspended = loop {
        if let Some(s) = app.store.get_workspace(&ws).await.unwrap().suspended {
            break s;
        }
        assert!(Instant::now() < deadline, "not suspended in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    task.abort();
    assert!(suspended.by.as_str().starts_with("alarm:w10:"), "{:?}", suspended.by);
    assert!(suspended.reason.as_str().contains("over the cap"), "{}", suspended.reason);
    let (status, body) = request(&app, &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("drain alarm"), "{body}");
    let s = events(&*app.store, EventKind::Suspended).await;
    assert_eq!((s.len(), s[0].actor), (1, tollgate_store::Actor::System));
    assert_eq!(events(&*app.store, EventKind::AlarmFired).await.len(), 1);
}

/// A soft budget crossed by real spend through the proxy is recorded once per period, however
/// often it is evaluated; the next day's period has no spend and records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_soft_budget_notice_is_recorded_once_per_period() {
    let app = app(Backend::Sqlite).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    assert_eq!(request(&app, &token).await.0, 200);
    let cost = app.settled(1).await.cost_micros;
    // One request's cost is 1% of the day's budget.
    let body = json!({"budget_micros_per_day": cost * 100, "soft_budget_percent": 1});
    let limits = serde_json::from_value::<tollgate_policy::limits::LimitsInput>(body).unwrap().parse().unwrap();
    app.store.update_workspace(&ws, &WorkspacePatch { limits, ..WorkspacePatch::default() }).await.unwrap();
    app.proxy.forget(&tollgate_store::Invalidation::Workspace(ws.clone()));
    let state = state(&app);
    let now = Timestamp::now().0;
    let period = tollgate_policy::budget::Period::containing(tollgate_policy::budget::PeriodKind::Day, now);
    assert!(
        evaluate_once(&state, Timestamp(now)).await.unwrap().recorded.is_empty(),
        "spent before the budget: not counted"
    );
    assert_eq!(request(&app, &token).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scope = tollgate_policy::budget::BudgetScope::Workspace;
        let (spent, _) = app.store.budget_usage(scope, ws.as_str(), &period.key).await.unwrap();
        if spent >= Micros::new(cost) {
            break;
        }
        assert!(Instant::now() < deadline, "the budget's spend was not written: {spent:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(evaluate_once(&state, Timestamp(now)).await.unwrap().recorded.contains(&EventKind::BudgetSoftCrossed));
    assert!(!evaluate_once(&state, Timestamp(now + 1)).await.unwrap().recorded.contains(&EventKind::BudgetSoftCrossed));
    let next_day = evaluate_once(&state, Timestamp(period.reset_ms + 1)).await.unwrap();
    assert!(!next_day.recorded.contains(&EventKind::BudgetSoftCrossed));
    let notices = events(&*app.store, EventKind::BudgetSoftCrossed).await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].detail["period_key"], period.key.as_str());
    assert_eq!(notices[0].workspace_id.as_ref(), Some(&ws));
}

/// `alarms` through the admin API: set on create and by PATCH, returned with the object,
/// `null` removes; invalid rules are 400 `INVALID_ALARMS` naming the rule and field, and
/// change nothing; the change is an `org.updated` event with the rules.
#[tokio::test]
async fn alarms_are_set_returned_and_validated_through_the_api() {
    let app = tollgate_testkit::server_app::spawn_app(Backend::Sqlite).await;
    let rule = json!({"window_minutes": 60, "max_cost_micros": 20_000_000, "action": "suspend"});
    let org = app.create_org(json!({"name": "acme", "alarms": [rule]})).await;
    assert_eq!(org["alarms"], json!([rule]));
    let id = org["id"].as_str().unwrap();
    let path = format!("/admin/orgs/{id}");
    let baseline =
        json!({"window_minutes": 30, "over_baseline_factor": 2.5, "min_cost_micros": 1000, "action": "notify"});
    let r = app.patch(&path, json!({"alarms": [baseline]})).await;
    assert_eq!(r.assert_status(200)["alarms"], json!([baseline]));
    for (bad, field) in [
        (json!([{"window_minutes": 0, "max_cost_micros": 1, "action": "notify"}]), "alarms[0].window_minutes"),
        (json!([rule, {"window_minutes": 5, "action": "notify"}]), "alarms[1]"),
        (
            json!([{"window_minutes": 5, "over_baseline_factor": 0.5, "action": "notify"}]),
            "alarms[0].over_baseline_factor",
        ),
    ] {
        let r = app.patch(&path, json!({ "alarms": bad })).await;
        r.assert_error(400, "INVALID_ALARMS");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(field), "{}", r.text);
    }
    app.patch(&path, json!({"alarms": [{"window_minutes": 5, "max_cost_micros": 1, "action": "page"}]}))
        .await
        .assert_error(400, "INVALID_JSON");
    assert_eq!(app.get(&path).await.assert_status(200)["alarms"], json!([baseline]), "nothing changed");
    assert_eq!(app.patch(&path, json!({"alarms": null})).await.assert_status(200)["alarms"], json!(null));
    let ws = app.create_workspace(id, "dev", "claude-code", json!({"alarms": [rule]})).await;
    assert_eq!(ws["alarms"], json!([rule]));
    let updated = app.get(&format!("/admin/events?org_id={id}&kind=org.updated")).await;
    let detail = &updated.assert_status(200)["events"][0]["detail"];
    assert_eq!(detail["fields"], json!(["alarms"]));
    assert_eq!(detail["alarms"], json!(null));
}
