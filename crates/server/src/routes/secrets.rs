//! `/admin/orgs/{org}/secrets` and `/admin/workspaces/{ws}/secrets`: set, delete and list
//! secrets. Values go in, encrypted; only names and times come out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tollgate_policy::Scope;
use tollgate_store::{Invalidation, Owner};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{PutSecret, SecretMeta};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::validate;

/// Parses the owner id for its scope (not an id: 404).
fn parse_owner(scope: Scope, owner: &str) -> Result<Owner, ApiError> {
    Ok(match scope {
        Scope::Org => Owner::Org(validate::org_id(owner)?),
        Scope::Workspace => Owner::Workspace(validate::workspace_id(owner)?),
    })
}

/// The invalidation a change to `owner`'s secrets needs: an org secret affects all its
/// workspaces.
fn notice(owner: Owner) -> Invalidation {
    match owner {
        Owner::Org(id) => Invalidation::Org(id),
        Owner::Workspace(id) => Invalidation::Workspace(id),
    }
}

async fn put(state: &AppState, scope: Scope, owner: &str, name: &str, body: PutSecret) -> Result<StatusCode, ApiError> {
    // The value first: from here on it lives in a container that zeroizes it.
    let value = validate::secret_value(body.value)?;
    let name = validate::secret_name(name)?;
    let owner = parse_owner(scope, owner)?;
    state.store().put_secret(&owner, &name, &value).await?;
    state.invalidate(notice(owner.clone())).await;
    tracing::info!(scope = scope.as_str(), owner = %owner.id(), name = %name, "secret set");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(state: &AppState, scope: Scope, owner: &str, name: &str) -> Result<StatusCode, ApiError> {
    let name = validate::secret_name(name)?;
    let owner = parse_owner(scope, owner)?;
    state.store().delete_secret(&owner, &name).await?;
    state.invalidate(notice(owner.clone())).await;
    tracing::info!(scope = scope.as_str(), owner = %owner.id(), name = %name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list(state: &AppState, scope: Scope, owner: &str) -> Result<Json<Vec<SecretMeta>>, ApiError> {
    let owner = parse_owner(scope, owner)?;
    let metas = state.store().list_secrets(&owner).await?;
    Ok(Json(metas.iter().map(SecretMeta::from).collect()))
}

/// Sets an org secret, inherited by every workspace of the org.
#[utoipa::path(
    put, path = "/admin/orgs/{org}/secrets/{name}", tag = "secrets",
    params(("org" = String, Path, description = "Org id"), ("name" = inline(tollgate_policy::SecretName), Path, description = "Secret name")),
    request_body = PutSecret,
    responses(
        (status = 204, description = "Stored (encrypted)"),
        (status = 400, description = "INVALID_JSON, INVALID_SECRET_NAME, SECRET_VALUE_TOO_LARGE or INVALID_SECRET_VALUE", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such org", body = ErrorResponse),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn put_org_secret(
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<StatusCode, ApiError> {
    put(&state, Scope::Org, &org, &name, body).await
}

/// Deletes an org secret.
#[utoipa::path(
    delete, path = "/admin/orgs/{org}/secrets/{name}", tag = "secrets",
    params(("org" = String, Path, description = "Org id"), ("name" = inline(tollgate_policy::SecretName), Path, description = "Secret name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "INVALID_SECRET_NAME", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such org or secret", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn delete_org_secret(
    State(state): State<AppState>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&state, Scope::Org, &org, &name).await
}

/// Lists an org's secrets: names and times, never values.
#[utoipa::path(
    get, path = "/admin/orgs/{org}/secrets", tag = "secrets",
    params(("org" = String, Path, description = "Org id")),
    responses(
        (status = 200, description = "Names and times, by name", body = Vec<SecretMeta>),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn list_org_secrets(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Vec<SecretMeta>>, ApiError> {
    list(&state, Scope::Org, &org).await
}

/// Sets a workspace secret; it overrides an org secret of the same name.
#[utoipa::path(
    put, path = "/admin/workspaces/{ws}/secrets/{name}", tag = "secrets",
    params(("ws" = String, Path, description = "Workspace id"), ("name" = inline(tollgate_policy::SecretName), Path, description = "Secret name")),
    request_body = PutSecret,
    responses(
        (status = 204, description = "Stored (encrypted)"),
        (status = 400, description = "INVALID_JSON, INVALID_SECRET_NAME, SECRET_VALUE_TOO_LARGE or INVALID_SECRET_VALUE", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such workspace", body = ErrorResponse),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn put_workspace_secret(
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<StatusCode, ApiError> {
    put(&state, Scope::Workspace, &ws, &name, body).await
}

/// Deletes a workspace secret.
#[utoipa::path(
    delete, path = "/admin/workspaces/{ws}/secrets/{name}", tag = "secrets",
    params(("ws" = String, Path, description = "Workspace id"), ("name" = inline(tollgate_policy::SecretName), Path, description = "Secret name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "INVALID_SECRET_NAME", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND: no such workspace or secret", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn delete_workspace_secret(
    State(state): State<AppState>,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(&state, Scope::Workspace, &ws, &name).await
}

/// Lists a workspace's own secrets (not the inherited org ones): names and times.
#[utoipa::path(
    get, path = "/admin/workspaces/{ws}/secrets", tag = "secrets",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "Names and times, by name", body = Vec<SecretMeta>),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn list_workspace_secrets(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Vec<SecretMeta>>, ApiError> {
    list(&state, Scope::Workspace, &ws).await
}
