//! LOG: every log line of a full flow, captured at TRACE, as text and as JSON
//! (`TOLLGATE_LOG_FORMAT=json`), holds no secret value, no workspace token, no admin token and
//! no master key.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;

use tollgate_server::notify::NotifierConfig;
use tollgate_testkit::webhook::{Behaviour, Receiver};

use crate::support::{Auth, Backend, Db, Options, spawn_on};

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The log line formats `tollgate serve` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[test]
fn no_secret_reaches_the_logs_sqlite() {
    no_secret_reaches_the_logs(Backend::Sqlite, Format::Text);
}

#[test]
fn no_secret_reaches_the_logs_postgres() {
    no_secret_reaches_the_logs(Backend::Postgres, Format::Text);
}

#[test]
fn no_secret_reaches_the_json_logs_sqlite() {
    no_secret_reaches_the_logs(Backend::Sqlite, Format::Json);
}

#[test]
fn no_secret_reaches_the_json_logs_postgres() {
    no_secret_reaches_the_logs(Backend::Postgres, Format::Json);
}

fn no_secret_reaches_the_logs(backend: Backend, format: Format) {
    let buffer = Buffer::default();
    let builder = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false);
    // As `tollgate serve` sets it up for TOLLGATE_LOG_FORMAT=json: one flat object per line.
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        Format::Text => Box::new(builder.with_writer(buffer.clone()).finish()),
        Format::Json => {
            Box::new(builder.json().flatten_event(true).with_span_list(false).with_writer(buffer.clone()).finish())
        }
    };
    // Webhook receivers on a runtime of their own (its threads log nowhere): what they log of
    // the requests they get is not the server's. Their URL paths are canaries, as the path of
    // a Slack URL is its credential; the first fails once, so retries are logged too.
    let receivers_rt = tokio::runtime::Runtime::new().unwrap();
    let global = receivers_rt.block_on(Receiver::start(Behaviour::FailFirst(1, 500), "LOGCANARY-global-hook-7777"));
    let own = receivers_rt.block_on(Receiver::start(Behaviour::Status(404), "LOGCANARY-org-hook-8888"));
    let notifier = NotifierConfig {
        global_url: Some(tollgate_policy::WebhookUrl::parse(&global.url).unwrap()),
        secret: Some(secrecy::SecretString::from("LOGCANARY-webhook-secret-9999")),
        backoff: std::time::Duration::from_millis(10),
        ..NotifierConfig::default()
    };
    let _guard = tracing::subscriber::set_default(subscriber);
    // A current-thread runtime on this thread: the server's tasks run here, under the
    // subscriber set above.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (secrets, tokens, key) = runtime.block_on(async {
        let db = Db::fresh(backend).await;
        let app = spawn_on(&db, Options { notifier: Some(notifier), ..Options::default() }).await;
        let secrets = [
            "sk-ant-oat01-LOGCANARY-org-oauth-1111",
            "LOGCANARY-org-github-2222",
            "mm-LOGCANARY-workspace-minimax-3333",
            "LOGCANARY-workspace-plain-4444",
            "LOGCANARY-in-a-bad-body-5555",
            "LOGCANARY-overwritten-6666",
        ];
        let org = app.org("log-org").await;
        app.secret("orgs", &org, "CLAUDE_CODE_OAUTH_TOKEN", secrets[0]).await;
        app.secret("orgs", &org, "GITHUB_TOKEN", secrets[1]).await;
        let ws = app.workspace(&org, "log-ws", "claude-code", json!({"model": "MiniMax-M2.7"})).await;
        app.secret("workspaces", &ws, "MINIMAX_API_KEY", secrets[5]).await;
        app.secret("workspaces", &ws, "MINIMAX_API_KEY", secrets[2]).await;
        app.secret("workspaces", &ws, "PLAIN", secrets[3]).await;
        // Bad requests carrying values.
        app.put(&format!("/admin/orgs/{org}/secrets/lower_case"), json!({"value": secrets[4]}))
            .await
            .assert_error(400, "INVALID_SECRET_NAME");
        app.post(&format!("/admin/orgs/{org}/credit"), json!({"delta_micros": secrets[4], "reason": "r"}))
            .await
            .assert_error(400, "INVALID_JSON");
        let big = "x".repeat(600 * 1024) + secrets[4];
        let r = app
            .send_raw(
                Method::PUT,
                &format!("/admin/orgs/{org}/secrets/BIG"),
                Auth::Admin,
                Some(format!("{{\"value\":\"{big}\"}}").into_bytes()),
            )
            .await;
        r.assert_error(413, "PAYLOAD_TOO_LARGE");
        app.read_mode(&ws).await;
        let first = app.provision(&ws, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();
        app.pull(&ws, &first).await.assert_status(200);
        app.send(Method::GET, &format!("/workspaces/{ws}/secrets/values"), Auth::ApiKey(&first), None)
            .await
            .assert_status(200);
        let second =
            app.provision(&ws, Some("MiniMax-M2.7")).await.assert_status(200)["token"].as_str().unwrap().to_owned();
        app.pull(&ws, &first).await.assert_error(401, "UNAUTHORIZED");
        app.pull(&ws, &second).await.assert_status(200);
        let other = app.workspace(&org, "other", "codex", json!({"model": "platform/gpt"})).await;
        app.pull(&other, &second).await.assert_error(403, "FORBIDDEN");
        app.send(Method::GET, "/admin/orgs", Auth::Bearer("tg_admin_wrong"), None)
            .await
            .assert_error(401, "UNAUTHORIZED");
        app.send(Method::GET, "/metrics", Auth::None, None).await;
        // A notification: delivered on the second attempt to the global URL, refused by the
        // org's, which records `webhook.failed`.
        app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": own.url})).await.assert_status(200);
        app.patch(&format!("/admin/orgs/{org}"), json!({"alert_webhook_url": "ftp://LOGCANARY-bad-url"}))
            .await
            .assert_error(400, "INVALID_WEBHOOK_URL");
        let event = app
            .store
            .record_event(&tollgate_store::NewEvent {
                kind: tollgate_policy::EventKind::AlarmFired,
                actor: tollgate_policy::Actor::System,
                org_id: Some(tollgate_policy::OrgId::try_from(org.clone()).unwrap()),
                workspace_id: None,
                detail: json!({"cost_micros": 1}),
            })
            .await
            .unwrap();
        app.notifier.notify(&event);
        assert_eq!(global.wait_for(2, std::time::Duration::from_secs(20)).await.len(), 2, "retried once");
        assert_eq!(own.wait_for(1, std::time::Duration::from_secs(20)).await.len(), 1);
        let failed = "/admin/events?kind=webhook.failed";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while app.get(failed).await.body["events"].as_array().is_none_or(Vec::is_empty) {
            assert!(std::time::Instant::now() < deadline, "webhook.failed recorded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let tokens = vec![app.admin_token.clone(), first, second];
        let key = db.key_b64.clone();
        app.stop().await;
        (secrets.map(str::to_owned), tokens, key)
    });
    drop(runtime);
    drop((global, own));
    drop(receivers_rt);
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "logging captured nothing");
    assert!(logs.contains("/admin/orgs"), "the request path is logged:\n{logs}");
    assert!(logs.contains("/admin/workspaces/{ws}/provision"), "the route template is logged");
    match format {
        Format::Text => assert!(logs.contains("status=200"), "responses are logged:\n{logs}"),
        Format::Json => {
            for line in logs.lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
            assert!(logs.contains("\"status\":200"), "responses are logged:\n{logs}");
        }
    }
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "verbose levels are captured");
    assert!(logs.contains("notification delivered") && logs.contains("notification failed"), "deliveries are logged");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret value leaked into the logs: {s}");
    }
    for t in &tokens {
        assert!(!logs.contains(t.as_str()), "a token leaked into the logs");
        // Not even its random part.
        assert!(!logs.contains(&t[t.len() - 20..]), "part of a token leaked into the logs");
    }
    assert!(!logs.contains(&key), "the master key leaked into the logs");
    assert!(!logs.contains("LOGCANARY"), "no canary at all");
}
