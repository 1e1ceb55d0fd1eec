//! What each page shows, loaded through the same store calls, resolver and audit as the API.

use std::collections::{BTreeMap, HashMap};

use tollgate_policy::Resolution;
use tollgate_policy::audit::{Finding, Severity};
use tollgate_policy::budget::{Period, PeriodKind};
use tollgate_policy::{OrgId, WorkspaceId};
use tollgate_store::{LedgerRow, Org, Timestamp, UsageGroup, UsageQuery, UsageRow, Workspace};

use crate::AppState;
use crate::api::audit::AuditReport;
use crate::error::ApiError;
use crate::routes::{audit, resolution};

const DAY_MS: i64 = 24 * 3_600_000;
/// Ledger rows shown on a workspace's page.
const RECENT_ROWS: u32 = 25;

/// One org on the overview.
pub(crate) struct OrgLine {
    pub(crate) org: Org,
    pub(crate) spend_today: i64,
    pub(crate) spend_month: i64,
    pub(crate) workspaces: usize,
}

/// The overview: every org with its spend, and the audit.
pub(crate) struct Overview {
    pub(crate) orgs: Vec<OrgLine>,
    pub(crate) report: AuditReport,
    pub(crate) names: Names,
}

/// Org and workspace names by id, to show findings by name.
#[derive(Default)]
pub(crate) struct Names {
    pub(crate) orgs: HashMap<String, String>,
    pub(crate) workspaces: HashMap<String, String>,
}

/// One workspace on its org's page.
pub(crate) struct WorkspaceLine {
    pub(crate) ws: Workspace,
    pub(crate) resolution: Resolution,
    pub(crate) spend_24h: i64,
    pub(crate) spend_30d: i64,
    pub(crate) findings: usize,
}

/// The org page.
pub(crate) struct OrgPage {
    pub(crate) org: Org,
    pub(crate) limits: serde_json::Value,
    pub(crate) workspaces: Vec<WorkspaceLine>,
    pub(crate) by_day: BTreeMap<String, i64>,
    pub(crate) by_model: Vec<UsageRow>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) names: Names,
    pub(crate) now_ms: i64,
}

/// The workspace page.
pub(crate) struct WorkspacePage {
    pub(crate) ws: Workspace,
    pub(crate) org: Org,
    pub(crate) resolution: Resolution,
    pub(crate) limits: serde_json::Value,
    pub(crate) by_day: BTreeMap<String, i64>,
    pub(crate) by_model: Vec<UsageRow>,
    pub(crate) spend_24h: i64,
    pub(crate) spend_30d: i64,
    pub(crate) findings: Vec<Finding>,
    pub(crate) ledger: Vec<LedgerRow>,
    pub(crate) now_ms: i64,
}

/// The audit page.
pub(crate) struct AuditPage {
    pub(crate) report: AuditReport,
    pub(crate) names: Names,
}

async fn usage(state: &AppState, q: UsageQuery) -> Result<Vec<UsageRow>, ApiError> {
    Ok(state.store().usage(&q).await?)
}

fn query(org: Option<&OrgId>, ws: Option<&WorkspaceId>, since_ms: i64, group_by: UsageGroup) -> UsageQuery {
    UsageQuery {
        org_id: org.cloned(),
        workspace_id: ws.cloned(),
        since: Some(Timestamp(since_ms)),
        until: None,
        group_by,
    }
}

fn total(rows: &[UsageRow]) -> i64 {
    rows.iter().map(|r| r.cost_micros).sum()
}

fn by_key(rows: &[UsageRow]) -> HashMap<String, i64> {
    rows.iter().map(|r| (r.key.clone(), r.cost_micros)).collect()
}

async fn names(state: &AppState, org: Option<&OrgId>) -> Result<Names, ApiError> {
    let orgs = state.store().list_orgs().await?;
    let workspaces = state.store().list_workspaces(org).await?;
    Ok(Names {
        orgs: orgs.into_iter().map(|o| (o.id.to_string(), o.name)).collect(),
        workspaces: workspaces.into_iter().map(|w| (w.id.to_string(), w.name)).collect(),
    })
}

/// Counts of findings by severity, most severe first.
pub(crate) fn by_severity(findings: &[Finding]) -> [(Severity, usize); 3] {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    [Severity::Error, Severity::Warning, Severity::Info].map(|s| (s, count(s)))
}

/// The overview's data.
pub(crate) async fn overview(state: &AppState) -> Result<Overview, ApiError> {
    let now = Timestamp::now().0;
    let day = Period::containing(PeriodKind::Day, now).start_ms;
    let month = Period::containing(PeriodKind::Month, now).start_ms;
    let mut orgs = Vec::new();
    let all_ws = state.store().list_workspaces(None).await?;
    for org in state.store().list_orgs().await? {
        let today = usage(state, query(Some(&org.id), None, day, UsageGroup::Day)).await?;
        let this_month = usage(state, query(Some(&org.id), None, month, UsageGroup::Day)).await?;
        let workspaces = all_ws.iter().filter(|w| w.org_id == org.id).count();
        orgs.push(OrgLine { spend_today: total(&today), spend_month: total(&this_month), workspaces, org });
    }
    let report = audit::report(state, None).await?;
    Ok(Overview { orgs, report, names: names(state, None).await? })
}

/// The org page's data: every workspace resolved now, its spend, the org's charts.
pub(crate) async fn org(state: &AppState, id: &OrgId) -> Result<OrgPage, ApiError> {
    let now = Timestamp::now().0;
    let org = state.store().get_org(id).await?;
    let report = audit::report(state, Some(id)).await?;
    let day = by_key(&usage(state, query(Some(id), None, now - DAY_MS, UsageGroup::Workspace)).await?);
    let month = by_key(&usage(state, query(Some(id), None, now - 30 * DAY_MS, UsageGroup::Workspace)).await?);
    let mut workspaces = Vec::new();
    for ws in state.store().list_workspaces(Some(id)).await? {
        let resolution = resolution::resolve_stored(state, &ws, None).await?.into_resolution();
        let key = ws.id.to_string();
        let findings = report.findings.iter().filter(|f| f.workspace_id.as_deref() == Some(&key)).count();
        workspaces.push(WorkspaceLine {
            spend_24h: day.get(&key).copied().unwrap_or(0),
            spend_30d: month.get(&key).copied().unwrap_or(0),
            findings,
            resolution,
            ws,
        });
    }
    let by_day = usage(state, query(Some(id), None, now - 30 * DAY_MS, UsageGroup::Day)).await?;
    let by_model = usage(state, query(Some(id), None, now - 30 * DAY_MS, UsageGroup::Model)).await?;
    Ok(OrgPage {
        limits: serde_json::to_value(&org.limits).unwrap_or_default(),
        org,
        workspaces,
        by_day: by_day.into_iter().map(|r| (r.key, r.cost_micros)).collect(),
        by_model,
        findings: report.findings,
        names: names(state, Some(id)).await?,
        now_ms: now,
    })
}

/// The workspace page's data: its resolution now (names and origins, never values), limits,
/// usage and findings.
pub(crate) async fn workspace(state: &AppState, id: &WorkspaceId) -> Result<WorkspacePage, ApiError> {
    let now = Timestamp::now().0;
    let ws = state.store().get_workspace(id).await?;
    let org = state.store().get_org(&ws.org_id).await?;
    let resolution = resolution::resolve_stored(state, &ws, None).await?.into_resolution();
    let report = audit::report(state, Some(&ws.org_id)).await?;
    let key = ws.id.to_string();
    let findings = report.findings.into_iter().filter(|f| f.workspace_id.as_deref() == Some(&key)).collect();
    let by_day = usage(state, query(None, Some(id), now - 30 * DAY_MS, UsageGroup::Day)).await?;
    let by_model = usage(state, query(None, Some(id), now - 30 * DAY_MS, UsageGroup::Model)).await?;
    let last_day = usage(state, query(None, Some(id), now - DAY_MS, UsageGroup::Day)).await?;
    let limits = serde_json::to_value(&ws.limits).unwrap_or_default();
    let ledger = state.store().recent_ledger(&ws.org_id, id, RECENT_ROWS).await?;
    Ok(WorkspacePage {
        spend_24h: total(&last_day),
        spend_30d: total(&by_day),
        by_day: by_day.into_iter().map(|r| (r.key, r.cost_micros)).collect(),
        by_model,
        limits,
        findings,
        ledger,
        resolution,
        org,
        ws,
        now_ms: now,
    })
}

/// The audit page's data.
pub(crate) async fn audit(state: &AppState) -> Result<AuditPage, ApiError> {
    Ok(AuditPage { report: audit::report(state, None).await?, names: names(state, None).await? })
}
