//! `GET /admin/events` (DESIGN.md section 15): a full admin session leaves one event per
//! change, none holding a secret value or token; filters and cursor pagination.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestApp, spawn_app};

both_backends!(an_admin_session_is_logged_without_secrets, events_filter_and_page);

/// Every event `query` selects, newest first, following `next_cursor` with pages of `limit`.
async fn walk(app: &TestApp, query: &str, limit: u32) -> Vec<Value> {
    walk_from(app, query, limit, "").await
}

/// [`walk`] from `cursor`.
async fn walk_from(app: &TestApp, query: &str, limit: u32, cursor: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = cursor.to_owned();
    loop {
        let page = app.get(&format!("/admin/events?limit={limit}&cursor={cursor}&{query}")).await;
        let page = page.assert_status(200).clone();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return out,
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().rev().map(|e| e["kind"].as_str().unwrap()).collect()
}

async fn an_admin_session_is_logged_without_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let org_secret = "sk-ant-oat01-org-secret-value-7f3a9c";
    let ws_secret = "mm-ws-secret-value-44b1e0d2";
    let org =
        app.create_org(json!({"name": "acme", "credit_micros": 5_000_000})).await["id"].as_str().unwrap().to_owned();
    app.secret("orgs", &org, "CLAUDE_CODE_OAUTH_TOKEN", org_secret).await;
    let ws = app.workspace(&org, "dev", "claude-code", json!({})).await;
    app.secret("workspaces", &ws, "MINIMAX_API_KEY", ws_secret).await;
    app.patch(&format!("/admin/orgs/{org}"), json!({"limits": {"budget_micros_per_day": 1_000_000}}))
        .await
        .assert_status(200);
    app.patch(&format!("/admin/workspaces/{ws}"), json!({"name": "dev2"})).await.assert_status(200);
    app.post(&format!("/admin/orgs/{org}/credit"), json!({"delta_micros": 1_000, "reason": "top-up"}))
        .await
        .assert_status(200);
    let prov = app.provision(&ws, Some("MiniMax-M2.7")).await.assert_status(200).clone();
    let token = prov["token"].as_str().unwrap().to_owned();
    app.post(&format!("/admin/workspaces/{ws}/suspend"), json!({"reason": "runaway"})).await.assert_status(200);
    app.post(&format!("/admin/workspaces/{ws}/resume"), json!({})).await.assert_status(200);
    let r = app.delete(&format!("/admin/workspaces/{ws}/secrets/MINIMAX_API_KEY")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.delete(&format!("/admin/workspaces/{ws}")).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);

    let events = walk(&app, "", 1000).await;
    assert_eq!(
        kinds(&events),
        [
            "org.created",
            "secret.set",
            "workspace.created",
            "secret.set",
            "limits.updated",
            "workspace.updated",
            "credit.adjusted",
            "workspace.provisioned",
            "suspended",
            "resumed",
            "secret.deleted",
            "workspace.deleted",
        ]
    );
    for e in &events {
        assert_eq!(e["actor"], "admin");
        assert_eq!(e["org_id"], org.as_str());
        let at = e["at"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}");
    }
    let provisioned = events.iter().find(|e| e["kind"] == "workspace.provisioned").unwrap();
    assert_eq!(
        (provisioned["detail"]["mode"].as_str(), provisioned["detail"]["provider"].as_str()),
        (Some("byok"), Some("minimax"))
    );
    assert_eq!(
        events.iter().filter(|e| e["detail"]["name"] == "MINIMAX_API_KEY").count(),
        2,
        "set and deleted, by name"
    );
    // Nothing secret anywhere in the log: not the values, not the workspace token, not the
    // admin token.
    let text = app.get("/admin/events?limit=1000").await.text;
    for secret in [org_secret, ws_secret, token.as_str(), app.admin_token.as_str()] {
        assert!(!text.contains(secret), "the event log holds a secret or token");
    }
}

async fn events_filter_and_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let wa = app.workspace(&a, "wa", "claude-code", json!({})).await;
    for i in 0..4 {
        app.patch(&format!("/admin/workspaces/{wa}"), json!({"model": format!("m{i}")})).await.assert_status(200);
    }
    let all = walk(&app, "", 1000).await;
    assert_eq!(all.len(), 7);
    // Pages of 2 give the same events in the same order, newest first.
    let paged = walk(&app, "", 2).await;
    assert_eq!(paged, all);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    // A page, then a new event, then the rest: nothing repeated, nothing skipped.
    let first = app.get("/admin/events?limit=3").await.assert_status(200).clone();
    app.patch(&format!("/admin/orgs/{b}"), json!({"name": "b2"})).await.assert_status(200);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = walk_from(&app, "", 3, cursor).await;
    let mut seen: Vec<Value> = first["events"].as_array().unwrap().clone();
    seen.extend(rest);
    assert_eq!(seen, all);

    let of_b = walk(&app, &format!("org_id={b}"), 10).await;
    assert_eq!(kinds(&of_b), ["org.created", "org.updated"]);
    let of_wa = walk(&app, &format!("workspace_id={wa}"), 10).await;
    assert_eq!(of_wa.len(), 5);
    let updates = walk(&app, &format!("org_id={a}&kind=workspace.updated"), 10).await;
    assert_eq!(updates.len(), 4);
    assert!(updates.iter().all(|e| e["detail"]["fields"] == json!(["model"])));
    assert!(walk(&app, "since=2999-01-01", 10).await.is_empty());
    assert_eq!(walk(&app, "since=2000-01-01T00:00:00Z", 10).await.len(), 8);
    assert_eq!(walk(&app, "kind=&org_id=&workspace_id=&since=", 10).await.len(), 8, "empty values are absent");

    app.get("/admin/events?kind=org.exploded").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/events?limit=0").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/events?limit=1001").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/events?cursor=zz").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/events?since=yesterday").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/events?colour=red").await.assert_error(400, "INVALID_QUERY");
}
