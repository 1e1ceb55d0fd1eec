//! The server around the routes: recording, missing credentials, 400/404/405, shutdown, the binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_upstream::{REPLY_WORDS, Upstream};

use crate::{
    KEY, anthropic, anthropic_events, chat_request, client, expected_names, header, names, openai, plain_request, with,
};

#[tokio::test]
async fn the_recorder_keeps_every_request_in_order() {
    let upstream = Upstream::start().await.unwrap();
    let body = plain_request("claude-stub");
    let response = client()
        .post(format!("{}/v1/messages?beta=true", upstream.url()))
        .header("X-Api-Key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("X-Custom", "Mixed Case Value")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chat = chat_request("gpt-stub");
    assert_eq!(openai(&upstream, &chat).await.status(), 200);

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.query.as_deref(), Some("beta=true"));
    assert_eq!(first.body, body);
    assert_eq!(first.header("x-api-key"), Some(KEY));
    assert_eq!(first.header("X-API-KEY"), Some(KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(first.header("x-custom"), Some("Mixed Case Value"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("authorization"), None);
    assert!(first.headers.iter().all(|(name, _)| *name == name.to_lowercase()));
    let second = &requests[1];
    assert_eq!((second.path.as_str(), second.query.as_deref()), ("/v1/chat/completions", None));
    assert_eq!(second.header("Authorization"), Some("Bearer sk-openai-test-key"));
    assert_eq!(second.body, chat);

    upstream.clear();
    assert!(upstream.requests().is_empty());

    // Bodies that are not JSON, empty bodies and unknown paths are recorded too.
    let not_json = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .header("x-api-key", KEY)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let empty = client().post(format!("{}/v1/messages", upstream.url())).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(empty.status(), 400);
    let missing = client().get(format!("{}/v1/files?limit=5", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body, json!("not json"));
    assert_eq!(requests[1].body, Value::Null);
    assert_eq!(requests[2].method, "GET");
    assert_eq!(requests[2].path, "/v1/files");
    assert_eq!(requests[2].query.as_deref(), Some("limit=5"));
}

#[tokio::test]
async fn requests_without_credentials_get_the_providers_401() {
    let upstream = Upstream::start().await.unwrap();
    let response = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .header("anthropic-version", "2023-06-01")
        .json(&plain_request("claude-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(header(&response, "request-id").starts_with("req_"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}})
    );
    let response = client()
        .post(format!("{}/v1/chat/completions", upstream.url()))
        .header("authorization", "")
        .json(&chat_request("gpt-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(body["error"]["code"], Value::Null);
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"));
    assert_eq!(upstream.requests().len(), 2, "rejected requests are recorded");

    // Any credential will do, in either header, on either route.
    let bearer = client()
        .post(format!("{}/v1/messages", upstream.url()))
        .bearer_auth("tg_ws_anything")
        .json(&plain_request("claude-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let api_key = client()
        .post(format!("{}/v1/chat/completions", upstream.url()))
        .header("x-api-key", "whatever")
        .json(&chat_request("gpt-stub"))
        .send()
        .await
        .unwrap();
    assert_eq!(api_key.status(), 200);
}

#[tokio::test]
async fn invalid_requests_get_the_providers_400_404_and_405() {
    let upstream = Upstream::start().await.unwrap();
    let mut no_max_tokens = plain_request("claude-stub");
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    for request in [no_max_tokens, with(plain_request("claude-stub"), "max_tokens", json!(0)), json!({"max_tokens": 5})]
    {
        let response = anthropic(&upstream, "/v1/messages", &request).await;
        assert_eq!(response.status(), 400, "{request}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let response = openai(&upstream, &json!({"model": "gpt-stub"})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("messages"));

    let get = client().get(format!("{}/v1/messages", upstream.url())).header("x-api-key", KEY).send().await.unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.json::<Value>().await.unwrap()["type"], "error");
    let missing = client().post(format!("{}/v1/complete", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
    let missing = client().post(format!("{}/v1/responses/resp_1/cancel", upstream.url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn dropping_the_handle_shuts_the_server_down() {
    let upstream = Upstream::start().await.unwrap();
    let url = upstream.url();
    assert!(url.starts_with("http://127.0.0.1:"));
    assert_eq!(anthropic(&upstream, "/v1/messages", &plain_request("m")).await.status(), 200);
    drop(upstream);
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    loop {
        let sent =
            fresh.post(format!("{url}/v1/messages")).header("x-api-key", KEY).json(&plain_request("m")).send().await;
        if sent.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still answering after the handle was dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the binary when a test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate-upstream"))
        .args(["--listen", "127.0.0.1:0", "--no-record"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", KEY)
        .json(&with(plain_request("claude-stub"), "stream", json!(true)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = anthropic_events(&response.text().await.unwrap());
    assert_eq!(names(&events), expected_names(REPLY_WORDS as usize));
}

#[test]
fn the_binary_rejects_unknown_arguments() {
    let binary = env!("CARGO_BIN_EXE_tollgate-upstream");
    let help = Command::new(binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--listen"));
    let bad = Command::new(binary).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--bogus"));
    let taken = Command::new(binary).args(["--listen", "not-an-address"]).output().unwrap();
    assert_eq!(taken.status.code(), Some(1));
}
