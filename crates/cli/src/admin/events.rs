//! `tollgate admin events`: the event log (`GET /admin/events`), newest first, as a table or
//! the API's JSON.

use reqwest::Method;
use tollgate_policy::{EventKind, OrgId, WorkspaceId};
use tollgate_server::api::{EventOut, Events};

use super::{Client, NO_BODY, render};
use crate::exit::CliError;

/// The filters of `tollgate admin events`.
#[derive(Debug, clap::Args)]
pub(super) struct Filters {
    /// Only events about this org (its workspaces' included).
    #[arg(long)]
    org: Option<OrgId>,
    /// Only events about this workspace.
    #[arg(long)]
    workspace: Option<WorkspaceId>,
    /// Only events of this kind (`org.created`, `secret.set`, `alarm.fired`, ...).
    #[arg(long)]
    kind: Option<EventKind>,
    /// Only events at or after this time (RFC 3339 in UTC, or a UTC date `YYYY-MM-DD`).
    #[arg(long)]
    since: Option<String>,
    /// The most events to show (the newest), 1 to 100000.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
}

/// The largest page the API gives.
const PAGE: u32 = 1000;

/// Fetches up to `f.limit` events, newest first, following the cursor; prints them as a table
/// or, with `json_out`, as the API's `{events, next_cursor}` (the cursor of what was left).
pub(super) async fn run(c: &Client, f: &Filters, json_out: bool) -> Result<String, CliError> {
    let mut events: Vec<EventOut> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let want = f.limit.saturating_sub(u32::try_from(events.len()).unwrap_or(u32::MAX)).min(PAGE);
        let mut url = c.url(&["admin", "events"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &want.to_string());
            if let Some(o) = &f.org {
                q.append_pair("org_id", o.as_str());
            }
            if let Some(w) = &f.workspace {
                q.append_pair("workspace_id", w.as_str());
            }
            if let Some(k) = f.kind {
                q.append_pair("kind", k.as_str());
            }
            if let Some(s) = &f.since {
                q.append_pair("since", s);
            }
            if let Some(cur) = &cursor {
                q.append_pair("cursor", cur);
            }
        }
        let page: Events = c.call(Method::GET, url, NO_BODY).await?;
        events.extend(page.events);
        cursor = page.next_cursor;
        if cursor.is_none() || events.len() >= usize::try_from(f.limit).unwrap_or(usize::MAX) {
            break;
        }
    }
    let rows = events.iter().map(row).collect::<Vec<_>>();
    let all = Events { events, next_cursor: cursor };
    render(&all, json_out, &["at", "kind", "actor", "org_id", "workspace_id", "detail"], rows.into_iter())
}

/// One table row; the detail as compact JSON.
fn row(e: &EventOut) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    vec![
        e.at.clone(),
        e.kind.as_str().to_owned(),
        e.actor.as_str().to_owned(),
        dash(&e.org_id),
        dash(&e.workspace_id),
        e.detail.to_string(),
    ]
}
