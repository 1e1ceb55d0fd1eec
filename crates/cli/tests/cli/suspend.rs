//! Suspension across real processes (DESIGN.md section 14): two `tollgate serve` processes on
//! one Postgres; a suspension made with `tollgate admin` through one instance refuses the next
//! request through the other as soon as the database's notification arrives (polled, no
//! fixed sleep), far inside the token cache's 30 s TTL.

use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_testkit::cli_app::{ADMIN_TOKEN, Server, data_dir, shared_serve_env};

use crate::send_hello;

/// Polls `base` until a request is answered `want`; how long that took (at most `limit`).
async fn until(http: &reqwest::Client, base: &str, token: &str, want: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = send_hello(http, base, token).await;
        if status == want {
            return start.elapsed();
        }
        assert!(matches!(status, 200 | 403), "unexpected {status}: {body}");
        assert!(start.elapsed() < limit, "still {status} after {limit:?}: {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_suspension_through_one_serve_process_binds_on_the_other() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = rt.block_on(tollgate_upstream::Upstream::start()).unwrap();
    let db = rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap();
    let url = upstream.url();
    let env = shared_serve_env(&db, &url);
    let (dir_a, dir_b) = (data_dir("suspend-a"), data_dir("suspend-b"));
    let a = Server::start(crate::bin(), &dir_a, &[], &env);
    let b = Server::start(crate::bin(), &dir_b, &[], &env);
    let admin = |server: &Server, args: &[&str]| server.admin_json(ADMIN_TOKEN, args);
    let org = admin(&a, &["org", "create", "suspend-e2e", "--credit-micros", "20000000"]);
    let org = org["id"].as_str().unwrap().to_owned();
    let args =
        ["workspace", "create", "--org", &org, "--name", "w", "--runtime", "claude-code", "--model", "platform/sonnet"];
    let ws = admin(&a, &args)["id"].as_str().unwrap().to_owned();
    let token = admin(&a, &["provision", &ws])["token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    rt.block_on(async {
        // Both instances have the token's authorisation cached.
        assert_eq!(send_hello(&http, &a.url, &token).await.0, 200);
        assert_eq!(send_hello(&http, &b.url, &token).await.0, 200);
    });

    let shown = admin(&a, &["workspace", "suspend", &ws, "--reason", "runaway agent"]);
    assert_eq!(shown["suspended"]["reason"], "runaway agent", "{shown}");
    assert_eq!(shown["suspended"]["by"], "admin");
    let (code, table, _) = a.admin(ADMIN_TOKEN, &["workspace", "get", &ws], None);
    assert_eq!(code, 0);
    assert!(table.contains("runaway agent"), "the table shows the suspension: {table}");
    rt.block_on(async {
        let (status, body) = send_hello(&http, &a.url, &token).await;
        assert_eq!((status, body["error"]["type"].as_str()), (403, Some("permission_error")), "{body}");
        until(&http, &b.url, &token, 403, Duration::from_secs(5)).await;
        let (_, body) = send_hello(&http, &b.url, &token).await;
        assert!(body["error"]["message"].as_str().unwrap().contains("runaway agent"), "{body}");
    });

    let resumed = admin(&a, &["workspace", "resume", &ws]);
    assert_eq!(resumed["suspended"], Value::Null);
    rt.block_on(async {
        until(&http, &b.url, &token, 200, Duration::from_secs(5)).await;
    });

    // The org's suspension, through B, binds on A; its reason is named.
    let shown = admin(&b, &["org", "suspend", &org, "--reason", "unpaid invoice"]);
    assert_eq!(shown["suspended"]["reason"], "unpaid invoice");
    rt.block_on(async {
        until(&http, &a.url, &token, 403, Duration::from_secs(5)).await;
        let (_, body) = send_hello(&http, &a.url, &token).await;
        assert!(body["error"]["message"].as_str().unwrap().contains("org is suspended: unpaid invoice"), "{body}");
    });
    admin(&b, &["org", "resume", &org]);
    rt.block_on(async {
        until(&http, &a.url, &token, 200, Duration::from_secs(5)).await;
    });
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir_a);
    let _ = std::fs::remove_dir_all(dir_b);
}
