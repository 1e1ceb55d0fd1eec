//! Dashboard sessions: a random id in an `HttpOnly; SameSite=Strict; Path=/ui` cookie, kept
//! server-side with its CSRF token. The admin token itself is never stored, echoed or put in
//! a cookie: it is checked once, at sign-in, by its hash and in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "tg_ui_session";
/// The sign-in form's double-submit cookie (CSRF before there is a session).
pub(crate) const LOGIN_COOKIE: &str = "tg_ui_login";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest are dropped beyond it (memory stays bounded).
const MAX_SESSIONS: usize = 10_000;

/// A signed-in operator: the session id and its CSRF token.
#[derive(Clone)]
pub(crate) struct Session {
    /// The CSRF token every form of this session carries.
    pub(crate) csrf: String,
}

impl std::fmt::Debug for Session {
    // The CSRF token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_ok(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| same(p, &self.csrf))
    }
}

/// Constant-time equality of two texts (the length is not secret).
pub(crate) fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

struct Entry {
    csrf: String,
    expires: Instant,
}

/// The sessions of this instance (a restart signs everyone out). Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Sessions(Arc<Mutex<HashMap<String, Entry>>>);

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// Opens a session; returns its id and CSRF token. `None` when the random source fails.
    pub(crate) fn open(&self) -> Option<(String, String)> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), Entry { csrf: csrf.clone(), expires: now + SESSION_TTL });
        Some((id, csrf))
    }

    /// The live session `id` names, if any.
    fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).filter(|e| e.expires > Instant::now()).map(|e| Session { csrf: e.csrf.clone() })
    }

    /// Ends session `id`.
    pub(crate) fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

/// 32 bytes from the operating system's CSPRNG, in hex; `None` when it fails.
pub(crate) fn random_hex() -> Option<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A `Set-Cookie` value for the dashboard: `HttpOnly`, `SameSite=Strict`, scoped to `path`.
pub(crate) fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration) -> String {
    format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={}", max_age.as_secs())
}

/// The signed-in session of a request, with its id; a request without one is sent to the
/// sign-in page.
pub(crate) struct Authed {
    /// The session id (to close it at sign-out).
    pub(crate) id: String,
    /// The session.
    pub(crate) session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/ui/login").into_response();
        let sessions = parts.extensions.get::<Sessions>().ok_or_else(to_login)?;
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let session = sessions.get(id).ok_or_else(to_login)?;
        Ok(Self { id: id.to_owned(), session })
    }
}
