//! The three callers of resolve: the read endpoint, provisioning and the pull.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(
    platform_managed_flow,
    byok_flow_persists_the_request_model,
    failed_provision_stores_nothing,
    read_endpoint_reports_failures_with_200,
    pull_fails_with_422_when_the_state_changes,
    changes_publish_cache_invalidations,
    the_pull_carries_codex_settings_for_codex_only,
);

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

async fn platform_managed_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/sonnet"})).await;
    app.secret("orgs", &org, "CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org-token").await;
    app.secret("orgs", &org, "GITHUB_TOKEN", "ghp-org-value").await;
    app.secret("workspaces", &ws, "ANTHROPIC_API_KEY", "sk-ant-ws-key").await;

    let read = app.read_mode(&ws).await;
    assert_eq!(
        keys(&read),
        [
            "credentials",
            "dropped",
            "effective_model",
            "error",
            "model_source",
            "provider",
            "resolved_mode",
            "source",
            "trace",
            "workspace_id"
        ]
    );
    assert_eq!(read["workspace_id"], ws.as_str());
    assert_eq!(read["resolved_mode"], "platform_managed");
    assert_eq!(read["source"], "derived_provider");
    assert_eq!(read["provider"], "platform");
    assert_eq!(read["effective_model"], "platform/sonnet");
    assert_eq!(read["model_source"], "workspace");
    assert_eq!(read["error"], Value::Null);
    let read_text = read.to_string();
    for value in ["sk-ant-oat01-org-token", "ghp-org-value", "sk-ant-ws-key"] {
        assert!(!read_text.contains(value), "the resolution never holds values");
    }
    let dropped: Vec<&str> = read["dropped"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(dropped.contains(&"CLAUDE_CODE_OAUTH_TOKEN") && dropped.contains(&"ANTHROPIC_API_KEY"), "{dropped:?}");

    let prov = app.provision(&ws, None).await;
    let prov = prov.assert_status(200).clone();
    assert_eq!(keys(&prov), ["env", "resolution", "token"]);
    let token = prov["token"].as_str().unwrap();
    assert_eq!(prov["resolution"], read, "provision resolves exactly as the read endpoint");
    let env = prov["env"].as_object().unwrap();
    assert_eq!(env["ANTHROPIC_BASE_URL"], "http://tollgate.test:8080/anthropic");
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], token);
    assert_eq!(env["TOLLGATE_WORKSPACE_TOKEN"], token);
    assert_eq!(env["TOLLGATE_WORKSPACE_ID"], ws.as_str());
    assert_eq!(env["TOLLGATE_URL"], "http://tollgate.test:8080");
    assert_eq!(env["ANTHROPIC_MODEL"], "platform/sonnet");
    assert_eq!(env["LLM_BILLING_MODE"], "platform_managed");
    assert_eq!(env["LLM_PROVIDER"], "platform");
    assert_eq!(env["GITHUB_TOKEN"], "ghp-org-value", "non-LLM secrets pass through with their value");
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN") && !env.contains_key("ANTHROPIC_API_KEY"));

    let pull = app.pull(&ws, token).await;
    let pull = pull.assert_status(200);
    assert_eq!(keys(pull), ["env", "resolution"]);
    assert_eq!(pull["resolution"], read);
    assert_eq!(pull["env"], prov["env"], "the pull renders the same env with the presented token");
    let provisions = app.store.list_provisions(&ws.parse().unwrap()).await.unwrap();
    assert_eq!(provisions.len(), 1);
    let stored: Value = serde_json::from_str(&provisions[0].resolution_json).unwrap();
    assert_eq!(stored, read, "the resolution is stored for audit");
}

async fn byok_flow_persists_the_request_model(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({})).await;
    app.secret("orgs", &org, "CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org-token").await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-ws-key").await;
    // Seed 001: the read endpoint without a model falls back; provisioning with a model
    // persists it so that the read then agrees.
    let before = app.read_mode(&ws).await;
    assert_eq!(before["source"], "fallback");
    let prov = app.provision(&ws, Some("MiniMax-M2.7")).await;
    let prov = prov.assert_status(200).clone();
    let r = &prov["resolution"];
    assert_eq!((r["resolved_mode"].as_str(), r["provider"].as_str()), (Some("byok"), Some("minimax")));
    assert_eq!(r["model_source"], "request");
    let env = prov["env"].as_object().unwrap();
    assert_eq!(env["MINIMAX_API_KEY"], "mm-ws-key");
    assert_eq!(env["ANTHROPIC_BASE_URL"], "https://api.minimax.io/anthropic");
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"), "the org's OAuth token is not MiniMax's credential");
    assert_eq!(app.get(&format!("/admin/workspaces/{ws}")).await.body["model"], "MiniMax-M2.7");
    let after = app.read_mode(&ws).await;
    for field in ["resolved_mode", "source", "provider", "effective_model", "credentials", "dropped"] {
        assert_eq!(after[field], r[field], "{field}: the read agrees with the provision");
    }
    assert_eq!(after["model_source"], "workspace");
    let pull = app.pull(&ws, prov["token"].as_str().unwrap()).await;
    assert_eq!(pull.assert_status(200)["resolution"], after);
    assert_eq!(pull.body["env"], prov["env"]);
    // An empty request model is absent: the stored model stays.
    let again = app.provision(&ws, Some("")).await;
    assert_eq!(again.assert_status(200)["resolution"]["provider"], "minimax");
    assert_eq!(app.get(&format!("/admin/workspaces/{ws}")).await.body["model"], "MiniMax-M2.7");
    // An empty body is a provision without a model.
    let r = app
        .send_raw(
            reqwest::Method::POST,
            &format!("/admin/workspaces/{ws}/provision"),
            crate::support::Auth::Admin,
            Some(Vec::new()),
        )
        .await;
    assert_eq!(r.assert_status(200)["resolution"]["provider"], "minimax");
    app.provision(&ws, Some("bad\u{7}model")).await.assert_error(400, "INVALID_MODEL");
    app.post(&format!("/admin/workspaces/{ws}/provision"), json!({"model": "x", "force": true}))
        .await
        .assert_error(400, "INVALID_JSON");
    app.provision("00000000-0000-0000-0000-000000000000", None).await.assert_error(404, "NOT_FOUND");
    app.get("/admin/workspaces/00000000-0000-0000-0000-000000000000/llm-billing-mode")
        .await
        .assert_error(404, "NOT_FOUND");
}

async fn failed_provision_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/opus"})).await;
    let first = app.provision(&ws, None).await;
    let token = first.assert_status(200)["token"].as_str().unwrap().to_owned();
    let before = app.get(&format!("/admin/workspaces/{ws}")).await.body;

    // MiniMax with no MiniMax credential: MISSING_BYOK_CREDENTIAL.
    let failed = app.provision(&ws, Some("MiniMax-M2.7")).await;
    assert_eq!(failed.status, 422, "{}", failed.text);
    assert_eq!(failed.code(), "MISSING_BYOK_CREDENTIAL");
    assert_eq!(keys(&failed.body), ["error", "resolution"]);
    let res = &failed.body["resolution"];
    assert_eq!(res["error"]["code"], "MISSING_BYOK_CREDENTIAL");
    assert_eq!(res["error"]["message"], failed.body["error"]["message"]);
    assert_eq!(res["resolved_mode"], Value::Null);
    assert_eq!(res["provider"], "minimax");
    assert!(failed.body.get("token").is_none() && failed.body.get("env").is_none());
    // Unknown model, too.
    let unknown = app.provision(&ws, Some("no-such-model")).await;
    assert_eq!((unknown.status, unknown.code()), (422, "UNKNOWN_MODEL"));

    // Nothing stored: model, token and provision records unchanged.
    assert_eq!(app.get(&format!("/admin/workspaces/{ws}")).await.body, before, "the workspace is unchanged");
    app.pull(&ws, &token).await.assert_status(200);
    assert_eq!(app.store.list_provisions(&ws.parse().unwrap()).await.unwrap().len(), 1);
    assert_eq!(app.read_mode(&ws).await["provider"], "platform");
}

async fn read_endpoint_reports_failures_with_200(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"billing_mode": "byok"})).await;
    let read = app.read_mode(&ws).await;
    assert_eq!(read["error"]["code"], "NO_PROVIDER");
    assert_eq!(read["resolved_mode"], Value::Null);
    let prov = app.provision(&ws, None).await;
    assert_eq!((prov.status, prov.code()), (422, "NO_PROVIDER"));
    assert_eq!(prov.body["resolution"], read, "the 422 carries the same resolution as the read");
}

async fn pull_fails_with_422_when_the_state_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "MiniMax-M2.7"})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-key").await;
    let token = app.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/admin/workspaces/{ws}/secrets/MINIMAX_API_KEY")).await.status, 204);
    let pull = app.pull(&ws, &token).await;
    assert_eq!((pull.status, pull.code()), (422, "MISSING_BYOK_CREDENTIAL"));
    assert_eq!(pull.body["resolution"], app.read_mode(&ws).await);
    assert!(!pull.text.contains(&token));
}

/// Every change that can alter a resolution tells all instances to drop cached state: the
/// proxy's token cache depends on it (a re-provision revokes the old token everywhere).
async fn changes_publish_cache_invalidations(backend: Backend) {
    use std::time::Duration;
    let app = spawn_app(backend).await;
    let org = app.org("inv").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/opus"})).await;
    let mut rx = app.store.invalidations().await.unwrap();
    app.secret("orgs", &org, "GITHUB_TOKEN", "x").await;
    app.secret("workspaces", &ws, "GITHUB_TOKEN", "y").await;
    app.post(&format!("/admin/workspaces/{ws}/provision"), json!({})).await.assert_status(200);
    app.patch(&format!("/admin/workspaces/{ws}"), json!({"model": "platform/sonnet"})).await.assert_status(200);
    app.patch(&format!("/admin/orgs/{org}"), json!({"default_billing_mode": "byok"})).await.assert_status(200);
    app.delete(&format!("/admin/workspaces/{ws}/secrets/GITHUB_TOKEN")).await.assert_status(204);
    app.delete(&format!("/admin/workspaces/{ws}")).await.assert_status(204);
    let mut seen = Vec::new();
    while seen.len() < 7 {
        let key = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an invalidation").unwrap();
        seen.push(key);
    }
    let (o, w) = (format!("org:{org}"), format!("ws:{ws}"));
    let seen: Vec<String> = seen.iter().map(tollgate_store::Invalidation::encode).collect();
    assert_eq!(seen, [o.clone(), w.clone(), w.clone(), w.clone(), o, w.clone(), w]);
}

/// The pull of a `codex` workspace carries Codex's settings next to `env` (names and URLs,
/// never the token); other runtimes' pulls have no `codex` key.
async fn the_pull_carries_codex_settings_for_codex_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("codex").await;
    let codex = app.workspace(&org, "c", "codex", json!({"model": "platform/gpt"})).await;
    let claude = app.workspace(&org, "a", "claude-code", json!({"model": "platform/sonnet"})).await;
    let token = app.provision(&codex, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    let pulled = app.pull(&codex, &token).await.assert_status(200).clone();
    assert_eq!(keys(&pulled), ["codex", "env", "resolution"]);
    assert_eq!(
        pulled["codex"],
        json!({
            "provider": {
                "kind": "endpoint",
                "base_url": {"url": "http://tollgate.test:8080/openai/v1"},
                "env_key": "TOLLGATE_WORKSPACE_TOKEN",
                "wire_api": "responses"
            },
            "model": "platform/gpt"
        })
    );
    assert!(!pulled["codex"].to_string().contains("tg_ws_"));
    let token = app.provision(&claude, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    let pulled = app.pull(&claude, &token).await.assert_status(200).clone();
    assert_eq!(keys(&pulled), ["env", "resolution"]);
}
