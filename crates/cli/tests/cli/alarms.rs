//! Drain alarms across real processes (DESIGN.md section 15): two `tollgate serve` processes
//! on one Postgres, both evaluating every 50 ms; rules set with `tollgate admin ... alarms`; a
//! crossing through either instance is recorded exactly once, and a `suspend` rule stops the
//! workspace on both.

use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_testkit::cli_app::{ADMIN_TOKEN, Server, data_dir, shared_serve_env};

use crate::send_hello;

/// The `alarm.fired` events of `ws`, through the admin CLI.
fn fired(server: &Server, ws: &str) -> Vec<Value> {
    let page = server.admin_json(ADMIN_TOKEN, &["events", "--workspace", ws, "--kind", "alarm.fired"]);
    page["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn two_serve_processes_record_one_alarm_per_crossing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let upstream = rt.block_on(tollgate_upstream::Upstream::start()).unwrap();
    let db = rt.block_on(tollgate_testkit::postgres().fresh_database()).unwrap();
    let url = upstream.url();
    let mut env = shared_serve_env(&db, &url);
    env.push(("TOLLGATE_ALARM_INTERVAL", "50ms"));
    let (dir_a, dir_b) = (data_dir("alarms-a"), data_dir("alarms-b"));
    let a = Server::start(crate::bin(), &dir_a, &[], &env);
    let b = Server::start(crate::bin(), &dir_b, &[], &env);
    let admin = |server: &Server, args: &[&str]| server.admin_json(ADMIN_TOKEN, args);
    let org = admin(&a, &["org", "create", "alarms-e2e", "--credit-micros", "20000000"]);
    let org = org["id"].as_str().unwrap().to_owned();
    // `[]`: no default rule on the org, so only the workspace's rules fire here.
    assert_eq!(admin(&a, &["org", "alarms", &org, "--set", "[]"]), serde_json::json!([]));
    let args =
        ["workspace", "create", "--org", &org, "--name", "w", "--runtime", "claude-code", "--model", "platform/sonnet"];
    let ws = admin(&a, &args)["id"].as_str().unwrap().to_owned();
    let token = admin(&a, &["provision", &ws])["token"].as_str().unwrap().to_owned();
    let rules = r#"[{"window_minutes": 1, "max_cost_micros": 0, "action": "notify"}]"#;
    let set = admin(&b, &["workspace", "alarms", &ws, "--set", rules]);
    assert_eq!(set[0]["max_cost_micros"], 0, "{set}");
    let (code, table, _) = a.admin(ADMIN_TOKEN, &["workspace", "alarms", &ws], None);
    assert_eq!(code, 0);
    assert!(table.contains("WINDOW_MINUTES") && table.contains("notify"), "{table}");

    let http = reqwest::Client::new();
    rt.block_on(async {
        assert_eq!(send_hello(&http, &a.url, &token).await.0, 200);
        assert_eq!(send_hello(&http, &b.url, &token).await.0, 200);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while fired(&a, &ws).is_empty() {
        assert!(Instant::now() < deadline, "the alarm did not fire");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both instances go on evaluating the same crossing every 50 ms for a further second
    // (about 40 evaluations): none records it again.
    let watch = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch {
        assert_eq!(fired(&b, &ws).len(), 1, "one event per crossing");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A `suspend` rule (a new rule: its own crossing) stops the workspace on both instances.
    let rules = r#"[{"window_minutes": 1, "max_cost_micros": 0, "action": "suspend"}]"#;
    admin(&a, &["workspace", "alarms", &ws, "--set", rules]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let suspended = loop {
        let w = admin(&b, &["workspace", "get", &ws]);
        if !w["suspended"].is_null() {
            break w["suspended"].clone();
        }
        assert!(Instant::now() < deadline, "not suspended");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(suspended["by"].as_str().unwrap().starts_with("alarm:w1:max0:"), "{suspended}");
    rt.block_on(async {
        for base in [&a.url, &b.url] {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let (status, body) = send_hello(&http, base, &token).await;
                if status == 403 {
                    assert!(body["error"]["message"].as_str().unwrap().contains("drain alarm"), "{body}");
                    break;
                }
                assert!(Instant::now() < deadline, "still {status}: {body}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    assert_eq!(fired(&a, &ws).len(), 2, "one per rule crossing");
    let suspensions = admin(&a, &["events", "--workspace", &ws, "--kind", "suspended"]);
    assert_eq!(suspensions["events"].as_array().map(Vec::len), Some(1), "{suspensions}");
    assert_eq!(suspensions["events"][0]["actor"], "system");
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir_a);
    let _ = std::fs::remove_dir_all(dir_b);
}
