//! The event log (DESIGN.md section 15): every admin mutation writes one event in its own
//! transaction, a failed mutation writes none, and pages are stable newest-first.

use tollgate_policy::resolve::WorkspaceKind;
use tollgate_policy::secret::SecretValue;
use tollgate_policy::{Limits, LimitsPatch, Micros, SecretName, SuspendedBy, SuspensionReason};
use tollgate_store::{
    Actor, Event, EventCursor, EventKind, EventQuery, NewEvent, NewOrg, NewWorkspace, OrgPatch, Overdraft, Owner,
    ProvisionRecord, Store, StoreError, TokenHash, WorkspacePatch,
};

use crate::Harness;

/// Every event, newest first, walking the pages.
async fn all_events(s: &dyn Store, mut q: EventQuery) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let page = s.list_events(&q).await.unwrap();
        out.extend(page.events);
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().rev().map(|e| e.kind).collect()
}

fn new_ws(org: &tollgate_policy::OrgId, n: &str) -> NewWorkspace {
    NewWorkspace {
        org_id: org.clone(),
        name: n.to_owned(),
        runtime: "claude-code".to_owned(),
        model: None,
        billing_mode: None,
        kind: WorkspaceKind::Agent,
        limits: Limits::default(),
        alarms: None,
    }
}

const SECRET: &str = "sk-ant-events-test-value-0123456789";
const TOKEN: &str = "tg_ws_events_test_token_0123456789";

pub(crate) async fn every_admin_mutation_writes_one_event(h: Harness) {
    let s = &*h.store;
    let org = s
        .create_org(&NewOrg { name: "acme".into(), credit_micros: Micros::new(5_000), ..NewOrg::default() })
        .await
        .unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    s.update_org(&org.id, &OrgPatch { name: Some("acme2".into()), ..OrgPatch::default() }).await.unwrap();
    let limits: LimitsPatch =
        serde_json::from_str::<tollgate_policy::limits::LimitsInput>(r#"{"requests_per_minute": 5}"#)
            .map(|i| i.parse().unwrap())
            .unwrap();
    s.update_workspace(&ws.id, &WorkspacePatch { limits, ..WorkspacePatch::default() }).await.unwrap();
    s.update_workspace(
        &ws.id,
        &WorkspacePatch { model: Some(Some("platform/haiku".into())), ..WorkspacePatch::default() },
    )
    .await
    .unwrap();
    s.adjust_credit(&org.id, Micros::new(-1_000), "refund", Overdraft::Refuse).await.unwrap();
    let name = SecretName::parse("ANTHROPIC_API_KEY").unwrap();
    s.put_secret(&Owner::Org(org.id.clone()), &name, &SecretValue::parse(SECRET).unwrap()).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name, &SecretValue::parse(SECRET).unwrap()).await.unwrap();
    s.delete_secret(&Owner::Workspace(ws.id.clone()), &name).await.unwrap();
    let record = ProvisionRecord {
        request_model: None,
        model_after: Some("platform/haiku".into()),
        resolution_json: r#"{"resolved_mode":"platform_managed","provider":"anthropic"}"#.into(),
        token_hash: TokenHash::of(TOKEN),
        fingerprint: None,
    };
    s.record_provision(&ws.id, &record).await.unwrap();
    let reason = SuspensionReason::parse("drain").unwrap();
    s.suspend(&Owner::Workspace(ws.id.clone()), &reason, &SuspendedBy::Admin).await.unwrap();
    s.resume(&Owner::Workspace(ws.id.clone())).await.unwrap();
    s.resume(&Owner::Workspace(ws.id.clone())).await.unwrap(); // not suspended: no event
    s.delete_workspace(&ws.id).await.unwrap();

    let events = all_events(s, EventQuery { limit: 3, ..EventQuery::default() }).await;
    use EventKind as K;
    assert_eq!(
        kinds(&events),
        [
            K::OrgCreated,
            K::WorkspaceCreated,
            K::OrgUpdated,
            K::LimitsUpdated,
            K::WorkspaceUpdated,
            K::CreditAdjusted,
            K::SecretSet,
            K::SecretSet,
            K::SecretDeleted,
            K::WorkspaceProvisioned,
            K::Suspended,
            K::Resumed,
            K::WorkspaceDeleted,
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id > w[1].id), "newest first, no repeats");
    assert!(events.iter().all(|e| e.actor == Actor::Admin && e.org_id.as_ref() == Some(&org.id)));
    let provisioned = events.iter().find(|e| e.kind == K::WorkspaceProvisioned).unwrap();
    assert_eq!(provisioned.detail["mode"], "platform_managed");
    assert_eq!(provisioned.detail["provider"], "anthropic");
    assert_eq!(provisioned.workspace_id.as_ref(), Some(&ws.id), "kept after the workspace is deleted");
    let credit = events.iter().find(|e| e.kind == K::CreditAdjusted).unwrap();
    assert_eq!(credit.detail["delta_micros"], -1_000);
    assert_eq!(credit.detail["balance_micros"], 4_000);
    let limits = events.iter().find(|e| e.kind == K::LimitsUpdated).unwrap();
    assert_eq!(limits.detail["fields"], serde_json::json!(["requests_per_minute"]));
    for e in &events {
        let text = e.detail.to_string();
        assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{:?} leaks: {text}", e.kind);
    }
    let set = events.iter().filter(|e| e.kind == K::SecretSet).collect::<Vec<_>>();
    assert!(set.iter().all(|e| e.detail["name"] == "ANTHROPIC_API_KEY"));

    // Filters.
    let ws_events =
        all_events(s, EventQuery { workspace_id: Some(ws.id.clone()), limit: 100, ..EventQuery::default() }).await;
    assert_eq!(ws_events.len(), 9, "all but org.created, org.updated, credit.adjusted and the org secret");
    let by_kind = all_events(s, EventQuery { kind: Some(K::SecretSet), limit: 100, ..EventQuery::default() }).await;
    assert_eq!(by_kind.len(), 2);
    let future = tollgate_store::Timestamp(tollgate_store::Timestamp::now().0 + 60_000);
    assert!(all_events(s, EventQuery { since: Some(future), limit: 100, ..EventQuery::default() }).await.is_empty());
    let other = tollgate_policy::OrgId::parse("someone-else").unwrap();
    assert!(all_events(s, EventQuery { org_id: Some(other), limit: 100, ..EventQuery::default() }).await.is_empty());
}

pub(crate) async fn a_failed_mutation_writes_no_event(h: Harness) {
    let s = &*h.store;
    let org = s.create_org(&NewOrg { name: "acme".into(), ..NewOrg::default() }).await.unwrap();
    s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    let before = all_events(s, EventQuery { limit: 100, ..EventQuery::default() }).await.len();
    // Each fails inside its transaction (a conflict, a refused debit, a missing row).
    assert!(matches!(
        s.create_org(&NewOrg { name: "acme".into(), ..NewOrg::default() }).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(s.create_workspace(&new_ws(&org.id, "dev")).await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        s.adjust_credit(&org.id, Micros::new(-1), "too much", Overdraft::Refuse).await,
        Err(StoreError::InsufficientCredit { .. })
    ));
    let other = s.create_org(&NewOrg { name: "other".into(), ..NewOrg::default() }).await.unwrap();
    assert!(matches!(
        s.update_org(&other.id, &OrgPatch { name: Some("acme".into()), ..OrgPatch::default() }).await,
        Err(StoreError::Conflict(_))
    ));
    let name = SecretName::parse("ANTHROPIC_API_KEY").unwrap();
    assert!(matches!(s.delete_secret(&Owner::Org(org.id.clone()), &name).await, Err(StoreError::NotFound(_))));
    let after = all_events(s, EventQuery { limit: 100, ..EventQuery::default() }).await;
    assert_eq!(after.len(), before + 1, "only `other`'s org.created");
    assert_eq!(after[0].kind, EventKind::OrgCreated);
    assert_eq!(s.get_org(&other.id).await.unwrap().name, "other", "the failed rename left nothing");
}

pub(crate) async fn system_events_and_pages_are_stable(h: Harness) {
    let s = &*h.store;
    let org = s.create_org(&NewOrg { name: "acme".into(), ..NewOrg::default() }).await.unwrap();
    for i in 0..5 {
        let e = NewEvent {
            kind: EventKind::AlarmFired,
            actor: Actor::System,
            org_id: Some(org.id.clone()),
            workspace_id: None,
            detail: serde_json::json!({ "n": i }),
        };
        let stored = s.record_event(&e).await.unwrap();
        assert_eq!((stored.kind, stored.actor, stored.detail.clone()), (e.kind, e.actor, e.detail));
    }
    let q = EventQuery { kind: Some(EventKind::AlarmFired), limit: 2, ..EventQuery::default() };
    let first = s.list_events(&q).await.unwrap();
    assert_eq!(first.events.iter().map(|e| e.detail["n"].as_i64().unwrap()).collect::<Vec<_>>(), [4, 3]);
    // Events recorded after the first page do not shift the next ones.
    s.record_event(&NewEvent {
        kind: EventKind::AlarmFired,
        actor: Actor::System,
        org_id: None,
        workspace_id: None,
        detail: serde_json::json!({ "n": 5 }),
    })
    .await
    .unwrap();
    let cursor = first.next.unwrap();
    assert_eq!(EventCursor::parse(&cursor.encode()), Some(cursor), "the cursor's text reads back");
    let rest = all_events(s, EventQuery { cursor: Some(cursor), ..q.clone() }).await;
    assert_eq!(rest.iter().map(|e| e.detail["n"].as_i64().unwrap()).collect::<Vec<_>>(), [2, 1, 0]);
    let last = s.list_events(&EventQuery { limit: 5, ..q }).await.unwrap();
    assert_eq!(last.events.len(), 5);
    assert!(last.next.is_some(), "a sixth exists");
    // Exactly the API's pattern `e[0-9a-z]{1,12}`.
    for bad in ["", "e", "x1", "e-1", "E1", "eA", "e zz", "ezzzzzzzzzzzzz"] {
        assert_eq!(EventCursor::parse(bad), None, "{bad:?}");
    }
    for good in ["e0", "e00", "ezzzzzzzzzzzz"] {
        assert!(EventCursor::parse(good).is_some(), "{good:?}");
    }
}
