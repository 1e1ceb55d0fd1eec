//! `/admin/workspaces`: shapes, updates, deletion, and their errors.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(workspace_crud_and_shape, workspace_errors);

async fn workspace_crud_and_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let other_org = app.org("other").await;
    let ws = app
        .create_workspace(
            &org,
            "agent-1",
            "claude-code",
            json!({"model": "MiniMax-M2.7", "billing_mode": "byok", "kind": "concierge"}),
        )
        .await;
    let mut keys: Vec<&str> = ws.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "alarms",
            "billing_mode",
            "created_at",
            "id",
            "kind",
            "limits",
            "model",
            "name",
            "org_id",
            "runtime",
            "suspended",
            "updated_at"
        ]
    );
    assert_eq!(ws["limits"]["allowed_models"], json!(null), "no narrowing until set");
    assert_eq!(ws["org_id"], org.as_str());
    assert_eq!(ws["name"], "agent-1");
    assert_eq!(ws["runtime"], "claude-code");
    assert_eq!(ws["model"], "MiniMax-M2.7");
    assert_eq!(ws["billing_mode"], "byok");
    assert_eq!(ws["kind"], "concierge");
    let id = ws["id"].as_str().unwrap().to_owned();

    let minimal = app.create_workspace(&org, "agent-0", "codex", json!({})).await;
    assert_eq!(minimal["model"], Value::Null);
    assert_eq!(minimal["billing_mode"], Value::Null);
    assert_eq!(minimal["kind"], "agent", "kind defaults to agent");
    // The same name in another org is fine.
    app.create_workspace(&other_org, "agent-1", "openai-compatible", json!({})).await;

    assert_eq!(app.get(&format!("/admin/workspaces/{id}")).await.assert_status(200), &ws);
    let listed = app.get(&format!("/admin/workspaces?org_id={org}")).await;
    let names: Vec<&str> =
        listed.assert_status(200).as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["agent-0", "agent-1"]);
    let all = app.get("/admin/workspaces").await;
    assert_eq!(all.assert_status(200).as_array().unwrap().len(), 3);
    let empty_filter = app.get("/admin/workspaces?org_id=").await;
    assert_eq!(empty_filter.assert_status(200).as_array().unwrap().len(), 3, "an empty org_id is no filter");
    let ignored = app.get(&format!("/admin/workspaces?org_id={other_org}&unrelated=1")).await;
    assert_eq!(ignored.assert_status(200).as_array().unwrap().len(), 1);

    let path = format!("/admin/workspaces/{id}");
    let p = app.patch(&path, json!({"name": "renamed", "runtime": "codex", "kind": "agent"})).await;
    let p = p.assert_status(200).clone();
    assert_eq!(
        (p["name"].as_str(), p["runtime"].as_str(), p["kind"].as_str()),
        (Some("renamed"), Some("codex"), Some("agent"))
    );
    assert_eq!(p["model"], "MiniMax-M2.7", "absent fields are left alone");
    assert_eq!(p["billing_mode"], "byok");
    let p = app.patch(&path, json!({"model": null, "billing_mode": null})).await;
    let p = p.assert_status(200);
    assert_eq!(p["model"], Value::Null, "null clears the model");
    assert_eq!(p["billing_mode"], Value::Null, "null clears the mode");
    let p = app.patch(&path, json!({"model": "gpt-5", "billing_mode": "platform_managed"})).await;
    let p = p.assert_status(200);
    assert_eq!((p["model"].as_str(), p["billing_mode"].as_str()), (Some("gpt-5"), Some("platform_managed")));

    let d = app.delete(&path).await;
    assert_eq!(d.status, 204, "{}", d.text);
    assert!(d.text.is_empty());
    app.get(&path).await.assert_error(404, "NOT_FOUND");
    app.delete(&path).await.assert_error(404, "NOT_FOUND");
    assert_eq!(
        app.get(&format!("/admin/workspaces?org_id={org}")).await.assert_status(200).as_array().unwrap().len(),
        1
    );
}

async fn workspace_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let id = app.workspace(&org, "agent-1", "claude-code", json!({})).await;
    let create = |extra: Value| {
        let mut body = json!({"org_id": org, "name": "new", "runtime": "claude-code"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    app.post("/admin/workspaces", create(json!({"name": "agent-1"}))).await.assert_error(409, "CONFLICT");
    app.post("/admin/workspaces", create(json!({"runtime": "gemini-cli"}))).await.assert_error(400, "UNKNOWN_RUNTIME");
    app.post("/admin/workspaces", create(json!({"runtime": "Claude-Code"}))).await.assert_error(400, "UNKNOWN_RUNTIME");
    app.post("/admin/workspaces", create(json!({"billing_mode": "Byok"})))
        .await
        .assert_error(400, "INVALID_BILLING_MODE");
    app.post("/admin/workspaces", create(json!({"kind": "robot"}))).await.assert_error(400, "INVALID_KIND");
    app.post("/admin/workspaces", create(json!({"name": ""}))).await.assert_error(400, "INVALID_NAME");
    app.post("/admin/workspaces", create(json!({"name": "tab\there"}))).await.assert_error(400, "INVALID_NAME");
    app.post("/admin/workspaces", create(json!({"model": "claude-\n"}))).await.assert_error(400, "INVALID_MODEL");
    app.post("/admin/workspaces", create(json!({"model": "m".repeat(257)}))).await.assert_error(400, "INVALID_MODEL");
    app.post("/admin/workspaces", create(json!({"org_id": "00000000-0000-0000-0000-000000000000"})))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post("/admin/workspaces", create(json!({"org_id": "\u{0}"}))).await.assert_error(404, "NOT_FOUND");
    app.post("/admin/workspaces", create(json!({"secrets": {}}))).await.assert_error(400, "INVALID_JSON");
    app.post("/admin/workspaces", create(json!({"kind": 1}))).await.assert_error(400, "INVALID_JSON");
    app.post("/admin/workspaces", json!({"org_id": org, "name": "x"})).await.assert_error(400, "INVALID_JSON");

    let path = format!("/admin/workspaces/{id}");
    app.create_workspace(&org, "agent-2", "codex", json!({})).await;
    app.patch(&path, json!({"name": "agent-2"})).await.assert_error(409, "CONFLICT");
    app.patch(&path, json!({"runtime": "nope"})).await.assert_error(400, "UNKNOWN_RUNTIME");
    app.patch(&path, json!({"billing_mode": "nope"})).await.assert_error(400, "INVALID_BILLING_MODE");
    app.patch(&path, json!({"kind": "nope"})).await.assert_error(400, "INVALID_KIND");
    app.patch(&path, json!({"org_id": org})).await.assert_error(400, "INVALID_JSON");
    let unknown = "/admin/workspaces/00000000-0000-0000-0000-000000000000";
    app.get(unknown).await.assert_error(404, "NOT_FOUND");
    app.patch(unknown, json!({"name": "z"})).await.assert_error(404, "NOT_FOUND");
    app.delete(unknown).await.assert_error(404, "NOT_FOUND");
    app.get("/admin/workspaces?org_id=00000000-0000-0000-0000-000000000000").await.assert_error(404, "NOT_FOUND");
    app.get("/admin/workspaces?org_id=a&org_id=b").await.assert_error(400, "INVALID_QUERY");
    let unchanged = app.get(&path).await;
    assert_eq!(unchanged.assert_status(200)["name"], "agent-1", "failed patches change nothing");
}
