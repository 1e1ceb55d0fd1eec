//! Extractors whose rejections are the API's own errors: JSON bodies (`INVALID_JSON`,
//! `PAYLOAD_TOO_LARGE`), path parameters (`NOT_FOUND`) and query strings (`INVALID_QUERY`).
//!
//! Bodies are never logged, and serde's messages are scrubbed of quoted strings before they
//! are answered: a value sent in the wrong place must not come back in an error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiErrorCode};

/// A JSON body. Unknown fields, wrong types, missing fields and malformed JSON are
/// `INVALID_JSON`; a body over the limit is `PAYLOAD_TOO_LARGE`. The content type is not
/// checked: the body must simply be JSON.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

/// Like [`ApiJson`], but an empty body stands for `T::default()` (for `{model?}`).
#[derive(Debug)]
pub(crate) struct ApiJsonOrDefault<T>(pub T);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ApiErrorCode::PayloadTooLarge,
                format!("the request body is larger than {} bytes", crate::MAX_BODY_BYTES),
            )
        } else {
            ApiError::new(ApiErrorCode::InvalidJson, "the request body could not be read")
        }
    })
}

/// Parses `bytes` as `T`, answering `INVALID_JSON` with a message that names the problem
/// and its position but no quoted string from the body.
///
/// Every body of the API is an object: anything else (an array, which serde would read as
/// positional struct fields, a string, a number, `null`) is refused before `T` sees it.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
        && *first != b'{'
    {
        return Err(ApiError::new(ApiErrorCode::InvalidJson, "the request body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(bytes, Some(e.path()), e.inner()))?;
    // Trailing characters after the object are as malformed as a syntax error inside it.
    de.end().map_err(|e| json_error(bytes, None, &e))?;
    Ok(value)
}

/// The `INVALID_JSON` error for `e`: what kind of problem, the field it is at (a path such
/// as `limits.budget_micros_per_day`, when serde knows it) and serde's message with its
/// position, every quoted string scrubbed.
fn json_error(bytes: &[u8], path: Option<&serde_path_to_error::Path>, inner: &serde_json::Error) -> ApiError {
    let what = match inner.classify() {
        serde_json::error::Category::Eof if bytes.iter().all(u8::is_ascii_whitespace) => {
            return ApiError::new(ApiErrorCode::InvalidJson, "the request body must be a JSON object");
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data | serde_json::error::Category::Io => "invalid request body",
    };
    // The path holds field names (from the type, or unknown keys the client sent: those are
    // scrubbed like any quoted text) and array indexes; `.` is the body itself.
    let path = path.map(ToString::to_string).unwrap_or_default();
    let at = if path == "." || path.is_empty() { String::new() } else { format!(" at `{}`", scrub_field(&path)) };
    // serde_json's Display ends with " at line L column C"; it is kept.
    let detail = scrub_quoted(&inner.to_string());
    let detail: String = detail.chars().take(300).collect();
    ApiError::new(ApiErrorCode::InvalidJson, format!("{what}{at}: {detail}"))
}

/// A field path as shown in an error: bounded, and without characters that a client could
/// use to smuggle a value into the message (only what a field name or an index is made of).
fn scrub_field(path: &str) -> String {
    path.chars()
        .take(120)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-') { c } else { '?' })
        .collect()
}

/// Replaces every double-quoted string (honouring backslash escapes) with `"..."`.
pub(crate) fn scrub_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                break;
            }
        }
        out.push_str("\"...\"");
    }
    out
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(Self)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(Self)
    }
}

/// Path parameters. A path that does not decode (bad percent-encoding, not UTF-8) names
/// nothing that exists: `NOT_FOUND`.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                tracing::debug!(status = %rejection.status(), "path parameters did not decode");
                Err(ApiError::new(ApiErrorCode::NotFound, "no such resource"))
            }
        }
    }
}

/// A query string. One that does not parse is `INVALID_QUERY`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let detail = scrub_quoted(&rejection.body_text());
                let detail: String = detail.chars().take(300).collect();
                Err(ApiError::new(ApiErrorCode::InvalidQuery, detail))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_are_scrubbed() {
        assert_eq!(
            scrub_quoted(r#"invalid type: string "sk-secret", expected i64 at line 1 column 20"#),
            r#"invalid type: string "...", expected i64 at line 1 column 20"#
        );
        assert_eq!(scrub_quoted(r#"string "a\"sk-secret" x"#), r#"string "..." x"#);
        assert_eq!(scrub_quoted(r#"unterminated "sk-secret"#), r#"unterminated "...""#);
        assert_eq!(scrub_quoted("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn json_errors_never_echo_string_values() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialised")]
        struct B {
            n: i64,
        }
        let err = parse_json::<B>(br#"{"n": "sk-very-secret"}"#).unwrap_err();
        assert_eq!(err.code(), "INVALID_JSON");
        assert!(!err.to_string().contains("sk-very-secret"), "{err}");
        let err = parse_json::<B>(br#"{"n": 1, "extra": 2}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        let err = parse_json::<B>(br#"{"n": 1} x"#).unwrap_err();
        assert!(err.to_string().contains("malformed JSON"), "{err}");
        let err = parse_json::<B>(b"  ").unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
    }

    /// A wrong-typed nested field is named by its path, so a client knows which one to fix.
    #[test]
    fn errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialised")]
        struct Limits {
            budget: Option<i64>,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialised")]
        struct B {
            limits: Option<Limits>,
            models: Option<Vec<i64>>,
        }
        let err = parse_json::<B>(br#"{"limits": {"budget": "sk-secret"}}"#).unwrap_err();
        assert_eq!(err.code(), "INVALID_JSON");
        assert!(err.to_string().contains("at `limits.budget`"), "{err}");
        assert!(!err.to_string().contains("sk-secret"), "{err}");
        let err = parse_json::<B>(br#"{"models": [1, "x"]}"#).unwrap_err();
        assert!(err.to_string().contains("at `models[1]`"), "{err}");
        let err = parse_json::<B>(br#"{"limits": 5}"#).unwrap_err();
        assert!(err.to_string().contains("at `limits`"), "{err}");
    }

    #[test]
    fn only_objects_are_bodies() {
        #[derive(Debug, serde::Deserialize)]
        #[expect(dead_code, reason = "only deserialised")]
        struct B {
            a: String,
            n: i64,
        }
        for body in [&br#"["x", 1]"#[..], b" [\"x\",1]", b"null", b"\"x\"", b"7", b"true"] {
            let err = parse_json::<B>(body).unwrap_err();
            assert_eq!(err.code(), "INVALID_JSON");
            assert!(err.to_string().contains("must be a JSON object"), "{err}");
        }
        assert!(parse_json::<B>(br#" {"a": "x", "n": 1}"#).is_ok());
    }
}
