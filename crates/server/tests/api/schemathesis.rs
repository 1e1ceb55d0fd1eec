//! Schemathesis against the server's own `/openapi.json` (DESIGN.md section 18, "Bad input"):
//! every operation, every check, a fixed seed and a bounded number of examples.
//!
//! It fails on any 5xx, any response that breaks the documented schema or status codes, any
//! schema-valid request rejected and any schema-violating request accepted. Fixtures let it
//! past the 404s: an org and workspaces that exist (one of them to delete, one whose token it
//! pulls with). Schemathesis is installed, pinned, by `scripts/install-test-clients`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use tollgate_server::AdminThrottleConfig;
use tollgate_testkit::server_app::{Backend, Options, spawn_with};

/// Test cases per operation and phase: both backends together stay under two minutes.
const MAX_EXAMPLES: &str = "100";
const SEED: &str = "20261201";

fn st() -> PathBuf {
    let st = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-clients/venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run scripts/install-test-clients (it installs the pinned schemathesis)",
        st.display()
    );
    st
}

async fn schemathesis_finds_no_failure(backend: Backend) {
    // Schemathesis sends requests without and with bad credentials on purpose: throttling
    // those is `throttle.rs`'s subject (its 429 is documented), not this test's.
    let unthrottled = AdminThrottleConfig { burst: 1_000_000, refill_every: std::time::Duration::from_millis(1) };
    let app = spawn_with(backend, Options { admin_throttle: unthrottled, ..Options::default() }).await;
    let org = app.org("schemathesis-org").await;
    let ws = app.workspace(&org, "kept", "claude-code", json!({"model": "platform/sonnet"})).await;
    let doomed = app.workspace(&org, "deleted", "claude-code", json!({"model": "platform/sonnet"})).await;
    let pulled = app.workspace(&org, "pulled", "claude-code", json!({"model": "platform/sonnet"})).await;
    let token = app.provision(&pulled, None).await.assert_status(200)["token"].as_str().unwrap().to_owned();

    let dir = std::env::temp_dir().join(format!("tollgate-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[parameters]
"path.org" = "{org}"
"path.ws" = "{ws}"

[[operations]]
include-name = "DELETE /admin/workspaces/{{ws}}"
parameters = {{ "path.ws" = "{doomed}" }}

# Refusals that depend on stored state or on another field, which OpenAPI cannot state: a
# schema-valid request may get them. `limits.allowed_models` must be models of the
# workspace's runtime's protocol (400 INVALID_MODEL); a credit adjustment must leave the
# balance within +-10^15 (400 INVALID_CREDIT); a provision whose resolution fails is 422.
# An alarm rule needs `max_cost_micros` or `over_baseline_factor`, and `min_cost_micros` only
# goes with the latter (400 INVALID_ALARMS).
[[operations]]
include-name = "POST /admin/orgs"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

[[operations]]
include-name = "PATCH /admin/orgs/{{org}}"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

[[operations]]
include-name = "POST /admin/workspaces"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

[[operations]]
include-name = "PATCH /admin/workspaces/{{ws}}"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

[[operations]]
include-name = "POST /admin/orgs/{{org}}/credit"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404, 409, 429]

[[operations]]
include-name = "POST /admin/workspaces/{{ws}}/provision"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 422, 429]

[[operations]]
include-name = "GET /workspaces/{{ws}}/secrets/values"
headers = {{ Authorization = "Bearer {token}" }}
parameters = {{ "path.ws" = "{pulled}" }}
"#
        ),
    )
    .unwrap();
    let args = vec![
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".to_owned(),
        format!("{}/openapi.json", app.base),
        "-H".to_owned(),
        format!("Authorization: Bearer {}", app.admin_token),
        "--checks".to_owned(),
        "all".to_owned(),
        "--phases".to_owned(),
        "examples,coverage,fuzzing".to_owned(),
        "--seed".to_owned(),
        SEED.to_owned(),
        "--max-examples".to_owned(),
        MAX_EXAMPLES.to_owned(),
        "--generation-deterministic".to_owned(),
        "--workers".to_owned(),
        "1".to_owned(),
        "--no-color".to_owned(),
        "--output-truncate".to_owned(),
        "false".to_owned(),
        "--report-dir".to_owned(),
        dir.join("report").display().to_string(),
    ];
    let st = st();
    // The server runs on this test's runtime: wait for schemathesis off it.
    // Run in the temporary directory: schemathesis keeps a cache of examples in its working
    // directory, which must not land in the repository.
    let cwd = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st).args(&args).current_dir(cwd).env("NO_COLOR", "1").output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cases = stdout.lines().find(|l| l.contains(" generated,")).unwrap_or("no test-case line").trim();
    report_figures(&format!("schemathesis ({backend:?}): {cases}"));
    assert!(out.status.success(), "schemathesis found failures ({cases}):\n{stdout}\n{stderr}");
    assert!(cases.contains("generated"), "schemathesis ran no test case:\n{stdout}\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The figures, for the README (`cargo test ... -- --nocapture` shows them).
#[expect(clippy::print_stderr, reason = "the test's measured figures are its report")]
fn report_figures(report: &str) {
    eprintln!("{report}");
}

crate::both_backends!(schemathesis_finds_no_failure);

/// Found by schemathesis: JSON Schema counts `5.0` as an integer, so the document's
/// `integer` amounts admit it; the server reads it as 5 and refuses a fraction.
async fn amounts_written_as_integral_floats_are_integers(backend: tollgate_testkit::server_app::Backend) {
    let app = tollgate_testkit::server_app::spawn_app(backend).await;
    let org = app.post("/admin/orgs", json!({"name": "floats", "credit_micros": 5.0})).await;
    assert_eq!(org.assert_status(201)["credit_micros"], 5);
    let id = org.body["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/orgs/{id}/credit");
    let credit = app.post(&path, json!({"delta_micros": -2.0, "reason": "float"})).await;
    assert_eq!(credit.assert_status(200)["credit_micros"], 3);
    app.post(&path, json!({"delta_micros": 1.5, "reason": "fraction"})).await.assert_error(400, "INVALID_JSON");
    app.post("/admin/orgs", json!({"name": "f2", "credit_micros": 0.25})).await.assert_error(400, "INVALID_JSON");
}

crate::both_backends!(amounts_written_as_integral_floats_are_integers);
