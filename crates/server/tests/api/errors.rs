//! Bad input is answered with a stable code and never a 500: malformed JSON, wrong shapes,
//! oversized bodies, unknown routes and methods.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Auth, Backend, spawn_app};

both_backends!(bad_json_is_invalid_json, bodies_over_the_limit_are_413);

async fn bad_json_is_invalid_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws = app.workspace(&org, "w", "claude-code", json!({})).await;
    let routes = [
        (Method::POST, "/admin/orgs".to_owned()),
        (Method::PATCH, format!("/admin/orgs/{org}")),
        (Method::POST, format!("/admin/orgs/{org}/credit")),
        (Method::PUT, format!("/admin/orgs/{org}/secrets/KEY")),
        (Method::POST, "/admin/workspaces".to_owned()),
        (Method::PATCH, format!("/admin/workspaces/{ws}")),
        (Method::PUT, format!("/admin/workspaces/{ws}/secrets/KEY")),
        (Method::POST, format!("/admin/workspaces/{ws}/provision")),
    ];
    let bodies: [&[u8]; 8] = [
        b"{",
        b"{\"name\": }",
        b"not json",
        b"[1, 2]",
        b"\"sk-a-string-body\"",
        b"{\"value\": \"x\"} trailing",
        b"\xff\xfe",
        b"{\"unknown_field\": \"sk-secret-in-unknown\"}",
    ];
    for (method, path) in &routes {
        for body in bodies {
            let r = app.send_raw(method.clone(), path, Auth::Admin, Some(body.to_vec())).await;
            r.assert_error(400, "INVALID_JSON");
            assert!(!r.text.contains("sk-"), "{method} {path}: the body is never echoed: {}", r.text);
        }
    }
    // Required bodies: empty is INVALID_JSON (provision alone accepts an empty body).
    for (method, path) in routes.iter().filter(|(_, p)| !p.ends_with("/provision")) {
        app.send_raw(method.clone(), path, Auth::Admin, Some(Vec::new())).await.assert_error(400, "INVALID_JSON");
        app.send_raw(method.clone(), path, Auth::Admin, None).await.assert_error(400, "INVALID_JSON");
    }
    // Wrong types never echo a string value.
    let r =
        app.post(&format!("/admin/orgs/{org}/credit"), json!({"delta_micros": "sk-wrong-place", "reason": "r"})).await;
    r.assert_error(400, "INVALID_JSON");
    assert!(!r.text.contains("sk-wrong-place"), "{}", r.text);
    let r = app.post("/admin/orgs", json!({"name": ["sk-in-an-array"]})).await;
    r.assert_error(400, "INVALID_JSON");
    assert!(!r.text.contains("sk-in-an-array"), "{}", r.text);
    let r = app.post("/admin/orgs", json!({"name": "n", "nme": 1})).await;
    r.assert_error(400, "INVALID_JSON");
    assert!(r.text.contains("nme"), "names the unknown field: {}", r.text);
    let r = app.post("/admin/workspaces", json!({"org_id": org, "name": "x"})).await;
    assert!(r.text.contains("runtime"), "names the missing field: {}", r.text);

    // Unknown routes and methods answer the JSON error shape too.
    app.get("/admin/nothing-here").await.assert_error(404, "NOT_FOUND");
    app.send(Method::GET, "/nope", Auth::None, None).await.assert_error(404, "NOT_FOUND");
    app.send(Method::DELETE, "/admin/orgs", Auth::Admin, None).await.assert_error(405, "METHOD_NOT_ALLOWED");
    app.send(Method::POST, "/healthz", Auth::None, None).await.assert_error(405, "METHOD_NOT_ALLOWED");
}

async fn bodies_over_the_limit_are_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let limit = tollgate_server::MAX_BODY_BYTES;
    assert_eq!(limit, 512 * 1024);
    // A valid JSON object just over the limit.
    let big = format!("{{\"value\": \"{}\"}}", "v".repeat(limit));
    assert!(big.len() > limit);
    for path in [format!("/admin/orgs/{org}/secrets/BIG"), "/admin/orgs".to_owned()] {
        let method = if path.ends_with("BIG") { Method::PUT } else { Method::POST };
        let r = app.send_raw(method, &path, Auth::Admin, Some(big.clone().into_bytes())).await;
        r.assert_error(413, "PAYLOAD_TOO_LARGE");
    }
    // Under the limit but over the value limit: the value's own error.
    let under = format!("{{\"value\": \"{}\"}}", "v".repeat(limit - 100));
    let r = app
        .send_raw(Method::PUT, &format!("/admin/orgs/{org}/secrets/BIG"), Auth::Admin, Some(under.into_bytes()))
        .await;
    r.assert_error(400, "SECRET_VALUE_TOO_LARGE");
    // Nothing was stored, and the server still answers.
    let list = app.get(&format!("/admin/orgs/{org}/secrets")).await;
    assert_eq!(list.assert_status(200).as_array().unwrap().len(), 0);
    assert_eq!(app.get("/admin/orgs").await.assert_status(200).as_array().unwrap().len(), 1);
}
