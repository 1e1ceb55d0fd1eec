//! The dashboard at `/ui/` (DESIGN.md section 17): its security over plain HTTP (sign-in,
//! session cookie, CSRF, CSP, escaping) and a walk through it in a real headless Chromium.

mod browser;
mod http;

use serde_json::json;
use tollgate_testkit::server_app::TestApp;

/// A workspace name that would run script if it were not escaped.
pub(crate) const XSS_NAME: &str = "<script>alert(1)</script>";

/// What [`seed`] created.
pub(crate) struct Seeded {
    pub(crate) org: String,
    pub(crate) platform_ws: String,
    pub(crate) byok_ws: String,
    pub(crate) xss_ws: String,
    /// The demo's workspace with the week of history and the drain.
    pub(crate) drain_ws: String,
}

/// The real `serve --demo` org (its week of usage through the ledger path, the drain, the
/// BYOK workspace missing its credential), plus a platform workspace with seven known ledger
/// rows (`req-0`, the newest, to `req-6`, one a day), one with a hostile name, and a second org.
pub(crate) async fn seed(app: &TestApp) -> Seeded {
    let registry = tollgate_policy::Registry::embedded().unwrap();
    let demo =
        tollgate_server::demo::seed(app.store.as_ref(), &registry, tollgate_store::Timestamp::now()).await.unwrap();
    assert!(demo.history.is_some(), "a new demo org gets its history");
    let org = demo.org.id.to_string();
    let id_of = |name: &str| demo.workspaces.iter().find(|w| w.name == name).unwrap().id.to_string();
    app.patch(
        &format!("/admin/orgs/{org}"),
        json!({"limits": {"budget_micros_per_day": 40_000_000, "budget_micros_per_month": 600_000_000}}),
    )
    .await
    .assert_status(200);
    let platform_ws = app
        .workspace(
            &org,
            "coder",
            "claude-code",
            json!({"model": "platform/sonnet", "billing_mode": "platform_managed"}),
        )
        .await;
    let xss_ws = app.workspace(&org, XSS_NAME, "claude-code", json!({"model": "platform/sonnet"})).await;
    app.org("other").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let now = i64::try_from(now).unwrap();
    for day in 0..7_i64 {
        let when = now - day * 86_400_000 - 60_000;
        let cost = 150_000 * (day + 1);
        app.db
            .execute(
                &format!(
                    "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, \
                     cost_micros, input_tokens, output_tokens, created_at, estimated, provider_cost_micros, cache_write_tokens, cache_write_1h_tokens) \
                     VALUES ($1, $2, $3, 'platform/sonnet', 'settled', 200, 0, {cost}, 1000, 200, {when}, FALSE, {cost}, 0, 0)"
                ),
                &[&format!("req-{day}"), &org, &platform_ws],
            )
            .await;
    }
    Seeded {
        byok_ws: id_of("byok-missing-credential"),
        drain_ws: id_of(tollgate_server::demo::DRAIN_WORKSPACE),
        org,
        platform_ws,
        xss_ws,
    }
}
