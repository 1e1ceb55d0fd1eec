//! Suspension (DESIGN.md section 14): `POST /admin/{orgs,workspaces}/{id}/suspend` and
//! `.../resume`, and the refusal of a suspended workspace's pull and provision.
//!
//! A change binds on every instance through the store's invalidation channel: the instance
//! that made it drops its cached authorisations before answering, the others when the notice
//! reaches them (a Postgres `NOTIFY` round trip), not after a cache TTL. Whether a workspace
//! is suspended, and whose reason is named, is the policy crate's decision.

use axum::Json;
use axum::extract::State;
use tollgate_policy::suspension::suspension_in_force;
use tollgate_policy::{SuspendedBy, SuspensionReason};
use tollgate_store::{Invalidation, Owner, Workspace as StoredWorkspace};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{Org, Suspend, Workspace};
use crate::error::{ApiError, ApiErrorCode};
use crate::extract::{ApiJson, ApiPath};
use crate::validate;

/// The reason of a suspend body, parsed.
fn reason(body: &Suspend) -> Result<SuspensionReason, ApiError> {
    SuspensionReason::parse(&body.reason).map_err(|e| ApiError::new(ApiErrorCode::InvalidReason, e.to_string()))
}

/// Publishes `notice` to every instance; this instance's stale authorisations are dropped
/// before that (see [`AppState::invalidate`]).
async fn bind_everywhere(state: &AppState, notice: Invalidation) {
    state.invalidate(notice).await;
}

/// Suspends `owner` by the admin and binds it on every instance: what the suspend routes and
/// the dashboard's suspend button both do.
pub(crate) async fn suspend_owner(state: &AppState, owner: Owner, reason: &SuspensionReason) -> Result<(), ApiError> {
    state.store().suspend(&owner, reason, &SuspendedBy::Admin).await?;
    bind_everywhere(state, invalidation(owner)).await;
    Ok(())
}

/// Lifts `owner`'s own suspension and binds it on every instance (routes and dashboard).
pub(crate) async fn resume_owner(state: &AppState, owner: Owner) -> Result<(), ApiError> {
    state.store().resume(&owner).await?;
    bind_everywhere(state, invalidation(owner)).await;
    Ok(())
}

fn invalidation(owner: Owner) -> Invalidation {
    match owner {
        Owner::Org(id) => Invalidation::Org(id),
        Owner::Workspace(id) => Invalidation::Workspace(id),
    }
}

/// Refuses (403 `SUSPENDED`, naming the reason) a workspace that is suspended or whose org
/// is: a suspended workspace gets no new token (provision) and no environment (pull), so an
/// agent stopped by its suspension cannot be restarted around it, BYOK credentials included.
pub(crate) async fn refuse_suspended(state: &AppState, ws: &StoredWorkspace) -> Result<(), ApiError> {
    let org = state.store().get_org(&ws.org_id).await?;
    match suspension_in_force(org.suspended.as_ref(), ws.suspended.as_ref()) {
        Some(refusal) => Err(ApiError::new(ApiErrorCode::Suspended, refusal.message())),
        None => Ok(()),
    }
}

/// Suspends an org: every request of its workspaces is refused (403 `permission_error`
/// naming the reason) on every instance, until it is resumed. Suspending a suspended org
/// replaces the reason and keeps `since`.
#[utoipa::path(
    post, path = "/admin/orgs/{org}/suspend", tag = "orgs",
    params(("org" = String, Path, description = "Org id")),
    request_body = Suspend,
    responses(
        (status = 200, description = "The org, with `suspended` set", body = Org),
        (status = 400, description = "INVALID_JSON or INVALID_REASON", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn suspend_org(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<Suspend>,
) -> Result<Json<Org>, ApiError> {
    let id = validate::org_id(&org)?;
    let reason = reason(&body)?;
    suspend_owner(&state, Owner::Org(id.clone()), &reason).await?;
    tracing::info!(org_id = %id, "org suspended");
    Ok(Json(Org::from(&state.store().get_org(&id).await?)))
}

/// Lifts an org's suspension (its workspaces' own suspensions stay). Resuming an org that is
/// not suspended changes nothing.
#[utoipa::path(
    post, path = "/admin/orgs/{org}/resume", tag = "orgs",
    params(("org" = String, Path, description = "Org id")),
    responses(
        (status = 200, description = "The org, with `suspended` null", body = Org),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn resume_org(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Org>, ApiError> {
    let id = validate::org_id(&org)?;
    resume_owner(&state, Owner::Org(id.clone())).await?;
    tracing::info!(org_id = %id, "org resumed");
    Ok(Json(Org::from(&state.store().get_org(&id).await?)))
}

/// Suspends a workspace: its requests are refused (403 `permission_error` naming the reason)
/// on every instance, and its pull and provision are refused (403 `SUSPENDED`), until it is
/// resumed. Suspending a suspended workspace replaces the reason and keeps `since`.
#[utoipa::path(
    post, path = "/admin/workspaces/{ws}/suspend", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = Suspend,
    responses(
        (status = 200, description = "The workspace, with `suspended` set", body = Workspace),
        (status = 400, description = "INVALID_JSON or INVALID_REASON", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn suspend_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<Suspend>,
) -> Result<Json<Workspace>, ApiError> {
    let id = validate::workspace_id(&ws)?;
    let reason = reason(&body)?;
    suspend_owner(&state, Owner::Workspace(id.clone()), &reason).await?;
    tracing::info!(workspace_id = %id, "workspace suspended");
    Ok(Json(Workspace::from(&state.store().get_workspace(&id).await?)))
}

/// Lifts a workspace's own suspension (its org's, if any, still applies). Resuming a
/// workspace that is not suspended changes nothing.
#[utoipa::path(
    post, path = "/admin/workspaces/{ws}/resume", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The workspace, with `suspended` null", body = Workspace),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn resume_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Workspace>, ApiError> {
    let id = validate::workspace_id(&ws)?;
    resume_owner(&state, Owner::Workspace(id.clone())).await?;
    tracing::info!(workspace_id = %id, "workspace resumed");
    Ok(Json(Workspace::from(&state.store().get_workspace(&id).await?)))
}
