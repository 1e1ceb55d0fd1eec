//! The suite's test bodies, backend-agnostic: each takes a fresh [`Harness`].

use tollgate_policy::resolve::{BillingMode, WorkspaceKind};
use tollgate_policy::secret::{Origin, SecretState, SecretValue};
use tollgate_policy::{Limits, LimitsPatch, Micros, OrgId, SecretName, WorkspaceId};
use tollgate_store::{
    Invalidation, LeaseId, MasterKey, NewOrg, NewWorkspace, OrgPatch, Overdraft, Owner, ProvisionRecord, StoreError,
    Timestamp, TokenHash, UsageGroup, UsageQuery, UsageRow, WorkspacePatch,
};

use crate::Harness;

fn models(allowed_models: Option<Option<Vec<String>>>) -> LimitsPatch {
    LimitsPatch { allowed_models, ..LimitsPatch::default() }
}

fn name(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

fn value(s: &str) -> SecretValue {
    SecretValue::parse(s).unwrap()
}

fn new_org(n: &str) -> NewOrg {
    NewOrg { name: n.to_owned(), default_billing_mode: None, credit_micros: Micros::new(1_000), ..NewOrg::default() }
}

fn oid(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

fn wid(s: &str) -> WorkspaceId {
    WorkspaceId::parse(s).unwrap()
}

fn lid(s: &str) -> LeaseId {
    LeaseId::parse(s).unwrap()
}

fn new_ws(org: &OrgId, n: &str) -> NewWorkspace {
    NewWorkspace {
        org_id: org.clone(),
        name: n.to_owned(),
        runtime: "claude-code".to_owned(),
        model: Some("MiniMax-M2.7".to_owned()),
        billing_mode: None,
        kind: WorkspaceKind::Agent,
        limits: Limits::default(),
        alarms: None,
    }
}

pub(crate) async fn orgs_crud_and_unique_names(h: Harness) {
    let s = &h.store;
    s.ping().await.unwrap();
    let a = s.create_org(&NewOrg { default_billing_mode: Some(BillingMode::Byok), ..new_org("acme") }).await.unwrap();
    assert_eq!(a.name, "acme");
    assert_eq!(a.default_billing_mode, Some(BillingMode::Byok));
    assert_eq!(a.credit_micros, Micros::new(1_000));
    assert_eq!(a.id.as_str().len(), 36, "a UUID");
    assert!(matches!(s.create_org(&new_org("acme")).await, Err(StoreError::Conflict(m)) if m.contains("acme")));
    let b = s.create_org(&new_org("beta")).await.unwrap();
    assert_eq!(s.get_org(&a.id).await.unwrap(), a);
    let names: Vec<String> = s.list_orgs().await.unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["acme", "beta"]);
    let patched = s
        .update_org(&a.id, &OrgPatch { name: None, default_billing_mode: Some(None), ..OrgPatch::default() })
        .await
        .unwrap();
    assert_eq!((patched.name.as_str(), patched.default_billing_mode), ("acme", None));
    let renamed = s
        .update_org(&a.id, &OrgPatch { name: Some("acme2".into()), default_billing_mode: None, ..OrgPatch::default() })
        .await
        .unwrap();
    assert_eq!(renamed.name, "acme2");
    assert!(renamed.updated_at >= a.updated_at);
    assert!(matches!(
        s.update_org(&b.id, &OrgPatch { name: Some("acme2".into()), ..OrgPatch::default() }).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(s.get_org(&oid("nope")).await, Err(StoreError::NotFound("org"))));
    assert!(matches!(s.update_org(&oid("nope"), &OrgPatch::default()).await, Err(StoreError::NotFound("org"))));
    // A price plan: none by default, set alone, kept by other changes.
    assert_eq!(renamed.markup_percent, tollgate_policy::Markup::NONE);
    let markup = tollgate_policy::Markup::try_from(-15).unwrap();
    let priced = s.update_org(&a.id, &OrgPatch { markup_percent: Some(markup), ..OrgPatch::default() }).await.unwrap();
    assert_eq!((priced.markup_percent, priced.name.as_str()), (markup, "acme2"));
    let kept = s.update_org(&a.id, &OrgPatch { name: Some("acme3".into()), ..OrgPatch::default() }).await.unwrap();
    assert_eq!(kept.markup_percent, markup);
    assert_eq!(s.get_org(&a.id).await.unwrap().markup_percent, markup);
}

/// An org's alert webhook: none by default, set on create or by a patch, kept by other
/// changes, removed by `Some(None)`; the event names the field, never the URL.
pub(crate) async fn alert_webhook_url_is_stored_kept_and_removed(h: Harness) {
    let s = &h.store;
    let url = |u: &str| tollgate_policy::WebhookUrl::parse(u).unwrap();
    let plain = s.create_org(&new_org("plain")).await.unwrap();
    assert_eq!(plain.alert_webhook_url, None);
    let hook = url("https://hooks.example.com/services/T0/B0/secretpath");
    let org = s.create_org(&NewOrg { alert_webhook_url: Some(hook.clone()), ..new_org("hooked") }).await.unwrap();
    assert_eq!(org.alert_webhook_url.as_ref(), Some(&hook));
    assert_eq!(s.get_org(&org.id).await.unwrap().alert_webhook_url.as_ref(), Some(&hook));
    let other = url("http://127.0.0.1:9/other");
    let set = OrgPatch { alert_webhook_url: Some(Some(other.clone())), ..OrgPatch::default() };
    assert_eq!(s.update_org(&plain.id, &set).await.unwrap().alert_webhook_url, Some(other.clone()));
    let renamed = s.update_org(&plain.id, &OrgPatch { name: Some("plain2".into()), ..OrgPatch::default() }).await;
    assert_eq!(renamed.unwrap().alert_webhook_url, Some(other));
    let removed = OrgPatch { alert_webhook_url: Some(None), ..OrgPatch::default() };
    assert_eq!(s.update_org(&plain.id, &removed).await.unwrap().alert_webhook_url, None);
    assert_eq!(s.get_org(&org.id).await.unwrap().alert_webhook_url, Some(hook), "another org's is untouched");
    let query = tollgate_store::EventQuery { org_id: Some(plain.id.clone()), limit: 100, ..Default::default() };
    let events = s.list_events(&query).await.unwrap().events;
    let text = serde_json::to_string(&events.iter().map(|e| &e.detail).collect::<Vec<_>>()).unwrap();
    assert!(text.contains("alert_webhook_url"), "the field is named: {text}");
    assert!(!text.contains("127.0.0.1") && !text.contains("/other"), "never the URL: {text}");
}

pub(crate) async fn credit_adjustments_are_atomic_and_recorded(h: Harness) {
    let s = h.store.clone();
    let org = s.create_org(&new_org("acme")).await.unwrap();
    assert_eq!(
        s.adjust_credit(&org.id, Micros::new(500), "top-up", Overdraft::Refuse).await.unwrap().balance,
        Micros::new(1_500)
    );
    assert_eq!(
        s.adjust_credit(&org.id, Micros::new(-2_000), "claw back", Overdraft::Allow).await.unwrap().balance,
        Micros::new(-500)
    );
    // 40 concurrent adjustments never lose an update.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let id = org.id.clone();
        tasks.push(tokio::spawn(async move {
            s.adjust_credit(&id, Micros::new(if i % 2 == 0 { 100 } else { -30 }), "load", Overdraft::Allow).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.get_org(&org.id).await.unwrap().credit_micros, Micros::new(-500 + 20 * 100 - 20 * 30));
    assert!(matches!(
        s.adjust_credit(&org.id, Micros::new(i64::MAX), "overflow", Overdraft::Refuse).await,
        Err(StoreError::Overflow)
    ));
    assert!(matches!(
        s.adjust_credit(&oid("nope"), Micros::new(1), "x", Overdraft::Refuse).await,
        Err(StoreError::NotFound("org"))
    ));
}

pub(crate) async fn workspaces_crud_and_unique_names_per_org(h: Harness) {
    let s = &h.store;
    let a = s.create_org(&new_org("a")).await.unwrap();
    let b = s.create_org(&new_org("b")).await.unwrap();
    let w = s.create_workspace(&new_ws(&a.id, "dev")).await.unwrap();
    assert_eq!((w.org_id.as_str(), w.name.as_str(), w.runtime.as_str()), (a.id.as_str(), "dev", "claude-code"));
    assert_eq!(w.model.as_deref(), Some("MiniMax-M2.7"));
    assert!(
        matches!(s.create_workspace(&new_ws(&a.id, "dev")).await, Err(StoreError::Conflict(m)) if m.contains("dev"))
    );
    s.create_workspace(&new_ws(&b.id, "dev")).await.unwrap();
    assert!(matches!(s.create_workspace(&new_ws(&oid("nope"), "x")).await, Err(StoreError::NotFound("org"))));
    let w2 = s
        .create_workspace(&NewWorkspace {
            kind: WorkspaceKind::Concierge,
            billing_mode: Some(BillingMode::Disabled),
            model: None,
            ..new_ws(&a.id, "concierge")
        })
        .await
        .unwrap();
    assert_eq!(s.get_workspace(&w2.id).await.unwrap(), w2);
    assert_eq!(s.list_workspaces(Some(&a.id)).await.unwrap().len(), 2);
    assert_eq!(s.list_workspaces(None).await.unwrap().len(), 3);
    assert!(matches!(s.list_workspaces(Some(&oid("nope"))).await, Err(StoreError::NotFound("org"))));
    let p = s
        .update_workspace(
            &w.id,
            &WorkspacePatch {
                model: Some(None),
                billing_mode: Some(Some(BillingMode::Byok)),
                kind: Some(WorkspaceKind::Concierge),
                ..WorkspacePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((p.model, p.billing_mode, p.kind), (None, Some(BillingMode::Byok), WorkspaceKind::Concierge));
    assert_eq!(p.limits.allowed_models, None, "a new workspace has no allowed_models");
    let narrowed = NewWorkspace {
        limits: Limits { allowed_models: Some(vec!["m-9".to_owned()]), ..Limits::default() },
        ..new_ws(&a.id, "narrowed")
    };
    let n = s.create_workspace(&narrowed).await.unwrap();
    assert_eq!(s.get_workspace(&n.id).await.unwrap().limits.allowed_models, Some(vec!["m-9".to_owned()]));
    for allowed in [Some(vec!["m-1".to_owned(), "m-2".to_owned()]), Some(Vec::new()), None] {
        let patch = WorkspacePatch { limits: models(Some(allowed.clone())), ..WorkspacePatch::default() };
        let p = s.update_workspace(&w.id, &patch).await.unwrap();
        assert_eq!(p.limits.allowed_models, allowed, "allowed_models round-trips");
        assert_eq!(s.get_workspace(&w.id).await.unwrap().limits.allowed_models, allowed);
    }
    let kept = WorkspacePatch { limits: models(Some(Some(vec!["m-1".to_owned()]))), ..WorkspacePatch::default() };
    s.update_workspace(&w.id, &kept).await.unwrap();
    let p =
        s.update_workspace(&w.id, &WorkspacePatch { model: Some(None), ..WorkspacePatch::default() }).await.unwrap();
    assert_eq!(p.limits.allowed_models, Some(vec!["m-1".to_owned()]), "a patch without allowed_models leaves it");
    s.update_workspace(&w.id, &WorkspacePatch { limits: models(Some(None)), ..WorkspacePatch::default() })
        .await
        .unwrap();
    assert_eq!(p.name, "dev", "untouched fields stay");
    assert!(matches!(
        s.update_workspace(&w.id, &WorkspacePatch { name: Some("concierge".into()), ..WorkspacePatch::default() })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(s.get_workspace(&wid("nope")).await, Err(StoreError::NotFound("workspace"))));
    assert_eq!(w.spec().runtime, "claude-code");
}

pub(crate) async fn secrets_are_encrypted_listed_and_merged(h: Harness) {
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    s.put_secret(&Owner::Org(org.id.clone()), &name("CLAUDE_CODE_OAUTH_TOKEN"), &value("sk-ant-oat01-org-secret"))
        .await
        .unwrap();
    s.put_secret(&Owner::Org(org.id.clone()), &name("SHARED"), &value("org-shared")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("SHARED"), &value("ws-shared")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("MINIMAX_API_KEY"), &value("mm-1")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("MINIMAX_API_KEY"), &value("mm-2")).await.unwrap();
    let listed: Vec<String> =
        s.list_secrets(&Owner::Workspace(ws.id.clone())).await.unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(listed, ["MINIMAX_API_KEY", "SHARED"]);
    let merged = s.merged_secrets(&ws).await.unwrap();
    assert_eq!(merged.len(), 3);
    let get = |n: &str| merged.get(n).map(|m| (m.origin, m.value().map(|v| v.expose().to_owned())));
    assert_eq!(get("SHARED"), Some((Origin::Workspace, Some("ws-shared".to_owned()))));
    assert_eq!(get("MINIMAX_API_KEY"), Some((Origin::Workspace, Some("mm-2".to_owned()))), "a PUT replaces");
    assert_eq!(get("CLAUDE_CODE_OAUTH_TOKEN"), Some((Origin::Org, Some("sk-ant-oat01-org-secret".to_owned()))));
    // At rest the value is not there in clear.
    let raw_contains = match h.backend {
        crate::Backend::Sqlite => {
            let path = h.url.trim_start_matches("sqlite://");
            let mut bytes = std::fs::read(path).unwrap_or_default();
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            bytes.windows(b"sk-ant-oat01-org-secret".len()).any(|w| w == b"sk-ant-oat01-org-secret")
        }
        crate::Backend::Postgres => false,
    };
    assert!(!raw_contains, "a secret value is stored in clear");
    s.delete_secret(&Owner::Workspace(ws.id.clone()), &name("SHARED")).await.unwrap();
    assert!(matches!(
        s.delete_secret(&Owner::Workspace(ws.id.clone()), &name("SHARED")).await,
        Err(StoreError::NotFound("secret"))
    ));
    let merged = s.merged_secrets(&ws).await.unwrap();
    assert_eq!(merged.get("SHARED").map(|m| m.origin), Some(Origin::Org), "the org value shows through again");
    assert!(matches!(
        s.put_secret(&Owner::Org(oid("nope")), &name("A"), &value("x")).await,
        Err(StoreError::NotFound("org"))
    ));
    assert!(matches!(
        s.put_secret(&Owner::Workspace(wid("nope")), &name("A"), &value("x")).await,
        Err(StoreError::NotFound("workspace"))
    ));
    assert!(matches!(s.list_secrets(&Owner::Workspace(wid("nope"))).await, Err(StoreError::NotFound("workspace"))));
}

pub(crate) async fn ciphertext_moved_to_another_row_is_unreadable(h: Harness) {
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("MINIMAX_API_KEY"), &value("mm-key")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("OTHER"), &value("other")).await.unwrap();
    // Copy MINIMAX_API_KEY's nonce and ciphertext onto OTHER's row.
    h.raw(&format!(
        "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE owner_id = '{id}' AND name = 'MINIMAX_API_KEY'), \
         ciphertext = (SELECT ciphertext FROM secrets WHERE owner_id = '{id}' AND name = 'MINIMAX_API_KEY') \
         WHERE owner_id = '{id}' AND name = 'OTHER'",
        id = ws.id
    ))
    .await;
    let merged = s.merged_secrets(&ws).await.unwrap();
    assert!(matches!(merged.get("OTHER").map(|m| &m.state), Some(SecretState::Unreadable)), "never silently absent");
    assert!(merged.get("MINIMAX_API_KEY").is_some_and(|m| m.is_present()), "the original still decrypts");
}

pub(crate) async fn another_master_key_makes_every_secret_unreadable(h: Harness) {
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    s.put_secret(&Owner::Org(org.id.clone()), &name("A"), &value("a")).await.unwrap();
    let other = h.reopen(MasterKey::generate().unwrap()).await;
    let merged = other.merged_secrets(&ws).await.unwrap();
    assert!(matches!(merged.get("A").map(|m| &m.state), Some(SecretState::Unreadable)));
    let same = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
    assert!(same.merged_secrets(&ws).await.unwrap().get("A").is_some_and(|m| m.is_present()));
}

pub(crate) async fn provision_swaps_tokens_atomically(h: Harness) {
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    let t1 = TokenHash::of("tg_ws_first");
    let t2 = TokenHash::of("tg_ws_second");
    let record = |t: TokenHash, model: &str| ProvisionRecord {
        request_model: Some(model.to_owned()),
        model_after: Some(model.to_owned()),
        resolution_json: format!("{{\"effective_model\":\"{model}\"}}"),
        token_hash: t,
        fingerprint: None,
    };
    assert_eq!(s.workspace_for_token(&t1).await.unwrap(), None);
    s.record_provision(&ws.id, &record(t1, "platform/opus")).await.unwrap();
    let found = s.workspace_for_token(&t1).await.unwrap().unwrap();
    assert_eq!(found.id, ws.id);
    assert_eq!(found.model.as_deref(), Some("platform/opus"), "the provision's model is stored");
    s.record_provision(&ws.id, &record(t2, "platform/sonnet")).await.unwrap();
    assert_eq!(s.workspace_for_token(&t1).await.unwrap(), None, "a new provision revokes the old token");
    assert_eq!(s.workspace_for_token(&t2).await.unwrap().map(|w| w.id), Some(ws.id.clone()));
    let provisions = s.list_provisions(&ws.id).await.unwrap();
    assert_eq!(provisions.len(), 2);
    assert_eq!(provisions[1].request_model.as_deref(), Some("platform/sonnet"));
    assert!(provisions[1].resolution_json.contains("platform/sonnet"));
    // Reusing a token hash fails the whole provision: the model stays as it was.
    assert!(s.record_provision(&ws.id, &record(t2, "platform/haiku")).await.is_err());
    assert_eq!(s.get_workspace(&ws.id).await.unwrap().model.as_deref(), Some("platform/sonnet"), "nothing half-done");
    assert_eq!(s.workspace_for_token(&t2).await.unwrap().map(|w| w.id), Some(ws.id.clone()));
    assert!(matches!(
        s.record_provision(&wid("nope"), &record(TokenHash::of("x"), "m")).await,
        Err(StoreError::NotFound("workspace"))
    ));
}

pub(crate) async fn delete_workspace_removes_its_secrets_and_tokens(h: Harness) {
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    s.put_secret(&Owner::Workspace(ws.id.clone()), &name("A"), &value("a")).await.unwrap();
    let t = TokenHash::of("tg_ws_x");
    s.record_provision(
        &ws.id,
        &ProvisionRecord {
            request_model: None,
            model_after: None,
            resolution_json: "{}".into(),
            token_hash: t,
            fingerprint: None,
        },
    )
    .await
    .unwrap();
    s.delete_workspace(&ws.id).await.unwrap();
    assert!(matches!(s.get_workspace(&ws.id).await, Err(StoreError::NotFound("workspace"))));
    assert_eq!(s.workspace_for_token(&t).await.unwrap(), None);
    assert!(s.list_provisions(&ws.id).await.unwrap().is_empty());
    assert!(matches!(s.delete_workspace(&ws.id).await, Err(StoreError::NotFound("workspace"))));
    // The name is free again.
    let again = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    assert!(s.list_secrets(&Owner::Workspace(again.id.clone())).await.unwrap().is_empty());
}

pub(crate) async fn admin_token_hash_round_trip(h: Harness) {
    let s = &h.store;
    assert_eq!(s.admin_token_hash().await.unwrap(), None);
    s.set_admin_token_hash(&TokenHash::of("tg_admin_a")).await.unwrap();
    assert_eq!(s.admin_token_hash().await.unwrap(), Some(TokenHash::of("tg_admin_a")));
    s.set_admin_token_hash(&TokenHash::of("tg_admin_b")).await.unwrap();
    assert_eq!(s.admin_token_hash().await.unwrap(), Some(TokenHash::of("tg_admin_b")));
}

pub(crate) async fn data_survives_a_reopen(h: Harness) {
    let org = h.store.create_org(&new_org("acme")).await.unwrap();
    let ws = h.store.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    h.store.put_secret(&Owner::Workspace(ws.id.clone()), &name("A"), &value("kept")).await.unwrap();
    let again = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
    assert_eq!(again.get_org(&org.id).await.unwrap(), org, "migrations re-run cleanly and the data is there");
    assert_eq!(again.get_workspace(&ws.id).await.unwrap(), ws);
    let merged = again.merged_secrets(&ws).await.unwrap();
    assert_eq!(merged.get("A").and_then(|m| m.value()).map(SecretValue::expose), Some("kept"));
}

/// Every read sees the latest committed write, whichever pooled connection serves it (a
/// SQLite statement left un-reset would pin an old WAL snapshot on its connection).
pub(crate) async fn reads_are_never_stale(h: Harness) {
    let s = h.store.clone();
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "dev")).await.unwrap();
    for i in 0..60 {
        let t = TokenHash::of(&format!("tg_ws_{i}"));
        let model = format!("model-{i}");
        s.record_provision(
            &ws.id,
            &ProvisionRecord {
                request_model: None,
                model_after: Some(model.clone()),
                resolution_json: "{}".into(),
                token_hash: t,
                fingerprint: None,
            },
        )
        .await
        .unwrap();
        // Interleave single-row reads (fetch_optional) on several connections at once.
        let (a, b, c) = tokio::join!(s.workspace_for_token(&t), s.get_workspace(&ws.id), s.get_org(&org.id));
        assert_eq!(a.unwrap().and_then(|w| w.model), Some(model.clone()), "token lookup, round {i}");
        assert_eq!(b.unwrap().model, Some(model.clone()), "get_workspace, round {i}");
        c.unwrap();
        assert_eq!(s.list_workspaces(Some(&org.id)).await.unwrap()[0].model, Some(model), "list, round {i}");
    }
}

/// Usage totals group ledger rows by day (UTC), model or workspace, count failed requests
/// and filter by org, workspace and time. (The proxy writes the ledger; here rows are raw.)
pub(crate) async fn usage_groups_the_ledger(h: Harness) {
    let day1 = 1_795_089_600_000_i64; // 2026-11-19T12:00:00Z
    let day2 = day1 + 86_400_000;
    let rows = [
        ("r1", "o1", "w1", "platform/opus", Some(200), 10, 5, 1, 2, 100, day1),
        ("r2", "o1", "w1", "platform/sonnet", Some(529), 0, 0, 0, 0, 0, day1 + 1),
        ("r3", "o1", "w2", "platform/opus", None, 3, 1, 0, 0, 7, day2),
        ("r4", "o2", "w9", "platform/opus", Some(200), 1000, 1000, 0, 0, 5000, day2),
    ];
    for (id, org, ws, model, status, i, o, cw, cr, cost, at) in rows {
        let status = status.map_or_else(|| "NULL".to_owned(), |s: i32| s.to_string());
        // Every row's provider price is 80% of its charge; r1's one cache write is 1-hour.
        let provider = cost * 4 / 5;
        let one_hour = i64::from(id == "r1");
        h.raw(&format!(
            "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, cost_micros, \
             input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, created_at, provider_cost_micros, cache_write_1h_tokens) \
             VALUES ('{id}', '{org}', '{ws}', '{model}', 'settled', {status}, 0, {cost}, {i}, {o}, {cw}, {cr}, {at}, {provider}, {one_hour})"
        ))
        .await;
    }
    // r3, cut before its usage, was charged on an estimate.
    h.raw("UPDATE ledger SET estimated = TRUE WHERE request_id = 'r3'").await;
    let q = |group_by, org: Option<&str>| UsageQuery { org_id: org.map(oid), group_by, ..UsageQuery::default() };
    let by_day = h.store.usage(&q(UsageGroup::Day, Some("o1"))).await.unwrap();
    let d1 = Timestamp(day1).rfc3339()[..10].to_owned();
    let d2 = Timestamp(day2).rfc3339()[..10].to_owned();
    assert_eq!(
        by_day,
        [
            UsageRow {
                key: d1,
                requests: 2,
                errors: 1,
                input_tokens: 10,
                output_tokens: 5,
                cache_write_tokens: 1,
                cache_write_1h_tokens: 1,
                cache_read_tokens: 2,
                provider_cost_micros: 80,
                cost_micros: 100,
                estimated_requests: 0,
            },
            UsageRow {
                key: d2.clone(),
                requests: 1,
                errors: 1,
                input_tokens: 3,
                output_tokens: 1,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
                cache_read_tokens: 0,
                provider_cost_micros: 5,
                cost_micros: 7,
                estimated_requests: 1,
            },
        ]
    );
    let by_model = h.store.usage(&q(UsageGroup::Model, None)).await.unwrap();
    assert_eq!(
        by_model.iter().map(|r| (r.key.as_str(), r.requests, r.cost_micros)).collect::<Vec<_>>(),
        [("platform/opus", 3, 5107), ("platform/sonnet", 1, 0)]
    );
    let by_ws = h.store.usage(&q(UsageGroup::Workspace, Some("o1"))).await.unwrap();
    assert_eq!(by_ws.iter().map(|r| (r.key.as_str(), r.requests)).collect::<Vec<_>>(), [("w1", 2), ("w2", 1)]);
    let windowed = h
        .store
        .usage(&UsageQuery {
            since: Some(Timestamp(day2)),
            until: Some(Timestamp(day2 + 1)),
            ..q(UsageGroup::Day, None)
        })
        .await
        .unwrap();
    assert_eq!(windowed.iter().map(|r| (r.key.as_str(), r.requests)).collect::<Vec<_>>(), [(d2.as_str(), 2)]);
    let one_ws =
        h.store.usage(&UsageQuery { workspace_id: Some(wid("w9")), ..q(UsageGroup::Model, None) }).await.unwrap();
    assert_eq!(one_ws.len(), 1);
    assert!(h.store.usage(&q(UsageGroup::Day, Some("nobody"))).await.unwrap().is_empty());
    assert_eq!(UsageGroup::parse("model"), Some(UsageGroup::Model));
    assert_eq!(UsageGroup::parse("week"), None);
}

fn lease(lease_id: &str, org: &OrgId, need: i64, want: i64) -> tollgate_store::LeaseRequest {
    tollgate_store::LeaseRequest {
        lease_id: lid(lease_id),
        org_id: org.clone(),
        need: Micros::new(need),
        want: Micros::new(want),
        ttl: std::time::Duration::from_secs(60),
    }
}

fn settlement(cost: i64, status: Option<u16>) -> tollgate_store::Settlement {
    tollgate_store::Settlement {
        usage: tollgate_policy::Usage {
            input_tokens: 10,
            output_tokens: 20,
            cache_write_tokens: 3,
            cache_write_1h_tokens: 1,
            cache_read_tokens: 2,
            service_tier: None,
        },
        cost: Micros::new(cost),
        // The org's markup is +25%: the provider billed four fifths of the charge.
        provider_cost: Micros::new(cost * 4 / 5),
        http_status: status,
        estimated: status.is_none(),
    }
}

fn entry(id: &str, cost: i64, status: Option<u16>) -> tollgate_store::LedgerEntry {
    tollgate_store::LedgerEntry {
        request_id: tollgate_store::RequestId::parse(id).unwrap(),
        workspace_id: wid("ws"),
        model: "platform/sonnet".to_owned(),
        reserved: Micros::new(100),
        settlement: settlement(cost, status),
        rejected: false,
        created_at: Timestamp::now(),
        session_id: None,
    }
}

/// Rows carry the agent's session id; usage grouped by session gives each session its own
/// totals, and rows without one fall under the empty key.
pub(crate) async fn usage_groups_by_agent_session(h: Harness) {
    use tollgate_store::AgentSessionId;
    let s = &h.store;
    let ttl = std::time::Duration::from_secs(60);
    let org = s.create_org(&new_org("sessions")).await.unwrap();
    assert!(matches!(
        s.lease_credit(&lease("s", &org.id, 100, 100)).await.unwrap(),
        tollgate_store::Leased::Granted(_)
    ));
    let with = |id: &str, cost: i64, session: Option<&str>| {
        let mut e = entry(id, cost, Some(200));
        e.session_id = session.map(|v| AgentSessionId::parse(v).unwrap());
        e
    };
    let rows = [
        with("s1", 10, Some("sess-a")),
        with("s2", 5, Some("sess-b")),
        with("s3", 20, Some("sess-a")),
        with("s4", 1, None),
    ];
    s.record_usage(&lid("s"), &org.id, &rows, ttl).await.unwrap();
    let by_session = s
        .usage(&UsageQuery { org_id: Some(org.id.clone()), group_by: UsageGroup::Session, ..UsageQuery::default() })
        .await
        .unwrap();
    assert_eq!(
        by_session.iter().map(|r| (r.key.as_str(), r.requests, r.cost_micros, r.input_tokens)).collect::<Vec<_>>(),
        [("", 1, 1, 10), ("sess-a", 2, 30, 20), ("sess-b", 1, 5, 10)]
    );
    assert_eq!(UsageGroup::parse("session"), Some(UsageGroup::Session));
}

/// Lease, record, return: the org's balance counts leased credit until it is spent, a
/// lease never takes more than the balance, rows are charged once, and a lease that expired
/// (its instance died) goes back to the org.
pub(crate) async fn credit_is_leased_recorded_and_returned(h: Harness) {
    use std::time::Duration;
    use tollgate_store::Leased;
    let s = &h.store;
    let ttl = Duration::from_secs(60);
    let org = s.create_org(&new_org("acme")).await.unwrap(); // 1_000 micro-USD
    let shown = || async { s.get_org(&org.id).await.unwrap().credit_micros.get() };
    // An eighth of the balance, within [need, want].
    assert_eq!(s.lease_credit(&lease("a", &org.id, 100, 600)).await.unwrap(), Leased::Granted(Micros::new(125)));
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(125));
    assert_eq!(shown().await, 1_000, "leased credit is not spent");
    assert_eq!(s.list_orgs().await.unwrap()[0].credit_micros, Micros::new(1_000));
    assert_eq!(s.lease_credit(&lease("a", &org.id, 20, 20)).await.unwrap(), Leased::Granted(Micros::new(20)));
    assert_eq!(s.lease_credit(&lease("b", &org.id, 10, 10)).await.unwrap(), Leased::Granted(Micros::new(10)));
    assert_eq!(
        s.lease_credit(&lease("a", &org.id, 900, 900)).await.unwrap(),
        Leased::Insufficient { available: Micros::new(845), leased_elsewhere: Micros::new(10) },
        "nothing is taken when the balance does not cover the need"
    );
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(155));
    // Rows charge the lease, once.
    let mut refused = entry("r2", 0, Some(402));
    refused.rejected = true;
    refused.reserved = Micros::ZERO;
    let rows = [entry("r1", 40, Some(200)), refused];
    assert!(s.record_usage(&lid("a"), &org.id, &rows, ttl).await.unwrap());
    assert_eq!(shown().await, 960);
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(115));
    assert!(s.record_usage(&lid("a"), &org.id, &rows, ttl).await.unwrap(), "a retried batch");
    assert_eq!(shown().await, 960, "rows already written are not charged again");
    // Credit counts what the org is charged (40), the row keeps what the provider billed (32);
    // each of the two rows has one 1-hour cache write.
    let usage = s.usage(&UsageQuery { org_id: Some(org.id.clone()), ..UsageQuery::default() }).await.unwrap();
    assert_eq!(
        usage.iter().map(|r| (r.cost_micros, r.provider_cost_micros, r.cache_write_1h_tokens)).collect::<Vec<_>>(),
        [(40, 32, 2)]
    );
    // Returning unspent credit.
    assert!(s.release_lease(&lid("a"), Some(Micros::new(50)), ttl).await.unwrap());
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(65));
    assert_eq!(shown().await, 960);
    assert!(s.release_lease(&lid("a"), None, ttl).await.unwrap());
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(10), "lease b is untouched");
    assert!(!s.release_lease(&lid("a"), None, ttl).await.unwrap(), "closed already");
    assert_eq!(shown().await, 960);
    // A row recorded after its lease is gone is charged to the balance.
    assert!(!s.record_usage(&lid("a"), &org.id, &[entry("r3", 7, None)], ttl).await.unwrap());
    assert_eq!(shown().await, 953);
    // An expired lease is reclaimed by anyone; a live one is not.
    let mut short = lease("c", &org.id, 5, 5);
    short.ttl = Duration::ZERO;
    assert_eq!(s.lease_credit(&short).await.unwrap(), Leased::Granted(Micros::new(5)));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.reclaim_expired_leases().await.unwrap(), 1);
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(10));
    assert_eq!(shown().await, 953);
    assert!(matches!(s.lease_credit(&lease("z", &oid("no-org"), 1, 1)).await, Err(StoreError::NotFound("org"))));
    // Adjustments see the leased credit too.
    assert_eq!(
        s.adjust_credit(&org.id, Micros::new(47), "top-up", Overdraft::Refuse).await.unwrap().balance,
        Micros::new(1_000)
    );
    let usage = s
        .usage(&UsageQuery { org_id: Some(org.id.clone()), group_by: UsageGroup::Model, ..UsageQuery::default() })
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
    let u = &usage[0];
    assert_eq!(
        (u.requests, u.errors, u.cost_micros, u.input_tokens, u.output_tokens),
        (3, 2, 47, 30, 60),
        "one row per request; the 402 and the cut stream are errors"
    );
}

/// Concurrent leases from two store instances (two connection pools, as two `serve`
/// processes would have) never take more than the balance, and concurrent duplicate
/// recordings charge each request once.
pub(crate) async fn concurrent_leases_never_overspend(h: Harness) {
    use std::time::Duration;
    use tollgate_store::Leased;
    let org = h.store.create_org(&new_org("acme")).await.unwrap(); // 1_000 micro-USD
    let other = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, lease_id) = if i % 2 == 0 { (h.store.clone(), "a") } else { (other.clone(), "b") };
        let org_id = org.id.clone();
        tasks.push(tokio::spawn(
            async move { (lease_id, store.lease_credit(&lease(lease_id, &org_id, 100, 100)).await) },
        ));
    }
    let mut granted = 0;
    // Which instance wins which race is up to the scheduler: one of them may get nothing.
    let mut opened = std::collections::BTreeSet::new();
    for t in tasks {
        let (lease_id, leased) = t.await.unwrap();
        if let Leased::Granted(m) = leased.unwrap() {
            assert_eq!(m, Micros::new(100));
            granted += 1;
            opened.insert(lease_id);
        }
    }
    assert_eq!(granted, 10, "1_000 of credit covers exactly ten leases of 100");
    assert_eq!(h.store.leased_credit(&org.id).await.unwrap(), Micros::new(1_000));
    let mut tasks = Vec::new();
    for round in 0..2 {
        for i in 0..10 {
            let store = if (i + round) % 2 == 0 { h.store.clone() } else { other.clone() };
            let org_id = org.id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_usage(
                        &lid("a"),
                        &org_id,
                        &[entry(&format!("c{i}"), 30, Some(200))],
                        Duration::from_secs(60),
                    )
                    .await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(h.store.get_org(&org.id).await.unwrap().credit_micros, Micros::new(700), "each charged once");
    assert_eq!(h.store.release_lease(&lid("a"), None, Duration::ZERO).await.unwrap(), opened.contains("a"));
    assert_eq!(other.release_lease(&lid("b"), None, Duration::ZERO).await.unwrap(), opened.contains("b"));
    assert_eq!(h.store.leased_credit(&org.id).await.unwrap(), Micros::ZERO);
    assert_eq!(h.store.get_org(&org.id).await.unwrap().credit_micros, Micros::new(700));
    let usage = h.store.usage(&UsageQuery { org_id: Some(org.id.clone()), ..UsageQuery::default() }).await.unwrap();
    assert_eq!((usage[0].requests, usage[0].errors, usage[0].cost_micros), (10, 0, 300));
}

/// A cache invalidation published by one instance reaches every subscriber; on Postgres,
/// across instances (LISTEN/NOTIFY).
pub(crate) async fn invalidations_reach_every_instance(h: Harness) {
    use std::time::Duration;
    let recv = |mut rx: tokio::sync::broadcast::Receiver<Invalidation>| async move {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an invalidation within 10 s").unwrap()
    };
    let rx = h.store.invalidations().await.unwrap();
    h.store.publish_invalidation(&Invalidation::Workspace(wid("w1"))).await.unwrap();
    assert_eq!(recv(rx).await, Invalidation::Workspace(wid("w1")));
    if h.backend == crate::Backend::Postgres {
        let other = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
        let rx_other = other.invalidations().await.unwrap();
        let recall = Invalidation::CreditRecall { org: oid("o2"), from: "instance-1".to_owned() };
        h.store.publish_invalidation(&recall).await.unwrap();
        assert_eq!(recv(rx_other).await, recall, "another instance hears it, through the channel's text");
    }
}

/// How many rounds the concurrent-PATCH tests run.
const PATCH_ROUNDS: usize = 200;

/// Concurrent updates of different fields of one workspace, and of one org, all land: in
/// every round each field holds the value its own update wrote (a read-modify-write would
/// put back the old value of the field it did not change).
pub(crate) async fn concurrent_patches_of_different_fields_all_land(h: Harness) {
    let org = h.store.create_org(&new_org("patched")).await.unwrap();
    let ws = h.store.create_workspace(&new_ws(&org.id, "patched-ws")).await.unwrap();
    let modes = [BillingMode::Byok, BillingMode::PlatformManaged, BillingMode::Disabled];
    let (mut ws_lost, mut org_lost) = (0, 0);
    for round in 0..PATCH_ROUNDS {
        // Start every round from known values, different from the ones written below.
        let reset = WorkspacePatch {
            name: Some(format!("base-{round}")),
            model: Some(None),
            billing_mode: Some(None),
            ..WorkspacePatch::default()
        };
        h.store.update_workspace(&ws.id, &reset).await.unwrap();
        let reset = OrgPatch {
            name: Some(format!("org-base-{round}")),
            default_billing_mode: Some(None),
            ..OrgPatch::default()
        };
        h.store.update_org(&org.id, &reset).await.unwrap();

        let mode = modes[round % modes.len()];
        let ws_patches = [
            WorkspacePatch { name: Some(format!("ws-{round}")), ..WorkspacePatch::default() },
            WorkspacePatch { model: Some(Some(format!("model-{round}"))), ..WorkspacePatch::default() },
            WorkspacePatch { billing_mode: Some(Some(mode)), ..WorkspacePatch::default() },
        ];
        let org_patches = [
            OrgPatch { name: Some(format!("org-{round}")), default_billing_mode: None, ..OrgPatch::default() },
            OrgPatch { name: None, default_billing_mode: Some(Some(mode)), ..OrgPatch::default() },
        ];
        let mut tasks = Vec::new();
        for patch in ws_patches {
            let (store, id) = (h.store.clone(), ws.id.clone());
            tasks.push(tokio::spawn(async move { store.update_workspace(&id, &patch).await.map(drop) }));
        }
        for patch in org_patches {
            let (store, id) = (h.store.clone(), org.id.clone());
            tasks.push(tokio::spawn(async move { store.update_org(&id, &patch).await.map(drop) }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }

        let got = h.store.get_workspace(&ws.id).await.unwrap();
        ws_lost += usize::from(got.name != format!("ws-{round}"))
            + usize::from(got.model.as_deref() != Some(format!("model-{round}").as_str()))
            + usize::from(got.billing_mode != Some(mode));
        assert_eq!(got.runtime, "claude-code", "a field no PATCH named is untouched");
        assert_eq!(got.kind, WorkspaceKind::Agent, "a field no PATCH named is untouched");
        let got = h.store.get_org(&org.id).await.unwrap();
        org_lost +=
            usize::from(got.name != format!("org-{round}")) + usize::from(got.default_billing_mode != Some(mode));
        assert_eq!(got.credit_micros, org.credit_micros, "the balance is no PATCH's business");
    }
    assert_eq!(
        (ws_lost, org_lost),
        (0, 0),
        "updates lost in {PATCH_ROUNDS} rounds (workspace, org) on {:?}",
        h.backend
    );
}

/// A debit binds: it takes every lease's credit back in its transaction (rows written later
/// for those leases charge the balance), refuses to go below zero unless allowed, and no
/// adjustment leaves the balance beyond ±10^15.
pub(crate) async fn debits_cut_leases_and_are_bounded(h: Harness) {
    use std::time::Duration;
    use tollgate_store::{Leased, MAX_BALANCE_MICROS};
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap(); // 1_000 micro-USD
    assert_eq!(s.lease_credit(&lease("a", &org.id, 100, 600)).await.unwrap(), Leased::Granted(Micros::new(125)));
    assert_eq!(s.lease_credit(&lease("b", &org.id, 10, 10)).await.unwrap(), Leased::Granted(Micros::new(10)));
    // Beyond the balance (leases included): refused, nothing changed.
    let refused = s.adjust_credit(&org.id, Micros::new(-1_001), "too much", Overdraft::Refuse).await;
    assert!(matches!(refused, Err(StoreError::InsufficientCredit { balance }) if balance == Micros::new(1_000)));
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::new(135));
    // The whole balance: the leases are closed with it.
    let all = s.adjust_credit(&org.id, Micros::new(-1_000), "all", Overdraft::Refuse).await.unwrap();
    assert_eq!(all.balance, Micros::ZERO);
    let mut closed = all.closed_leases;
    closed.sort();
    assert_eq!(closed, [lid("a"), lid("b")], "the closed leases, for their instances to confirm");
    assert_eq!(s.leased_credit(&org.id).await.unwrap(), Micros::ZERO);
    assert_eq!(s.get_org(&org.id).await.unwrap().credit_micros, Micros::ZERO);
    assert_eq!(
        s.lease_credit(&lease("a", &org.id, 1, 1)).await.unwrap(),
        Leased::Insufficient { available: Micros::ZERO, leased_elsewhere: Micros::ZERO },
        "nothing left to lease"
    );
    // A row of a cut lease is charged to the balance; the lease is reported gone.
    let ttl = Duration::from_secs(60);
    assert!(!s.record_usage(&lid("b"), &org.id, &[entry("late", 7, Some(200))], ttl).await.unwrap());
    assert_eq!(s.get_org(&org.id).await.unwrap().credit_micros, Micros::new(-7));
    // A debit of a negative balance is refused, unless allowed.
    let refused = s.adjust_credit(&org.id, Micros::new(-1), "more", Overdraft::Refuse).await;
    assert!(matches!(refused, Err(StoreError::InsufficientCredit { .. })));
    assert_eq!(
        s.adjust_credit(&org.id, Micros::new(-3), "more", Overdraft::Allow).await.unwrap().balance,
        Micros::new(-10)
    );
    // Bounds, both ways.
    let low = s.adjust_credit(&org.id, Micros::new(-MAX_BALANCE_MICROS), "floor", Overdraft::Allow).await;
    assert!(matches!(low, Err(StoreError::Overflow)), "-10^15 - 10 is beyond the bound");
    assert_eq!(
        s.adjust_credit(&org.id, Micros::new(MAX_BALANCE_MICROS + 10), "ceiling", Overdraft::Refuse)
            .await
            .unwrap()
            .balance,
        Micros::new(MAX_BALANCE_MICROS)
    );
    let high = s.adjust_credit(&org.id, Micros::new(1), "over", Overdraft::Refuse).await;
    assert!(matches!(high, Err(StoreError::Overflow)));
    assert_eq!(s.get_org(&org.id).await.unwrap().credit_micros, Micros::new(MAX_BALANCE_MICROS));
}

pub(crate) async fn suspensions_are_stored_read_back_and_lifted(h: Harness) {
    use tollgate_policy::{SuspendedBy, SuspensionReason};
    let s = &h.store;
    let org = s.create_org(&new_org("acme")).await.unwrap();
    let ws = s.create_workspace(&new_ws(&org.id, "w1")).await.unwrap();
    assert_eq!((org.suspended.clone(), ws.suspended.clone()), (None, None), "new objects are not suspended");
    let unpaid = SuspensionReason::parse("unpaid invoice").unwrap();
    let by = SuspendedBy::Admin;
    let first = s.suspend(&Owner::Org(org.id.clone()), &unpaid, &by).await.unwrap();
    assert_eq!(first.reason, unpaid);
    let read = s.get_org(&org.id).await.unwrap();
    assert_eq!(read.suspended.as_ref(), Some(&first));
    assert_eq!(s.list_orgs().await.unwrap()[0].suspended.as_ref(), Some(&first));
    assert_eq!(s.get_workspace(&ws.id).await.unwrap().suspended, None, "an org's suspension is the org's");
    // A second suspend takes the new reason and keeps `since`.
    let fraud = SuspensionReason::parse("fraud review").unwrap();
    let second = s.suspend(&Owner::Org(org.id.clone()), &fraud, &by).await.unwrap();
    assert_eq!((second.reason.as_str(), second.since_ms), ("fraud review", first.since_ms));
    let runaway = SuspensionReason::parse("runaway agent").unwrap();
    let w = s.suspend(&Owner::Workspace(ws.id.clone()), &runaway, &by).await.unwrap();
    assert_eq!(s.get_workspace(&ws.id).await.unwrap().suspended.as_ref(), Some(&w));
    assert_eq!(s.list_workspaces(Some(&org.id)).await.unwrap()[0].suspended.as_ref(), Some(&w));
    let hash = TokenHash::of("tg_ws_suspension_test_token");
    let record = ProvisionRecord {
        request_model: None,
        model_after: None,
        resolution_json: "{}".to_owned(),
        token_hash: hash,
        fingerprint: None,
    };
    s.record_provision(&ws.id, &record).await.unwrap();
    let by_token = s.workspace_for_token(&hash).await.unwrap().unwrap();
    assert_eq!(by_token.suspended.as_ref(), Some(&w), "the proxy's look-up sees the suspension");
    s.resume(&Owner::Org(org.id.clone())).await.unwrap();
    s.resume(&Owner::Org(org.id.clone())).await.unwrap();
    assert_eq!(s.get_org(&org.id).await.unwrap().suspended, None);
    assert!(s.get_workspace(&ws.id).await.unwrap().suspended.is_some(), "resuming the org leaves the workspace's");
    s.resume(&Owner::Workspace(ws.id.clone())).await.unwrap();
    assert_eq!(s.get_workspace(&ws.id).await.unwrap().suspended, None);
    assert!(matches!(s.suspend(&Owner::Org(oid("nope")), &unpaid, &by).await, Err(StoreError::NotFound("org"))));
    assert!(matches!(s.resume(&Owner::Workspace(wid("nope"))).await, Err(StoreError::NotFound("workspace"))));
}

fn raw_limits(json: &str) -> LimitsPatch {
    serde_json::from_str::<tollgate_policy::limits::LimitsInput>(json).unwrap().parse().unwrap()
}

/// Every `limits` field of orgs and workspaces round-trips, a patch changes only what it
/// names, and `null` removes a field.
pub(crate) async fn limits_round_trip_on_orgs_and_workspaces(h: Harness) {
    let s = &h.store;
    let all = r#"{"budget_micros_per_day": 20000000, "budget_micros_per_month": 300000000, "soft_budget_percent": 80,
        "requests_per_minute": 120, "tokens_per_minute": 400000, "max_concurrent_requests": 16,
        "allowed_models": ["platform/sonnet"]}"#;
    let o = s.create_org(&new_org("lim")).await.unwrap();
    assert_eq!(o.limits, Limits::default(), "no limits until set");
    let o = s.update_org(&o.id, &OrgPatch { limits: raw_limits(all), ..OrgPatch::default() }).await.unwrap();
    let expected = Limits::default().patched(&raw_limits(all));
    assert_eq!(o.limits, expected);
    assert_eq!(s.get_org(&o.id).await.unwrap().limits, expected);
    let o = s
        .update_org(&o.id, &OrgPatch { limits: raw_limits(r#"{"tokens_per_minute": null}"#), ..OrgPatch::default() })
        .await
        .unwrap();
    assert_eq!(o.limits.tokens_per_minute, None, "null removes");
    assert_eq!(o.limits.requests_per_minute, expected.requests_per_minute, "absent stays");
    let w = s.create_workspace(&new_ws(&o.id, "w")).await.unwrap();
    let w = s
        .update_workspace(&w.id, &WorkspacePatch { limits: raw_limits(all), ..WorkspacePatch::default() })
        .await
        .unwrap();
    assert_eq!(w.limits, expected);
    let patch = raw_limits(r#"{"budget_micros_per_day": 0, "allowed_models": null}"#);
    let w = s.update_workspace(&w.id, &WorkspacePatch { limits: patch, ..WorkspacePatch::default() }).await.unwrap();
    assert_eq!(w.limits.budget_micros_per_day.map(|b| b.get()), Some(0));
    assert_eq!(w.limits.allowed_models, None);
    assert_eq!(w.limits.max_concurrent_requests, expected.max_concurrent_requests);
    assert_eq!(s.get_workspace(&w.id).await.unwrap().limits, w.limits);
}

/// Budget holds: admitted while spend plus reservations fit every budget, settled into spend,
/// never beyond a budget under concurrency, and reclaimed after expiry.
pub(crate) async fn budgets_reserve_settle_and_never_overspend(h: Harness) {
    use tollgate_policy::budget::{BudgetScope, applicable};
    use tollgate_store::{BudgetHold, RequestId};
    let s = h.store.clone();
    let org = raw_limits(r#"{"budget_micros_per_month": 1000}"#);
    let ws = raw_limits(r#"{"budget_micros_per_day": 500}"#);
    let (org, ws) = (Limits::default().patched(&org), Limits::default().patched(&ws));
    let now = 1_798_761_599_000; // 2026-12-31T23:59:59Z
    let budgets = applicable("o1", &org, "w1", &ws, now);
    let hold = |need: i64| BudgetHold {
        id: RequestId::mint(),
        budgets: budgets.clone(),
        need: Micros::new(need),
        ttl: std::time::Duration::from_secs(60),
    };
    let a = hold(300);
    s.reserve_budget(&a).await.unwrap().unwrap();
    let refused = s.reserve_budget(&hold(201)).await.unwrap().unwrap_err();
    assert_eq!(refused.limit.scope, BudgetScope::Workspace, "the workspace's day budget is the one that binds");
    assert_eq!(refused.used, 300);
    assert!(s.settle_budget(&a.id, Micros::new(100)).await.unwrap());
    assert!(!s.settle_budget(&a.id, Micros::new(100)).await.unwrap(), "settled once");
    assert_eq!(
        s.budget_usage(BudgetScope::Workspace, "w1", "2026-12-31").await.unwrap(),
        (Micros::new(100), Micros::ZERO)
    );
    assert_eq!(s.budget_usage(BudgetScope::Org, "o1", "2026-12").await.unwrap(), (Micros::new(100), Micros::ZERO));
    s.reserve_budget(&hold(400)).await.unwrap().unwrap();
    // A second later it is the next day (and month): the workspace's day budget starts over.
    let next = applicable("o1", &org, "w1", &ws, now + 1_000);
    assert_eq!(next[1].period.key, "2027-01-01");
    let h2 = BudgetHold { budgets: next, ..hold(500) };
    s.reserve_budget(&h2).await.unwrap().unwrap();

    // Concurrency: 40 requests of 30 against the workspace's 500 a day: at most 16 admitted.
    let day = applicable("o2", &Limits::default(), "w2", &ws, now);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (s, day) = (s.clone(), day.clone());
        tasks.push(tokio::spawn(async move {
            let h = BudgetHold {
                id: RequestId::mint(),
                budgets: day,
                need: Micros::new(30),
                ttl: std::time::Duration::ZERO,
            };
            s.reserve_budget(&h).await.unwrap().is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += i32::from(t.await.unwrap());
    }
    assert_eq!(admitted, 16, "exactly what fits: 16 x 30 <= 500 < 17 x 30");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(s.reclaim_expired_budget_holds().await.unwrap(), 16, "expired holds are reclaimed");
    assert_eq!(s.budget_usage(BudgetScope::Workspace, "w2", "2026-12-31").await.unwrap(), (Micros::ZERO, Micros::ZERO));
    assert_eq!(s.reclaim_expired_budget_holds().await.unwrap(), 0, "once");
    // A request whose hold was reclaimed but that ran after all is still charged.
    let late =
        BudgetHold { id: RequestId::mint(), budgets: day, need: Micros::new(30), ttl: std::time::Duration::ZERO };
    s.reserve_budget(&late).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(s.reclaim_expired_budget_holds().await.unwrap(), 1);
    assert!(s.settle_budget(&late.id, Micros::new(7)).await.unwrap());
    assert!(!s.settle_budget(&late.id, Micros::new(7)).await.unwrap(), "settled once");
    assert_eq!(
        s.budget_usage(BudgetScope::Workspace, "w2", "2026-12-31").await.unwrap(),
        (Micros::new(7), Micros::ZERO)
    );
}

/// Budget leases: a grant is the shortfall or a sixteenth of what remains, leases of several
/// instances never pass the budget under concurrency, adjusting counts spend and releases,
/// settling closes, and a reclaimed lease says so while its spend still counts.
pub(crate) async fn budget_leases_grant_adjust_close_and_never_overspend(h: Harness) {
    use tollgate_policy::budget::{BudgetScope, applicable};
    use tollgate_store::RequestId;
    let s = h.store.clone();
    let ws = Limits::default().patched(&raw_limits(r#"{"budget_micros_per_day": 16000}"#));
    let now = 1_798_761_599_000; // 2026-12-31T23:59:59Z
    let day = applicable("o1", &Limits::default(), "w1", &ws, now).remove(0);
    let ttl = std::time::Duration::from_secs(60);
    let usage = || s.budget_usage(BudgetScope::Workspace, "w1", "2026-12-31");
    let a = RequestId::mint();
    assert_eq!(s.lease_budget(&a, &day, Micros::new(10), ttl).await.unwrap().unwrap(), Micros::new(1000));
    assert_eq!(
        s.lease_budget(&a, &day, Micros::new(5000), ttl).await.unwrap().unwrap(),
        Micros::new(5000),
        "the shortfall when it is more than a sixteenth"
    );
    assert_eq!(usage().await.unwrap(), (Micros::ZERO, Micros::new(6000)));
    // 600 spent, 400 released: the lease holds 5000.
    assert!(s.adjust_budget_lease(&a, Micros::new(600), Micros::new(400), ttl).await.unwrap());
    assert_eq!(usage().await.unwrap(), (Micros::new(600), Micros::new(5000)));
    let refused = s.lease_budget(&RequestId::mint(), &day, Micros::new(10_401), ttl).await.unwrap().unwrap_err();
    assert_eq!(refused.used, 5600);
    assert!(s.settle_budget(&a, Micros::new(1000)).await.unwrap(), "settling closes a lease");
    assert_eq!(usage().await.unwrap(), (Micros::new(1600), Micros::ZERO));
    assert!(!s.adjust_budget_lease(&a, Micros::new(1), Micros::ZERO, ttl).await.unwrap(), "closed");

    // Concurrency: 40 leases of at least 500 against what remains (14400): never beyond it.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (s, day) = (s.clone(), day.clone());
        tasks.push(tokio::spawn(async move {
            match s.lease_budget(&RequestId::mint(), &day, Micros::new(500), ttl).await.unwrap() {
                Ok(g) => g.get(),
                Err(_) => 0,
            }
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap();
    }
    assert!(granted <= 14_400 && granted > 14_400 - 500, "granted {granted} of 14400");
    assert_eq!(usage().await.unwrap(), (Micros::new(1600), Micros::new(granted)));

    // A lease reclaimed (its instance lost the database) is refused further spending from,
    // but what it spent still counts.
    let day2 = applicable("o1", &Limits::default(), "w3", &ws, now).remove(0);
    let b = RequestId::mint();
    s.lease_budget(&b, &day2, Micros::new(100), std::time::Duration::ZERO).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(s.reclaim_expired_budget_holds().await.unwrap(), 1);
    assert!(!s.adjust_budget_lease(&b, Micros::new(70), Micros::ZERO, ttl).await.unwrap());
    assert_eq!(
        s.budget_usage(BudgetScope::Workspace, "w3", "2026-12-31").await.unwrap(),
        (Micros::new(70), Micros::ZERO)
    );
}

pub(crate) async fn audit_snapshot_reads_everything_an_audit_needs(h: Harness) {
    use tollgate_policy::audit::{LastProvision, PlanFingerprint};
    let s = &h.store;
    let a = s.create_org(&new_org("a")).await.unwrap();
    let b = s.create_org(&new_org("b")).await.unwrap();
    let a1 = s.create_workspace(&new_ws(&a.id, "a1")).await.unwrap();
    let a2 = s.create_workspace(&new_ws(&a.id, "a2")).await.unwrap();
    let b1 = s.create_workspace(&new_ws(&b.id, "b1")).await.unwrap();
    s.put_secret(&Owner::Org(a.id.clone()), &name("CLAUDE_CODE_OAUTH_TOKEN"), &value("oat")).await.unwrap();
    s.put_secret(&Owner::Org(b.id.clone()), &name("OTHER"), &value("o")).await.unwrap();
    s.put_secret(&Owner::Workspace(a1.id.clone()), &name("MINIMAX_API_KEY"), &value("mm")).await.unwrap();
    let print = |provider: &str| PlanFingerprint {
        mode: BillingMode::Byok,
        provider: Some(provider.to_owned()),
        credentials: vec!["MINIMAX_API_KEY".to_owned()],
        routing: vec!["ANTHROPIC_BASE_URL".to_owned()],
    };
    let record = |t: &str, fingerprint: Option<PlanFingerprint>| ProvisionRecord {
        request_model: None,
        model_after: None,
        resolution_json: "{}".into(),
        token_hash: TokenHash::of(t),
        fingerprint,
    };
    s.record_provision(&a1.id, &record("tg_ws_1", Some(print("first")))).await.unwrap();
    s.record_provision(&a1.id, &record("tg_ws_2", Some(print("minimax")))).await.unwrap();
    s.record_provision(&a2.id, &record("tg_ws_3", None)).await.unwrap();
    let now = Timestamp::now().0;
    for (id, org, cost, at) in
        [("r1", &a.id, 100, now - 1_000), ("r2", &a.id, 20, now - 2_000), ("old", &a.id, 5_000, now - 90_000_000)]
    {
        h.raw(&format!(
            "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, reserved_micros, cost_micros, created_at) \
             VALUES ('{id}', '{}', 'w', 'm', 'settled', 0, {cost}, {at})",
            org.as_str()
        ))
        .await;
    }
    let since = Timestamp(now - 86_400_000);

    let only_a = s.audit_snapshot(Some(&a.id), since).await.unwrap();
    assert_eq!(only_a.orgs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["a"]);
    assert_eq!(only_a.workspaces.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    assert_eq!(only_a.last_provision(&a1.id), LastProvision::Recorded(print("minimax")), "the latest provision");
    assert_eq!(only_a.last_provision(&a2.id), LastProvision::Unknown, "no fingerprint recorded");
    assert_eq!(only_a.spend.get(&a.id), Some(&Micros::new(120)), "only the window's spend");
    let merged = only_a.merged_secrets(&a1);
    assert_eq!(merged.get("CLAUDE_CODE_OAUTH_TOKEN").map(|m| m.origin), Some(Origin::Org));
    assert_eq!(merged.get("MINIMAX_API_KEY").map(|m| m.origin), Some(Origin::Workspace));
    assert!(matches!(&merged.get("MINIMAX_API_KEY").unwrap().state, SecretState::Value(v) if v.expose() == "mm"));
    assert!(only_a.merged_secrets(&a2).get("MINIMAX_API_KEY").is_none());
    assert!(!only_a.org_secrets.contains_key(&b.id), "another org's secrets are not read");

    let all = s.audit_snapshot(None, since).await.unwrap();
    assert_eq!(all.workspaces.len(), 3);
    assert_eq!(all.last_provision(&b1.id), LastProvision::Never);
    assert_eq!(all.merged_secrets(&b1).get("OTHER").map(|m| m.origin), Some(Origin::Org));
    assert!(!all.spend.contains_key(&b.id));
    assert!(matches!(s.audit_snapshot(Some(&oid("nope")), since).await, Err(StoreError::NotFound("org"))));
}

pub(crate) use crate::alarms::{
    a_rule_fires_once_per_crossing, alarm_rules_owners_and_window_sums, budget_notices_are_recorded_once_per_period,
};
pub(crate) use crate::events::{
    a_failed_mutation_writes_no_event, every_admin_mutation_writes_one_event, system_events_and_pages_are_stable,
};
