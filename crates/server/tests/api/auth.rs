//! The admin token on every admin route, workspace tokens on the pull, and the bootstrap.

use reqwest::Method;
use serde_json::json;
use tollgate_server::{AdminThrottleConfig, bootstrap_admin_token};

use crate::both_backends;
use crate::support::{AdminToken, Auth, Backend, Db, Options, spawn_app, spawn_on, spawn_with};

both_backends!(
    admin_routes_need_the_admin_token,
    workspace_tokens_on_the_pull,
    configured_admin_token_replaces_the_stored_one
);

/// Every admin route, with ids that exist.
fn admin_routes(org: &str, ws: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/admin/orgs".to_owned()),
        (Method::GET, "/admin/orgs".to_owned()),
        (Method::GET, format!("/admin/orgs/{org}")),
        (Method::PATCH, format!("/admin/orgs/{org}")),
        (Method::POST, format!("/admin/orgs/{org}/credit")),
        (Method::PUT, format!("/admin/orgs/{org}/secrets/KEY")),
        (Method::DELETE, format!("/admin/orgs/{org}/secrets/KEY")),
        (Method::GET, format!("/admin/orgs/{org}/secrets")),
        (Method::POST, "/admin/workspaces".to_owned()),
        (Method::GET, format!("/admin/workspaces?org_id={org}")),
        (Method::GET, format!("/admin/workspaces/{ws}")),
        (Method::PATCH, format!("/admin/workspaces/{ws}")),
        (Method::DELETE, format!("/admin/workspaces/{ws}")),
        (Method::PUT, format!("/admin/workspaces/{ws}/secrets/KEY")),
        (Method::DELETE, format!("/admin/workspaces/{ws}/secrets/KEY")),
        (Method::GET, format!("/admin/workspaces/{ws}/secrets")),
        (Method::GET, format!("/admin/workspaces/{ws}/llm-billing-mode")),
        (Method::POST, format!("/admin/workspaces/{ws}/provision")),
    ]
}

async fn admin_routes_need_the_admin_token(backend: Backend) {
    // Hundreds of failed attempts from one address on purpose: throttling them is
    // `throttle.rs`'s subject, not this test's.
    let unthrottled = AdminThrottleConfig { burst: 100_000, refill_every: std::time::Duration::from_secs(1) };
    let app = spawn_with(backend, Options { admin_throttle: unthrottled, ..Options::default() }).await;
    assert!(app.admin_token.starts_with("tg_admin_"));
    assert_eq!(app.admin_token.len(), "tg_admin_".len() + 43);
    assert!(app.admin_token["tg_admin_".len()..].bytes().all(|b| b.is_ascii_alphanumeric()));
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "platform/sonnet"})).await;
    let prov = app.provision(&ws, None).await;
    let ws_token = prov.assert_status(200)["token"].as_str().unwrap().to_owned();
    let wrong_admin = format!("tg_admin_{}", "A".repeat(43));
    let lower_scheme = format!("bearer {}", app.admin_token);
    let basic = format!("Basic {}", app.admin_token);
    let bare = app.admin_token.clone();
    let cases: Vec<(&str, Auth)> = vec![
        ("no token", Auth::None),
        ("wrong token", Auth::Bearer(&wrong_admin)),
        ("a workspace token", Auth::Bearer(&ws_token)),
        ("the admin token as x-api-key", Auth::ApiKey(&app.admin_token)),
        ("Basic scheme", Auth::Header("authorization", &basic)),
        ("no scheme", Auth::Header("authorization", &bare)),
        ("empty bearer", Auth::Header("authorization", "Bearer ")),
    ];
    for (method, path) in admin_routes(&org, &ws) {
        for (what, auth) in &cases {
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let r = app.send(method.clone(), &path, *auth, body).await;
            assert_eq!(r.status, 401, "{what}: {method} {path}: {}", r.text);
            r.assert_error(401, "UNAUTHORIZED");
            assert_eq!(r.headers.get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
            assert!(!r.text.contains(&app.admin_token) && !r.text.contains(&ws_token), "tokens are never echoed");
        }
    }
    // The scheme is case-insensitive.
    let ok = app.send(Method::GET, "/admin/orgs", Auth::Header("authorization", &lower_scheme), None).await;
    ok.assert_status(200);
    // Nothing changed on the way: the workspace still exists and its token still works.
    app.get(&format!("/admin/workspaces/{ws}")).await.assert_status(200);
    app.pull(&ws, &ws_token).await.assert_status(200);
}

async fn workspace_tokens_on_the_pull(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws_a = app.workspace(&org, "a", "claude-code", json!({"model": "platform/sonnet"})).await;
    let ws_b = app.workspace(&org, "b", "codex", json!({"model": "platform/gpt"})).await;
    let token_a = app.provision(&ws_a, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    let token_b = app.provision(&ws_b, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    assert!(token_a.starts_with("tg_ws_") && token_a.len() == "tg_ws_".len() + 43, "{}", token_a.len());
    assert_ne!(token_a, token_b);
    let pull_path = |ws: &str| format!("/workspaces/{ws}/secrets/values");

    // Bearer and x-api-key both work.
    app.pull(&ws_a, &token_a).await.assert_status(200);
    app.send(Method::GET, &pull_path(&ws_a), Auth::ApiKey(&token_a), None).await.assert_status(200);
    // Another workspace's token: 403, whichever header.
    app.pull(&ws_a, &token_b).await.assert_error(403, "FORBIDDEN");
    app.send(Method::GET, &pull_path(&ws_a), Auth::ApiKey(&token_b), None).await.assert_error(403, "FORBIDDEN");
    app.pull("00000000-0000-0000-0000-000000000000", &token_b).await.assert_error(403, "FORBIDDEN");
    // Unknown, malformed, missing tokens and the admin token: 401.
    let unknown = format!("tg_ws_{}", "Z".repeat(43));
    for bad in [unknown.as_str(), "tg_ws_short", "sk-ant-oat01-not-ours", app.admin_token.as_str()] {
        app.pull(&ws_a, bad).await.assert_error(401, "UNAUTHORIZED");
    }
    app.send(Method::GET, &pull_path(&ws_a), Auth::None, None).await.assert_error(401, "UNAUTHORIZED");
    // Re-provisioning revokes the old token.
    let token_a2 = app.provision(&ws_a, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    assert_ne!(token_a, token_a2);
    let revoked = app.pull(&ws_a, &token_a).await;
    revoked.assert_error(401, "UNAUTHORIZED");
    assert!(!revoked.text.contains(&token_a));
    app.send(Method::GET, &pull_path(&ws_a), Auth::ApiKey(&token_a), None).await.assert_error(401, "UNAUTHORIZED");
    app.pull(&ws_a, &token_a2).await.assert_status(200);
    app.pull(&ws_b, &token_b).await.assert_status(200);
    // Deleting the workspace revokes its token.
    assert_eq!(app.delete(&format!("/admin/workspaces/{ws_b}")).await.status, 204);
    app.pull(&ws_b, &token_b).await.assert_error(401, "UNAUTHORIZED");
}

async fn configured_admin_token_replaces_the_stored_one(backend: Backend) {
    let db = Db::fresh(backend).await;
    let first = spawn_on(&db, Options::default()).await;
    let generated = first.admin_token.clone();
    // A second bootstrap on the same database neither prints nor changes anything.
    let again = bootstrap_admin_token(&*first.store, None).await.unwrap();
    assert!(again.is_none(), "an existing admin token is kept and not printed again");
    first.get("/admin/orgs").await.assert_status(200);
    // TOLLGATE_ADMIN_TOKEN replaces it.
    let configured = "my-configured-admin-token".to_owned();
    let second =
        spawn_on(&db, Options { admin_token: AdminToken::Configure(configured.clone()), ..Options::default() }).await;
    second.get("/admin/orgs").await.assert_status(200);
    second.send(Method::GET, "/admin/orgs", Auth::Bearer(&generated), None).await.assert_error(401, "UNAUTHORIZED");
    first.send(Method::GET, "/admin/orgs", Auth::Bearer(&configured), None).await.assert_status(200);
    // An empty configured token counts as not configured.
    assert!(bootstrap_admin_token(&*first.store, Some("")).await.unwrap().is_none());
    second.get("/admin/orgs").await.assert_status(200);
    first.stop().await;
    second.stop().await;
}
