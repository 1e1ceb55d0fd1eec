//! `GET /admin/usage`: ledger totals by day, model or workspace.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Auth, Backend, spawn_app};

both_backends!(usage_groups_and_filters_the_ledger, usage_rejects_bad_queries);

async fn usage_groups_and_filters_the_ledger(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/admin/usage").await.assert_status(200), &json!({"rows": []}));
    // The proxy writes the ledger; here the rows are inserted directly.
    let at = 1_795_089_600_000_i64; // 2026-11-19T12:00:00Z
    // r3 is a stream that ended without its usage, charged on an estimate.
    for (id, org, ws, model, status, cost, when, estimated) in [
        ("r1", "o1", "w1", "platform/opus", "200", 100, at, "FALSE"),
        ("r2", "o1", "w1", "platform/sonnet", "529", 0, at + 1, "FALSE"),
        ("r3", "o1", "w2", "platform/opus", "200", 7, at + 86_400_000, "TRUE"),
        ("r4", "o2", "w9", "platform/opus", "200", 5000, at, "FALSE"),
    ] {
        app.db
            .execute(
                &format!(
                    "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, \
                     cost_micros, input_tokens, output_tokens, created_at, estimated, provider_cost_micros, cache_write_tokens, cache_write_1h_tokens) \
                     VALUES ($1, $2, $3, $4, 'settled', {status}, 0, {cost}, 10, 20, {when}, {estimated}, {cost} * 4 / 5, 3, 1)"
                ),
                &[id, org, ws, model],
            )
            .await;
    }
    let by_day = app.get("/admin/usage?org_id=o1").await;
    assert_eq!(
        by_day.assert_status(200),
        &json!({"rows": [
            // Each row's provider price is four fifths of its charge (a 25% markup): the margin.
            {"key": "2026-11-19", "requests": 2, "errors": 1, "input_tokens": 20, "output_tokens": 40, "cache_write_tokens": 6, "cache_write_1h_tokens": 2, "cache_read_tokens": 0, "provider_cost_micros": 80, "cost_micros": 100, "margin_micros": 20, "estimated_requests": 0},
            {"key": "2026-11-20", "requests": 1, "errors": 0, "input_tokens": 10, "output_tokens": 20, "cache_write_tokens": 3, "cache_write_1h_tokens": 1, "cache_read_tokens": 0, "provider_cost_micros": 5, "cost_micros": 7, "margin_micros": 2, "estimated_requests": 1},
        ]})
    );
    let by_model = app.get("/admin/usage?group_by=model").await;
    let rows = by_model.assert_status(200)["rows"].as_array().unwrap().clone();
    assert_eq!(
        rows.iter().map(|r| (r["key"].as_str().unwrap(), r["requests"].as_i64().unwrap())).collect::<Vec<_>>(),
        [("platform/opus", 3), ("platform/sonnet", 1)]
    );
    let by_ws = app.get("/admin/usage?group_by=workspace&org_id=o1&since=2026-11-20").await;
    let rows = by_ws.assert_status(200)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.iter().map(|r| r["key"].as_str().unwrap()).collect::<Vec<_>>(), ["w2"]);
    let window = app.get("/admin/usage?since=2026-11-19T00:00:00Z&until=2026-11-20&workspace_id=w9").await;
    assert_eq!(window.assert_status(200)["rows"][0]["cost_micros"], 5000);
}

async fn usage_rejects_bad_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    app.get("/admin/usage?group_by=week").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/usage?since=yesterday").await.assert_error(400, "INVALID_QUERY");
    app.get("/admin/usage?colour=blue").await.assert_error(400, "INVALID_QUERY");
    app.send(Method::GET, "/admin/usage", Auth::None, None).await.assert_error(401, "UNAUTHORIZED");
}
