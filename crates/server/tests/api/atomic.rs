//! A PATCH is atomic: concurrent PATCHes of different fields of one org or workspace all
//! land, through one instance or two over one database (DESIGN.md section 18).

use serde_json::json;

use crate::support::{AdminToken, Backend, Options, TestApp, spawn_app, spawn_on};

/// How many rounds each test runs.
const ROUNDS: usize = 200;

/// Runs [`ROUNDS`] rounds of concurrent PATCHes of different fields, the workspace's and the
/// org's each sent half to `a` and half to `b`, and returns how many changes were lost
/// (workspace, org). Every PATCH must answer 200.
async fn lost_updates(a: &TestApp, b: &TestApp) -> (usize, usize) {
    let org = a.org("patched").await;
    let ws = a.workspace(&org, "patched-ws", "claude-code", json!({})).await;
    let (ws_path, org_path) = (format!("/admin/workspaces/{ws}"), format!("/admin/orgs/{org}"));
    let modes = ["byok", "platform_managed", "disabled"];
    let (mut ws_lost, mut org_lost) = (0, 0);
    for round in 0..ROUNDS {
        // Known starting values, different from the ones written below.
        let reset = a.patch(&ws_path, json!({"model": null, "billing_mode": null})).await;
        reset.assert_status(200);
        let reset = a.patch(&org_path, json!({"name": format!("base-{round}"), "default_billing_mode": null})).await;
        reset.assert_status(200);

        let (model, mode, name) = (format!("model-{round}"), modes[round % modes.len()], format!("org-{round}"));
        let (r1, r2, r3, r4) = tokio::join!(
            a.patch(&ws_path, json!({"model": model})),
            b.patch(&ws_path, json!({"billing_mode": mode})),
            b.patch(&org_path, json!({"name": name})),
            a.patch(&org_path, json!({"default_billing_mode": mode})),
        );
        for r in [&r1, &r2, &r3, &r4] {
            r.assert_status(200);
        }

        let got = a.get(&ws_path).await.assert_status(200).clone();
        ws_lost += usize::from(got["model"] != model.as_str()) + usize::from(got["billing_mode"] != mode);
        assert_eq!(got["name"], "patched-ws", "a field no PATCH named is untouched");
        assert_eq!(got["runtime"], "claude-code", "a field no PATCH named is untouched");
        let got = b.get(&org_path).await.assert_status(200).clone();
        org_lost += usize::from(got["name"] != name.as_str()) + usize::from(got["default_billing_mode"] != mode);
    }
    (ws_lost, org_lost)
}

async fn one_instance(backend: Backend) {
    let app = spawn_app(backend).await;
    let lost = lost_updates(&app, &app).await;
    assert_eq!(lost, (0, 0), "changes lost in {ROUNDS} rounds (workspace, org) on {backend:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_all_land_sqlite() {
    one_instance(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_all_land_postgres() {
    one_instance(Backend::Postgres).await;
}

/// Two instances over one Postgres database, each PATCHing its own field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_all_land_across_two_instances() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_on(&a.db, Options { admin_token: AdminToken::Existing(a.admin_token.clone()), ..Options::default() })
        .await;
    let lost = lost_updates(&a, &b).await;
    assert_eq!(lost, (0, 0), "changes lost in {ROUNDS} rounds (workspace, org) across two instances");
}
