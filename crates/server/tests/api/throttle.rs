//! Failed admin-token attempts are slowed per source address and counted (issue 13 item 9).

use std::net::{IpAddr, Ipv4Addr};

use reqwest::Method;
use tollgate_testkit::server_app::TestApp;

use crate::support::{Auth, Backend, spawn_app};

/// The sum of `tollgate_admin_auth_failures_total` samples with `outcome` in `/metrics`.
async fn failures(app: &TestApp, outcome: &str) -> f64 {
    let m = app.send(Method::GET, "/metrics", Auth::None, None).await;
    let label = format!("outcome=\"{outcome}\"");
    m.text
        .lines()
        .filter(|l| l.starts_with("tollgate_admin_auth_failures_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The default bucket (5 failures, then 1 a second): the 6th bad attempt in a burst is 429
/// `RATE_LIMITED` with `retry-after`, and so is the right token from that address until it
/// has waited; another address is not slowed; after the wait the right token works; both
/// outcomes are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_attempts_are_slowed_per_address_and_counted() {
    let app = spawn_app(Backend::Sqlite).await;
    let (unauthorized_before, limited_before) =
        (failures(&app, "unauthorized").await, failures(&app, "rate_limited").await);
    let wrong = format!("tg_admin_{}", "B".repeat(43));
    for attempt in 1..=5 {
        let r = app.send(Method::GET, "/admin/orgs", Auth::Bearer(&wrong), None).await;
        assert_eq!(r.status, 401, "attempt {attempt}: {}", r.text);
    }
    let sixth = app.send(Method::GET, "/admin/orgs", Auth::Bearer(&wrong), None).await;
    sixth.assert_error(429, "RATE_LIMITED");
    let wait: u64 = sixth.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "retry-after {wait}");
    let right_too_soon = app.send(Method::GET, "/admin/orgs", Auth::Admin, None).await;
    right_too_soon.assert_error(429, "RATE_LIMITED");

    // Another source address (127.0.0.2 reaches the loopback listener) is not slowed.
    let elsewhere =
        reqwest::Client::builder().no_proxy().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).build().unwrap();
    let r = elsewhere.get(format!("{}/admin/orgs", app.base)).bearer_auth(&app.admin_token).send().await.unwrap();
    assert_eq!(r.status(), 200, "another address's failures never slow a right token");

    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    app.send(Method::GET, "/admin/orgs", Auth::Admin, None).await.assert_status(200);

    assert!(failures(&app, "unauthorized").await - unauthorized_before >= 5.0, "the five 401s are counted");
    assert!(failures(&app, "rate_limited").await - limited_before >= 2.0, "the two 429s are counted");
}
