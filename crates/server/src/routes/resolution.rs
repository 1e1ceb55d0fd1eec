//! The three callers of `resolve` (DESIGN.md section 5): the read endpoint, provisioning and
//! the secrets pull. Each loads the stored state and hands it to the policy crate; none
//! decides anything itself, so the three agree by construction (invariant I2).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_policy::audit::PlanFingerprint;
use tollgate_policy::{Context, Resolution, Resolved};
use tollgate_store::{Invalidation, ProvisionRecord, ResolutionInputs, TokenHash, Workspace};

use crate::AppState;
use crate::api::doc::{ErrorResponse, ProvisionResponse, PullResponse};
use crate::api::{Env, ProvisionRequest, Provisioned, Pulled};
use crate::auth;
use crate::error::{ApiError, ApiErrorCode};
use crate::extract::{ApiJsonOrDefault, ApiPath};
use crate::validate;

/// Resolves `ws` from the stored state of its org and secrets.
pub(crate) async fn resolve_stored(
    state: &AppState,
    ws: &Workspace,
    request_model: Option<&str>,
) -> Result<Resolved, ApiError> {
    let inputs = ResolutionInputs::for_workspace(state.store(), ws.clone()).await?;
    let ctx = Context { registry: state.registry(), public_url: state.public_url() };
    let resolved = inputs.resolve(&ctx, request_model);
    let r = resolved.resolution();
    tracing::debug!(
        workspace_id = %ws.id,
        mode = r.resolved_mode.map_or("-", |m| m.as_str()),
        source = r.source.map_or("-", |s| s.as_str()),
        provider = r.provider.as_deref().unwrap_or("-"),
        error = r.error.as_ref().map_or("-", |e| e.code.as_str()),
        "resolved"
    );
    Ok(resolved)
}

fn record_resolution(route: &'static str, resolution: &Resolution) {
    let outcome = resolution.error.as_ref().map_or("ok", |e| e.code.as_str());
    metrics::counter!("tollgate_resolutions_total", "route" => route, "outcome" => outcome).increment(1);
}

/// The workspace's billing mode, provider and credentials, as provisioning would resolve
/// them now without a request model. A failed resolution is still 200, with `error` set.
#[utoipa::path(
    get, path = "/admin/workspaces/{ws}/llm-billing-mode", tag = "resolution",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The resolution (with `error` set when it fails)", body = crate::api::doc::Resolution),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn billing_mode(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Resolution>, ApiError> {
    let ws = state.store().get_workspace(&validate::workspace_id(&ws)?).await?;
    let resolved = resolve_stored(&state, &ws, None).await?;
    record_resolution("read", resolved.resolution());
    Ok(Json(resolved.into_resolution()))
}

/// Provisions a workspace: resolves it (with the request's model), mints a new workspace
/// token (revoking the old one), and stores the model, the token's hash and the resolution
/// atomically. The response holds real values and goes only to the provisioner. When
/// resolution fails: 422 with the resolution's code, and nothing is stored.
#[utoipa::path(
    post, path = "/admin/workspaces/{ws}/provision", tag = "resolution",
    params(("ws" = String, Path, description = "Workspace id")),
    request_body(content = Option<ProvisionRequest>, description = "`{model?}`; optional (no body: the workspace's model), an object when present"),
    responses(
        (status = 200, description = "The resolution, the environment and the new token", body = ProvisionResponse),
        (status = 400, description = "INVALID_JSON or INVALID_MODEL", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 403, description = "SUSPENDED: the workspace or its org is suspended (the message names the reason)", body = ErrorResponse),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
        (status = 422, description = "The resolution's code (e.g. MISSING_BYOK_CREDENTIAL) and the resolution; nothing stored", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
#[tracing::instrument(name = "provision", skip_all, fields(otel.name = "provision", tollgate.workspace_id = %ws))]
pub(super) async fn provision(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ProvisionRequest>,
) -> Result<Json<Provisioned>, ApiError> {
    let id = validate::workspace_id(&ws)?;
    let request_model = validate::opt_model(body.model)?;
    let ws = state.store().get_workspace(&id).await?;
    super::suspension::refuse_suspended(&state, &ws).await?;
    let resolved = resolve_stored(&state, &ws, request_model.as_deref()).await?;
    record_resolution("provision", resolved.resolution());
    let (resolution, plan) = match resolved.into_result() {
        Ok(planned) => planned,
        Err(resolution) => {
            let code = resolution.error.as_ref().map_or("-", |e| e.code.as_str());
            tracing::info!(workspace_id = %ws.id, code, "provision refused; nothing stored");
            return Err(ApiError::Resolution(resolution));
        }
    };
    let token = auth::mint_workspace_token().ok_or_else(|| {
        ApiError::internal("cannot mint a workspace token", &"the operating system's random source failed")
    })?;
    let resolution_json =
        serde_json::to_string(&resolution).map_err(|e| ApiError::internal("cannot serialise a resolution", &e))?;
    let record = ProvisionRecord {
        model_after: ws.spec().after_provision(request_model.as_deref()).model,
        request_model,
        resolution_json,
        token_hash: TokenHash::of(token.expose()),
        fingerprint: PlanFingerprint::of(state.registry(), &resolution, &plan),
    };
    state.store().record_provision(&ws.id, &record).await?;
    state.invalidate(Invalidation::Workspace(ws.id.clone())).await;
    tracing::info!(workspace_id = %ws.id, "workspace provisioned; previous token revoked");
    let env = Env(plan.render(&token));
    Ok(Json(Provisioned { resolution, env, token }))
}

/// The workspace's environment, pulled by `tollgate exec --pull` with the workspace token
/// (`Authorization: Bearer` or `x-api-key`). 401 for an unknown or revoked token, 403 for
/// another workspace's token, 422 when resolution fails now.
#[utoipa::path(
    get, path = "/workspaces/{ws}/secrets/values", tag = "workspace",
    params(("ws" = String, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The resolution and the environment", body = PullResponse),
        (status = 401, description = "UNAUTHORIZED: unknown or revoked token", body = ErrorResponse),
        (status = 403, description = "FORBIDDEN: the token of another workspace; SUSPENDED: the workspace or its org is suspended (the message names the reason)", body = ErrorResponse),
        (status = 422, description = "The resolution's code and the resolution", body = ErrorResponse),
    ),
    security(("workspace_token" = []), ("workspace_api_key" = [])),
)]
pub(super) async fn pull(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Json<Pulled>, ApiError> {
    let (workspace, token) = auth::workspace_from_token(&state, &headers).await?;
    if workspace.id.as_str() != ws {
        return Err(ApiError::new(ApiErrorCode::Forbidden, "this workspace token belongs to another workspace"));
    }
    super::suspension::refuse_suspended(&state, &workspace).await?;
    let resolved = resolve_stored(&state, &workspace, None).await?;
    record_resolution("pull", resolved.resolution());
    let (resolution, plan) = match resolved.into_result() {
        Ok(planned) => planned,
        Err(resolution) => return Err(ApiError::Resolution(resolution)),
    };
    let env = Env(plan.render(&token));
    let codex = plan.codex().cloned();
    Ok(Json(Pulled { resolution, env, codex }))
}
