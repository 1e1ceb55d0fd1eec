//! `/admin/orgs`: shapes, updates, credit, and their errors.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, spawn_app};

fn assert_rfc3339(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("a time string, got {v}"));
    // 2026-11-22T15:31:00.000Z
    assert_eq!(s.len(), 24, "{s}");
    assert!(s.ends_with('Z') && &s[4..5] == "-" && &s[10..11] == "T" && &s[19..20] == ".", "{s}");
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

both_backends!(org_crud_and_shape, org_errors, credit_adjustments);

async fn org_crud_and_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.create_org(json!({"name": "acme", "default_billing_mode": "byok", "credit_micros": 5_000_000})).await;
    assert_eq!(
        keys(&org),
        [
            "alarms",
            "alert_webhook_url",
            "created_at",
            "credit_micros",
            "default_billing_mode",
            "id",
            "limits",
            "markup_percent",
            "name",
            "suspended",
            "updated_at"
        ]
    );
    assert_eq!(org["markup_percent"], 0, "no markup by default");
    assert_eq!(org["alert_webhook_url"], serde_json::Value::Null, "no webhook by default");
    assert_eq!(org["suspended"], Value::Null);
    assert_eq!(org["name"], "acme");
    assert_eq!(org["default_billing_mode"], "byok");
    assert_eq!(org["credit_micros"], 5_000_000);
    assert_rfc3339(&org["created_at"]);
    assert_rfc3339(&org["updated_at"]);
    let id = org["id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID");

    let minimal = app.create_org(json!({"name": "beta"})).await;
    assert_eq!(minimal["default_billing_mode"], Value::Null);
    assert_eq!(minimal["credit_micros"], 0);

    let got = app.get(&format!("/admin/orgs/{id}")).await;
    assert_eq!(got.assert_status(200), &org);

    let list = app.get("/admin/orgs").await;
    let names: Vec<&str> =
        list.assert_status(200).as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "beta"]);

    let patched = app.patch(&format!("/admin/orgs/{id}"), json!({"name": "acme-2"})).await;
    let patched = patched.assert_status(200);
    assert_eq!(patched["name"], "acme-2");
    assert_eq!(patched["default_billing_mode"], "byok", "absent fields are left alone");
    let patched = app.patch(&format!("/admin/orgs/{id}"), json!({"default_billing_mode": "disabled"})).await;
    assert_eq!(patched.assert_status(200)["default_billing_mode"], "disabled");
    let cleared = app.patch(&format!("/admin/orgs/{id}"), json!({"default_billing_mode": null})).await;
    let cleared = cleared.assert_status(200);
    assert_eq!(cleared["default_billing_mode"], Value::Null, "null clears");
    assert_eq!(cleared["name"], "acme-2");
    let same = app.patch(&format!("/admin/orgs/{id}"), json!({})).await;
    assert_eq!(same.assert_status(200)["name"], "acme-2");
    // A price plan: set, returned, kept by other changes; the bounds are -99 and 1000.
    for percent in [25, -99, 1000, 0] {
        let priced = app.patch(&format!("/admin/orgs/{id}"), json!({"markup_percent": percent})).await;
        assert_eq!(priced.assert_status(200)["markup_percent"], percent);
    }
    app.patch(&format!("/admin/orgs/{id}"), json!({"markup_percent": 15})).await.assert_status(200);
    let renamed = app.patch(&format!("/admin/orgs/{id}"), json!({"name": "acme-3"})).await;
    assert_eq!(renamed.assert_status(200)["markup_percent"], 15);
    assert_eq!(app.get(&format!("/admin/orgs/{id}")).await.assert_status(200)["markup_percent"], 15);
}

async fn org_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.org("acme").await;

    app.post("/admin/orgs", json!({"name": "acme"})).await.assert_error(409, "CONFLICT");
    app.post("/admin/orgs", json!({"name": ""})).await.assert_error(400, "INVALID_NAME");
    app.post("/admin/orgs", json!({"name": "   "})).await.assert_error(400, "INVALID_NAME");
    app.post("/admin/orgs", json!({"name": "x".repeat(201)})).await.assert_error(400, "INVALID_NAME");
    app.create_org(json!({"name": "é".repeat(200)})).await;
    app.post("/admin/orgs", json!({"name": "a\nb"})).await.assert_error(400, "INVALID_NAME");
    app.post("/admin/orgs", json!({"name": "a\u{0}b"})).await.assert_error(400, "INVALID_NAME");
    for bad in ["BYOK", "platform", "", "free"] {
        app.post("/admin/orgs", json!({"name": "m", "default_billing_mode": bad}))
            .await
            .assert_error(400, "INVALID_BILLING_MODE");
    }
    app.post("/admin/orgs", json!({"name": "c", "credit_micros": -1})).await.assert_error(400, "INVALID_CREDIT");
    app.post("/admin/orgs", json!({"name": "c", "credit_micros": 1_000_000_000_000_001_i64}))
        .await
        .assert_error(400, "INVALID_CREDIT");
    app.post("/admin/orgs", json!({"name": "c", "credit_micros": "5"})).await.assert_error(400, "INVALID_JSON");
    app.post("/admin/orgs", json!({"name": "c", "colour": "red"})).await.assert_error(400, "INVALID_JSON");
    app.post("/admin/orgs", json!({"default_billing_mode": "byok"})).await.assert_error(400, "INVALID_JSON");

    let other = app.org("other").await;
    app.patch(&format!("/admin/orgs/{other}"), json!({"name": "acme"})).await.assert_error(409, "CONFLICT");
    app.patch(&format!("/admin/orgs/{id}"), json!({"default_billing_mode": "nope"}))
        .await
        .assert_error(400, "INVALID_BILLING_MODE");
    app.patch(&format!("/admin/orgs/{id}"), json!({"name": ""})).await.assert_error(400, "INVALID_NAME");
    for bad in [json!(-100), json!(1001), json!(2.5), json!(-1e9)] {
        app.patch(&format!("/admin/orgs/{id}"), json!({"markup_percent": bad}))
            .await
            .assert_error(400, "INVALID_MARKUP");
    }
    app.patch(&format!("/admin/orgs/{id}"), json!({"markup_percent": "5"})).await.assert_error(400, "INVALID_JSON");
    app.patch(&format!("/admin/orgs/{id}"), json!({"credit_micros": 5})).await.assert_error(400, "INVALID_JSON");

    let unknown = "00000000-0000-0000-0000-000000000000";
    app.get(&format!("/admin/orgs/{unknown}")).await.assert_error(404, "NOT_FOUND");
    app.patch(&format!("/admin/orgs/{unknown}"), json!({"name": "z"})).await.assert_error(404, "NOT_FOUND");
    app.post(&format!("/admin/orgs/{unknown}/credit"), json!({"delta_micros": 1, "reason": "r"}))
        .await
        .assert_error(404, "NOT_FOUND");
    // Ids no store could hold are not found, never a database error.
    for weird in ["%00", "a%0Ab", "%FF%FE", &"x".repeat(300)] {
        app.get(&format!("/admin/orgs/{weird}")).await.assert_error(404, "NOT_FOUND");
    }
}

async fn credit_adjustments(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = app.create_org(json!({"name": "acme", "credit_micros": 1000})).await["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/orgs/{id}/credit");
    let r = app.post(&path, json!({"delta_micros": 500, "reason": "top-up"})).await;
    assert_eq!(r.assert_status(200), &json!({"credit_micros": 1500}));
    let r = app.post(&path, json!({"delta_micros": -2000, "reason": "refund"})).await;
    r.assert_error(409, "INSUFFICIENT_CREDIT");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("1500"), "names the balance: {}", r.text);
    let r = app.post(&path, json!({"delta_micros": -2000, "reason": "refund", "allow_negative": true})).await;
    assert_eq!(r.assert_status(200), &json!({"credit_micros": -500}));
    let max = 1_000_000_000_000_000_i64;
    app.post(&path, json!({"delta_micros": max, "reason": "max"})).await.assert_status(200);
    app.post(&path, json!({"delta_micros": 501, "reason": "beyond"})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": -max, "reason": "max"})).await.assert_error(409, "INSUFFICIENT_CREDIT");
    app.post(&path, json!({"delta_micros": -max, "reason": "max", "allow_negative": true})).await.assert_status(200);
    app.post(&path, json!({"delta_micros": max + 1, "reason": "too much"})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": -max - 1, "reason": "too much"})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": i64::MIN, "reason": "min"})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": 1, "reason": ""})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": 1, "reason": "  "})).await.assert_error(400, "INVALID_CREDIT");
    app.post(&path, json!({"delta_micros": 1})).await.assert_error(400, "INVALID_JSON");
    app.post(&path, json!({"delta_micros": 1.5, "reason": "r"})).await.assert_error(400, "INVALID_JSON");
    app.post(&path, json!({"delta_micros": 1e30, "reason": "r"})).await.assert_error(400, "INVALID_JSON");
    let org = app.get(&format!("/admin/orgs/{id}")).await;
    assert_eq!(org.assert_status(200)["credit_micros"], -500, "failed adjustments change nothing");
}
