//! `limits` on orgs and workspaces (DESIGN.md section 14): returned with the object, set by
//! PATCH (absent leaves, `null` removes), and validated with clear 400s.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(limits_are_set_returned_and_removed, bad_limits_are_clear_400s);

const ALL: &str = r#"{"budget_micros_per_day": 20000000, "budget_micros_per_month": 300000000,
    "soft_budget_percent": 80, "requests_per_minute": 120, "tokens_per_minute": 400000,
    "max_concurrent_requests": 16, "allowed_models": ["platform/sonnet", "platform/haiku"]}"#;

fn unset() -> Value {
    json!({"budget_micros_per_day": null, "budget_micros_per_month": null, "soft_budget_percent": null,
        "requests_per_minute": null, "tokens_per_minute": null, "max_concurrent_requests": null,
        "allowed_models": null})
}

async fn limits_are_set_returned_and_removed(backend: Backend) {
    let app = spawn_app(backend).await;
    let all: Value = serde_json::from_str(ALL).unwrap();
    let org = app.create_org(json!({"name": "acme"})).await;
    assert_eq!(org["limits"], unset(), "every field, null until set");
    let org_id = org["id"].as_str().unwrap();
    let ws = app.create_workspace(org_id, "w", "claude-code", json!({})).await;
    assert_eq!(ws["limits"], unset());
    let ws_id = ws["id"].as_str().unwrap();
    for path in [format!("/admin/orgs/{org_id}"), format!("/admin/workspaces/{ws_id}")] {
        let set = app.patch(&path, json!({"limits": all})).await;
        assert_eq!(set.assert_status(200)["limits"], all, "{path}: returned as set");
        assert_eq!(app.get(&path).await.assert_status(200)["limits"], all, "{path}: read back");
        let changed =
            app.patch(&path, json!({"limits": {"tokens_per_minute": null, "budget_micros_per_day": 0}})).await;
        let mut expected = all.clone();
        expected["tokens_per_minute"] = Value::Null;
        expected["budget_micros_per_day"] = json!(0);
        assert_eq!(changed.assert_status(200)["limits"], expected, "{path}: null removes, absent stays");
        let renamed = app.patch(&path, json!({"name": "renamed"})).await;
        assert_eq!(renamed.assert_status(200)["limits"], expected, "{path}: a patch without limits keeps them");
    }
    let created = app.create_org(json!({"name": "beta", "limits": {"budget_micros_per_month": 5}})).await;
    assert_eq!(created["limits"]["budget_micros_per_month"], 5, "limits can be given at creation");
}

async fn bad_limits_are_clear_400s(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org(json!({"name": "acme"})).await;
    let org_id = org["id"].as_str().unwrap();
    let ws = app.create_workspace(org_id, "w", "codex", json!({})).await;
    let ws_id = ws["id"].as_str().unwrap();
    let bad = [
        (json!({"budget_micros_per_day": -1}), "INVALID_LIMITS", "budget_micros_per_day"),
        (json!({"budget_micros_per_month": 1_000_000_000_000_001_i64}), "INVALID_LIMITS", "budget_micros_per_month"),
        (json!({"soft_budget_percent": 0}), "INVALID_LIMITS", "soft_budget_percent"),
        (json!({"soft_budget_percent": 101}), "INVALID_LIMITS", "soft_budget_percent"),
        (json!({"requests_per_minute": 0}), "INVALID_LIMITS", "requests_per_minute"),
        (json!({"tokens_per_minute": -3}), "INVALID_LIMITS", "tokens_per_minute"),
        (json!({"max_concurrent_requests": 0}), "INVALID_LIMITS", "max_concurrent_requests"),
        (json!({"budget_per_day": 5}), "INVALID_JSON", "budget_per_day"),
        (json!({"requests_per_minute": "5"}), "INVALID_JSON", "at `limits.requests_per_minute`: invalid type"),
        (json!({"allowed_models": ["platform/nope"]}), "INVALID_MODEL", "platform/nope"),
    ];
    for path in [format!("/admin/orgs/{org_id}"), format!("/admin/workspaces/{ws_id}")] {
        for (limits, code, names) in &bad {
            let r = app.patch(&path, json!({"limits": limits})).await;
            r.assert_error(400, code);
            let message = r.body["error"]["message"].as_str().unwrap_or_default().to_owned();
            assert!(message.contains(names), "{path} {limits}: {message}");
        }
        assert_eq!(
            app.get(&path).await.assert_status(200)["limits"]["soft_budget_percent"],
            Value::Null,
            "nothing stored"
        );
    }
    // An org may list models of either protocol; a codex workspace only its own.
    let r = app
        .patch(
            &format!("/admin/orgs/{org_id}"),
            json!({"limits": {"allowed_models": ["platform/gpt", "platform/sonnet"]}}),
        )
        .await;
    r.assert_status(200);
    app.patch(&format!("/admin/workspaces/{ws_id}"), json!({"limits": {"allowed_models": ["platform/sonnet"]}}))
        .await
        .assert_error(400, "INVALID_MODEL");
}
