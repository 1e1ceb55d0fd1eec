//! End-to-end tests of the `tollgate` binary, compiled into one test binary.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a test failure")]

mod alarms;
mod audit;
mod budgets;
mod clients;
mod codex;
mod crash;
mod events;
mod exec;
mod explain;
mod keys;
mod otel;
mod outage;
mod rates;
mod serve;
mod sessions;
mod suspend;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Sends one small Messages request for `platform/sonnet` to `base` with `token`: its status
/// and body (what the multi-instance tests send through each `serve`).
pub async fn send_hello(http: &reqwest::Client, base: &str, token: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({
        "model": "platform/sonnet", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hello"}]
    });
    let r = http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The built `tollgate` binary.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

/// Runs the built `tollgate` binary with `args`, no inherited Tollgate env.
pub fn tollgate(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("TOLLGATE_PUBLIC_URL").output().expect("the tollgate binary runs")
}
