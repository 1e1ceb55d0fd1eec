//! Authentication: the admin token on `/admin/*`, workspace tokens on the secrets pull.
//!
//! Tokens are compared by their SHA-256 hash, in constant time; the store keeps nothing
//! else of them. Header values are marked sensitive by the router's outermost layer, so
//! tracing never prints them.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tollgate_policy::WorkspaceToken;
use tollgate_store::{TokenHash, Workspace};

use crate::AppState;
use crate::error::{ApiError, ApiErrorCode};

pub(crate) use tollgate_proxy::credentials::{X_API_KEY, bearer};

/// `prefix` + 43 base62 characters from the operating system's CSPRNG; `None` when the
/// random source fails (never a token from a partly filled buffer).
pub(crate) fn mint(prefix: &str) -> Option<SecretString> {
    let mut failed = false;
    // Wrapped at once, so the text is zeroized on drop whatever happens.
    let token = SecretString::from(tollgate_policy::token::mint_body(prefix, |buf| {
        if getrandom::fill(buf).is_err() {
            failed = true;
        }
    }));
    (!failed).then_some(token)
}

/// A fresh workspace token; `None` when the random source fails.
pub(crate) fn mint_workspace_token() -> Option<WorkspaceToken> {
    WorkspaceToken::parse(mint(tollgate_policy::token::WORKSPACE_TOKEN_PREFIX)?.expose_secret()).ok()
}

/// The workspace token a request presents: `Authorization: Bearer`, else `x-api-key`.
pub(crate) fn presented_workspace_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| tollgate_proxy::credentials::api_key(headers))
}

/// Counts refused admin-token attempts, by `outcome` (`unauthorized` or `rate_limited`).
pub(crate) const ADMIN_AUTH_FAILURES: &str = "tollgate_admin_auth_failures_total";

/// Middleware on every `/admin` route: the admin token or 401. Each 401 spends the source
/// address's throttle bucket; an address that has spent it is answered 429 `RATE_LIMITED`
/// with `retry-after`, its token unchecked, so guessing proceeds at a few tries a second.
/// Addresses are throttled apart: others' failures never slow a correct token.
pub(crate) async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Served without connect info (a router used directly), every request shares one bucket.
    let ip =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip());
    let throttle = state.admin_throttle();
    if let Err(wait) = throttle.check(ip) {
        metrics::counter!(ADMIN_AUTH_FAILURES, "outcome" => "rate_limited").increment(1);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = ApiError::new(
            ApiErrorCode::RateLimited,
            format!("too many failed admin-token attempts from this address; retry in {seconds} s"),
        )
        .into_response();
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    match check_admin(&state, request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(e) => {
            if e.status() == StatusCode::UNAUTHORIZED {
                throttle.fail(ip);
                metrics::counter!(ADMIN_AUTH_FAILURES, "outcome" => "unauthorized").increment(1);
            }
            e.into_response()
        }
    }
}

async fn check_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = bearer(headers).ok_or_else(|| {
        ApiError::new(ApiErrorCode::Unauthorized, "admin routes need `Authorization: Bearer <admin token>`")
    })?;
    let wrong = || ApiError::new(ApiErrorCode::Unauthorized, "the admin token is not valid");
    let stored = state.store().admin_token_hash().await?.ok_or_else(wrong)?;
    let presented = TokenHash::of(presented);
    if bool::from(presented.as_bytes().ct_eq(stored.as_bytes())) { Ok(()) } else { Err(wrong()) }
}

/// The workspace whose active token the request presents, and that token. Unknown, revoked
/// or malformed tokens are 401; the caller checks the workspace (403 for another one).
pub(crate) async fn workspace_from_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Workspace, WorkspaceToken), ApiError> {
    let presented = presented_workspace_token(headers).ok_or_else(|| {
        ApiError::new(ApiErrorCode::Unauthorized, "send the workspace token in `Authorization: Bearer` or `x-api-key`")
    })?;
    let invalid = || ApiError::new(ApiErrorCode::Unauthorized, "the workspace token is unknown or has been revoked");
    let token = WorkspaceToken::parse(presented).map_err(|_| invalid())?;
    let workspace = state.store().workspace_for_token(&TokenHash::of(token.expose())).await?.ok_or_else(invalid)?;
    Ok((workspace, token))
}
