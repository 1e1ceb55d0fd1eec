//! Every admin JSON body is an object: an array (which serde would read as positional
//! fields), a string, a number or `null` is `400 INVALID_JSON` and changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Auth, Backend, spawn_app};

both_backends!(non_object_bodies_are_refused_and_change_nothing);

async fn non_object_bodies_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("acme").await;
    let ws =
        app.workspace(&org, "agent-1", "claude-code", json!({"model": "MiniMax-M2.7", "billing_mode": "byok"})).await;
    app.secret("orgs", &org, "MINIMAX_API_KEY", "sk-org-value").await;
    let provisioned = app.provision(&ws, None).await.assert_status(200).clone();
    let token = provisioned["token"].as_str().unwrap().to_owned();

    let snapshot = || async {
        (
            app.get("/admin/orgs").await.assert_status(200).clone(),
            app.get("/admin/workspaces").await.assert_status(200).clone(),
            app.get(&format!("/admin/orgs/{org}/secrets")).await.assert_status(200).clone(),
            app.get(&format!("/admin/workspaces/{ws}/secrets")).await.assert_status(200).clone(),
        )
    };
    let before = snapshot().await;

    // Each route with an array that spells its fields positionally.
    let routes = [
        (Method::POST, "/admin/orgs".to_owned(), json!(["arr-org", "byok", 777])),
        (Method::PATCH, format!("/admin/orgs/{org}"), json!(["renamed", "platform_managed"])),
        (Method::POST, format!("/admin/orgs/{org}/credit"), json!([5_000_000, "array credit"])),
        (Method::PUT, format!("/admin/orgs/{org}/secrets/OPENAI_API_KEY"), json!(["sk-array-value"])),
        (Method::POST, "/admin/workspaces".to_owned(), json!([org, "arr-ws", "codex"])),
        (Method::PATCH, format!("/admin/workspaces/{ws}"), json!(["renamed", "codex", null, "disabled"])),
        (Method::PUT, format!("/admin/workspaces/{ws}/secrets/OPENAI_API_KEY"), json!(["sk-array-value"])),
        (Method::POST, format!("/admin/workspaces/{ws}/provision"), json!(["MiniMax-M2.7"])),
    ];
    for (method, path, array) in routes {
        for body in [array, json!([]), json!(null), json!("a string"), json!(7), json!(true)] {
            let r = app.send(method.clone(), &path, Auth::Admin, Some(body.clone())).await;
            r.assert_error(400, "INVALID_JSON");
            assert!(r.text.contains("must be a JSON object"), "{method} {path} {body}: {}", r.text);
        }
    }

    assert_eq!(snapshot().await, before, "nothing changed");
    // The provision route issued no new token: the one from before still pulls.
    app.pull(&ws, &token).await.assert_status(200);
}
