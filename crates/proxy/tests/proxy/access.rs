//! Model access (DESIGN.md section 14): a workspace's token buys only the platform models of
//! its runtime's protocol, on that protocol's routes; anything else is a 403 in the route's
//! provider shape naming the model, and nothing reaches the upstream or the credit.

use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, App, chat, messages, start_server};

/// Posts `body` to `path` with `token` and returns the status and JSON body.
async fn post(app: &App, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app.post(path, token, body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Asserts `body` is OpenAI's 403 shape naming `model`.
fn assert_openai_refusal(status: u16, body: &Value, model: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(body["error"]["code"], "permission_denied", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(model), "the message names the model: {body}");
}

/// Asserts `body` is Anthropic's 403 shape naming `model`.
fn assert_anthropic_refusal(status: u16, body: &Value, model: &str) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(model), "the message names the model: {body}");
}

#[tokio::test]
async fn a_claude_code_token_does_not_buy_gpt_on_the_openai_routes() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("claude-code", "platform/ok").await;
    let before = app.credit().await;

    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", false, None)).await;
    assert_openai_refusal(status, &body, "platform/gpt");
    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", true, None)).await;
    assert_openai_refusal(status, &body, "platform/gpt");
    let responses = json!({"model": "platform/gpt", "input": "hello"});
    let (status, body) = post(&app, "/openai/v1/responses", &token, responses).await;
    assert_openai_refusal(status, &body, "platform/gpt");

    assert!(app.upstream.requests().is_empty(), "a refused request never reaches the upstream");
    assert_eq!(app.credit().await, before, "a refused request reserves nothing");

    // The same token on its own protocol's route is served.
    let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/ok", false, 16)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_codex_token_does_not_buy_anthropic_models_on_the_anthropic_routes() {
    let app = App::new(1_000_000).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let before = app.credit().await;

    let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/ok", false, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");
    let (status, body) =
        post(&app, "/anthropic/v1/messages?beta=true", &token, messages("platform/ok", true, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");
    let (status, body) =
        post(&app, "/anthropic/v1/messages/count_tokens", &token, messages("platform/ok", false, 16)).await;
    assert_anthropic_refusal(status, &body, "platform/ok");

    assert!(app.upstream.requests().is_empty(), "a refused request never reaches the upstream");
    assert_eq!(app.credit().await, before, "a refused request reserves nothing");

    let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/gpt", false, None)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_model_the_route_does_not_serve_is_still_404_for_either_runtime() {
    let app = App::new(1_000_000).await;
    for (runtime, model) in [("claude-code", "platform/ok"), ("codex", "platform/gpt")] {
        let (_, token) = app.workspace(runtime, model).await;
        let (status, body) = post(&app, "/anthropic/v1/messages", &token, messages("platform/gpt", false, 16)).await;
        assert_eq!(status, 404, "{runtime}: {body}");
        let (status, body) = post(&app, "/openai/v1/chat/completions", &token, chat("platform/ok", false, None)).await;
        assert_eq!(status, 404, "{runtime}: {body}");
    }
    assert!(app.upstream.requests().is_empty());
}

/// `PATCH /admin/workspaces/{ws}` on `base` with `body`: (status, body).
async fn patch(app: &App, base: &str, ws: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .patch(format!("{base}/admin/workspaces/{ws}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Sends a Messages request for `model` to `base`; its status and body.
async fn send(app: &App, base: &str, token: &str, model: &str) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .json(&messages(model, false, 16))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allowed_models_set_through_the_api_narrows_at_once_and_null_removes_it() {
    let app = App::new(1_000_000).await;
    let (ws, token) = app.workspace("claude-code", "platform/ok").await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    let ws = ws.to_string();
    assert_eq!(send(&app, &base, &token, "platform/ok").await.0, 200, "the cached authorisation predates the change");

    let (status, body) = patch(&app, &base, &ws, json!({"limits": {"allowed_models": ["platform/slow"]}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["allowed_models"], json!(["platform/slow"]), "returned with the object");
    let (status, body) = send(&app, &base, &token, "platform/ok").await;
    assert_anthropic_refusal(status, &body, "platform/ok");
    assert!(body["error"]["message"].as_str().unwrap().contains("allowed_models"), "{body}");
    let list: Value = app
        .http
        .get(format!("{base}/anthropic/v1/models"))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "the list shows only the allowed model: {list}");
    assert_eq!(list["data"][0]["id"], "platform/slow");

    // Invalid lists are 400s and change nothing.
    for bad in [json!(["platform/gpt"]), json!(["sonnet"]), json!(["platform/ok", "platform/ok"]), json!("platform/ok")]
    {
        let (status, body) = patch(&app, &base, &ws, json!({"limits": {"allowed_models": bad}})).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = patch(&app, &base, &ws, json!({"limits": {"allowed_modelz": []}})).await;
    assert_eq!(status, 400, "an unknown limit is refused: {body}");
    assert_eq!(send(&app, &base, &token, "platform/ok").await.0, 403, "still narrowed");

    let (status, body) = patch(&app, &base, &ws, json!({"limits": {"allowed_models": null}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["allowed_models"], json!(null));
    assert_eq!(send(&app, &base, &token, "platform/ok").await.0, 200, "null removes the narrowing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allowed_models_given_at_creation_is_validated_and_returned() {
    let app = App::new(1_000_000).await;
    let (_proxy, base) = start_server(app.store.clone(), &app.upstream.url()).await;
    let create = |name: &str, allowed: Value| {
        app.http.post(format!("{base}/admin/workspaces")).bearer_auth(ADMIN_TOKEN).json(&json!({
            "org_id": app.org.to_string(), "name": name, "runtime": "codex", "limits": {"allowed_models": allowed}
        }))
    };
    let r = create("narrow", json!(["platform/gpt-slow"])).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let ws: Value = r.json().await.unwrap();
    assert_eq!(ws["limits"]["allowed_models"], json!(["platform/gpt-slow"]));
    let stored = app.store.get_workspace(&ws["id"].as_str().unwrap().parse().unwrap()).await.unwrap();
    assert_eq!(stored.limits.allowed_models, Some(vec!["platform/gpt-slow".to_owned()]));

    let r = create("wrong", json!(["platform/ok"])).send().await.unwrap();
    assert_eq!(r.status(), 400, "an Anthropic model for a codex workspace");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_MODEL", "{body}");
}
