//! Master key rotation (DESIGN.md section 18): a server restarted with a second, newer key
//! moves every secret to it through `POST /admin/secrets/reencrypt` while provisioning, secret
//! writes and pulls go on, and no workspace ever resolves to `SECRET_UNREADABLE`; afterwards
//! the old key is no longer needed. Rows written before key ids existed are read too.

use base64::Engine;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{AdminToken, Backend, Options, TestApp, spawn_app, spawn_on};

both_backends!(rotating_while_traffic_flows_leaves_nothing_unreadable);

/// Workspaces with their own secret, and workspaces inheriting their org's.
const OWN: usize = 12;
const INHERITING: usize = 6;
/// Workspaces created, given a secret, provisioned and pulled during the rotation.
const NEW_DURING: usize = 8;

fn new_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// A MiniMax workspace (its secret decides the resolution), provisioned: its id and token.
async fn provisioned(app: &TestApp, org: &str, name: &str, secret: Option<&str>) -> (String, String) {
    let ws = app.workspace(org, name, "claude-code", json!({"model": "MiniMax-M2.7"})).await;
    if let Some(value) = secret {
        app.secret("workspaces", &ws, "MINIMAX_API_KEY", value).await;
    }
    let token = app.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
    (ws, token)
}

/// Pulls `ws` and checks the value it gets.
async fn pull_ok(app: &TestApp, ws: &str, token: &str, value: &str) {
    let pulled = app.pull(ws, token).await;
    assert_eq!(pulled.status, 200, "pull during the rotation: {}", pulled.text);
    assert_eq!(pulled.body["env"]["MINIMAX_API_KEY"], value);
}

/// Calls the route until the walk is over: the sum of the batches' counts.
async fn reencrypt_all(app: &TestApp, limit: u32) -> (u64, u64, u64, usize) {
    let (mut moved, mut changed, mut unreadable, mut batches) = (0, 0, 0, 0);
    let mut body = json!({"limit": limit});
    loop {
        let r = app.post("/admin/secrets/reencrypt", body.clone()).await;
        let b = r.assert_status(200).clone();
        batches += 1;
        moved += b["moved"].as_u64().unwrap();
        changed += b["changed"].as_u64().unwrap();
        unreadable += b["unreadable"].as_u64().unwrap();
        if b["next"] == Value::Null {
            assert_eq!(b["pending"], 0, "{b}");
            return (moved, changed, unreadable, batches);
        }
        body = json!({"limit": limit, "after": b["next"]});
        // Let the traffic in between batches.
        tokio::task::yield_now().await;
    }
}

async fn rotating_while_traffic_flows_leaves_nothing_unreadable(backend: Backend) {
    // Before: one key, secrets of both scopes, every workspace provisioned.
    let before = spawn_app(backend).await;
    let (a, b) = (before.org("own").await, before.org("inheriting").await);
    before.secret("orgs", &b, "MINIMAX_API_KEY", "mm-org-value").await;
    let mut existing = Vec::new();
    for i in 0..OWN {
        let value = format!("mm-own-{i}");
        let (ws, token) = provisioned(&before, &a, &format!("own-{i}"), Some(&value)).await;
        existing.push((ws, token, value));
    }
    for i in 0..INHERITING {
        let (ws, token) = provisioned(&before, &b, &format!("inh-{i}"), None).await;
        existing.push((ws, token, "mm-org-value".to_owned()));
    }
    // Half of the rows as a version before key ids wrote them.
    let mut owners: Vec<&str> = existing[..OWN / 2].iter().map(|(ws, _, _)| ws.as_str()).collect();
    owners.push(&b);
    let placeholders: Vec<String> = (1..=owners.len()).map(|i| format!("${i}")).collect();
    let sql = format!("UPDATE secrets SET key_id = NULL WHERE owner_id IN ({})", placeholders.join(", "));
    assert_eq!(before.db.execute(&sql, &owners).await, owners.len() as u64);
    let admin = before.admin_token.clone();
    let old_key = before.db.key_b64.clone();
    let mut rotated_db = before.db.clone();
    before.stop().await;

    // The restart with a newer key: the old one still decrypts, the new one encrypts.
    let new = new_key();
    rotated_db.key_b64 = format!("{old_key},{new}");
    let options = || Options { admin_token: AdminToken::Existing(admin.clone()), ..Options::default() };
    let app = spawn_on(&rotated_db, options()).await;
    let bad = app.post("/admin/secrets/reencrypt", json!({"limit": 0})).await;
    bad.assert_error(400, "INVALID_JSON");
    let bad =
        app.post("/admin/secrets/reencrypt", json!({"after": {"scope": "team", "owner_id": "x", "name": "A"}})).await;
    bad.assert_error(400, "INVALID_JSON");

    // The rotation, with traffic: pulls of every existing workspace, new values set on some
    // (a write racing the move of its row: the move must not put the old value back), and new
    // workspaces provisioned and pulled. Only the first half of the own secrets are set again:
    // the other half and the org's secret (7 rows) stay under the old key until the walk moves
    // them, so it takes at least 4 batches of 2 however the traffic interleaves with it.
    let pulls = async {
        let mut existing = existing.clone();
        for round in 0..4 {
            for (i, (ws, token, value)) in existing.iter_mut().enumerate() {
                if i < OWN / 2 && (i + round) % 3 == 0 {
                    *value = format!("mm-own-{i}-round-{round}");
                    app.secret("workspaces", ws, "MINIMAX_API_KEY", value).await;
                }
                pull_ok(&app, ws, token, value).await;
            }
        }
        existing
    };
    let fresh = async {
        for i in 0..NEW_DURING {
            let value = format!("mm-during-{i}");
            let (ws, token) = provisioned(&app, &a, &format!("during-{i}"), Some(&value)).await;
            pull_ok(&app, &ws, &token, &value).await;
        }
    };
    let ((moved, changed, unreadable, batches), existing, ()) = tokio::join!(reencrypt_all(&app, 2), pulls, fresh);
    assert_eq!(unreadable, 0);
    assert!(batches > 3, "several batches: {batches}");
    // Every row that was under the old key either moved or was set again (under the new key).
    assert!(moved + changed <= (OWN + 1) as u64 && moved > 0, "moved {moved}, changed {changed}");
    for (ws, token, value) in &existing {
        pull_ok(&app, ws, token, value).await;
    }
    // Nothing is left under the old key: a second walk moves nothing.
    assert_eq!(reencrypt_all(&app, 100).await, (0, 0, 0, 1));
    app.stop().await;

    // The old key can go: with only the new one, every secret still decrypts.
    let mut new_only = rotated_db.clone();
    new_only.key_b64 = new;
    let app = spawn_on(&new_only, options()).await;
    for (ws, token, value) in &existing {
        pull_ok(&app, ws, token, value).await;
    }
    // And without the new key nothing does: the secrets really moved.
    let mut old_only = rotated_db.clone();
    old_only.key_b64 = old_key;
    let stale = spawn_on(&old_only, options()).await;
    let (ws, token, _) = &existing[0];
    let pulled = stale.pull(ws, token).await;
    assert_eq!((pulled.status, pulled.code()), (422, "SECRET_UNREADABLE"));
    let r = stale.post("/admin/secrets/reencrypt", json!({})).await;
    let walked = r.assert_status(200);
    assert_eq!(walked["unreadable"].as_u64().unwrap(), (OWN + 1 + NEW_DURING) as u64, "{walked}");
    stale.stop().await;
    app.stop().await;
}
