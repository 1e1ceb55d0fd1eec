//! Every refusal under `/anthropic` and `/openai` is JSON in that provider's error shape:
//! agents' SDKs parse nothing else (issue 13 item 3).

use reqwest::Method;
use serde_json::Value;

use crate::{App, start_server};

/// Which provider's shape an answer must have, and the kind it must name: Anthropic's
/// `error.type`, or OpenAI's `error.code` (its `error.type` is always `invalid_request_error`
/// for these refusals).
#[derive(Clone, Copy)]
enum Shape {
    Anthropic(&'static str),
    Openai(Option<&'static str>),
}

/// Checks that `r` has `status`, `application/json`, and the provider's error shape.
async fn assert_refusal(r: reqwest::Response, status: u16, shape: Shape, what: &str) {
    assert_eq!(r.status().as_u16(), status, "{what}");
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"), "{what}");
    let body: Value = r.json().await.unwrap();
    match shape {
        Shape::Anthropic(kind) => {
            assert_eq!(body["type"], "error", "{what}: {body}");
            assert_eq!(body["error"]["type"], kind, "{what}: {body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
        }
        Shape::Openai(code) => {
            let error = body["error"].as_object().unwrap();
            assert_eq!(error.len(), 4, "{what}: message, type, param, code: {body}");
            assert_eq!(error["type"], "invalid_request_error", "{what}: {body}");
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
            assert_eq!(error["param"], Value::Null, "{what}: {body}");
            assert_eq!(error["code"], code.map_or(Value::Null, Value::from), "{what}: {body}");
        }
    }
}

/// The proxy's routes alone, and the whole server (admin API and proxy on one router, with
/// the server's own fallbacks and body limit): both must answer alike.
async fn bases(app: &App) -> [String; 2] {
    let (_, server) = start_server(app.store.clone(), &app.upstream.url()).await;
    [app.base.clone(), server]
}

/// A raw request to `base` with `token` in `x-api-key` (when given) and `body` as JSON bytes.
fn raw(
    app: &App,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut r = app
        .http
        .request(method, format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(body);
    if let Some(token) = token {
        r = r.header("x-api-key", token);
    }
    r
}

/// A body just over the proxy's limit is 413 in each provider's shape, not axum's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_over_the_limit_is_413_in_the_providers_shape() {
    let app = App::new(1_000_000_000).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex) = app.workspace("codex", "platform/gpt").await;
    let over = tollgate_proxy::MAX_REQUEST_BYTES + 1024;
    let mut body = br#"{"model":"platform/ok","max_tokens":5,"messages":[{"role":"user","content":""#.to_vec();
    body.resize(over, b'a');
    let cases = [
        ("/anthropic/v1/messages", &claude, Shape::Anthropic("request_too_large")),
        ("/openai/v1/chat/completions", &codex, Shape::Openai(Some("request_too_large"))),
        ("/openai/v1/responses", &codex, Shape::Openai(Some("request_too_large"))),
    ];
    for base in bases(&app).await {
        for (path, token, shape) in cases {
            let r = raw(&app, &base, Method::POST, path, Some(token), body.clone()).send().await.unwrap();
            assert_refusal(r, 413, shape, &format!("{base}{path}")).await;
        }
    }
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
}

/// Malformed JSON and a JSON value that is not an object are 400 in each provider's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_json_is_400_in_the_providers_shape() {
    let app = App::new(1_000_000_000).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let (_, codex) = app.workspace("codex", "platform/gpt").await;
    let bodies = [&br#"{"model": "platform/ok", "#[..], b"not json", b"[1, 2]", b""];
    for (base, body) in bases(&app).await.into_iter().flat_map(|b| bodies.map(|body| (b.clone(), body))) {
        let what = format!("{base} {}", String::from_utf8_lossy(body));
        let r = raw(&app, &base, Method::POST, "/anthropic/v1/messages", Some(&claude), body.to_vec())
            .send()
            .await
            .unwrap();
        assert_refusal(r, 400, Shape::Anthropic("invalid_request_error"), &what).await;
        for path in ["/openai/v1/chat/completions", "/openai/v1/responses"] {
            let r = raw(&app, &base, Method::POST, path, Some(&codex), body.to_vec()).send().await.unwrap();
            assert_refusal(r, 400, Shape::Openai(None), &format!("{path} {what}")).await;
        }
    }
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
}

/// A request without any token is 401 in each provider's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_token_is_401_in_the_providers_shape() {
    let app = App::new(1_000_000).await;
    let body = br#"{"model":"platform/ok","max_tokens":5,"messages":[]}"#.to_vec();
    for base in bases(&app).await {
        let r = raw(&app, &base, Method::POST, "/anthropic/v1/messages", None, body.clone()).send().await.unwrap();
        assert_refusal(r, 401, Shape::Anthropic("authentication_error"), "anthropic").await;
        let r = raw(&app, &base, Method::GET, "/anthropic/v1/models", None, Vec::new()).send().await.unwrap();
        assert_refusal(r, 401, Shape::Anthropic("authentication_error"), "anthropic models").await;
        let r = raw(&app, &base, Method::POST, "/openai/v1/chat/completions", None, body.clone()).send().await.unwrap();
        assert_refusal(r, 401, Shape::Openai(Some("invalid_api_key")), "openai").await;
    }
}

/// A path under a provider's prefix that the proxy does not serve is 404, and a served path
/// asked with another method is 405, each in that provider's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_routes_and_wrong_methods_answer_in_the_providers_shape() {
    let app = App::new(1_000_000).await;
    let (_, claude) = app.workspace("claude-code", "platform/ok").await;
    let not_found = [
        (Method::POST, "/anthropic/v1/complete", Shape::Anthropic("not_found_error")),
        (Method::GET, "/anthropic", Shape::Anthropic("not_found_error")),
        (Method::POST, "/openai/v1/embeddings", Shape::Openai(Some("unknown_url"))),
        (Method::GET, "/openai/v2/chat/completions", Shape::Openai(Some("unknown_url"))),
    ];
    let bases = bases(&app).await;
    for base in &bases {
        for (method, path, shape) in not_found.clone() {
            let r = raw(&app, base, method, path, Some(&claude), b"{}".to_vec()).send().await.unwrap();
            assert_refusal(r, 404, shape, &format!("{base}{path}")).await;
        }
    }
    let wrong_method = [
        (Method::GET, "/anthropic/v1/messages", Shape::Anthropic("invalid_request_error")),
        (Method::PUT, "/anthropic/v1/messages/count_tokens", Shape::Anthropic("invalid_request_error")),
        (Method::POST, "/anthropic/v1/models", Shape::Anthropic("invalid_request_error")),
        (Method::GET, "/openai/v1/chat/completions", Shape::Openai(Some("method_not_allowed"))),
        (Method::DELETE, "/openai/v1/responses", Shape::Openai(Some("method_not_allowed"))),
        (Method::POST, "/openai/v1/models/x", Shape::Openai(Some("method_not_allowed"))),
    ];
    for base in &bases {
        for (method, path, shape) in wrong_method.clone() {
            let r = raw(&app, base, method, path, Some(&claude), b"{}".to_vec()).send().await.unwrap();
            assert!(r.headers().contains_key("allow"), "405 names the allowed methods: {base}{path}");
            assert_refusal(r, 405, shape, &format!("{base}{path}")).await;
        }
    }
    assert!(app.upstream.requests().is_empty(), "nothing was forwarded");
}
