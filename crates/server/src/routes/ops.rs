//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Extension, Json};

use crate::AppState;
use crate::api::Status;
use crate::api::doc::ErrorResponse;
use crate::error::{ApiError, ApiErrorCode};
use crate::openapi::OpenApiJson;

/// Liveness: 200 whenever the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: 200 when the database answers, else 503 `UNAVAILABLE`.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "UNAVAILABLE: the database does not answer", body = ErrorResponse),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(Status { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, backend = state.store().backend(), "readiness check failed");
            Err(ApiError::new(ApiErrorCode::Unavailable, "the database does not answer"))
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
pub async fn metrics() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::telemetry::render())
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json")),
)]
pub async fn openapi(Extension(OpenApiJson(json)): Extension<OpenApiJson>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json.to_string())
}
