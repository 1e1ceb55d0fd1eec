//! How a request presents a token: `Authorization: Bearer <token>` or Anthropic's `x-api-key`.
//! One definition for the proxy and the control plane's secrets pull.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The header an agent may use instead of `Authorization: Bearer` (Anthropic's convention).
pub const X_API_KEY: &str = "x-api-key";

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token of `x-api-key`, if any.
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(X_API_KEY)?.to_str().ok().map(str::trim).filter(|t| !t.is_empty())
}
