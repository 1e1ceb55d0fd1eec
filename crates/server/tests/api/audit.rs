//! `GET /admin/audit` (DESIGN.md section 16): each finding from the state that causes it,
//! on both backends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Auth, Backend, TestApp, spawn_app};

both_backends!(
    report_shape_and_query,
    not_provisioned_until_provisioned,
    plan_drift_after_a_change,
    resolution_error_when_it_no_longer_resolves,
    stray_org_credential_names_the_count,
    fallback_mode_is_reported,
    platform_key_missing_without_a_keyed_upstream,
    low_credit_from_the_last_days_spend,
    suspended_orgs_and_workspaces_with_the_reason,
);

async fn audit(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/admin/audit{query}")).await.assert_status(200).clone()
}

/// The findings of one workspace (or, with `None`, the org-wide ones of `org`), as codes.
fn codes(report: &Value, org: &str, ws: Option<&str>) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["org_id"] == org && f["workspace_id"].as_str() == ws)
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn finding<'a>(report: &'a Value, code: &str, ws: Option<&str>) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code && f["workspace_id"].as_str() == ws)
        .unwrap_or_else(|| panic!("no {code} for {ws:?} in {report}"))
}

async fn report_shape_and_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let empty = audit(&app, "").await;
    let keys: Vec<&String> = empty.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["findings", "generated_at", "summary", "workspaces_checked"]);
    assert_eq!(empty["workspaces_checked"], 0);
    assert_eq!(empty["findings"], json!([]));
    let summary = empty["summary"].as_object().unwrap();
    assert_eq!(summary.len(), 8, "every code counted: {summary:?}");
    assert!(summary.values().all(|v| v == 0));
    assert!(empty["generated_at"].as_str().unwrap().ends_with('Z'));

    let a = app.org("a").await;
    let b = app.org("b").await;
    let wa = app.workspace(&a, "wa", "claude-code", json!({"model": "platform/sonnet"})).await;
    app.workspace(&b, "wb", "claude-code", json!({"model": "platform/sonnet"})).await;
    let all = audit(&app, "").await;
    assert_eq!(all["workspaces_checked"], 2);
    let only_a = audit(&app, &format!("?org_id={a}")).await;
    assert_eq!(only_a["workspaces_checked"], 1);
    assert!(only_a["findings"].as_array().unwrap().iter().all(|f| f["org_id"] == a.as_str()));
    let f = finding(&only_a, "NOT_PROVISIONED", Some(&wa));
    let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["code", "message", "org_id", "severity", "workspace_id"]);
    assert_eq!(f["severity"], "info");
    assert_eq!(only_a["summary"]["NOT_PROVISIONED"], 1);
    // Errors first.
    assert_eq!(only_a["findings"][0]["severity"], "error");

    app.get("/admin/audit?org_id=nope").await.assert_error(404, "NOT_FOUND");
    app.get("/admin/audit?colour=blue").await.assert_error(400, "INVALID_QUERY");
    app.send(Method::GET, "/admin/audit", Auth::None, None).await.assert_error(401, "UNAUTHORIZED");
}

async fn not_provisioned_until_provisioned(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "dev", "claude-code", json!({"model": "MiniMax-M2"})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "sk-minimax-value").await;
    assert_eq!(codes(&audit(&app, "").await, &org, Some(&ws)), ["NOT_PROVISIONED"]);
    app.provision(&ws, None).await.assert_status(200);
    assert_eq!(codes(&audit(&app, "").await, &org, Some(&ws)), Vec::<String>::new());
    // A provision recorded before fingerprints existed is provisioned, with drift unknown.
    app.db.execute("UPDATE provisions SET fingerprint = NULL WHERE workspace_id = $1", &[&ws]).await;
    app.patch(&format!("/admin/workspaces/{ws}"), json!({"model": "platform/sonnet"})).await.assert_status(200);
    let report = audit(&app, "").await;
    assert!(!codes(&report, &org, Some(&ws)).iter().any(|c| c == "NOT_PROVISIONED" || c == "PLAN_DRIFT"), "{report}");
}

async fn plan_drift_after_a_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "dev", "claude-code", json!({"model": "MiniMax-M2"})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "sk-minimax-value").await;
    app.provision(&ws, None).await.assert_status(200);
    // Seed 003: the stored state changes after the provision; the workspace still runs the old plan.
    app.patch(&format!("/admin/workspaces/{ws}"), json!({"model": "platform/sonnet"})).await.assert_status(200);
    let report = audit(&app, "").await;
    let drift = finding(&report, "PLAN_DRIFT", Some(&ws));
    assert_eq!(drift["severity"], "warning");
    let m = drift["message"].as_str().unwrap();
    assert!(m.contains("mode byok -> platform_managed") && m.contains("provider minimax -> platform"), "{m}");
    assert!(!report.to_string().contains("sk-minimax-value"), "no value in the report");
    // Re-provisioning clears it.
    app.provision(&ws, None).await.assert_status(200);
    assert!(!codes(&audit(&app, "").await, &org, Some(&ws)).contains(&"PLAN_DRIFT".to_owned()));
}

async fn resolution_error_when_it_no_longer_resolves(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "dev", "claude-code", json!({"model": "MiniMax-M2"})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "sk-minimax-value").await;
    app.provision(&ws, None).await.assert_status(200);
    app.delete(&format!("/admin/workspaces/{ws}/secrets/MINIMAX_API_KEY")).await;
    let report = audit(&app, "").await;
    assert_eq!(codes(&report, &org, Some(&ws)), ["RESOLUTION_ERROR"]);
    let f = finding(&report, "RESOLUTION_ERROR", Some(&ws));
    assert_eq!(f["severity"], "error");
    assert!(f["message"].as_str().unwrap().starts_with("MISSING_BYOK_CREDENTIAL"), "{f}");
}

async fn stray_org_credential_names_the_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    // Seeds 000 to 002: a tenant-wide OAuth token inherited by MiniMax workspaces.
    app.secret("orgs", &org, "CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-value").await;
    for name in ["m1", "m2"] {
        let ws = app.workspace(&org, name, "claude-code", json!({"model": "MiniMax-M2"})).await;
        app.secret("workspaces", &ws, "MINIMAX_API_KEY", "sk-minimax-value").await;
    }
    app.workspace(&org, "sub", "claude-code", json!({"model": "opus"})).await;
    let report = audit(&app, "").await;
    assert_eq!(codes(&report, &org, None), ["STRAY_ORG_CREDENTIAL"]);
    let f = finding(&report, "STRAY_ORG_CREDENTIAL", None);
    let m = f["message"].as_str().unwrap();
    assert!(m.contains("CLAUDE_CODE_OAUTH_TOKEN is dropped by 2 workspaces"), "{m}");
    assert!(!report.to_string().contains("sk-ant-oat01-value"));
    // Moved to the workspace that uses it: no longer stray.
    app.delete(&format!("/admin/orgs/{org}/secrets/CLAUDE_CODE_OAUTH_TOKEN")).await;
    assert_eq!(codes(&audit(&app, "").await, &org, None), Vec::<String>::new());
}

async fn fallback_mode_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "dev", "claude-code", json!({})).await;
    let report = audit(&app, "").await;
    assert_eq!(finding(&report, "FALLBACK_MODE", Some(&ws))["severity"], "warning");
    // The org chose a default: nobody's fallback any more.
    app.patch(&format!("/admin/orgs/{org}"), json!({"default_billing_mode": "disabled"})).await.assert_status(200);
    assert!(!codes(&audit(&app, "").await, &org, Some(&ws)).contains(&"FALLBACK_MODE".to_owned()));
}

async fn platform_key_missing_without_a_keyed_upstream(backend: Backend) {
    // This app runs no proxy, so no platform upstream has a key on it.
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let pm = app.workspace(&org, "pm", "claude-code", json!({"model": "platform/sonnet"})).await;
    let byok = app.workspace(&org, "byok", "claude-code", json!({"model": "MiniMax-M2"})).await;
    app.secret("workspaces", &byok, "MINIMAX_API_KEY", "sk-minimax-value").await;
    let report = audit(&app, "").await;
    let f = finding(&report, "PLATFORM_KEY_MISSING", Some(&pm));
    assert_eq!(f["severity"], "error");
    assert!(f["message"].as_str().unwrap().contains("TOLLGATE_UPSTREAM_ANTHROPIC_KEY"), "{f}");
    assert!(!codes(&report, &org, Some(&byok)).contains(&"PLATFORM_KEY_MISSING".to_owned()));
}

async fn low_credit_from_the_last_days_spend(backend: Backend) {
    let app = spawn_app(backend).await;
    let org =
        app.create_org(json!({"name": "acme", "credit_micros": 1_000_000})).await["id"].as_str().unwrap().to_owned();
    assert_eq!(codes(&audit(&app, "").await, &org, None), Vec::<String>::new());
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let insert = |id: &'static str, cost: i64, at: i64| {
        let db = app.db.clone();
        let org = org.clone();
        async move {
            db.execute(
                &format!(
                    "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, \
                     cost_micros, created_at) VALUES ($1, $2, 'w', 'platform/sonnet', 'settled', 200, 0, {cost}, {at})"
                ),
                &[id, &org],
            )
            .await;
        }
    };
    // Spend older than a day does not count.
    insert("old", 5_000_000, now - 25 * 3_600_000).await;
    insert("r1", 600_000, now - 3_600_000).await;
    assert_eq!(codes(&audit(&app, "").await, &org, None), Vec::<String>::new(), "credit covers the day's 0.6");
    insert("r2", 600_000, now - 60_000).await;
    let report = audit(&app, "").await;
    assert_eq!(codes(&report, &org, None), ["LOW_CREDIT"]);
    let m = finding(&report, "LOW_CREDIT", None)["message"].as_str().unwrap().to_owned();
    assert!(m.contains("$1.000000") && m.contains("$1.200000"), "{m}");
}

async fn suspended_orgs_and_workspaces_with_the_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"billing_mode": "disabled"})).await;
    let other = app.workspace(&org, "v", "claude-code", json!({"billing_mode": "disabled"})).await;
    assert_eq!(audit(&app, "").await["summary"]["SUSPENDED"], 0);
    app.post(&format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "runaway agent"})).await.assert_status(200);
    let report = audit(&app, "").await;
    let f = finding(&report, "SUSPENDED", Some(&ws));
    assert_eq!(f["severity"], "warning");
    let m = f["message"].as_str().unwrap();
    assert!(m.starts_with("workspace suspended by admin") && m.ends_with("runaway agent"), "{m}");
    assert!(!codes(&report, &org, Some(&other)).contains(&"SUSPENDED".to_owned()));
    assert_eq!(report["summary"]["SUSPENDED"], 1);
    // An org's suspension is one org-wide finding, not one per workspace.
    app.post(&format!("/admin/orgs/{org}/suspend"), json!({"reason": "unpaid invoice"})).await.assert_status(200);
    let report = audit(&app, "").await;
    assert!(finding(&report, "SUSPENDED", None)["message"].as_str().unwrap().ends_with("unpaid invoice"));
    assert_eq!(report["summary"]["SUSPENDED"], 2);
    app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await.assert_status(200);
    app.post(&format!("/admin/orgs/{org}/resume"), json!({})).await.assert_status(200);
    assert_eq!(audit(&app, "").await["summary"]["SUSPENDED"], 0);
}
