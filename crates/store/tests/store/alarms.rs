//! The drain alarms' store (DESIGN.md section 15): window sums, a rule fires once per
//! crossing however many evaluations race, re-arms, and budget notices are recorded once per
//! period.

use std::sync::Arc;
use std::time::Duration;

use tollgate_policy::alarms::{AlarmRule, AlarmRules, NoticeKind};
use tollgate_policy::resolve::WorkspaceKind;
use tollgate_policy::{AlarmRuleSpec, Limits, Micros, SuspendedBy, SuspensionReason};
use tollgate_store::{
    AlarmFire, AlarmStateKey, BudgetNoticeRecord, EventKind, EventQuery, FiringAlarm, LeaseId, LeaseRequest,
    LedgerEntry, NewOrg, NewWorkspace, OrgPatch, Owner, RequestId, Settlement, Store, Timestamp,
};

use crate::Harness;

fn rules(json: &str) -> AlarmRules {
    let specs: Vec<AlarmRuleSpec> = serde_json::from_str(json).unwrap();
    AlarmRules::parse(&specs).unwrap()
}

async fn org_and_ws(s: &dyn Store, name: &str) -> (tollgate_policy::OrgId, tollgate_policy::WorkspaceId) {
    let org = s
        .create_org(&NewOrg { name: name.into(), credit_micros: Micros::new(1_000_000_000), ..NewOrg::default() })
        .await
        .unwrap();
    let ws = s
        .create_workspace(&NewWorkspace {
            org_id: org.id.clone(),
            name: "dev".into(),
            runtime: "claude-code".into(),
            model: None,
            billing_mode: None,
            kind: WorkspaceKind::Agent,
            limits: Limits::default(),
            alarms: Some(rules(r#"[{"window_minutes": 5, "max_cost_micros": 10, "action": "suspend"}]"#)),
        })
        .await
        .unwrap();
    (org.id, ws.id)
}

/// Ledger rows of `cost` each, created at the given times.
async fn spend(s: &dyn Store, org: &tollgate_policy::OrgId, ws: &tollgate_policy::WorkspaceId, rows: &[(i64, i64)]) {
    let lease = LeaseId::parse(&format!("alarm-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let req = LeaseRequest {
        lease_id: lease.clone(),
        org_id: org.clone(),
        need: Micros::new(1),
        want: Micros::new(1),
        ttl: Duration::from_secs(60),
    };
    s.lease_credit(&req).await.unwrap();
    let entries: Vec<LedgerEntry> = rows
        .iter()
        .map(|(at, cost)| LedgerEntry {
            request_id: RequestId::parse(&uuid::Uuid::new_v4().simple().to_string()).unwrap(),
            workspace_id: ws.clone(),
            model: "platform/sonnet".into(),
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
    s.record_usage(&lease, org, &entries, Duration::from_secs(60)).await.unwrap();
}

/// Rules round-trip on orgs and workspaces (`null` removes, `[]` is kept as none), the
/// owners with rules or budgets are listed, and the ledger's window sums count only the span.
pub(crate) async fn alarm_rules_owners_and_window_sums(h: Harness) {
    let s = &*h.store;
    let (org, ws) = org_and_ws(s, "acme").await;
    assert!(s.get_org(&org).await.unwrap().alarms.is_none());
    assert_eq!(s.get_workspace(&ws).await.unwrap().alarms.map(|r| r.rules().len()), Some(1));
    let patch = OrgPatch { alarms: Some(Some(AlarmRules::default())), ..OrgPatch::default() };
    assert_eq!(s.update_org(&org, &patch).await.unwrap().alarms, Some(AlarmRules::default()));
    assert_eq!(s.list_orgs().await.unwrap()[0].alarms, Some(AlarmRules::default()));
    let owners = s.alarm_owners().await.unwrap();
    assert_eq!(owners.len(), 2, "{owners:?}");
    s.update_org(&org, &OrgPatch { alarms: Some(None), ..OrgPatch::default() }).await.unwrap();
    let owners = s.alarm_owners().await.unwrap();
    assert_eq!(owners.iter().map(|o| o.owner.clone()).collect::<Vec<_>>(), vec![Owner::Workspace(ws.clone())]);
    assert_eq!(owners[0].org_id, org);

    spend(s, &org, &ws, &[(1_000, 5), (2_000, 7), (3_000, 11)]).await;
    let sums = s.spend_by_workspace(Timestamp(2_000), Timestamp(3_000)).await.unwrap();
    assert_eq!(sums.len(), 1);
    assert_eq!((sums[0].workspace_id.clone(), sums[0].cost), (ws.clone(), Micros::new(7)));
    assert!(s.spend_by_workspace(Timestamp(4_000), Timestamp(9_000)).await.unwrap().is_empty());
    assert_eq!(s.owner_spend(&Owner::Org(org), Timestamp(0), Timestamp(3_001)).await.unwrap(), Micros::new(23));
    assert_eq!(
        s.owner_spend(&Owner::Workspace(ws), Timestamp(1_001), Timestamp(9_000)).await.unwrap(),
        Micros::new(18)
    );
}

/// Many evaluations firing one rule at once record exactly one `alarm.fired` (and one
/// suspension); while it fires nothing more is recorded; a re-arm lets the next crossing
/// fire again; an evaluation older than the last change changes nothing.
pub(crate) async fn a_rule_fires_once_per_crossing(h: Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (org, ws) = org_and_ws(&*s, "acme").await;
    let rule = AlarmRule::parse(
        0,
        &serde_json::from_str(r#"{"window_minutes": 5, "max_cost_micros": 10, "action": "suspend"}"#).unwrap(),
    )
    .unwrap();
    let key = AlarmStateKey { owner: Owner::Workspace(ws.clone()), rule_key: rule.key() };
    let fire = |at: i64| AlarmFire {
        key: key.clone(),
        at: Timestamp(at),
        detail: serde_json::json!({"reason": "test"}),
        suspend: Some((SuspensionReason::parse("drain alarm: test").unwrap(), SuspendedBy::alarm(&rule))),
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, f) = (s.clone(), fire(1_000));
        tasks.push(tokio::spawn(async move { s.fire_alarm(&f).await.unwrap() }));
    }
    let mut recorded = Vec::new();
    for t in tasks {
        recorded.extend(t.await.unwrap());
    }
    let kinds: Vec<EventKind> = recorded.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::AlarmFired, EventKind::Suspended], "exactly one winner");
    assert!(recorded.iter().all(|e| e.actor == tollgate_store::Actor::System));
    let suspended = s.get_workspace(&ws).await.unwrap().suspended.unwrap();
    assert_eq!(suspended.by, SuspendedBy::alarm(&rule));
    let seen = FiringAlarm { key: key.clone(), changed_at: Timestamp(1_000) };
    assert_eq!(s.firing_alarms().await.unwrap(), vec![seen.clone()]);

    assert!(s.fire_alarm(&fire(2_000)).await.unwrap().is_empty(), "still firing: nothing new");
    assert!(!s.rearm_alarm(&seen, Timestamp(500)).await.unwrap(), "an older evaluation does not re-arm");
    let other = FiringAlarm { key: key.clone(), changed_at: Timestamp(999) };
    assert!(!s.rearm_alarm(&other, Timestamp(3_000)).await.unwrap(), "not the firing this evaluation saw");
    assert!(s.rearm_alarm(&seen, Timestamp(3_000)).await.unwrap());
    assert!(s.firing_alarms().await.unwrap().is_empty());
    assert!(s.fire_alarm(&fire(2_500)).await.unwrap().is_empty(), "older than the re-arm");
    let again = s.fire_alarm(&fire(4_000)).await.unwrap();
    assert_eq!(again.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventKind::AlarmFired], "already suspended");
    // An evaluation that read the firing rows before this crossing fired (its snapshot holds
    // the old firing) and the ledger after: whatever its clock, it cannot undo the new one.
    assert!(
        !s.rearm_alarm(&seen, Timestamp(5_000)).await.unwrap(),
        "a later crossing is not re-armed by a stale snapshot"
    );
    assert_eq!(s.firing_alarms().await.unwrap(), vec![FiringAlarm { key: key.clone(), changed_at: Timestamp(4_000) }]);
    let fired = s
        .list_events(&EventQuery {
            kind: Some(EventKind::AlarmFired),
            org_id: Some(org),
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(fired.events.len(), 2, "one per crossing");
}

/// A budget notice is recorded once per (owner, period, kind), however many instances try.
pub(crate) async fn budget_notices_are_recorded_once_per_period(h: Harness) {
    let s: Arc<dyn Store> = h.store.clone();
    let (org, _) = org_and_ws(&*s, "acme").await;
    let notice = |period: &str, kind| BudgetNoticeRecord {
        owner: Owner::Org(org.clone()),
        period_key: period.to_owned(),
        notice: kind,
        detail: serde_json::json!({"period_key": period}),
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, n) = (s.clone(), notice("2026-12-01", NoticeKind::SoftCrossed));
        tasks.push(tokio::spawn(async move { s.record_budget_notice(&n).await.unwrap() }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(recorded, 1);
    let exhausted = s.record_budget_notice(&notice("2026-12-01", NoticeKind::Exhausted)).await.unwrap().unwrap();
    assert_eq!((exhausted.kind, exhausted.actor), (EventKind::BudgetExhausted, tollgate_store::Actor::System));
    assert!(
        s.record_budget_notice(&notice("2026-12-02", NoticeKind::SoftCrossed)).await.unwrap().is_some(),
        "next period"
    );
    let soft = s
        .list_events(&EventQuery { kind: Some(EventKind::BudgetSoftCrossed), limit: 100, ..EventQuery::default() })
        .await
        .unwrap();
    assert_eq!(soft.events.len(), 2);
}
