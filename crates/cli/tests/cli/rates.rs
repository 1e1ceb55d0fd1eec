//! Rate limits across instances (DESIGN.md section 14): two real `tollgate serve` processes
//! on one Postgres share a workspace's limits. Under demand far above them, the requests and
//! tokens admitted in the test (well under a minute, so one window holds them all) never exceed
//! the limit, and at least 90% of the request limit is admitted.

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_testkit::cli_app::{SHARED_MASTER_KEY, Server, data_dir};

const ADMIN: &str = "tg_admin_rates-two-instances";

struct Instances {
    a: Server,
    b: Server,
    http: reqwest::Client,
}

impl Instances {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.a.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    /// A provisioned claude-code workspace of `org` with `limits`: its token.
    async fn workspace(&self, org: &str, name: &str, limits: Value) -> String {
        let ws = self
            .admin(
                reqwest::Method::POST,
                "/admin/workspaces",
                json!({"org_id": org, "name": name, "runtime": "claude-code", "model": "platform/haiku"}),
            )
            .await;
        let id = ws["id"].as_str().unwrap();
        self.admin(reqwest::Method::PATCH, &format!("/admin/workspaces/{id}"), json!({"limits": limits})).await;
        let provisioned =
            self.admin(reqwest::Method::POST, &format!("/admin/workspaces/{id}/provision"), json!({})).await;
        provisioned["token"].as_str().unwrap().to_owned()
    }
}

/// Sends `total` requests with `token`, `parallel` at a time, alternating between the two
/// instances; returns, per instance, the (status, body) of each.
async fn blast(inst: &Arc<Instances>, token: &str, total: usize, parallel: usize) -> Vec<(usize, u16, Value)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (inst, token, next) = (inst.clone(), token.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return seen;
                }
                let base = if i % 2 == 0 { &inst.a.url } else { &inst.b.url };
                let r = inst
                    .http
                    .post(format!("{base}/anthropic/v1/messages"))
                    .header("x-api-key", &token)
                    .header("anthropic-version", "2023-06-01")
                    .json(&json!({"model": "platform/haiku", "max_tokens": 100,
                        "messages": [{"role": "user", "content": "Say hello."}]}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                if status == 429 {
                    assert!(r.headers().contains_key("retry-after"));
                }
                seen.push((i % 2, status, r.json().await.unwrap()));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[test]
fn two_instances_on_one_postgres_never_exceed_a_rate_limit_and_admit_nearly_all_of_it() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let upstream = rt.block_on(tollgate_upstream::Upstream::start()).unwrap();
    let db = rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap();
    let url = upstream.url();
    let env = [
        ("TOLLGATE_ADMIN_TOKEN", ADMIN),
        ("TOLLGATE_MASTER_KEY", SHARED_MASTER_KEY),
        ("TOLLGATE_DATABASE_URL", db.as_str()),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", url.as_str()),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "sk-ant-api03-platform-key-of-the-rates-test"),
    ];
    let (dir_a, dir_b) = (data_dir("rates-a"), data_dir("rates-b"));
    let inst = Arc::new(Instances {
        a: Server::start(crate::bin(), &dir_a, &[], &env),
        b: Server::start(crate::bin(), &dir_b, &[], &env),
        http: reqwest::Client::new(),
    });
    rt.block_on(async {
        let org = inst
            .admin(reqwest::Method::POST, "/admin/orgs", json!({"name": "rates", "credit_micros": 100_000_000}))
            .await;
        let org = org["id"].as_str().unwrap();

        // Requests: 300 asked, 60 a minute allowed.
        let token = inst.workspace(org, "rpm", json!({"requests_per_minute": 60})).await;
        let seen = blast(&inst, &token, 300, 16).await;
        let admitted: Vec<_> = seen.iter().filter(|(_, s, _)| *s == 200).collect();
        let refused = seen.iter().filter(|(_, s, _)| *s == 429).count();
        assert_eq!(admitted.len() + refused, 300, "only 200s and 429s");
        assert!(admitted.len() <= 60, "{} admitted of a limit of 60", admitted.len());
        assert!(admitted.len() >= 54, "at least 90% of the limit is admitted: {}", admitted.len());
        for instance in 0..2 {
            assert!(admitted.iter().any(|(i, _, _)| *i == instance), "both instances admit a share");
        }
        eprintln!("requests_per_minute 60 over two instances: {} of 300 admitted", admitted.len());

        // Tokens: each request counts its worst case (input estimate plus 100) at admission and
        // its true usage after settlement; the true usage admitted stays within the limit.
        let token = inst.workspace(org, "tpm", json!({"tokens_per_minute": 5_000})).await;
        let seen = blast(&inst, &token, 400, 32).await;
        let used: u64 = seen
            .iter()
            .filter(|(_, s, _)| *s == 200)
            .map(|(_, _, b)| {
                b["usage"]["input_tokens"].as_u64().unwrap() + b["usage"]["output_tokens"].as_u64().unwrap()
            })
            .sum();
        let admitted = seen.iter().filter(|(_, s, _)| *s == 200).count();
        assert!(seen.iter().all(|(_, s, _)| *s == 200 || *s == 429));
        assert!(used <= 5_000, "{used} tokens admitted of a limit of 5,000");
        assert!(admitted < 400, "the limit refused some: worst cases of about 620 tokens each");
        eprintln!("tokens_per_minute 5,000 over two instances: {admitted} of 400 admitted, {used} tokens used");
    });
}
