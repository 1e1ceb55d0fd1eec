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
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof if bytes.iter().all(u8::is_ascii_whitespace) => {
                return ApiError::new(ApiErrorCode::InvalidJson, "the request body must be a JSON object");
            }
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
            serde_json::error::Category::Data | serde_json::error::Category::Io => "invalid request body",
        };
        // serde_json's Display ends with " at line L column C"; it is kept.
        let detail = scrub_quoted(&e.to_string());
        let detail: String = detail.chars().take(300).collect();
        ApiError::new(ApiErrorCode::InvalidJson, format!("{what}: {detail}"))
    })
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
        let err = parse_json::<B>(b"  ").unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
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
