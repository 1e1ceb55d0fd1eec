//! What each page shows, loaded through the same store calls, resolver and audit as the API.

use std::collections::{BTreeMap, HashMap};

use tollgate_policy::audit::{Finding, Severity};
use tollgate_policy::budget::{Period, PeriodKind};
use tollgate_policy::{EventKind, Resolution};
use tollgate_policy::{OrgId, WorkspaceId};
use tollgate_store::{
    Event, EventCursor, EventPage, EventQuery, LedgerRow, Org, Timestamp, UsageGroup, UsageQuery, UsageRow, Workspace,
};

use crate::AppState;
use crate::api::audit::AuditReport;
use crate::error::ApiError;
use crate::routes::{audit, resolution};

const DAY_MS: i64 = 24 * 3_600_000;
/// Ledger rows shown on a workspace's page.
const RECENT_ROWS: u32 = 25;
/// Events on an org's or workspace's page (the events page has the rest).
const RECENT_EVENTS: u32 = 15;
/// Events per page of the events page.
pub(crate) const EVENTS_PAGE: u32 = 50;
/// Fired alarms listed (per page section).
const ALARMS_SHOWN: u32 = 20;
/// How far back the pages look for fired alarms.
pub(crate) const ALARM_DAYS: i64 = 7;

/// The fired alarms of the last [`ALARM_DAYS`] days of an org, a workspace or all, newest first.
pub(crate) struct Alarms {
    pub(crate) fired: Vec<Event>,
    /// Whether there were more than shown.
    pub(crate) more: bool,
}

async fn alarms(state: &AppState, org: Option<&OrgId>, ws: Option<&WorkspaceId>, now: i64) -> Result<Alarms, ApiError> {
    let page = state
        .store()
        .list_events(&EventQuery {
            org_id: org.cloned(),
            workspace_id: ws.cloned(),
            kind: Some(EventKind::AlarmFired),
            since: Some(Timestamp(now - ALARM_DAYS * DAY_MS)),
            cursor: None,
            limit: ALARMS_SHOWN,
        })
        .await?;
    Ok(Alarms { more: page.next.is_some(), fired: page.events })
}

async fn recent_events(state: &AppState, org: Option<&OrgId>, ws: Option<&WorkspaceId>) -> Result<EventPage, ApiError> {
    let query =
        EventQuery { org_id: org.cloned(), workspace_id: ws.cloned(), limit: RECENT_EVENTS, ..EventQuery::default() };
    Ok(state.store().list_events(&query).await?)
}

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
    pub(crate) alarms: Alarms,
    pub(crate) now_ms: i64,
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
    pub(crate) alarms: Alarms,
    pub(crate) events: EventPage,
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
    pub(crate) alarms: Alarms,
    pub(crate) events: EventPage,
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

/// Every org's name, and the workspace names of the orgs a page of events mentions (not
/// every workspace of the server).
async fn page_names(state: &AppState, page: &EventPage) -> Result<Names, ApiError> {
    let orgs = state.store().list_orgs().await?;
    let mut mentioned: Vec<&OrgId> = page.events.iter().filter_map(|e| e.org_id.as_ref()).collect();
    mentioned.sort();
    mentioned.dedup();
    let mut workspaces = HashMap::new();
    for org in mentioned {
        for w in state.store().list_workspaces(Some(org)).await? {
            workspaces.insert(w.id.to_string(), w.name);
        }
    }
    Ok(Names { orgs: orgs.into_iter().map(|o| (o.id.to_string(), o.name)).collect(), workspaces })
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
    let alarms = alarms(state, None, None, now).await?;
    Ok(Overview { orgs, report, names: names(state, None).await?, alarms, now_ms: now })
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
        alarms: alarms(state, Some(id), None, now).await?,
        events: recent_events(state, Some(id), None).await?,
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
    let alarms = alarms(state, None, Some(id), now).await?;
    let events = recent_events(state, None, Some(id)).await?;
    Ok(WorkspacePage {
        alarms,
        events,
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

/// The events page's filters, as GET query parameters (empty values are as if absent).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct EventFilter {
    pub(crate) kind: Option<String>,
    pub(crate) org: Option<String>,
    pub(crate) workspace: Option<String>,
    pub(crate) cursor: Option<String>,
}

impl EventFilter {
    fn non_empty(v: Option<&String>) -> Option<&str> {
        v.map(String::as_str).filter(|s| !s.trim().is_empty())
    }

    /// The kind filter, if set.
    pub(crate) fn kind(&self) -> Option<&str> {
        Self::non_empty(self.kind.as_ref())
    }

    /// The org filter, if set.
    pub(crate) fn org(&self) -> Option<&str> {
        Self::non_empty(self.org.as_ref())
    }

    /// The workspace filter, if set.
    pub(crate) fn workspace(&self) -> Option<&str> {
        Self::non_empty(self.workspace.as_ref())
    }

    /// The query string of these filters and `cursor` (none: the newest page).
    pub(crate) fn href(&self, cursor: Option<&str>) -> String {
        let pairs = [("kind", self.kind()), ("org", self.org()), ("workspace", self.workspace()), ("cursor", cursor)];
        let query: Vec<String> =
            pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode_query(v)))).collect();
        if query.is_empty() { "/ui/events".to_owned() } else { format!("/ui/events?{}", query.join("&")) }
    }
}

/// Percent-encodes a query value (ids and kinds are plain, but a hand-typed one need not be).
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The events page.
pub(crate) struct EventsPage {
    pub(crate) filter: EventFilter,
    pub(crate) page: EventPage,
    pub(crate) names: Names,
    /// The orgs to filter by, by name.
    pub(crate) orgs: Vec<(String, String)>,
    /// The workspaces of the filtered org, by name (empty without an org filter).
    pub(crate) workspaces: Vec<(String, String)>,
    pub(crate) now_ms: i64,
}

/// The events page's data; a filter that does not parse is a 400 naming it.
pub(crate) async fn events(state: &AppState, filter: EventFilter) -> Result<EventsPage, ApiError> {
    let invalid = |m: &str| ApiError::new(crate::error::ApiErrorCode::InvalidQuery, m.to_owned());
    let kind =
        filter.kind().map(|k| EventKind::parse(k).ok_or_else(|| invalid("`kind` is not an event kind"))).transpose()?;
    let cursor =
        parse_cursor(filter.cursor.as_deref()).map_err(|()| invalid("`cursor` is not a cursor this page gave"))?;
    let org_id = filter.org().map(crate::validate::org_id).transpose()?;
    let workspace_id = filter.workspace().map(crate::validate::workspace_id).transpose()?;
    let query = EventQuery { org_id: org_id.clone(), workspace_id, kind, since: None, cursor, limit: EVENTS_PAGE };
    let page = state.store().list_events(&query).await?;
    let names = page_names(state, &page).await?;
    let mut orgs: Vec<(String, String)> = names.orgs.iter().map(|(id, n)| (id.clone(), n.clone())).collect();
    orgs.sort_by(|a, b| a.1.cmp(&b.1));
    let mut workspaces = Vec::new();
    if let Some(org) = &org_id {
        workspaces =
            state.store().list_workspaces(Some(org)).await?.into_iter().map(|w| (w.id.to_string(), w.name)).collect();
        workspaces.sort_by(|a, b| a.1.cmp(&b.1));
    }
    Ok(EventsPage { filter, page, names, orgs, workspaces, now_ms: Timestamp::now().0 })
}

/// The cursor parameter: absent or empty is the first page.
fn parse_cursor(text: Option<&str>) -> Result<Option<EventCursor>, ()> {
    match text.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(t) => EventCursor::parse(t).map(Some).ok_or(()),
    }
}
