//! State outlives a server: a restart on the same SQLite file, and two servers on one
//! Postgres database.

use serde_json::{Value, json};

use crate::support::{AdminToken, Backend, Db, Options, TestApp, spawn_on};

/// Creates an org, a workspace with secrets in both scopes, and provisions it; returns
/// (org id, workspace id, token, provision response).
async fn populate(app: &TestApp) -> (String, String, String, Value) {
    let org = app.create_org(json!({"name": "acme", "default_billing_mode": "byok", "credit_micros": 42})).await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let ws = app.workspace(&org_id, "w", "claude-code", json!({"kind": "agent"})).await;
    app.secret("orgs", &org_id, "GITHUB_TOKEN", "ghp-persisted").await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-persisted").await;
    let prov = app.provision(&ws, Some("MiniMax-M2.7")).await.assert_status(200).clone();
    let token = prov["token"].as_str().unwrap().to_owned();
    (org_id, ws, token, prov)
}

/// Everything an admin can read about the state.
async fn snapshot(app: &TestApp, org: &str, ws: &str) -> Value {
    json!({
        "orgs": app.get("/admin/orgs").await.assert_status(200),
        "org": app.get(&format!("/admin/orgs/{org}")).await.assert_status(200),
        "workspaces": app.get(&format!("/admin/workspaces?org_id={org}")).await.assert_status(200),
        "org_secrets": app.get(&format!("/admin/orgs/{org}/secrets")).await.assert_status(200),
        "ws_secrets": app.get(&format!("/admin/workspaces/{ws}/secrets")).await.assert_status(200),
        "mode": app.read_mode(ws).await,
    })
}

#[tokio::test]
async fn a_restart_on_the_same_sqlite_file_keeps_everything() {
    let db = Db::fresh(Backend::Sqlite).await;
    let first = spawn_on(&db, Options::default()).await;
    let (org, ws, token, prov) = populate(&first).await;
    let before = snapshot(&first, &org, &ws).await;
    let admin = first.admin_token.clone();
    first.stop().await;

    // Same file, same master key; the bootstrap keeps the stored admin token.
    let second =
        spawn_on(&db, Options { admin_token: AdminToken::Existing(admin.clone()), ..Options::default() }).await;
    assert_eq!(second.admin_token, admin);
    let after = snapshot(&second, &org, &ws).await;
    assert_eq!(after, before, "the state survives the restart");
    let pull = second.pull(&ws, &token).await;
    assert_eq!(pull.assert_status(200)["env"], prov["env"], "the token and the decrypted secrets survive");
    assert_eq!(pull.body["env"]["MINIMAX_API_KEY"], "mm-persisted");
    assert_eq!(pull.body["env"]["GITHUB_TOKEN"], "ghp-persisted");
    assert_eq!(second.store.list_provisions(&ws.parse().unwrap()).await.unwrap().len(), 1);
    second.stop().await;
}

#[tokio::test]
async fn two_apps_on_one_postgres_database_give_the_same_answers() {
    let db = Db::fresh(Backend::Postgres).await;
    let a = spawn_on(&db, Options::default()).await;
    let b = spawn_on(&db, Options { admin_token: AdminToken::Configure(a.admin_token.clone()), ..Options::default() })
        .await;
    let (org, ws, token, prov) = populate(&a).await;
    assert_eq!(snapshot(&a, &org, &ws).await, snapshot(&b, &org, &ws).await);
    let pull_b = b.pull(&ws, &token).await;
    assert_eq!(pull_b.assert_status(200)["env"], prov["env"], "a token minted by one instance works on the other");
    // A re-provision on b revokes the token for a as well.
    let token2 = b.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    a.pull(&ws, &token).await.assert_error(401, "UNAUTHORIZED");
    a.pull(&ws, &token2).await.assert_status(200);
    // A change through one is seen by the other.
    b.patch(&format!("/admin/orgs/{org}"), json!({"name": "renamed"})).await.assert_status(200);
    assert_eq!(a.get(&format!("/admin/orgs/{org}")).await.body["name"], "renamed");
    a.post("/admin/orgs", json!({"name": "renamed"})).await.assert_error(409, "CONFLICT");
    a.stop().await;
    b.stop().await;
}
