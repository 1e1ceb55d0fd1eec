//! Load generator for `POST /admin/workspaces/{ws}/provision`, used by scripts/bench-provision.
//!
//! Creates an org with a stray org OAuth token and 64 workspaces (platform-managed, BYOK
//! MiniMax, BYOK anthropic-oauth, concierge), then provisions them round-robin from
//! `--concurrency` clients for `--seconds`, and prints requests per second and latency.
#![expect(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, reason = "a benchmark tool")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() {
    let url = arg("--url", "http://127.0.0.1:8080");
    let token = arg("--token", "");
    let seconds: u64 = arg("--seconds", "10").parse().expect("--seconds");
    let concurrency: usize = arg("--concurrency", "16").parse().expect("--concurrency");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Value| {
        http.request(method, format!("{url}{path}")).bearer_auth(&token).json(&body).send()
    };
    let org: Value =
        call(reqwest::Method::POST, "/admin/orgs".into(), json!({"name": format!("load-{}", std::process::id())}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let org_id = org["id"].as_str().expect("org id").to_owned();
    call(
        reqwest::Method::PUT,
        format!("/admin/orgs/{org_id}/secrets/CLAUDE_CODE_OAUTH_TOKEN"),
        json!({"value": "sk-ant-oat01-load"}),
    )
    .await
    .unwrap();
    let kinds = [
        (json!({"model": "platform/sonnet"}), None),
        (json!({"model": "MiniMax-M2.7"}), Some(("MINIMAX_API_KEY", "mm-load"))),
        (json!({"model": "opus"}), Some(("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own"))),
        (json!({"kind": "concierge"}), None),
    ];
    let mut workspaces = Vec::new();
    for i in 0..64 {
        let (extra, secret) = &kinds[i % kinds.len()];
        let mut body = json!({"org_id": org_id, "name": format!("ws-{i}"), "runtime": "claude-code"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let ws: Value =
            call(reqwest::Method::POST, "/admin/workspaces".into(), body).await.unwrap().json().await.unwrap();
        let id = ws["id"].as_str().expect("workspace id").to_owned();
        if let Some((name, value)) = secret {
            call(reqwest::Method::PUT, format!("/admin/workspaces/{id}/secrets/{name}"), json!({"value": value}))
                .await
                .unwrap();
        }
        workspaces.push(id);
    }
    let workspaces = Arc::new(workspaces);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        let (workspaces, next, errors) = (workspaces.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let ws = &workspaces[next.fetch_add(1, Ordering::Relaxed) % workspaces.len()];
                let t = Instant::now();
                let resp = http
                    .post(format!("{url}/admin/workspaces/{ws}/provision"))
                    .bearer_auth(&token)
                    .json(&json!({}))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    println!(
        "provisions: {} ok, {} errors in {elapsed:.1} s at concurrency {concurrency}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len(),
        errors.load(Ordering::Relaxed),
        all.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}
