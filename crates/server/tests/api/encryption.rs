//! Secret values are bound to their row: a ciphertext copied to another row does not decrypt,
//! and the workspace then resolves to SECRET_UNREADABLE everywhere, never to "absent".

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, spawn_app};

both_backends!(a_copied_ciphertext_is_secret_unreadable);

async fn a_copied_ciphertext_is_secret_unreadable(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({"model": "MiniMax-M2.7"})).await;
    let other = app.workspace(&org, "other", "claude-code", json!({"model": "MiniMax-M2.7"})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-victim-key").await;
    app.secret("workspaces", &other, "MINIMAX_API_KEY", "mm-other-key").await;
    let token = app.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    let other_token = app.provision(&other, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();

    // Copy the other workspace's ciphertext over ours, directly in the database: the value
    // would be valid if the ciphertext were not bound to its row.
    app.db.copy_ciphertext(("workspace", &other, "MINIMAX_API_KEY"), ("workspace", &ws, "MINIMAX_API_KEY")).await;

    let read = app.read_mode(&ws).await;
    assert_eq!(read["error"]["code"], "SECRET_UNREADABLE", "{read}");
    assert_eq!(read["resolved_mode"], serde_json::Value::Null);
    assert!(read["error"]["message"].as_str().unwrap().contains("MINIMAX_API_KEY"), "the message names the secret");
    let prov = app.provision(&ws, None).await;
    assert_eq!((prov.status, prov.code()), (422, "SECRET_UNREADABLE"));
    let pull = app.pull(&ws, &token).await;
    assert_eq!((pull.status, pull.code()), (422, "SECRET_UNREADABLE"));
    for r in [&prov, &pull] {
        assert!(!r.text.contains("mm-other-key") && !r.text.contains("mm-victim-key"));
    }
    // The failed provision stored nothing: the old token still authenticates.
    assert_eq!(app.store.list_provisions(&ws.parse().unwrap()).await.unwrap().len(), 1);
    // The donor row is untouched.
    let pulled = app.pull(&other, &other_token).await;
    assert_eq!(pulled.assert_status(200)["env"]["MINIMAX_API_KEY"], "mm-other-key");
    // Listing still works (names only) and re-setting the value repairs the workspace.
    let names = app.get(&format!("/admin/workspaces/{ws}/secrets")).await;
    assert_eq!(names.assert_status(200).as_array().unwrap().len(), 1);
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", "mm-new-key").await;
    let pulled = app.pull(&ws, &token).await;
    assert_eq!(pulled.assert_status(200)["env"]["MINIMAX_API_KEY"], "mm-new-key");
}

/// An org secret copied between orgs does not decrypt either (SQLite file opened with sqlx).
#[tokio::test]
async fn an_org_ciphertext_moved_between_orgs_is_unreadable_sqlite() {
    let app = spawn_app(Backend::Sqlite).await;
    assert!(app.db.sqlite_path().exists());
    let a = app.org("a").await;
    let b = app.org("b").await;
    let ws = app.workspace(&b, "w", "codex", json!({"model": "gpt-5"})).await;
    app.secret("orgs", &a, "OPENAI_API_KEY", "sk-org-a").await;
    app.secret("orgs", &b, "OPENAI_API_KEY", "sk-org-b").await;
    assert_eq!(app.read_mode(&ws).await["provider"], "openai");
    app.db.copy_ciphertext(("org", &a, "OPENAI_API_KEY"), ("org", &b, "OPENAI_API_KEY")).await;
    assert_eq!(app.read_mode(&ws).await["error"]["code"], "SECRET_UNREADABLE");
    let prov = app.provision(&ws, None).await;
    assert_eq!((prov.status, prov.code()), (422, "SECRET_UNREADABLE"));
    assert!(app.store.list_provisions(&ws.parse().unwrap()).await.unwrap().is_empty());
}
