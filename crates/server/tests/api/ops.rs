//! Health, readiness, metrics and the OpenAPI document.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Auth, Backend, spawn_app};

both_backends!(health_and_readiness, metrics_count_requests);

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    let h = app.send(Method::GET, "/healthz", Auth::None, None).await;
    assert_eq!(h.assert_status(200), &json!({"status": "ok"}));
    let r = app.send(Method::GET, "/readyz", Auth::None, None).await;
    assert_eq!(r.assert_status(200), &json!({"status": "ready"}));
}

/// Readiness follows the database: dropping the Postgres database makes it 503 UNAVAILABLE,
/// and health stays 200; admin routes answer UNAVAILABLE or INTERNAL, never hang.
#[tokio::test]
async fn readiness_fails_when_the_database_is_gone_postgres() {
    let app = spawn_app(Backend::Postgres).await;
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    let admin_url = tollgate_testkit::postgres().url("postgres");
    let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&pool).await.unwrap();
    pool.close().await;
    let r = app.send(Method::GET, "/readyz", Auth::None, None).await;
    r.assert_error(503, "UNAVAILABLE");
    app.send(Method::GET, "/healthz", Auth::None, None).await.assert_status(200);
    let admin = app.get("/admin/orgs").await;
    assert!(matches!(admin.code(), "UNAVAILABLE" | "INTERNAL"), "{}", admin.text);
    assert!(matches!(admin.status, 503 | 500));
    assert!(!admin.text.contains("postgres://"), "no connection details in answers: {}", admin.text);
}

async fn metrics_count_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("metrics-org").await;
    app.get(&format!("/admin/orgs/{org}")).await.assert_status(200);
    app.get("/admin/orgs/00000000-0000-0000-0000-000000000000").await.assert_error(404, "NOT_FOUND");
    app.send(Method::GET, "/healthz", Auth::None, None).await.assert_status(200);
    app.send(Method::GET, "/no/such/route", Auth::None, None).await.assert_error(404, "NOT_FOUND");
    let m = app.send(Method::GET, "/metrics", Auth::None, None).await;
    assert_eq!(m.status, 200);
    let ct = m.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = &m.text;
    for line in [
        r#"tollgate_http_requests_total{method="POST",route="/admin/orgs",status="201"}"#,
        r#"tollgate_http_requests_total{method="GET",route="/admin/orgs/{org}",status="200"}"#,
        r#"tollgate_http_requests_total{method="GET",route="/admin/orgs/{org}",status="404"}"#,
        r#"tollgate_http_requests_total{method="GET",route="/healthz",status="200"}"#,
        r#"tollgate_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"tollgate_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.005"}"#,
        r#"tollgate_http_request_duration_seconds_count{method="GET",route="/healthz"}"#,
        "# TYPE tollgate_http_requests_total counter",
        "# TYPE tollgate_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    assert!(!text.contains(&org), "raw paths (ids) are never labels");
    assert!(!text.contains(&app.admin_token));
}

/// Every route of DESIGN.md section 9 that this crate serves is in the document, with its
/// method, and the schemas it names exist.
#[tokio::test]
async fn openapi_lists_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.send(Method::GET, "/openapi.json", Auth::None, None).await;
    let doc = r.assert_status(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/admin/orgs", &["post", "get"]),
        ("/admin/orgs/{org}", &["get", "patch"]),
        ("/admin/orgs/{org}/credit", &["post"]),
        ("/admin/orgs/{org}/secrets/{name}", &["put", "delete"]),
        ("/admin/orgs/{org}/secrets", &["get"]),
        ("/admin/workspaces", &["post", "get"]),
        ("/admin/workspaces/{ws}", &["get", "patch", "delete"]),
        ("/admin/workspaces/{ws}/secrets/{name}", &["put", "delete"]),
        ("/admin/workspaces/{ws}/secrets", &["get"]),
        ("/admin/workspaces/{ws}/llm-billing-mode", &["get"]),
        ("/admin/workspaces/{ws}/provision", &["post"]),
        ("/admin/usage", &["get"]),
        ("/admin/audit", &["get"]),
        ("/admin/orgs/{org}/suspend", &["post"]),
        ("/admin/orgs/{org}/resume", &["post"]),
        ("/admin/workspaces/{ws}/suspend", &["post"]),
        ("/admin/workspaces/{ws}/resume", &["post"]),
        ("/admin/secrets/reencrypt", &["post"]),
        ("/admin/events", &["get"]),
        ("/workspaces/{ws}/secrets/values", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ];
    for (path, methods) in expected {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} is not documented");
        }
    }
    assert_eq!(paths.len(), expected.len(), "no undocumented extras: {:?}", paths.keys().collect::<Vec<_>>());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in [
        "Org",
        "Workspace",
        "SecretMeta",
        "Resolution",
        "ProvisionResponse",
        "PullResponse",
        "ErrorResponse",
        "CreateOrg",
        "PutSecret",
        "AuditReport",
        "Finding",
    ] {
        assert!(schemas.contains_key(s), "schema {s} missing: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("admin_token") && schemes.contains_key("workspace_token"));
    assert_eq!(doc["paths"]["/admin/orgs"]["post"]["security"][0], json!({"admin_token": []}));
    // Every `$ref` points at a schema that exists.
    let text = r.text.clone();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    assert_eq!(tollgate_server::openapi().paths.paths.len(), expected.len());
    // The registry's platform models are the only ids `limits.allowed_models` takes, each once.
    let allowed = &schemas["LimitsInput"]["properties"]["allowed_models"];
    assert_eq!(allowed["uniqueItems"], true, "{allowed}");
    let ids = allowed["items"]["enum"].as_array().unwrap_or_else(|| panic!("no enum: {allowed}"));
    assert!(ids.iter().any(|id| id == "platform/sonnet"), "{ids:?}");
    assert!(ids.iter().all(|id| id.as_str().is_some_and(|id| id.starts_with("platform/"))), "{ids:?}");
}

/// Shutdown is graceful: a request in flight when the signal comes is finished and answered,
/// then the server stops and refuses new connections.
///
/// "In flight" needs the server to have read the request's headers before the signal; on a
/// loaded machine that can take longer than the first wait, and a connection whose headers
/// were not read yet is rightly closed. So the scenario is retried with longer waits, and the
/// assertions apply to the first run in which the request was in flight.
#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    for wait_ms in [100, 500, 2_000] {
        if drain_scenario(wait_ms).await {
            return;
        }
    }
    panic!("the request was never in flight when shutdown began, even after waiting 2 s");
}

/// One run of the drain scenario; `false` when the server had not read the headers in time.
async fn drain_scenario(wait_ms: u64) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut app = spawn_app(Backend::Sqlite).await;
    let org = app.org("drain").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"value": "drained"}"#;
    let head = format!(
        "PUT /admin/orgs/{org}/secrets/DRAINED HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.admin_token,
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
    // The request is in flight (headers read, body incomplete): shut down now.
    app.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut response = Vec::new();
    let answered = conn.write_all(&body[5..]).await.is_ok() && conn.read_to_end(&mut response).await.is_ok();
    if !answered || response.is_empty() {
        return false;
    }
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 204"), "the in-flight request was answered: {response}");
    // Checked before `stop`, which drops the app and with it the database's directory.
    let names = app.store.list_secrets(&tollgate_store::Owner::Org(org.parse().unwrap())).await.unwrap();
    assert_eq!(names.len(), 1, "the drained request was carried out");
    let base = app.base.clone();
    app.stop().await;
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no new connections after shutdown: {base}");
    true
}
