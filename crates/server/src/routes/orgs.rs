//! `/admin/orgs`: create, list, read and change orgs, and adjust their credit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::HashSet;
use std::time::Duration;

use tollgate_store::{Invalidation, LeaseId, NewOrg, OrgPatch, Overdraft};

use crate::AppState;
use crate::api::doc::ErrorResponse;
use crate::api::{CreateOrg, Credit, CreditAdjustment, Org, PatchOrg};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::validate;

/// Creates an org.
#[utoipa::path(
    post, path = "/admin/orgs", tag = "orgs",
    request_body = CreateOrg,
    responses(
        (status = 201, description = "The new org", body = Org),
        (status = 400, description = "INVALID_JSON, INVALID_NAME, INVALID_BILLING_MODE, INVALID_CREDIT, INVALID_LIMITS, INVALID_ALARMS or INVALID_MODEL (`limits.allowed_models`) or INVALID_WEBHOOK_URL", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 409, description = "CONFLICT: the name is taken", body = ErrorResponse),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn create_org(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let new = NewOrg {
        name: validate::name("an org", body.name)?,
        default_billing_mode: validate::opt_billing_mode(body.default_billing_mode.as_deref())?,
        credit_micros: validate::initial_credit(body.credit_micros)?,
        limits: body
            .limits
            .map(|l| validate::limits(state.registry(), None, &l))
            .transpose()?
            .map(|p| tollgate_policy::Limits::default().patched(&p))
            .unwrap_or_default(),
        alert_webhook_url: body.alert_webhook_url.as_deref().map(validate::webhook_url).transpose()?,
        alarms: body.alarms.as_deref().map(validate::alarms).transpose()?,
    };
    let org = state.store().create_org(&new).await?;
    tracing::info!(org_id = %org.id, "org created");
    Ok((StatusCode::CREATED, Json(Org::from(&org))))
}

/// Lists every org, by name.
#[utoipa::path(
    get, path = "/admin/orgs", tag = "orgs",
    responses(
        (status = 200, description = "All orgs", body = Vec<Org>),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn list_orgs(State(state): State<AppState>) -> Result<Json<Vec<Org>>, ApiError> {
    let orgs = state.store().list_orgs().await?;
    Ok(Json(orgs.iter().map(Org::from).collect()))
}

/// Reads one org.
#[utoipa::path(
    get, path = "/admin/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Org id")),
    responses(
        (status = 200, description = "The org", body = Org),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn get_org(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Org>, ApiError> {
    let org = state.store().get_org(&validate::org_id(&org)?).await?;
    Ok(Json(Org::from(&org)))
}

/// Changes an org's name, default billing mode, price plan (`markup_percent`), `limits` or
/// `alert_webhook_url` (`null` clears the mode, a limit or the webhook).
#[utoipa::path(
    patch, path = "/admin/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Org id")),
    request_body = PatchOrg,
    responses(
        (status = 200, description = "The changed org", body = Org),
        (status = 400, description = "INVALID_JSON, INVALID_NAME, INVALID_BILLING_MODE, INVALID_MARKUP, INVALID_LIMITS, INVALID_ALARMS or INVALID_MODEL (`limits.allowed_models`) or INVALID_WEBHOOK_URL", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
        (status = 409, description = "CONFLICT: the name is taken", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn patch_org(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<PatchOrg>,
) -> Result<Json<Org>, ApiError> {
    let id = validate::org_id(&org)?;
    let patch = OrgPatch {
        name: body.name.map(|n| validate::name("an org", n)).transpose()?,
        default_billing_mode: body
            .default_billing_mode
            .map(|m| validate::opt_billing_mode(m.as_deref()))
            .transpose()?,
        markup_percent: body.markup_percent.as_ref().map(validate::markup).transpose()?,
        limits: body.limits.map(|l| validate::limits(state.registry(), None, &l)).transpose()?.unwrap_or_default(),
        alert_webhook_url: body
            .alert_webhook_url
            .map(|u| u.as_deref().map(validate::webhook_url).transpose())
            .transpose()?,
        alarms: validate::alarms_patch(body.alarms)?,
    };
    let org = state.store().update_org(&id, &patch).await?;
    state.invalidate(Invalidation::Org(org.id.clone())).await;
    tracing::info!(org_id = %org.id, "org changed");
    Ok(Json(Org::from(&org)))
}

/// How long a debit waits for instances to confirm that they dropped its closed leases. An
/// instance that does not answer in time has lost the database (its lease expires) or died.
const CUT_WAIT: Duration = Duration::from_secs(3);

/// Waits until every lease in `waiting` is confirmed dropped by its instance
/// ([`Invalidation::CreditCutDone`]), or [`CUT_WAIT`] has passed.
async fn await_cuts(mut rx: tokio::sync::broadcast::Receiver<Invalidation>, mut waiting: HashSet<LeaseId>) {
    let confirmed = tokio::time::timeout(CUT_WAIT, async {
        while !waiting.is_empty() {
            match rx.recv().await {
                Ok(Invalidation::CreditCutDone(lease)) => {
                    waiting.remove(&lease);
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
        true
    })
    .await;
    if confirmed != Ok(true) {
        tracing::warn!("a debit was answered before every instance confirmed dropping its credit lease");
    }
}

/// Adds `delta_micros` (possibly negative) to the org's credit, with a reason.
///
/// A debit binds before the response: the store takes every instance's leased credit of the
/// org back in the debit's transaction, this instance's proxy drops its lease at once, a
/// notice makes every other instance drop its own (see [`Invalidation::CreditCut`]), and the
/// answer waits (up to [`CUT_WAIT`]) until each closed lease's instance confirms.
#[utoipa::path(
    post, path = "/admin/orgs/{org}/credit", tag = "orgs",
    params(("org" = String, Path, description = "Org id")),
    request_body = CreditAdjustment,
    responses(
        (status = 200, description = "The new balance", body = Credit),
        (status = 400, description = "INVALID_JSON or INVALID_CREDIT", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
        (status = 404, description = "NOT_FOUND", body = ErrorResponse),
        (status = 409, description = "INSUFFICIENT_CREDIT: a debit beyond the balance without allow_negative", body = ErrorResponse),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn adjust_credit(
    State(state): State<AppState>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<CreditAdjustment>,
) -> Result<Json<Credit>, ApiError> {
    let id = validate::org_id(&org)?;
    let delta = validate::credit_delta(body.delta_micros, &body.reason)?;
    let overdraft = if body.allow_negative { Overdraft::Allow } else { Overdraft::Refuse };
    // Listening before the debit, so that no confirmation is missed.
    let confirmations = if delta.get() < 0 { state.store().invalidations().await.ok() } else { None };
    let adjusted = state.store().adjust_credit(&id, delta, body.reason.trim(), overdraft).await?;
    if delta.get() < 0 {
        let mut waiting: HashSet<LeaseId> = adjusted.closed_leases.into_iter().collect();
        if let Some(proxy) = state.proxy() {
            for lease in proxy.credit_cut(&id).await {
                waiting.remove(&lease);
            }
        }
        state.invalidate(Invalidation::CreditCut(id.clone())).await;
        if let Some(rx) = confirmations {
            await_cuts(rx, waiting).await;
        }
    }
    let balance = adjusted.balance;
    tracing::info!(org_id = %id, delta_micros = delta.get(), "credit adjusted");
    Ok(Json(Credit { credit_micros: balance.get() }))
}
