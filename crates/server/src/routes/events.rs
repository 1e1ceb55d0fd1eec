//! `GET /admin/events`: the append-only event log (DESIGN.md section 15).

use axum::Json;
use axum::extract::State;
use tollgate_policy::EventKind;
use tollgate_store::{EventCursor, EventQuery};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{Events, EventsParams};
use crate::error::{ApiError, ApiErrorCode};
use crate::extract::ApiQuery;
use crate::validate;

/// The page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 100;

/// The event log, newest first, filtered by org, workspace, kind and time. Pages are stable
/// under concurrent inserts: follow `next_cursor` to older events; events recorded meanwhile
/// are on a new first page, never repeated or shifted into the next ones.
#[utoipa::path(
    get, path = "/admin/events", tag = "events",
    params(EventsParams),
    responses(
        (status = 200, description = "A page of events, newest first", body = Events),
        (status = 400, description = "INVALID_QUERY", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 404, description = "NOT_FOUND: `org_id` or `workspace_id` cannot be an id", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn list_events(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> Result<Json<Events>, ApiError> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let invalid = |m: &str| ApiError::new(ApiErrorCode::InvalidQuery, m.to_owned());
    let kind = non_empty(params.kind)
        .map(|k| EventKind::parse(&k).ok_or_else(|| invalid("`kind` is not an event kind")))
        .transpose()?;
    let cursor = non_empty(params.cursor)
        .map(|c| EventCursor::parse(&c).ok_or_else(|| invalid("`cursor` is not a cursor this API gave")))
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=tollgate_store::MAX_EVENTS_PAGE).contains(&limit) {
        return Err(invalid("`limit` must be 1 to 1000"));
    }
    let query = EventQuery {
        org_id: non_empty(params.org_id).map(|o| validate::org_id(&o)).transpose()?,
        workspace_id: non_empty(params.workspace_id).map(|w| validate::workspace_id(&w)).transpose()?,
        kind,
        since: non_empty(params.since).map(|s| super::usage::time("since", &s)).transpose()?,
        cursor,
        limit,
    };
    let page = state.store().list_events(&query).await?;
    Ok(Json(Events {
        events: page.events.into_iter().map(Into::into).collect(),
        next_cursor: page.next.map(EventCursor::encode),
    }))
}
