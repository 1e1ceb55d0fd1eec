//! The model lists: `GET /openai/v1/models` and `GET /anthropic/v1/models`, the platform
//! models of each protocol in its provider's shape, for a platform-managed workspace's token;
//! and Claude Code's other call to its base URL, the connectivity probe.

use serde_json::{Value, json};

use crate::App;

/// `GET path` on the proxy, with `token` as Anthropic's `x-api-key` when given.
async fn get(app: &App, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = app.http.get(format!("{}{path}", app.base)).header("anthropic-version", "2023-06-01");
    if let Some(token) = token {
        r = r.header("x-api-key", token);
    }
    r.send().await.unwrap()
}

fn ids(list: &Value) -> Vec<&str> {
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn each_route_lists_the_platform_models_the_token_may_use() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let r = get(&app, "/anthropic/v1/models", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let anthropic = [
        "platform/ok",
        "platform/cut",
        "platform/slow",
        "platform/overloaded",
        "platform/nousage",
        "platform/nofinal",
        "platform/streams",
    ];
    assert_eq!(ids(&list), anthropic);
    assert_eq!(
        list["data"][0],
        json!({"type": "model", "id": "platform/ok", "display_name": "platform/ok", "created_at": "1970-01-01T00:00:00Z"})
    );
    assert_eq!(
        (&list["has_more"], &list["first_id"], &list["last_id"]),
        (&json!(false), &json!("platform/ok"), &json!("platform/streams"))
    );

    let list: Value = get(&app, "/openai/v1/models", Some(&token)).await.json().await.unwrap();
    assert_eq!(list, json!({"object": "list", "data": []}), "a claude-code token may use no OpenAI model");
    let r = get(&app, "/openai/v1/models/platform/gpt", Some(&token)).await;
    assert_eq!(r.status(), 404, "nor see one");

    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let list: Value = get(&app, "/anthropic/v1/models", Some(&token)).await.json().await.unwrap();
    assert_eq!(ids(&list), Vec::<&str>::new(), "a codex token may use no Anthropic model");
    let list: Value = get(&app, "/openai/v1/models", Some(&token)).await.json().await.unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(
        ids(&list),
        [
            "platform/gpt",
            "platform/gpt-cut",
            "platform/gpt-slow",
            "platform/gpt-failed",
            "platform/gpt-nousage",
            "platform/gpt-streams"
        ]
    );
    assert_eq!(list["data"][0], json!({"id": "platform/gpt", "object": "model", "created": 0, "owned_by": "tollgate"}));

    let one: Value = get(&app, "/openai/v1/models/platform/gpt", Some(&token)).await.json().await.unwrap();
    assert_eq!((&one["id"], &one["object"]), (&json!("platform/gpt"), &json!("model")));
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let one: Value = get(&app, "/anthropic/v1/models/platform/ok", Some(&token)).await.json().await.unwrap();
    assert_eq!((&one["id"], &one["type"]), (&json!("platform/ok"), &json!("model")));
    let r = get(&app, "/anthropic/v1/models/platform/gpt", Some(&token)).await;
    assert_eq!(r.status(), 404, "an OpenAI model is not on the Anthropic route");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");

    assert!(app.upstream.requests().is_empty(), "answered by the proxy itself");
    assert_eq!(app.usage().await.requests, 0, "a model list is not a metered request");
}

#[tokio::test]
async fn lists_need_a_workspace_token_and_answer_in_the_providers_shape() {
    let app = App::new(1_000_000).await;
    let (_, byok) = app.workspace("claude-code", "MiniMax-M2.7").await;
    let r = get(&app, "/anthropic/v1/models", None).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!((&v["type"], &v["error"]["type"]), (&json!("error"), &json!("authentication_error")));
    let r = get(&app, "/openai/v1/models", Some("tg_ws_0000000000000000000000000000000000000000000")).await;
    assert_eq!(r.status(), 401, "an unknown token");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key", "OpenAI's shape: {v}");
    let r = get(&app, "/openai/v1/models", Some(&byok)).await;
    assert_eq!(r.status(), 403, "a BYOK workspace does not use the platform's models");
}

#[tokio::test]
async fn claude_codes_connectivity_probe_is_answered() {
    let app = App::new(1_000_000).await;
    let url = format!("{}/anthropic/api/hello", app.base);
    let head = app.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200, "Claude Code sends HEAD {{base}}/api/hello at start");
    let get = get(&app, "/anthropic/api/hello", None).await;
    assert_eq!(get.status(), 200);
    assert!(app.upstream.requests().is_empty());
    assert_eq!(app.usage().await.requests, 0);
}
