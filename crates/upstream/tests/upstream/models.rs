//! The model lists, in the shape of the provider the request looks like.

use serde_json::{Value, json};
use tollgate_upstream::{ANTHROPIC_MODELS, OPENAI_MODELS, Upstream};

use crate::{KEY, client};

/// Sends `request` (a `GET`); the JSON it answers.
async fn get_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn anthropic_requests_get_anthropics_list() {
    let upstream = Upstream::start().await.unwrap();
    let response = client()
        .get(format!("{}/v1/models?limit=1000", upstream.url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let data: Vec<Value> = ANTHROPIC_MODELS
        .iter()
        .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
        .collect();
    assert_eq!(
        body,
        json!({"data": data, "has_more": false, "first_id": ANTHROPIC_MODELS[0], "last_id": ANTHROPIC_MODELS[1]})
    );
    let one: Value =
        get_json(client().get(format!("{}/v1/models/claude-anything", upstream.url())).header("x-api-key", KEY)).await;
    assert_eq!(one["id"], "claude-anything");
    assert_eq!(one["type"], "model");
    let recorded = upstream.requests();
    assert_eq!((recorded[0].method.as_str(), recorded[0].path.as_str()), ("GET", "/v1/models"));
    assert_eq!(recorded[0].query.as_deref(), Some("limit=1000"));
}

#[tokio::test]
async fn openai_requests_get_openais_list() {
    let upstream = Upstream::start().await.unwrap();
    let body: Value = get_json(client().get(format!("{}/v1/models", upstream.url())).bearer_auth("sk-openai")).await;
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, OPENAI_MODELS);
    assert_eq!(
        body["data"][0],
        json!({"id": OPENAI_MODELS[0], "object": "model", "created": 1_735_689_600, "owned_by": "tollgate-upstream"})
    );
    let one: Value =
        get_json(client().get(format!("{}/v1/models/gpt-x", upstream.url())).bearer_auth("sk-openai")).await;
    assert_eq!((&one["id"], &one["object"]), (&json!("gpt-x"), &json!("model")));
}

#[tokio::test]
async fn model_lists_need_credentials_and_get() {
    let upstream = Upstream::start().await.unwrap();
    let url = format!("{}/v1/models", upstream.url());
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"), "OpenAI's shape: {body}");
    let response = client().get(&url).header("anthropic-version", "2023-06-01").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "Anthropic's shape: {body}");
    let response = client().post(&url).bearer_auth("k").send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(upstream.requests().len(), 3, "every request is recorded");
}
