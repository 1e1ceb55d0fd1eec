//! A database outage under traffic (DESIGN.md section 18): a real `tollgate serve` over
//! Postgres.
//!
//! While ledger rows cannot be written the proxy serves from its lease in memory and queues
//! them; at the backlog bound (rows or bytes) it refuses new requests with 503 in the
//! provider's shape rather than serve traffic that may never be recorded. When the database
//! returns, every queued row is written exactly once and the proxy serves again.
//!
//! Two ways in: a **stall** (the test holds an exclusive lock on the ledger table: the
//! database answers everything else, so the backlog bound alone decides, exactly), and a real
//! **outage** (the test stops its own Postgres server and starts it again). In an outage the
//! proxy also loses its invalidation channel, drops its token cache (a revocation could be
//! missed) and answers 503 "cannot reach its database" once it must look a token up: either
//! refusal may come first, and both are 503 in the provider's shape.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Row;
use tollgate_testkit::TestPostgres;
use tollgate_testkit::cli_app::{Server, data_dir};
use tollgate_upstream::Upstream;

const ADMIN: &str = "tg_admin_outage-test";
const START_CREDIT: i64 = 50_000_000;
/// The row bound of the first test, and more than the byte bound of the second allows.
const BACKLOG_ROWS: usize = 25;
const WARM_UP: usize = 10;

/// One request to the proxy: its status, content type and body.
async fn call(http: &reqwest::Client, url: &str, token: &str) -> (u16, String, Value) {
    let r = http
        .post(format!("{url}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "platform/sonnet", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, ctype, body)
}

/// The org's ledger rows, distinct request ids and cost sum, straight from the database.
async fn ledger(db: &str, org: &str) -> (i64, i64, i64) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS d, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS c \
         FROM ledger WHERE org_id = $1",
    )
    .bind(org)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (row.get("n"), row.get("d"), row.get("c"))
}

/// How the test takes the database away from the ledger.
enum Disruption {
    /// An exclusive lock on the ledger table, held by the test (shared Postgres server).
    Stall,
    /// The test's own Postgres server, stopped and started again.
    Outage,
}

#[test]
fn a_ledger_stall_fills_the_backlog_to_its_row_bound_then_refuses_with_503_and_every_row_is_written_once() {
    let rows = BACKLOG_ROWS.to_string();
    let served = outage("stall-rows", ("TOLLGATE_LEDGER_BACKLOG_ROWS", &rows), &Disruption::Stall);
    assert_eq!(served, BACKLOG_ROWS, "the lease in memory serves until the backlog is full");
}

#[test]
fn the_backlog_is_bounded_by_bytes_too() {
    // About ten rows' worth (a row is a few hundred bytes in memory).
    let served = outage("stall-bytes", ("TOLLGATE_LEDGER_BACKLOG_BYTES", "4096"), &Disruption::Stall);
    assert!((1..BACKLOG_ROWS).contains(&served), "{served} rows before the byte bound refused");
}

#[test]
fn postgres_stopped_under_traffic_refuses_with_503_and_every_served_row_is_written_once_when_it_returns() {
    let rows = BACKLOG_ROWS.to_string();
    let served = outage("outage", ("TOLLGATE_LEDGER_BACKLOG_ROWS", &rows), &Disruption::Outage);
    assert!(served <= BACKLOG_ROWS);
}

/// Runs the disruption with the backlog bound `bound` (a variable and its value): how many
/// requests were served while ledger rows could not be written.
fn outage(name: &str, bound: (&str, &str), how: &Disruption) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = rt.block_on(Upstream::start()).unwrap();
    let private = matches!(how, Disruption::Outage).then(|| TestPostgres::private().unwrap());
    let pg = private.as_ref().unwrap_or_else(|| tollgate_testkit::postgres());
    let db = rt.block_on(pg.fresh_database()).unwrap();
    let dir = data_dir(name);
    let url = upstream.url();
    let server = Server::start(
        crate::bin(),
        &dir,
        &[],
        &[
            ("TOLLGATE_ADMIN_TOKEN", ADMIN),
            ("TOLLGATE_DATABASE_URL", &db),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", &url),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "sk-ant-api03-outage-test"),
            ("TOLLGATE_LEDGER_FLUSH_MS", "100"),
            bound,
        ],
    );
    let org = server.admin_json(ADMIN, &["org", "create", "outage", "--credit-micros", &START_CREDIT.to_string()]);
    let org = org["id"].as_str().unwrap().to_owned();
    let ws = server.admin_json(
        ADMIN,
        &[
            "workspace",
            "create",
            "--org",
            &org,
            "--name",
            "w",
            "--runtime",
            "claude-code",
            "--model",
            "platform/sonnet",
        ],
    );
    let provisioned = server.admin_json(ADMIN, &["provision", ws["id"].as_str().unwrap()]);
    let token = provisioned["token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();

    // Before: served and recorded (this also leases credit and caches the token).
    for _ in 0..WARM_UP {
        assert_eq!(rt.block_on(call(&http, &server.url, &token)).0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(ledger(&db, &org)).0 < i64::try_from(WARM_UP).unwrap() {
        assert!(Instant::now() < deadline, "the warm-up rows were never written");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut lock = None;
    match how {
        Disruption::Outage => pg.stop().unwrap(),
        Disruption::Stall => {
            lock = Some(rt.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE").execute(&mut conn).await.unwrap();
                conn
            }));
        }
    }
    let mut served = 0_usize;
    let refused = loop {
        let (status, ctype, body) = rt.block_on(call(&http, &server.url, &token));
        match status {
            200 => served += 1,
            503 => break (ctype, body),
            other => panic!("during the outage: {other} {body}"),
        }
        assert!(served <= BACKLOG_ROWS, "served {served} requests unrecorded, past the backlog bound");
    };
    let (ctype, body) = refused;
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    match how {
        Disruption::Stall => assert!(message.contains("cannot record usage"), "{body}"),
        Disruption::Outage => {
            assert!(message.contains("cannot record usage") || message.contains("cannot reach its database"), "{body}");
        }
    }
    // Still refused, not served, while the database stays away.
    assert_eq!(rt.block_on(call(&http, &server.url, &token)).0, 503);

    match (how, lock) {
        (Disruption::Stall, Some(mut conn)) => {
            rt.block_on(sqlx::query("COMMIT").execute(&mut conn)).unwrap();
        }
        _ => pg.restart().unwrap(),
    }
    let expected = i64::try_from(WARM_UP + served).unwrap();
    let wait_for = |expected: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let l = rt.block_on(ledger(&db, &org));
            if l.0 >= expected {
                return l;
            }
            assert!(Instant::now() < deadline, "the queued rows were not written after the database returned: {l:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (rows, distinct, _) = wait_for(expected);
    assert_eq!((rows, distinct), (expected, expected), "every answered request has exactly one row");
    // Serving again once the backlog is written.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(call(&http, &server.url, &token)).0 != 200 {
        assert!(Instant::now() < deadline, "the proxy did not serve again after the database returned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (rows, distinct, cost) = wait_for(expected + 1);
    assert_eq!((rows, distinct), (expected + 1, expected + 1));
    let credit = server.admin_json(ADMIN, &["org", "get", &org])["credit_micros"].as_i64().unwrap();
    // The org's balance as read includes its leased credit, charged as each row is written.
    assert_eq!(credit, START_CREDIT - cost, "credit is the starting credit minus the ledger's sum");
    report_figures(&format!(
        "{name}: {WARM_UP} before, {served} served while rows could not be written ({}={}), then 503 ({message}); \
         {rows} ledger rows after, {distinct} distinct, credit {credit} = {START_CREDIT} - {cost}",
        bound.0, bound.1
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    served
}

#[expect(clippy::print_stderr, reason = "the test's measured figures are its report")]
fn report_figures(report: &str) {
    eprintln!("{report}");
}
