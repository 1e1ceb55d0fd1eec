//! Org and workspace secrets: set, list (names only), delete, and their errors.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(secrets_in_both_scopes, secret_errors);

async fn secrets_in_both_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({})).await;
    for (scope, owner) in [("orgs", &org), ("workspaces", &ws)] {
        let value = format!("sk-value-of-{scope}-never-listed");
        app.secret(scope, owner, "MINIMAX_API_KEY", &value).await;
        app.secret(scope, owner, "A_FIRST", "x").await;
        app.secret(scope, owner, "A_FIRST", "overwritten").await;
        app.secret(scope, owner, "EMPTY", "").await;
        let list = app.get(&format!("/admin/{scope}/{owner}/secrets")).await;
        assert!(!list.text.contains(&value) && !list.text.contains("overwritten"), "values are never listed");
        let list = list.assert_status(200).as_array().unwrap().clone();
        let names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["A_FIRST", "EMPTY", "MINIMAX_API_KEY"]);
        for s in &list {
            let mut keys: Vec<&String> = s.as_object().unwrap().keys().collect();
            keys.sort_unstable();
            assert_eq!(keys, ["name", "updated_at"]);
            assert!(s["updated_at"].as_str().unwrap().ends_with('Z'));
        }
        let path = format!("/admin/{scope}/{owner}/secrets/EMPTY");
        let d = app.delete(&path).await;
        assert_eq!(d.status, 204, "{}", d.text);
        app.delete(&path).await.assert_error(404, "NOT_FOUND");
        let names: Vec<String> = app
            .get(&format!("/admin/{scope}/{owner}/secrets"))
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["A_FIRST", "MINIMAX_API_KEY"]);
    }
    // Exactly 64 KiB is accepted.
    app.secret("orgs", &org, "BIG", &"v".repeat(64 * 1024)).await;
    // Scopes are separate: the org list does not show workspace secrets.
    app.secret("workspaces", &ws, "ONLY_WS", "1").await;
    let org_names = app.get(&format!("/admin/orgs/{org}/secrets")).await;
    assert!(!org_names.text.contains("ONLY_WS"));
}

async fn secret_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({})).await;
    let unknown = "00000000-0000-0000-0000-000000000000";
    for (scope, owner) in [("orgs", org.as_str()), ("workspaces", ws.as_str())] {
        let put = |name: &str| format!("/admin/{scope}/{owner}/secrets/{name}");
        let lower = app.put(&put("minimax_api_key"), json!({"value": "sk-lower"})).await;
        lower.assert_error(400, "INVALID_SECRET_NAME");
        assert!(lower.text.contains("MINIMAX_API_KEY"), "suggests the upper-case name: {}", lower.text);
        app.put(&put("Minimax_Api_Key"), json!({"value": "v"})).await.assert_error(400, "INVALID_SECRET_NAME");
        app.put(&put("TOLLGATE_UPSTREAM_ANTHROPIC_KEY"), json!({"value": "v"}))
            .await
            .assert_error(400, "INVALID_SECRET_NAME");
        app.put(&put("TOLLGATE_URL"), json!({"value": "v"})).await.assert_error(400, "INVALID_SECRET_NAME");
        app.put(&put("1ABC"), json!({"value": "v"})).await.assert_error(400, "INVALID_SECRET_NAME");
        app.put(&put("A-B"), json!({"value": "v"})).await.assert_error(400, "INVALID_SECRET_NAME");
        app.put(&put(&"A".repeat(129)), json!({"value": "v"})).await.assert_error(400, "INVALID_SECRET_NAME");
        app.delete(&put("lower")).await.assert_error(400, "INVALID_SECRET_NAME");
        let big = "s".repeat(64 * 1024 + 1);
        let too_large = app.put(&put("BIG"), json!({"value": big})).await;
        too_large.assert_error(400, "SECRET_VALUE_TOO_LARGE");
        assert!(!too_large.text.contains("sss"), "the value is never echoed");
        app.put(&put("NUL"), json!({"value": "a\u{0}b"})).await.assert_error(400, "INVALID_SECRET_VALUE");
        app.put(&put("X"), json!({})).await.assert_error(400, "INVALID_JSON");
        app.put(&put("X"), json!({"value": 5})).await.assert_error(400, "INVALID_JSON");
        let extra = app.put(&put("X"), json!({"value": "sk-in-an-unknown-field-body", "scope": "org"})).await;
        extra.assert_error(400, "INVALID_JSON");
        assert!(!extra.text.contains("sk-in-an-unknown-field-body"));
        app.delete(&put("ABSENT")).await.assert_error(404, "NOT_FOUND");
        let listed = app.get(&format!("/admin/{scope}/{owner}/secrets")).await;
        assert_eq!(listed.assert_status(200).as_array().unwrap().len(), 0, "nothing was stored");

        let missing = |name: &str| format!("/admin/{scope}/{unknown}/secrets/{name}");
        app.put(&missing("X"), json!({"value": "v"})).await.assert_error(404, "NOT_FOUND");
        app.delete(&missing("X")).await.assert_error(404, "NOT_FOUND");
        app.get(&format!("/admin/{scope}/{unknown}/secrets")).await.assert_error(404, "NOT_FOUND");
    }
}
