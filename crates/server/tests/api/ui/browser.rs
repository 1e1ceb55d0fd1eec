//! A walk through the dashboard in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs), driven over WebDriver: sign in, find the demo
//! org, open a workspace's explanation, suspend and resume it, a wrong token refused. Each
//! step leaves a screenshot in `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tollgate_testkit::server_app::{Backend, spawn_app};

use super::{XSS_NAME, seed};

/// `chromedriver` on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver package; scripts/test-deps installs it)");
    let profile = std::env::temp_dir().join(format!("tollgate-ui-chromium-{}", uuid::Uuid::new_v4().simple()));
    // Owned at once, so that it is killed and waited for on every path.
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), profile };
    // Ready when it accepts connections (bounded: a driver that never comes up fails the test).
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

/// A headless Chromium session. The flags keep it off this machine's closed network and let
/// it run as root in a container.
async fn browser(driver: &Driver) -> Client {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,1800".to_owned(),
        format!("--user-data-dir={}", driver.profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), json!({"binary": "/usr/bin/chromium", "args": args}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a Chromium session")
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// The text of the element `css` selects, waiting (bounded) for it to appear: a click's
/// navigation may still be under way.
async fn text_of(c: &Client, css: &str) -> String {
    let found = c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await;
    found.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

/// Clicks `css` and waits (bounded) until `then` is on the page that follows.
async fn click_then(c: &Client, css: &str, then: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(then))
        .await
        .unwrap_or_else(|e| panic!("{then}: {e}"));
}

/// Waits (up to 20 s) until the page's URL has `needle` in its query: the navigation a click
/// started has happened.
async fn wait_for_query(c: &Client, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.unwrap();
        if url.query().unwrap_or_default().contains(needle) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "still at {url}, waiting for {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs in with `token` and waits for `then` (the error, or the overview's table).
async fn sign_in(c: &Client, base: &str, token: &str, then: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"), "signed out: sent to sign in");
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    click_then(c, "form button[type=submit]", then).await;
}

/// Opens workspace `ws`'s page and finds a fired alarm in its Alarms section.
async fn see_an_alarm(c: &Client, base: &str, ws: &str) {
    // The fragment scrolls the section into the screenshot.
    c.goto(&format!("{base}/ui/workspaces/{ws}#alarms-section")).await.unwrap();
    // `#alarms` is there only when one fired (else `#no-alarms`); `text_of` waits for it.
    let alarms = text_of(c, "#alarms").await;
    assert!(alarms.contains("platform-managed"), "a fired alarm of the drain's workspace: {alarms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_walks_the_dashboard_in_chromium() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let driver = start_driver().await;
    let c = browser(&driver).await;
    let base = app.base.clone();

    // A wrong token: refused, the form again, no session.
    sign_in(&c, &base, "tg_admin_not-the-token", "#login-error").await;
    assert!(text_of(&c, "#login-error").await.contains("not valid"));
    shot(&c, "01-sign-in-refused").await;
    assert!(c.get_all_cookies().await.unwrap().iter().all(|k| k.name() != "tg_ui_session"));

    // The right one: the overview, with the demo org and the audit's findings.
    sign_in(&c, &base, &app.admin_token, "#orgs").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/");
    let orgs = text_of(&c, "#orgs").await;
    assert!(orgs.contains("demo") && orgs.contains("other"), "{orgs}");
    let session = c.get_named_cookie("tg_ui_session").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    shot(&c, "02-overview").await;

    // The events page: the demo's log; filtered by kind, only that kind.
    c.goto(&format!("{base}/ui/events")).await.unwrap();
    let events = text_of(&c, "table.events").await;
    assert!(events.contains("workspace.created") && events.contains("org.created"), "{events}");
    shot(&c, "02b-events").await;
    c.find(Locator::Css("#kind")).await.unwrap().select_by_value("workspace.created").await.unwrap();
    // `table.events` is on the page before the click too: wait for the filtered page itself.
    c.find(Locator::Css("#filter")).await.unwrap().click().await.unwrap();
    wait_for_query(&c, "kind=workspace.created").await;
    c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("table.events")).await.unwrap();
    let kinds = c.find_all(Locator::Css("table.events .badge.kind")).await.unwrap();
    assert!(kinds.len() >= 8, "the demo's workspaces");
    for k in kinds {
        assert_eq!(k.text().await.unwrap(), "workspace.created");
    }
    shot(&c, "02c-events-by-kind").await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#orgs")).await.unwrap();

    // The org: its workspaces, the hostile name shown as text and run nowhere.
    c.find(Locator::LinkText("demo")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#workspaces")).await.unwrap();
    let table = text_of(&c, "#workspaces").await;
    assert!(
        table.contains("coder") && table.contains(XSS_NAME) && table.contains("MISSING_BYOK_CREDENTIAL"),
        "{table}"
    );
    assert!(c.get_alert_text().await.is_err(), "no alert: the name was not run as script");
    // Its spend charts hold the demo's week.
    let bars = c.find_all(Locator::Css("svg.chart rect")).await.unwrap();
    assert!(bars.len() >= 7 + 4, "a bar per day of the week and per model: {}", bars.len());
    shot(&c, "03-org").await;

    // A workspace's explanation: the trace and the credentials, by name.
    c.find(Locator::LinkText("coder")).await.unwrap().click().await.unwrap();
    c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#resolved-mode")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with(&s.platform_ws));
    assert_eq!(text_of(&c, "#resolved-mode").await, "platform_managed");
    assert!(!text_of(&c, "#trace").await.is_empty());
    let ledger = text_of(&c, "#ledger").await;
    assert!(ledger.contains("req-0") && ledger.contains("req-6"), "the week's requests: {ledger}");
    shot(&c, "04-workspace").await;

    // Suspend it, and the API sees it; resume it.
    c.find(Locator::Css("#reason")).await.unwrap().send_keys("runaway agent").await.unwrap();
    click_then(&c, "#suspend", "#resume").await;
    assert!(text_of(&c, "#suspension").await.contains("runaway agent"));
    let ws = app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await;
    assert_eq!(ws.body["suspended"]["reason"], "runaway agent");
    shot(&c, "05-workspace-suspended").await;
    click_then(&c, "#resume", "#suspend").await;
    assert!(text_of(&c, "#suspension").await.contains("Not suspended"));
    assert!(app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await.body["suspended"].is_null());

    // The BYOK workspace without its key explains why, and the audit page lists it.
    c.goto(&format!("{base}/ui/workspaces/{}", s.byok_ws)).await.unwrap();
    assert!(text_of(&c, "#resolution-error").await.contains("MISSING_BYOK_CREDENTIAL"));
    shot(&c, "06-workspace-unresolved").await;
    c.goto(&format!("{base}/ui/audit")).await.unwrap();
    assert!(text_of(&c, "table.findings").await.contains("RESOLUTION_ERROR"));
    shot(&c, "07-audit").await;
    c.goto(&format!("{base}/ui/workspaces/{}", s.xss_ws)).await.unwrap();
    assert_eq!(text_of(&c, "h1").await, XSS_NAME);
    assert!(c.get_alert_text().await.is_err());

    // The drain's workspace: its week, and the alarm its drain fired.
    assert_eq!(
        super::http::fire_alarm(&app, &s).await,
        2,
        "the drain fires its workspace's rule and the org's default"
    );
    see_an_alarm(&c, &base, &s.drain_ws).await;
    shot(&c, "08-workspace-drain-alarm").await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert_eq!(text_of(&c, "#alarms-24h").await, "2");
    shot(&c, "09-overview-alarm").await;

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}
