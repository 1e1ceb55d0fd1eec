//! Hard budgets across instances (DESIGN.md section 14): two real `tollgate serve` processes on
//! one Postgres, a workspace budget set with `tollgate admin workspace limits`, and more demand
//! than the budget: the admitted spend never exceeds the budget, and at least 90% of it is
//! admitted.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};
use tollgate_testkit::cli_app::{SHARED_MASTER_KEY, Server, data_dir};
use tollgate_upstream::Upstream;

const ADMIN_TOKEN: &str = "tg_admin_budget-two-instances";
/// The workspace's daily budget, micro-USD: about thirty worst cases of the requests sent.
const BUDGET: i64 = 100_000;
/// Requests in flight at once (per instance).
const WORKERS: usize = 6;

fn serve(url: &str, name: &str, upstream: &str) -> Server {
    Server::start(
        crate::bin(),
        &data_dir(name),
        &["--database-url", url],
        &[
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("TOLLGATE_MASTER_KEY", SHARED_MASTER_KEY),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", upstream),
            ("TOLLGATE_UPSTREAM_OPENAI_URL", upstream),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "sk-ant-platform-key-budget-test"),
            ("TOLLGATE_UPSTREAM_OPENAI_KEY", "sk-proj-platform-key-budget-test"),
        ],
    )
}

async fn send(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    let body = json!({
        "model": "platform/sonnet",
        "max_tokens": 150,
        "messages": [{"role": "user", "content": "Say hello to the budget, in a few words please."}]
    });
    let r = http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    status
}

#[test]
fn two_instances_never_exceed_a_budget_and_admit_at_least_90_percent_of_it() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let url = rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap();
    let upstream = rt.block_on(Upstream::start()).unwrap();
    let a = serve(&url, "budget-a", &upstream.url());
    let b = serve(&url, "budget-b", &upstream.url());
    let org = a.admin_json(ADMIN_TOKEN, &["org", "create", "budget-org", "--credit-micros", "1000000000"]);
    let org = org["id"].as_str().unwrap();
    let ws = a.admin_json(
        ADMIN_TOKEN,
        &["workspace", "create", "--org", org, "--name", "w", "--runtime", "claude-code", "--model", "platform/sonnet"],
    );
    let ws = ws["id"].as_str().unwrap();
    let token = a.admin_json(ADMIN_TOKEN, &["provision", ws])["token"].as_str().unwrap().to_owned();
    // Set on instance B, shown by A: the limits live in the shared database.
    let limits = b.admin_json(ADMIN_TOKEN, &["workspace", "limits", ws, "--budget-per-day", &BUDGET.to_string()]);
    assert_eq!(limits["budget_micros_per_day"], BUDGET);
    let shown = a.admin_json(ADMIN_TOKEN, &["workspace", "limits", ws]);
    assert_eq!(shown, limits);

    let http = reqwest::Client::new();
    let targets: Vec<(String, String)> =
        (0..2 * WORKERS).map(|i| (if i % 2 == 0 { a.url.clone() } else { b.url.clone() }, token.clone())).collect();
    let (admitted, refused) = demand(&rt, &http, targets);
    assert!(refused > 0, "demand exceeded the budget");
    assert_eq!(
        i64::try_from(upstream.requests().len()).unwrap(),
        admitted,
        "only admitted requests reached the upstream"
    );
    let spent = ledger_cost(&rt, &http, &a.url, &format!("workspace_id={ws}"), admitted + refused);
    assert!(spent > 0, "the ledger rows were written");
    eprintln!(
        "two instances: budget {BUDGET} µUSD, admitted spend {spent} µUSD in {admitted} requests, {refused} refusals"
    );
    assert!(spent <= BUDGET, "admitted spend {spent} exceeds the budget {BUDGET}");
    assert!(spent * 10 >= BUDGET * 9, "admitted spend {spent} is under 90% of the budget {BUDGET}");
    drop((a, b));
    for name in ["budget-a", "budget-b"] {
        let _ = std::fs::remove_dir_all(data_dir(name));
    }
}

/// Sends requests from every (instance URL, token) target at once, each until refused three
/// times in a row, 300 ms apart: (admitted, refused). Demand that exceeds the budget keeps
/// asking for longer than an idle budget lease is kept (250 ms), so a share the other
/// instance held when this one was refused has gone back to the store by the last try: a
/// client that gives up within 100 ms is not sustained demand.
fn demand(rt: &tokio::runtime::Runtime, http: &reqwest::Client, targets: Vec<(String, String)>) -> (i64, i64) {
    let (admitted, refused) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (base, token) in targets {
            let (http, admitted, refused) = (http.clone(), admitted.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let mut in_a_row = 0;
                while in_a_row < 3 {
                    match send(&http, &base, &token).await {
                        200 => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                            in_a_row = 0;
                        }
                        402 => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            in_a_row += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        }
                        other => panic!("unexpected status {other}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    (admitted.load(Ordering::SeqCst), refused.load(Ordering::SeqCst))
}

/// The cost the ledger charged to the requests `filter` selects (`org_id=...` or
/// `workspace_id=...`), once all `rows` rows are written (they are batched after responses).
fn ledger_cost(rt: &tokio::runtime::Runtime, http: &reqwest::Client, base: &str, filter: &str, rows: i64) -> i64 {
    for _ in 0..400 {
        let u: Value = rt.block_on(async {
            let url = format!("{base}/admin/usage?{filter}&group_by=day");
            http.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap()
        });
        let rows_now: i64 = u["rows"].as_array().unwrap().iter().map(|r| r["requests"].as_i64().unwrap()).sum();
        if rows_now == rows {
            return u["rows"].as_array().unwrap().iter().map(|r| r["cost_micros"].as_i64().unwrap()).sum();
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the ledger rows were not all written");
}

/// The org's monthly budget binds its workspaces together: two workspaces, each sending through
/// both instances, never spend more than the org's budget between them.
#[test]
fn two_instances_never_exceed_an_org_budget_shared_by_two_workspaces() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let url = rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap();
    let upstream = rt.block_on(Upstream::start()).unwrap();
    let a = serve(&url, "org-budget-a", &upstream.url());
    let b = serve(&url, "org-budget-b", &upstream.url());
    let org = a.admin_json(ADMIN_TOKEN, &["org", "create", "org-budget", "--credit-micros", "1000000000"]);
    let org = org["id"].as_str().unwrap();
    let limits = a.admin_json(ADMIN_TOKEN, &["org", "limits", org, "--budget-per-month", &BUDGET.to_string()]);
    assert_eq!(limits["budget_micros_per_month"], BUDGET);
    let mut tokens = Vec::new();
    for name in ["w1", "w2"] {
        let ws = a.admin_json(
            ADMIN_TOKEN,
            &[
                "workspace",
                "create",
                "--org",
                org,
                "--name",
                name,
                "--runtime",
                "claude-code",
                "--model",
                "platform/sonnet",
            ],
        );
        let ws = ws["id"].as_str().unwrap();
        tokens.push(a.admin_json(ADMIN_TOKEN, &["provision", ws])["token"].as_str().unwrap().to_owned());
    }
    let http = reqwest::Client::new();
    let targets: Vec<(String, String)> = (0..2 * WORKERS)
        .map(|i| (if i % 2 == 0 { a.url.clone() } else { b.url.clone() }, tokens[(i / 2) % 2].clone()))
        .collect();
    let (admitted, refused) = demand(&rt, &http, targets);
    assert!(refused > 0, "demand exceeded the budget");
    let spent = ledger_cost(&rt, &http, &b.url, &format!("org_id={org}"), admitted + refused);
    eprintln!(
        "two instances, org budget: budget {BUDGET} µUSD, admitted spend {spent} µUSD in {admitted} requests, {refused} refusals"
    );
    assert!(spent <= BUDGET, "admitted spend {spent} exceeds the org's budget {BUDGET}");
    assert!(spent * 10 >= BUDGET * 9, "admitted spend {spent} is under 90% of the org's budget {BUDGET}");
    drop((a, b));
    for name in ["org-budget-a", "org-budget-b"] {
        let _ = std::fs::remove_dir_all(data_dir(name));
    }
}

/// `tollgate admin org|workspace limits`: shows the limits as a table, sets and clears them,
/// and reports the API's 400 for a bad value.
#[test]
fn admin_limits_show_set_and_clear() {
    let dir = data_dir("limits-cli");
    let server = Server::start(crate::bin(), &dir, &[], &[("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let org = server.admin_json(ADMIN_TOKEN, &["org", "create", "limits-org"]);
    let org = org["id"].as_str().unwrap();
    let (code, table, _) = server.admin(ADMIN_TOKEN, &["org", "limits", org], None);
    assert_eq!(code, 0);
    assert!(table.contains("LIMIT") && table.contains("budget_micros_per_day"), "{table}");
    let set = [
        "--budget-per-day",
        "5000000",
        "--soft-budget-percent",
        "80",
        "--requests-per-minute",
        "60",
        "--allowed-models",
        "platform/sonnet,platform/gpt",
    ];
    let args: Vec<&str> = ["org", "limits", org].into_iter().chain(set).collect();
    let (code, table, stderr) = server.admin(ADMIN_TOKEN, &args, None);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.lines().any(|l| l.contains("budget_micros_per_day") && l.contains("5000000")), "{table}");
    assert!(
        table.lines().any(|l| l.contains("allowed_models") && l.contains("platform/sonnet,platform/gpt")),
        "{table}"
    );
    let cleared = server.admin_json(ADMIN_TOKEN, &["org", "limits", org, "--clear-budget-per-day"]);
    assert_eq!(cleared["budget_micros_per_day"], Value::Null, "cleared");
    assert_eq!(cleared["soft_budget_percent"], 80, "the others stay");
    assert_eq!(server.admin_json(ADMIN_TOKEN, &["org", "get", org])["limits"], cleared, "returned with the org");
    let (code, _, stderr) = server.admin(ADMIN_TOKEN, &["org", "limits", org, "--soft-budget-percent", "0"], None);
    assert_ne!(code, 0);
    assert!(stderr.contains("INVALID_LIMITS") && stderr.contains("soft_budget_percent"), "{stderr}");
    let ws = server.admin_json(
        ADMIN_TOKEN,
        &["workspace", "create", "--org", org, "--name", "w", "--runtime", "codex", "--model", "platform/gpt"],
    );
    let ws = ws["id"].as_str().unwrap();
    let l = server.admin_json(ADMIN_TOKEN, &["workspace", "limits", ws, "--max-concurrent-requests", "4"]);
    assert_eq!(l["max_concurrent_requests"], 4);
    let l = server.admin_json(ADMIN_TOKEN, &["workspace", "limits", ws, "--clear-max-concurrent-requests"]);
    assert_eq!(l["max_concurrent_requests"], Value::Null);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
