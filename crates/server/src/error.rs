//! The API's one error type and its JSON shape: `{"error":{"code":"...","message":"..."}}`.
//!
//! Messages quote user-supplied names, ids and modes, never a secret value or a token.
//! Internal errors are logged once, with their details, where they are converted, and
//! answered with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_policy::Resolution;
use tollgate_store::StoreError;

/// The stable error codes of the API (the resolution codes of a failed provision or pull
/// come from `tollgate_policy::ErrorCode` and are answered 422).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// 400: malformed JSON, an unknown field, a wrong type or a missing field.
    InvalidJson,
    /// 400: a query string that does not parse.
    InvalidQuery,
    /// 400: a secret name that is not `[A-Z_][A-Z0-9_]*` (lower case is rejected, never
    /// upper-cased), longer than 128 bytes, or in the reserved `TOLLGATE_` namespace.
    InvalidSecretName,
    /// 400: a secret value over 64 KiB.
    SecretValueTooLarge,
    /// 400: a secret value no process environment can carry (a NUL byte).
    InvalidSecretValue,
    /// 400: a runtime the registry does not define.
    UnknownRuntime,
    /// 400: not `platform_managed`, `byok` or `disabled`.
    InvalidBillingMode,
    /// 400: not `agent` or `concierge`.
    InvalidKind,
    /// 400: an org or workspace name that is empty, over 200 characters or has control
    /// characters.
    InvalidName,
    /// 400: a model id over 256 characters or with control characters.
    InvalidModel,
    /// 400: a credit amount beyond 10^15 micro-USD, an empty reason, or an overflow.
    InvalidCredit,
    /// 400: a `markup_percent` that is not an integer in (-100, 1000].
    InvalidMarkup,
    /// 400: a suspension reason that is empty, over 500 characters or has control characters.
    InvalidReason,
    /// 400: a `limits` value out of range (negative, zero where zero means nothing, a percent
    /// outside 1..=100); the message names the field.
    InvalidLimits,
    /// 400: an `alert_webhook_url` that is not an absolute http(s) URL with a host, or is over
    /// 2048 bytes (the message never quotes it: it is a credential).
    InvalidWebhookUrl,
    /// 400: an `alarms` list that does not parse (a rule out of range or that could never
    /// fire, more than 16 rules); the message names the rule and the field.
    InvalidAlarms,
    /// 401: no token, or not the right one.
    Unauthorized,
    /// 403: a valid token that does not grant this.
    Forbidden,
    /// 403: the workspace or its org is suspended (section 14): no pull, no provision.
    Suspended,
    /// 404: no such org, workspace, secret or route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: a name already taken.
    Conflict,
    /// 409: a debit larger than the balance, without `allow_negative`.
    InsufficientCredit,
    /// 413: a body over 512 KiB.
    PayloadTooLarge,
    /// 429: too many failed admin-token attempts from this address; `retry-after` says when
    /// the next is heard.
    RateLimited,
    /// 500: a bug or a broken database; details are in the server log.
    Internal,
    /// 503: the database does not answer.
    Unavailable,
}

impl ApiErrorCode {
    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "INVALID_JSON",
            Self::InvalidQuery => "INVALID_QUERY",
            Self::InvalidSecretName => "INVALID_SECRET_NAME",
            Self::SecretValueTooLarge => "SECRET_VALUE_TOO_LARGE",
            Self::InvalidSecretValue => "INVALID_SECRET_VALUE",
            Self::UnknownRuntime => "UNKNOWN_RUNTIME",
            Self::InvalidBillingMode => "INVALID_BILLING_MODE",
            Self::InvalidKind => "INVALID_KIND",
            Self::InvalidName => "INVALID_NAME",
            Self::InvalidModel => "INVALID_MODEL",
            Self::InvalidCredit => "INVALID_CREDIT",
            Self::InvalidMarkup => "INVALID_MARKUP",
            Self::InvalidReason => "INVALID_REASON",
            Self::InvalidLimits => "INVALID_LIMITS",
            Self::InvalidWebhookUrl => "INVALID_WEBHOOK_URL",
            Self::InvalidAlarms => "INVALID_ALARMS",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::Suspended => "SUSPENDED",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict => "CONFLICT",
            Self::InsufficientCredit => "INSUFFICIENT_CREDIT",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status the code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson
            | Self::InvalidQuery
            | Self::InvalidSecretName
            | Self::SecretValueTooLarge
            | Self::InvalidSecretValue
            | Self::UnknownRuntime
            | Self::InvalidBillingMode
            | Self::InvalidKind
            | Self::InvalidName
            | Self::InvalidModel
            | Self::InvalidCredit
            | Self::InvalidMarkup
            | Self::InvalidReason
            | Self::InvalidLimits
            | Self::InvalidWebhookUrl
            | Self::InvalidAlarms => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Suspended => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::InsufficientCredit => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered by the API.
#[derive(Debug)]
pub enum ApiError {
    /// A code of [`ApiErrorCode`] and a message for people.
    Api(ApiErrorCode, String),
    /// A failed resolution on provision or pull: 422 with the resolution's own code, and the
    /// resolution itself (names and origins only, never values).
    Resolution(Box<Resolution>),
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self::Api(code, message.into())
    }

    /// Logs `detail` once, with `context`, and returns a generic 500.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(ApiErrorCode::Internal, "internal error; the details are in the server log")
    }

    /// 404 for `what` (`org`, `workspace`, `secret`, ...).
    pub fn not_found(what: &str) -> Self {
        Self::new(ApiErrorCode::NotFound, format!("{what} not found"))
    }

    /// The code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(code, _) => code.as_str(),
            Self::Resolution(r) => r.error.as_ref().map_or("INTERNAL", |e| e.code.as_str()),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(code, _) => code.status(),
            Self::Resolution(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(code, message) => write!(f, "{}: {message}", code.as_str()),
            Self::Resolution(r) => match &r.error {
                Some(e) => write!(f, "{}: {}", e.code, e.message),
                None => f.write_str("resolution failed"),
            },
        }
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(message) => Self::new(ApiErrorCode::Conflict, message),
            StoreError::Overflow => Self::new(
                ApiErrorCode::InvalidCredit,
                format!("the new balance would be beyond ±{} micro-USD", tollgate_store::MAX_BALANCE_MICROS),
            ),
            StoreError::InsufficientCredit { balance } => Self::new(
                ApiErrorCode::InsufficientCredit,
                format!(
                    "the debit exceeds the balance of {} micro-USD; send allow_negative: true to allow it",
                    balance.get()
                ),
            ),
            StoreError::Unavailable(ref db) => {
                tracing::warn!(error = %db, "the database is unavailable");
                Self::new(ApiErrorCode::Unavailable, "the database is unavailable; try again later")
            }
            other => Self::internal("store error", &other),
        }
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<&'a Resolution>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::Api(code, message) => {
                (status, Json(Body { error: Detail { code: code.as_str(), message }, resolution: None }))
                    .into_response()
            }
            Self::Resolution(resolution) => {
                let message = resolution.error.as_ref().map_or("resolution failed", |e| e.message.as_str());
                let body = Body { error: Detail { code: self.code(), message }, resolution: Some(resolution) };
                (status, Json(body)).into_response()
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
