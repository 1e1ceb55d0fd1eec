//! The dashboard's security over plain HTTP: every check here is one a browser relies on.

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use tollgate_testkit::server_app::{Backend, TestApp, spawn_app};

use super::{XSS_NAME, seed};

/// A client that keeps the dashboard's cookies by hand and follows no redirect.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder().no_proxy().redirect(Policy::none()).build().unwrap();
        Self { app, client, cookies: Vec::new() }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let (pair, _) = v.to_str().unwrap().split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            self.cookies.push((k.to_owned(), v.to_owned()));
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&mut self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.app.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.app.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status().as_u16(), r.headers().clone(), r.text().await.unwrap())
    }

    /// Signs in with `token`; returns the status of the sign-in POST.
    async fn sign_in(&mut self, token: &str) -> u16 {
        let (_, _, html) = self.get("/ui/login").await;
        let csrf = csrf_of(&html);
        self.post("/ui/login", &[("csrf", &csrf), ("token", token)]).await.0
    }
}

/// The CSRF token of the first form of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn signed_out_requests_go_to_the_sign_in_page() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    for path in [
        "/ui/".to_owned(),
        "/ui/audit".to_owned(),
        format!("/ui/orgs/{}", s.org),
        format!("/ui/workspaces/{}", s.platform_ws),
    ] {
        let (status, headers, _) = b.get(&path).await;
        assert_eq!((status, headers[LOCATION].to_str().unwrap()), (303, "/ui/login"), "{path}");
    }
    // A forged session id is no session.
    b.cookies.push(("tg_ui_session".into(), "0".repeat(64)));
    assert_eq!(b.get("/ui/").await.0, 303);
    let (status, _, _) = b.post(&format!("/ui/workspaces/{}/suspend", s.platform_ws), &[("reason", "x")]).await;
    assert_eq!(status, 303, "no session, no suspension");
    assert!(app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await.body["suspended"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn sign_in_sets_a_session_cookie_never_the_token() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut b = Browser::new(&app);
    let (_, _, html) = b.get("/ui/login").await;
    let csrf = csrf_of(&html);
    let r = b
        .client
        .post(format!("{}/ui/login", app.base))
        .header(COOKIE, b.cookie_header())
        .form(&[("csrf", csrf.as_str()), ("token", app.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let set = r.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(set.starts_with("tg_ui_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    assert!(!set.contains(&app.admin_token), "the cookie does not hold the admin token");
    b.keep(&r);
    let (status, headers, body) = b.get("/ui/").await;
    assert_eq!(status, 200);
    assert!(!body.contains(&app.admin_token), "no page echoes the token");
    assert!(headers[CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
    // Sign-out ends the session on the server, whatever the browser keeps.
    let session = b.cookies.iter().find(|(k, _)| k == "tg_ui_session").unwrap().clone();
    let csrf = csrf_of(&body);
    assert_eq!(b.post("/ui/logout", &[("csrf", &csrf)]).await.0, 303);
    b.cookies.retain(|(k, _)| k != "tg_ui_session");
    b.cookies.push(session);
    assert_eq!(b.get("/ui/").await.0, 303, "the old session id no longer works");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_token_or_a_missing_csrf_token_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("tg_admin_wrong").await, 401);
    assert!(!b.cookies.iter().any(|(k, _)| k == "tg_ui_session"));
    // Sign-in without the form's double-submit token.
    let (_, _, _) = b.get("/ui/login").await;
    assert_eq!(b.post("/ui/login", &[("token", &app.admin_token)]).await.0, 403);
    assert_eq!(b.post("/ui/login", &[("csrf", "forged"), ("token", &app.admin_token)]).await.0, 403);
    assert_eq!(b.sign_in(&app.admin_token).await, 303);
    let ws_page = format!("/ui/workspaces/{}", s.platform_ws);
    let (_, _, html) = b.get(&ws_page).await;
    let csrf = csrf_of(&html);
    let suspend = format!("{ws_page}/suspend");
    assert_eq!(b.post(&suspend, &[("reason", "no csrf")]).await.0, 403);
    assert_eq!(b.post(&suspend, &[("reason", "bad csrf"), ("csrf", "x")]).await.0, 403);
    assert!(app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await.body["suspended"].is_null());
    // With it, the suspension is the API's: `by` admin, the reason kept.
    assert_eq!(b.post(&suspend, &[("reason", "runaway agent"), ("csrf", &csrf)]).await.0, 303);
    let ws = app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await;
    assert_eq!(ws.body["suspended"]["reason"], "runaway agent");
    assert_eq!(ws.body["suspended"]["by"], "admin");
    assert_eq!(b.post(&format!("{ws_page}/resume"), &[]).await.0, 403, "resume needs the token too");
    assert_eq!(b.post(&format!("{ws_page}/resume"), &[("csrf", &csrf)]).await.0, 303);
    assert!(app.get(&format!("/admin/workspaces/{}", s.platform_ws)).await.body["suspended"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn names_are_escaped_and_pages_carry_a_strict_csp() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&app.admin_token).await, 303);
    for path in [
        "/ui/".to_owned(),
        "/ui/audit".to_owned(),
        format!("/ui/orgs/{}", s.org),
        format!("/ui/workspaces/{}", s.xss_ws),
    ] {
        let (status, headers, html) = b.get(&path).await;
        assert_eq!(status, 200, "{path}");
        let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script allowed: {csp}");
        assert!(!html.contains("<script"), "{path}: no script element, the hostile name included");
        assert!(!html.contains("style="), "{path}: no inline style (the CSP refuses it)");
    }
    let (_, _, org_page) = b.get(&format!("/ui/orgs/{}", s.org)).await;
    assert!(org_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the name is shown, escaped");
    assert!(XSS_NAME.contains("<script>"));
    // Audit findings reach the pages: the BYOK workspace without its key does not resolve.
    let (_, _, audit) = b.get("/ui/audit").await;
    assert!(audit.contains("RESOLUTION_ERROR") && audit.contains("byok-missing-credential"), "{audit}");
    let (_, _, byok) = b.get(&format!("/ui/workspaces/{}", s.byok_ws)).await;
    assert!(byok.contains("MISSING_BYOK_CREDENTIAL"));
    app.stop().await;
}

#[tokio::test]
async fn a_workspace_page_lists_its_latest_requests_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(backend).await;
        let s = seed(&app).await;
        let mut b = Browser::new(&app);
        assert_eq!(b.sign_in(&app.admin_token).await, 303);
        let (status, _, html) = b.get(&format!("/ui/workspaces/{}", s.platform_ws)).await;
        assert_eq!(status, 200, "{backend:?}: {html}");
        let table = &html[html.find(r#"id="ledger""#).expect("the ledger table")..];
        // Seeded one a day back from now, 0 the newest: listed newest first.
        let positions: Vec<usize> = (0..7).map(|d| table.find(&format!("req-{d}<")).expect("each request")).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{backend:?}: newest first");
        assert!(table.contains("$1.0500"), "{backend:?}: the oldest row's cost");
        // Times read relative to now, the absolute UTC time in the title.
        assert!(table.contains(">6 d ago</time>") && table.contains(r#"<time datetime=""#), "{backend:?}");
        // Another workspace's page lists none of them.
        let (_, _, other) = b.get(&format!("/ui/workspaces/{}", s.xss_ws)).await;
        assert!(!other.contains("req-0"), "{backend:?}");
        // The chart: bars where there was spend, a sentence where there was none.
        assert!(html.contains("<svg") && html.contains("<rect"), "{backend:?}: a spend chart");
        assert!(!other.contains("<svg") && other.contains("No spend in the last 30 days."), "{backend:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn failed_sign_ins_spend_the_admin_apis_throttle() {
    let throttle =
        tollgate_server::AdminThrottleConfig { burst: 2, refill_every: std::time::Duration::from_secs(3600) };
    let options = tollgate_testkit::server_app::Options { admin_throttle: throttle, ..Default::default() };
    let app = tollgate_testkit::server_app::spawn_with(Backend::Sqlite, options).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in("tg_admin_guess1").await, 401);
    assert_eq!(b.sign_in("tg_admin_guess2").await, 401);
    // The bucket is spent: even the right token is not checked now, here or on the API.
    assert_eq!(b.sign_in(&app.admin_token).await, 429);
    assert!(!b.cookies.iter().any(|(k, _)| k == "tg_ui_session"));
    assert_eq!(app.get("/admin/orgs").await.status, 429, "one throttle for the API and the dashboard");
    app.stop().await;
}

/// The part of a page from its events table on (the filter's options name every kind too).
fn events_table(html: &str) -> &str {
    &html[html.find(r#"<table class="events""#).unwrap_or_else(|| panic!("an events table: {html}"))..]
}

fn rows(table: &str) -> usize {
    table.matches(r#"<td class="when""#).count()
}

#[tokio::test]
async fn the_events_page_lists_filters_and_pages_the_log() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&app.admin_token).await, 303);
    let (status, headers, html) = b.get("/ui/events").await;
    assert_eq!(status, 200);
    assert!(headers[CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
    let table = events_table(&html);
    for text in ["org.created", "workspace.created", "secret.set", "limits.updated", "byok-missing-credential"] {
        assert!(table.contains(text), "{text} in {table}");
    }
    assert!(table.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script"), "escaped");
    assert!(!html.contains("sk-ant-oat01-demo") && !html.contains("ghp-demo-shared"), "names only, no value");
    // By kind: only that kind's rows.
    let (_, _, html) = b.get("/ui/events?kind=secret.set").await;
    let table = events_table(&html);
    assert_eq!(rows(table), table.matches(">secret.set<").count(), "{table}");
    assert!(rows(table) >= 5 && !table.contains(">workspace.created<"), "{table}");
    assert!(html.contains(r#"<option value="secret.set" selected>"#), "the filter shows what is chosen");
    // By workspace, within its org.
    let (_, _, html) = b.get(&format!("/ui/events?org={}&workspace={}", s.org, s.byok_ws)).await;
    let table = events_table(&html);
    assert_eq!(rows(table), 1, "{table}");
    assert!(table.contains(">workspace.created<"));
    // A filter that does not parse is a 400 page, not an empty list.
    assert_eq!(b.get("/ui/events?kind=no.such").await.0, 400);
    assert_eq!(b.get("/ui/events?cursor=x").await.0, 400);
    assert_eq!(b.get("/ui/events?org=not%20an%20id").await.0, 404);
    // Pages: 60 more events of the second org, 50 a page, the older link continues.
    let other =
        app.get("/admin/orgs").await.body.as_array().unwrap().iter().find(|o| o["name"] == "other").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    for n in 0..60 {
        let body = json!({"delta_micros": 1_000_000, "reason": format!("top-up {n}")});
        app.post(&format!("/admin/orgs/{other}/credit"), body).await.assert_status(200);
    }
    let (_, _, first) = b.get(&format!("/ui/events?org={other}")).await;
    assert_eq!(rows(events_table(&first)), 50);
    assert!(first.contains("top-up 59 ·") && first.contains("top-up 10 ·") && !first.contains("top-up 9 ·"));
    assert!(!first.contains(r#"id="newest""#));
    let start = first.find(r#"id="older" href=""#).expect("an older link") + r#"id="older" href=""#.len();
    let older = first[start..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(older.contains(&format!("org={other}")), "the filter is kept: {older}");
    let (_, _, second) = b.get(&older).await;
    let table = events_table(&second);
    assert_eq!(rows(table), 11, "the other 10 top-ups and the org's creation");
    assert!(table.contains("top-up 0 ·") && table.contains("top-up 9 ·") && table.contains(">org.created<"));
    assert!(!table.contains("top-up 10 ·"), "no event on both pages");
    assert!(!second.contains(r#"id="older""#) && second.contains(r#"id="newest""#));
    app.stop().await;
}

#[tokio::test]
async fn fired_alarms_show_on_the_overview_org_and_workspace_pages() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&app.admin_token).await, 303);
    let (_, _, overview) = b.get("/ui/").await;
    assert!(overview.contains(r#"id="no-alarms""#) && overview.contains(r#"id="alarms-24h">0<"#), "none yet");
    // The evaluator sees the drain: the workspace's rule and the org's default rule fire; one
    // more recorded 8 days ago is out of the window.
    assert_eq!(fire_alarm(&app, &s).await, 2, "the drain fires both rules");
    assert_eq!(fire_alarm(&app, &s).await, 0, "once per crossing");
    let old =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 8 * 86_400_000;
    app.db
        .execute(
            &format!(
                "INSERT INTO events (at, kind, actor, org_id, workspace_id, detail) \
                 VALUES ({old}, 'alarm.fired', 'system', $1, $2, '{{\"cost_micros\": 99000000}}')"
            ),
            &[&s.org, &s.drain_ws],
        )
        .await;
    let (_, _, overview) = b.get("/ui/").await;
    let alarms = &overview[overview.find(r#"id="alarms""#).expect("the fired alarms")..];
    assert!(alarms.contains("platform-managed") && alarms.contains("over the cap of $5.000000"), "{alarms}");
    assert!(!alarms.contains("$99.00"), "older than 7 days: not listed");
    assert!(overview.contains(r#"id="alarms-24h">2<"#), "{overview}");
    let (_, _, org) = b.get(&format!("/ui/orgs/{}", s.org)).await;
    let org_alarms = &org[org.find(r#"id="alarms""#).unwrap()..];
    assert!(org_alarms.contains("the 7-day average"), "the org's default rule fired: {org_alarms}");
    let rules = &org[org.find(r#"id="alarm-rules""#).unwrap()..];
    assert!(rules.contains("default") && rules.contains("over 5× its 7-day average and at least "), "{rules}");
    assert!(events_table(&org).contains(r#"class="alert""#), "the org's events highlight it");
    let (_, _, ws) = b.get(&format!("/ui/workspaces/{}", s.drain_ws)).await;
    assert!(ws[ws.find(r#"id="alarms""#).unwrap()..].contains("spent in the last 60 minutes"), "{ws}");
    let rules = &ws[ws.find(r#"id="alarm-rules""#).unwrap()..];
    assert!(rules.contains("1 h") && rules.contains(">$5.00<") && !rules.contains("default"), "{rules}");
    let (_, _, quiet) = b.get(&format!("/ui/workspaces/{}", s.platform_ws)).await;
    assert!(quiet.contains(r#"id="no-alarms""#), "another workspace's alarm is not this one's");
    app.stop().await;
}

/// Runs the alarm evaluator once over the demo, as `serve` does every interval: the drain
/// fires the drain workspace's own rule and its org's default rule. Returns how many
/// `alarm.fired` events it recorded.
pub(crate) async fn fire_alarm(app: &TestApp, _s: &super::Seeded) -> usize {
    let registry = std::sync::Arc::new(tollgate_policy::Registry::embedded().unwrap());
    let state = tollgate_server::AppState::new(
        app.store.clone(),
        registry,
        tollgate_policy::PublicUrl::parse("http://tollgate.test").unwrap(),
    );
    let e = tollgate_server::alarms::evaluate_once(&state, tollgate_store::Timestamp::now()).await.unwrap();
    e.recorded.iter().filter(|k| **k == tollgate_policy::EventKind::AlarmFired).count()
}

#[tokio::test]
async fn the_org_page_charts_the_demos_week_by_day_and_by_model() {
    let app = spawn_app(Backend::Sqlite).await;
    let s = seed(&app).await;
    let mut b = Browser::new(&app);
    assert_eq!(b.sign_in(&app.admin_token).await, 303);
    let (_, _, html) = b.get(&format!("/ui/orgs/{}", s.org)).await;
    let by_day = &html[html.find(r#"aria-label="Spend by day"#).expect("the by-day chart")..];
    let by_day = &by_day[..by_day.find("</svg>").unwrap()];
    assert!(by_day.matches("<rect").count() >= 7, "a bar for each day of the week: {by_day}");
    let by_model = &html[html.find(r#"aria-label="Spend by model"#).expect("the by-model chart")..];
    let by_model = &by_model[..by_model.find("</svg>").unwrap()];
    for model in ["platform/sonnet", "platform/haiku", "platform/gpt", "platform/gpt-mini"] {
        assert!(by_model.contains(&format!(">{model}<")), "{model}: {by_model}");
    }
    app.stop().await;
}
