//! `GET /admin/usage`: the ledger's totals by day, model, workspace or agent session.

use axum::Json;
use axum::extract::State;
use tollgate_store::{Timestamp, UsageGroup, UsageQuery};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{Usage, UsageParams};
use crate::error::{ApiError, ApiErrorCode};
use crate::extract::ApiQuery;
use crate::validate;

/// Parses RFC 3339 (`2026-11-22T10:00:00Z`) or a UTC date (`2026-11-22`, its midnight).
pub(super) fn time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_owned() };
    let bad = || ApiError::new(ApiErrorCode::InvalidQuery, format!("`{field}` must be RFC 3339 or YYYY-MM-DD"));
    let t = humantime::parse_rfc3339_weak(&full).map_err(|_| bad())?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?.as_millis();
    Ok(Timestamp(i64::try_from(ms).map_err(|_| bad())?))
}

/// Usage of the metering proxy: one row per UTC day (default), model, workspace or agent
/// session (requests without one under the empty key), counting every proxied request, failed
/// ones included.
#[utoipa::path(
    get, path = "/admin/usage", tag = "usage",
    params(UsageParams),
    responses(
        (status = 200, description = "Usage rows, ordered by key", body = Usage),
        (status = 400, description = "INVALID_QUERY", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 404, description = "NOT_FOUND: `org_id` or `workspace_id` cannot be an id", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn usage(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<Usage>, ApiError> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let group_by = match non_empty(params.group_by) {
        None => UsageGroup::Day,
        Some(g) => UsageGroup::parse(&g).ok_or_else(|| {
            ApiError::new(ApiErrorCode::InvalidQuery, "`group_by` must be day, model, workspace or session")
        })?,
    };
    let query = UsageQuery {
        org_id: non_empty(params.org_id).map(|o| validate::org_id(&o)).transpose()?,
        workspace_id: non_empty(params.workspace_id).map(|w| validate::workspace_id(&w)).transpose()?,
        since: non_empty(params.since).map(|s| time("since", &s)).transpose()?,
        until: non_empty(params.until).map(|s| time("until", &s)).transpose()?,
        group_by,
    };
    let rows = state.store().usage(&query).await?;
    Ok(Json(Usage { rows: rows.into_iter().map(Into::into).collect() }))
}
