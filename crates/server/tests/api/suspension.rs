//! Suspension (DESIGN.md section 14) on the admin API: `suspend` and `resume` for orgs and
//! workspaces, `suspended: {reason, since, by}` on the objects, validated reasons, and the
//! pull and provision of a suspended workspace refused (403 `SUSPENDED`).

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(
    suspend_and_resume_show_on_the_objects,
    suspend_reasons_are_validated,
    suspended_workspaces_get_no_pull_or_provision
);

async fn suspend_and_resume_show_on_the_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/sonnet"})).await;
    let r = app.post(&format!("/admin/orgs/{org}/suspend"), json!({"reason": "  unpaid invoice "})).await;
    let suspended = r.assert_status(200)["suspended"].clone();
    assert_eq!(suspended["reason"], "unpaid invoice", "trimmed");
    assert_eq!(suspended["by"], "admin");
    let since = suspended["since"].as_str().unwrap().to_owned();
    assert!(since.ends_with('Z') && since.len() == 24, "{since}");
    assert_eq!(app.get(&format!("/admin/orgs/{org}")).await.assert_status(200)["suspended"], suspended);
    assert_eq!(app.get("/admin/orgs").await.assert_status(200)[0]["suspended"], suspended);
    // Again: the new reason, the same `since`.
    let again = app.post(&format!("/admin/orgs/{org}/suspend"), json!({"reason": "fraud review"})).await;
    let again = again.assert_status(200)["suspended"].clone();
    assert_eq!((again["reason"].as_str(), again["since"].as_str()), (Some("fraud review"), Some(since.as_str())));
    assert_eq!(app.get(&format!("/admin/workspaces/{ws}")).await.assert_status(200)["suspended"], Value::Null);
    let r = app.post(&format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "runaway agent"})).await;
    assert_eq!(r.assert_status(200)["suspended"]["reason"], "runaway agent");
    let listed = app.get(&format!("/admin/workspaces?org_id={org}")).await;
    assert_eq!(listed.assert_status(200)[0]["suspended"]["reason"], "runaway agent");
    let resumed = app.post(&format!("/admin/orgs/{org}/resume"), json!({})).await;
    assert_eq!(resumed.assert_status(200)["suspended"], Value::Null);
    assert_eq!(
        app.get(&format!("/admin/workspaces/{ws}")).await.assert_status(200)["suspended"]["reason"],
        "runaway agent"
    );
    let resumed = app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await;
    assert_eq!(resumed.assert_status(200)["suspended"], Value::Null);
    let twice = app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await;
    assert_eq!(twice.assert_status(200)["suspended"], Value::Null, "resuming what is not suspended changes nothing");
}

async fn suspend_reasons_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({})).await;
    for path in [format!("/admin/orgs/{org}/suspend"), format!("/admin/workspaces/{ws}/suspend")] {
        app.post(&path, json!({"reason": " "})).await.assert_error(400, "INVALID_REASON");
        app.post(&path, json!({"reason": "a\nb"})).await.assert_error(400, "INVALID_REASON");
        app.post(&path, json!({"reason": "x".repeat(501)})).await.assert_error(400, "INVALID_REASON");
        app.post(&path, json!({})).await.assert_error(400, "INVALID_JSON");
        app.post(&path, json!({"reason": "r", "by": "alarm"})).await.assert_error(400, "INVALID_JSON");
        app.post(&path, json!({"reason": 7})).await.assert_error(400, "INVALID_JSON");
    }
    assert_eq!(
        app.get(&format!("/admin/orgs/{org}")).await.assert_status(200)["suspended"],
        Value::Null,
        "nothing changed"
    );
    let missing = "00000000-0000-0000-0000-000000000000";
    app.post(&format!("/admin/orgs/{missing}/suspend"), json!({"reason": "r"})).await.assert_error(404, "NOT_FOUND");
    app.post(&format!("/admin/workspaces/{missing}/suspend"), json!({"reason": "r"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post(&format!("/admin/orgs/{missing}/resume"), json!({})).await.assert_error(404, "NOT_FOUND");
    app.post(&format!("/admin/workspaces/{missing}/resume"), json!({})).await.assert_error(404, "NOT_FOUND");
}

async fn suspended_workspaces_get_no_pull_or_provision(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/sonnet"})).await;
    let token = app.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    app.pull(&ws, &token).await.assert_status(200);
    app.post(&format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "runaway agent"})).await.assert_status(200);
    let refused = app.pull(&ws, &token).await;
    refused.assert_error(403, "SUSPENDED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("runaway agent"), "{}", refused.body);
    app.provision(&ws, None).await.assert_error(403, "SUSPENDED");
    app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await.assert_status(200);
    app.post(&format!("/admin/orgs/{org}/suspend"), json!({"reason": "unpaid invoice"})).await.assert_status(200);
    let refused = app.pull(&ws, &token).await;
    refused.assert_error(403, "SUSPENDED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("org is suspended: unpaid invoice"));
    app.post(&format!("/admin/orgs/{org}/resume"), json!({})).await.assert_status(200);
    app.pull(&ws, &token).await.assert_status(200);
    app.provision(&ws, None).await.assert_status(200);
}
