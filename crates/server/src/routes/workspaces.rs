//! `/admin/workspaces`: create, list, read, change and delete workspaces.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tollgate_policy::WorkspaceKind;
use tollgate_store::{Invalidation, NewWorkspace, WorkspacePatch};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{CreateWorkspace, ListWorkspaces, PatchWorkspace, Workspace};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::validate;

/// Creates a workspace in an org.
#[utoipa::path(
    post, path = "/admin/workspaces", tag = "workspaces",
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "The new workspace", body = Workspace),
        (status = 400, description = "INVALID_JSON, INVALID_NAME, UNKNOWN_RUNTIME, INVALID_MODEL (also for `limits.allowed_models`), INVALID_LIMITS, INVALID_ALARMS, INVALID_BILLING_MODE or INVALID_KIND", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such org", body = ErrorResponse),
        (status = 409, description = "CONFLICT: the org has a workspace of that name", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn create_workspace(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    let runtime = validate::runtime(state.registry(), body.runtime)?;
    let limits = body
        .limits
        .map(|l| validate::limits(state.registry(), Some(&runtime), &l))
        .transpose()?
        .map(|p| tollgate_policy::Limits::default().patched(&p))
        .unwrap_or_default();
    let new = NewWorkspace {
        name: validate::name("a workspace", body.name)?,
        runtime,
        limits,
        model: validate::opt_model(body.model)?,
        billing_mode: validate::opt_billing_mode(body.billing_mode.as_deref())?,
        kind: body.kind.as_deref().map(validate::kind).transpose()?.unwrap_or(WorkspaceKind::Agent),
        org_id: validate::org_id(&body.org_id)?,
        alarms: body.alarms.as_deref().map(validate::alarms).transpose()?,
    };
    let ws = state.store().create_workspace(&new).await?;
    tracing::info!(workspace_id = %ws.id, org_id = %ws.org_id, "workspace created");
    Ok((StatusCode::CREATED, Json(Workspace::from(&ws))))
}

/// Lists workspaces, of one org (`org_id`) or all.
#[utoipa::path(
    get, path = "/admin/workspaces", tag = "workspaces",
    params(ListWorkspaces),
    responses(
        (status = 200, description = "The workspaces, by name", body = Vec<Workspace>),
        (status = 400, description = "INVALID_QUERY", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such org", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn list_workspaces(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListWorkspaces>,
) -> Result<Json<Vec<Workspace>>, ApiError> {
    // `?org_id=` (empty) is no filter.
    let org = query.org_id.as_deref().filter(|o| !o.is_empty()).map(validate::org_id).transpose()?;
    let list = state.store().list_workspaces(org.as_ref()).await?;
    Ok(Json(list.iter().map(Workspace::from).collect()))
}

/// Reads one workspace.
#[utoipa::path(
    get, path = "/admin/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The workspace", body = Workspace),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn get_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Workspace>, ApiError> {
    let ws = state.store().get_workspace(&validate::workspace_id(&ws)?).await?;
    Ok(Json(Workspace::from(&ws)))
}

/// Changes a workspace (`null` clears `model`, `billing_mode` or a field of `limits`).
#[utoipa::path(
    patch, path = "/admin/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body = PatchWorkspace,
    responses(
        (status = 200, description = "The changed workspace", body = Workspace),
        (status = 400, description = "INVALID_JSON, INVALID_NAME, UNKNOWN_RUNTIME, INVALID_MODEL (also for `limits.allowed_models`), INVALID_LIMITS, INVALID_ALARMS, INVALID_BILLING_MODE or INVALID_KIND", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
        (status = 409, description = "CONFLICT: the org has a workspace of that name", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn patch_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<PatchWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    let id = validate::workspace_id(&ws)?;
    let runtime = body.runtime.map(|r| validate::runtime(state.registry(), r)).transpose()?;
    let limits = match body.limits {
        Some(input) => {
            // `allowed_models` is checked against the runtime the workspace will have after
            // this change.
            let runtime = match (&runtime, &input.allowed_models) {
                (Some(r), _) => r.clone(),
                (None, Some(Some(_))) => state.store().get_workspace(&id).await?.runtime,
                (None, _) => String::new(),
            };
            validate::limits(state.registry(), Some(&runtime), &input)?
        }
        None => tollgate_policy::LimitsPatch::default(),
    };
    let patch = WorkspacePatch {
        name: body.name.map(|n| validate::name("a workspace", n)).transpose()?,
        runtime,
        model: body.model.map(validate::opt_model).transpose()?,
        billing_mode: body.billing_mode.map(|m| validate::opt_billing_mode(m.as_deref())).transpose()?,
        kind: body.kind.as_deref().map(validate::kind).transpose()?,
        limits,
        alarms: validate::alarms_patch(body.alarms)?,
    };
    let ws = state.store().update_workspace(&id, &patch).await?;
    state.invalidate(Invalidation::Workspace(ws.id.clone())).await;
    tracing::info!(workspace_id = %ws.id, "workspace changed");
    Ok(Json(Workspace::from(&ws)))
}

/// Deletes a workspace with its secrets, tokens and provision records.
#[utoipa::path(
    delete, path = "/admin/workspaces/{ws}", tag = "workspaces",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn delete_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = validate::workspace_id(&ws)?;
    state.store().delete_workspace(&id).await?;
    tracing::info!(workspace_id = %id, "workspace deleted");
    state.invalidate(Invalidation::Workspace(id)).await;
    Ok(StatusCode::NO_CONTENT)
}
