//! The operator dashboard at `/ui/` (DESIGN.md section 17): server-rendered HTML (maud, which
//! escapes every interpolated value), one embedded stylesheet, no script at all.
//!
//! Sign-in takes the admin token once (a POST form, checked like the API's bearer token: by
//! hash, in constant time, under the same per-address throttle) and opens a server-side
//! session whose random id is the only thing in the cookie. Every POST form carries the
//! session's CSRF token; a strict Content-Security-Policy is on every response. The pages
//! read through the same code as the API: the audit report, the resolver, and the suspension
//! helpers that the suspend and resume routes use.

mod chart;
mod data;
mod fmt;
mod pages;
mod session;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use tollgate_policy::SuspensionReason;
use tollgate_store::{Owner, TokenHash};

use crate::error::ApiError;
use crate::routes::suspension::{resume_owner, suspend_owner};
use crate::{AppState, validate};
use session::{Authed, LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL, Sessions};

/// The policy on every dashboard response: nothing but this server's own stylesheet; no
/// script, no frame, no plugin; forms post only here.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");

/// The dashboard's routes, with their session store and security headers.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/orgs/{org}", get(org_page))
        .route("/ui/workspaces/{ws}", get(workspace_page))
        .route("/ui/workspaces/{ws}/suspend", post(suspend))
        .route("/ui/workspaces/{ws}/resume", post(resume))
        .route("/ui/audit", get(audit_page))
        .route("/ui/events", get(events_page))
        .layer(Extension(Sessions::default()))
        .layer(middleware::from_fn(security_headers))
}

/// CSP and its companions on every dashboard response; pages are never cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A dashboard failure, shown as a page with its status.
pub(crate) struct UiError(StatusCode, String);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self(e.status(), e.to_string())
    }
}

impl From<tollgate_store::StoreError> for UiError {
    fn from(e: tollgate_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        (self.0, Html(pages::error(self.0, &self.1).into_string())).into_response()
    }
}

type Page = Result<Html<String>, UiError>;

async fn style() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

/// The sign-in form: a fresh double-submit token, in a cookie and in the form.
async fn login_page() -> Result<Response, UiError> {
    let token = session::random_hex().ok_or_else(no_random)?;
    Ok(with_login_cookie(&token, Html(pages::login(&token, None).into_string())))
}

fn with_login_cookie(token: &str, body: impl IntoResponse) -> Response {
    let cookie = session::set_cookie(LOGIN_COOKIE, token, "/ui/login", std::time::Duration::from_secs(3600));
    let mut response = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    response
}

fn no_random() -> UiError {
    UiError(StatusCode::INTERNAL_SERVER_ERROR, "the operating system's random source failed".to_owned())
}

/// The sign-in form's fields.
#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm(..)")
    }
}

/// Signs in with the admin token: CSRF double-submit checked, then the per-address throttle,
/// then the token by hash in constant time. Success opens a session (303 to the overview);
/// a wrong token is 401 with the form again.
async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Sessions>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, UiError> {
    let expected = session::cookie(&headers, LOGIN_COOKIE);
    let csrf_ok = matches!((expected, form.csrf.as_deref()), (Some(a), Some(b)) if session::same(a, b));
    if !csrf_ok {
        return Err(UiError(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong; reload the page".into(),
        ));
    }
    let ip = connect.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.0.ip());
    let throttle = state.admin_throttle();
    if throttle.check(ip).is_err() {
        return Err(UiError(StatusCode::TOO_MANY_REQUESTS, "too many failed sign-ins from this address; wait".into()));
    }
    let stored = state.store().admin_token_hash().await?;
    let presented = TokenHash::of(form.token.trim());
    let ok =
        stored.is_some_and(|s| bool::from(subtle::ConstantTimeEq::ct_eq(&presented.as_bytes()[..], &s.as_bytes()[..])));
    if !ok {
        throttle.fail(ip);
        let token = session::random_hex().ok_or_else(no_random)?;
        let page = pages::login(&token, Some("The admin token is not valid."));
        return Ok(with_login_cookie(&token, (StatusCode::UNAUTHORIZED, Html(page.into_string()))));
    }
    let (id, _) = sessions.open().ok_or_else(no_random)?;
    let cookie = session::set_cookie(SESSION_COOKIE, &id, "/ui", SESSION_TTL);
    tracing::info!("dashboard sign-in");
    let mut response = Redirect::to("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(response)
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// The suspend form: the CSRF token and the reason.
#[derive(Deserialize)]
struct SuspendForm {
    csrf: Option<String>,
    reason: Option<String>,
}

fn check_csrf(authed: &Authed, presented: Option<&str>) -> Result<(), UiError> {
    if authed.session.csrf_ok(presented) {
        Ok(())
    } else {
        Err(UiError(StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong; reload the page".into()))
    }
}

async fn logout(
    authed: Authed,
    Extension(sessions): Extension<Sessions>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    check_csrf(&authed, form.csrf.as_deref())?;
    sessions.close(&authed.id);
    let mut response = Redirect::to("/ui/login").into_response();
    let cookie = session::set_cookie(SESSION_COOKIE, "", "/ui", std::time::Duration::ZERO);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(response)
}

async fn overview(authed: Authed, State(state): State<AppState>) -> Page {
    let data = data::overview(&state).await?;
    Ok(Html(pages::overview(&authed.session, &data).into_string()))
}

async fn org_page(authed: Authed, State(state): State<AppState>, Path(org): Path<String>) -> Page {
    let id = validate::org_id(&org)?;
    let data = data::org(&state, &id).await?;
    Ok(Html(pages::org(&authed.session, &data).into_string()))
}

async fn workspace_page(authed: Authed, State(state): State<AppState>, Path(ws): Path<String>) -> Page {
    let id = validate::workspace_id(&ws)?;
    let data = data::workspace(&state, &id).await?;
    Ok(Html(pages::workspace(&authed.session, &data).into_string()))
}

async fn audit_page(authed: Authed, State(state): State<AppState>) -> Page {
    let data = data::audit(&state).await?;
    Ok(Html(pages::audit(&authed.session, &data).into_string()))
}

/// The event log, filtered by the GET query (`kind`, `org`, `workspace`, `cursor`).
async fn events_page(authed: Authed, State(state): State<AppState>, Query(filter): Query<data::EventFilter>) -> Page {
    let data = data::events(&state, filter).await?;
    Ok(Html(pages::events(&authed.session, &data).into_string()))
}

/// Suspends a workspace by the admin, as `POST /admin/workspaces/{ws}/suspend` does.
async fn suspend(
    authed: Authed,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Form(form): Form<SuspendForm>,
) -> Result<Redirect, UiError> {
    check_csrf(&authed, form.csrf.as_deref())?;
    let id = validate::workspace_id(&ws)?;
    let text = form.reason.unwrap_or_default();
    let reason = SuspensionReason::parse(&text).map_err(|e| UiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    state.store().get_workspace(&id).await?;
    suspend_owner(&state, Owner::Workspace(id.clone()), &reason).await?;
    tracing::info!(workspace_id = %id, "workspace suspended from the dashboard");
    Ok(Redirect::to(&format!("/ui/workspaces/{id}")))
}

/// Resumes a workspace, as `POST /admin/workspaces/{ws}/resume` does.
async fn resume(
    authed: Authed,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, UiError> {
    check_csrf(&authed, form.csrf.as_deref())?;
    let id = validate::workspace_id(&ws)?;
    state.store().get_workspace(&id).await?;
    resume_owner(&state, Owner::Workspace(id.clone())).await?;
    tracing::info!(workspace_id = %id, "workspace resumed from the dashboard");
    Ok(Redirect::to(&format!("/ui/workspaces/{id}")))
}
