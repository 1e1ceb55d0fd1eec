//! `kill -9` of a real `tollgate serve` in the middle of a burst of proxied requests, then a
//! restart over the same database (DESIGN.md section 18, "Crash").
//!
//! What must hold after the dead instance's lease is reclaimed: no request has two ledger rows
//! (nor more rows than the upstream served), the requests answered but never recorded are at
//! most those answered within the last flush window before the kill, and the org's credit is
//! its starting credit minus the ledger's sum, exactly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Row;
use tollgate_testkit::cli_app::{Server, data_dir};
use tollgate_upstream::Upstream;

const ADMIN: &str = "tg_admin_crash-test";
const START_CREDIT: i64 = 50_000_000;
/// Long enough that a flush window holds many requests, so the bound below is not trivially met.
const FLUSH_MS: u64 = 300;
/// Short, so that reclaim after the kill takes seconds, not a minute.
const LEASE_TTL_MS: u64 = 2_000;
const RECLAIM_MS: u64 = 250;
/// How long the burst runs before the kill: many flush intervals, so that the requests of
/// the last window are a small part of the whole.
const KILL_AFTER: Duration = Duration::from_secs(4);
/// At least this many answers before the kill (a slow machine runs longer).
const MIN_ANSWERED: usize = 200;
const CLIENTS: usize = 12;

enum Backend {
    Sqlite,
    Postgres,
}

/// What the clients saw: when each 200 was fully read.
#[derive(Default)]
struct Seen {
    answered: Mutex<Vec<Instant>>,
    count: AtomicUsize,
    sent: AtomicUsize,
}

fn start(dir: &std::path::Path, upstream: &str, db: Option<&str>) -> Server {
    let flush = FLUSH_MS.to_string();
    let ttl = LEASE_TTL_MS.to_string();
    let reclaim = RECLAIM_MS.to_string();
    let mut env = vec![
        ("TOLLGATE_ADMIN_TOKEN", ADMIN),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", upstream),
        ("TOLLGATE_UPSTREAM_OPENAI_URL", upstream),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "sk-ant-api03-crash-test"),
        ("TOLLGATE_UPSTREAM_OPENAI_KEY", "sk-proj-crash-test"),
        ("TOLLGATE_LEDGER_FLUSH_MS", &flush),
        ("TOLLGATE_LEASE_TTL_MS", &ttl),
        ("TOLLGATE_LEASE_RECLAIM_MS", &reclaim),
    ];
    if let Some(url) = db {
        env.push(("TOLLGATE_DATABASE_URL", url));
    }
    Server::start(crate::bin(), dir, &[], &env)
}

/// Sends requests from [`CLIENTS`] tasks until the server stops answering.
async fn burst(url: String, token: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, token, seen, stop) = (http.clone(), url.clone(), token.clone(), seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                seen.sent.fetch_add(1, Ordering::SeqCst);
                let body = json!({"model": "platform/sonnet", "max_tokens": 16,
                    "messages": [{"role": "user", "content": "hello"}]});
                let sent = http
                    .post(format!("{url}/anthropic/v1/messages"))
                    .header("x-api-key", &token)
                    .header("anthropic-version", "2023-06-01")
                    .json(&body)
                    .send()
                    .await;
                let Ok(r) = sent else { return };
                let status = r.status();
                if r.bytes().await.is_err() {
                    return;
                }
                if status == reqwest::StatusCode::OK {
                    seen.answered.lock().unwrap().push(Instant::now());
                    seen.count.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

struct Ledger {
    rows: i64,
    distinct: i64,
    ok_rows: i64,
    cost: i64,
    leases: i64,
}

const LEDGER_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COUNT(DISTINCT request_id) AS BIGINT) AS d, \
     CAST(COALESCE(SUM(CASE WHEN http_status = 200 THEN 1 ELSE 0 END), 0) AS BIGINT) AS ok, \
     CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM credit_leases WHERE org_id = $1) AS leases \
     FROM ledger WHERE org_id = $1";

/// The org's ledger and leases, read straight from the database (`db`: its URL).
async fn ledger(db: &str, org: &str) -> Ledger {
    macro_rules! read {
        ($conn:ty) => {{
            let mut conn = <$conn as sqlx::Connection>::connect(db).await.unwrap();
            let row = sqlx::query(LEDGER_SQL).bind(org).fetch_one(&mut conn).await.unwrap();
            Ledger {
                rows: row.get("n"),
                distinct: row.get("d"),
                ok_rows: row.get("ok"),
                cost: row.get("cost"),
                leases: row.get("leases"),
            }
        }};
    }
    if db.starts_with("postgres") { read!(sqlx::PgConnection) } else { read!(sqlx::SqliteConnection) }
}

fn crash_and_restart(backend: &Backend, name: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let upstream = rt.block_on(Upstream::start()).unwrap();
    let dir = data_dir(name);
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap()),
    };
    let db = pg.clone().unwrap_or_else(|| format!("sqlite://{}?mode=ro", dir.join("tollgate.db").display()));
    let server = start(&dir, &upstream.url(), pg.as_deref());
    let org = server.admin_json(ADMIN, &["org", "create", name, "--credit-micros", &START_CREDIT.to_string()]);
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

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn(burst(server.url.clone(), token, seen.clone(), stop.clone()));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(120);
    while began.elapsed() < KILL_AFTER || seen.count.load(Ordering::SeqCst) < MIN_ANSWERED {
        assert!(Instant::now() < deadline, "the burst did not reach {MIN_ANSWERED} answers");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Dropping a `Server` sends SIGKILL and reaps it: no shutdown hook runs.
    drop(server);
    let killed_at = Instant::now();
    stop.store(true, Ordering::SeqCst);
    rt.block_on(load).unwrap();
    let answered = seen.answered.lock().unwrap().clone();
    // A row is lost when it was queued after the last flush that committed: within one flush
    // interval plus the time that flush took. Three intervals bound both on a loaded machine.
    let window = Duration::from_millis(3 * FLUSH_MS);
    let in_last_window = answered.iter().filter(|t| killed_at.duration_since(**t) <= window).count();

    let restarted = start(&dir, &upstream.url(), pg.as_deref());
    // The dead instance's lease expires after its TTL and the new instance reclaims it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let l = rt.block_on(ledger(&db, &org));
        if l.leases == 0 {
            break l;
        }
        assert!(Instant::now() < deadline, "the dead instance's lease was never reclaimed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let shown = restarted.admin_json(ADMIN, &["org", "get", &org]);
    let credit = shown["credit_micros"].as_i64().unwrap();
    let forwarded = i64::try_from(upstream.requests().len()).unwrap();
    let answered_n = i64::try_from(answered.len()).unwrap();
    let lost = answered_n - after.ok_rows;
    let report = format!(
        "{name}: sent {}, answered 200: {answered_n}, forwarded upstream: {forwarded}, ledger rows: {} (200: {}), \
         lost: {lost}, answered in the last {window:?} before the kill: {in_last_window}, ledger sum {} micro-USD, \
         credit {credit}",
        seen.sent.load(Ordering::SeqCst),
        after.rows,
        after.ok_rows,
        after.cost,
    );
    report_figures(&report);
    assert_eq!(after.rows, after.distinct, "a request has two ledger rows: {report}");
    assert!(after.rows <= forwarded, "more ledger rows than requests forwarded: {report}");
    assert!(after.cost > 0, "{report}");
    assert!(
        lost <= i64::try_from(in_last_window).unwrap(),
        "more rows lost than answered in the last flush window: {report}"
    );
    assert_eq!(credit, START_CREDIT - after.cost, "credit is not the starting credit minus the ledger's sum: {report}");
    let _ = std::fs::remove_dir_all(&dir);
    drop(restarted);
}

/// The figures, for the README (`cargo test ... -- --nocapture` shows them).
#[expect(clippy::print_stderr, reason = "the test's measured figures are its report")]
fn report_figures(report: &str) {
    eprintln!("{report}");
}

#[test]
fn kill_9_mid_burst_on_sqlite_loses_at_most_one_flush_window_and_credit_matches_the_ledger() {
    crash_and_restart(&Backend::Sqlite, "crash-sqlite");
}

#[test]
fn kill_9_mid_burst_on_postgres_loses_at_most_one_flush_window_and_credit_matches_the_ledger() {
    crash_and_restart(&Backend::Postgres, "crash-postgres");
}

#[test]
fn a_bad_interval_is_a_configuration_error() {
    let dir = data_dir("crash-bad-interval");
    let out = std::process::Command::new(crate::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()])
        .env("TOLLGATE_LEDGER_FLUSH_MS", "soon")
        .env_remove("TOLLGATE_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("TOLLGATE_LEDGER_FLUSH_MS"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
