//! `GET /admin/audit` (DESIGN.md section 16): resolves every workspace now, with the one
//! resolver, and hands the outcome to the policy crate's `Auditor`, which decides the
//! findings. The state is read with one query per table (`Store::audit_snapshot`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use tollgate_policy::OrgId;
use tollgate_policy::audit::{AuditContext, Auditor, OrgFacts, WorkspaceFacts, summary};
use tollgate_policy::{Context, Micros};
use tollgate_store::{ResolutionInputs, Timestamp};

use crate::AppState;
use crate::api::audit::{AuditParams, AuditReport};
use crate::api::doc::ErrorResponse;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::validate;

/// The window of spend `LOW_CREDIT` compares the balance with.
const DAY_MS: i64 = 24 * 3_600_000;

/// Audits every workspace of one org (`org_id`) or of all orgs: `RESOLUTION_ERROR`,
/// `PLAN_DRIFT`, `STRAY_ORG_CREDENTIAL`, `FALLBACK_MODE`, `PLATFORM_KEY_MISSING`, `LOW_CREDIT`,
/// `SUSPENDED`, `NOT_PROVISIONED`. Read-only.
#[utoipa::path(
    get, path = "/admin/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "The findings, most severe first", body = AuditReport),
        (status = 400, description = "INVALID_QUERY or INVALID_ID", body = ErrorResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorResponse),
        (status = 404, description = "NOT_FOUND: no such org", body = ErrorResponse),
        (status = 429, description = "RATE_LIMITED: too many failed admin-token attempts from this address", body = ErrorResponse,
            headers(("retry-after" = u64, description = "Seconds until the next attempt is heard"))),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn audit(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditReport>, ApiError> {
    let org_id = params.org_id.filter(|s| !s.is_empty()).map(|o| validate::org_id(&o)).transpose()?;
    Ok(Json(report(&state, org_id.as_ref()).await?))
}

/// The audit of one org (or all, `None`), as `GET /admin/audit` returns it; the dashboard
/// shows the same report. An unknown org is `NOT_FOUND`.
pub(crate) async fn report(state: &AppState, org_id: Option<&OrgId>) -> Result<AuditReport, ApiError> {
    let now = Timestamp::now();
    let snap = state.store().audit_snapshot(org_id, Timestamp(now.0 - DAY_MS)).await?;
    // Without a proxy this server serves no platform traffic: no upstream has a key here.
    let keyed = state.proxy().map(tollgate_proxy::Proxy::keyed_upstreams).unwrap_or_default();
    let registry = state.registry();
    let mut auditor = Auditor::new(AuditContext { registry, keyed_upstreams: &keyed, now_ms: now.0 });
    let ctx = Context { registry, public_url: state.public_url() };
    let orgs: HashMap<_, _> = snap.orgs.iter().map(|o| (&o.id, o)).collect();
    for ws in &snap.workspaces {
        let Some(org) = orgs.get(&ws.org_id) else { continue };
        // The same inputs, and the same call, as the read endpoint and provisioning.
        let inputs = ResolutionInputs { workspace: ws.clone(), org: (*org).clone(), secrets: snap.merged_secrets(ws) };
        let resolved = inputs.resolve(&ctx, None);
        let last = snap.last_provision(&ws.id);
        auditor.workspace(&WorkspaceFacts {
            org_id: &ws.org_id,
            workspace_id: &ws.id,
            runtime: &ws.runtime,
            resolved: &resolved,
            last_provision: &last,
            suspension: ws.suspended.as_ref(),
        });
    }
    for org in &snap.orgs {
        auditor.org(&OrgFacts {
            org_id: &org.id,
            credit: org.credit_micros,
            spend_24h: snap.spend.get(&org.id).copied().unwrap_or(Micros::ZERO),
            suspension: org.suspended.as_ref(),
        });
    }
    let (findings, workspaces_checked) = auditor.finish();
    let summary = summary(&findings);
    Ok(AuditReport { generated_at: now.rfc3339(), workspaces_checked, findings, summary })
}
