//! The pages, as maud templates: every interpolated value is HTML-escaped by maud, so a name
//! such as `<script>` shows as text. No inline script, no inline style (the CSP allows none).

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use tollgate_policy::alarms::{AlarmOwnerKind, rules_in_force};
use tollgate_policy::audit::{Finding, Severity};
use tollgate_policy::{AlarmAction, AlarmRuleSpec, AlarmRules, EventKind, Resolution, Suspension};
use tollgate_store::{Event, EventCursor, LedgerRow, Timestamp, UsageRow};

use super::chart;
use super::data::{ALARM_DAYS, Alarms, AuditPage, EventsPage, Names, OrgPage, Overview, WorkspacePage, by_severity};
use super::fmt::{ago, group_thousands, is_money, kind_badge, label, money, money_fine, summary};
use super::session::Session;

/// `spent` of `budget` (with the share) or just `spent` when there is no budget.
fn against(spent: i64, budget: Option<i64>) -> Markup {
    match budget {
        Some(b) if b > 0 => {
            let pct = spent.saturating_mul(100) / b;
            let class = if pct >= 100 {
                "bad"
            } else if pct >= 80 {
                "warn"
            } else {
                "ok"
            };
            html! { (money(spent)) span.muted { " of " (money(b)) } " " span class=(class) { (pct) "%" } }
        }
        Some(b) => html! { (money(spent)) span.muted { " of " (money(b)) } },
        None => html! { (money(spent)) },
    }
}

fn layout(title: &str, session: Option<&Session>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tollgate" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/ui/" { "Tollgate" }
                    @if let Some(s) = session {
                        nav {
                            a href="/ui/" { "Overview" }
                            a href="/ui/audit" { "Audit" }
                            a href="/ui/events" { "Events" }
                            form.inline method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in page; `csrf` is the form's double-submit token, `problem` what went wrong.
pub(crate) fn login(csrf: &str, problem: Option<&str>) -> Markup {
    let body = html! {
        section.login {
            h1 { "Sign in" }
            p.muted { "Paste the admin token (" code { "TOLLGATE_ADMIN_TOKEN" } ", or the one printed at first start)." }
            @if let Some(p) = problem { p.error id="login-error" { (p) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
        }
    };
    layout("Sign in", None, &body)
}

/// An error page.
pub(crate) fn error(status: StatusCode, message: &str) -> Markup {
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
        p.error id="error" { (message) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    layout("Error", None, &body)
}

fn severity_badge(s: Severity) -> Markup {
    let class = match s {
        Severity::Error => "badge bad",
        Severity::Warning => "badge warn",
        Severity::Info => "badge info",
    };
    html! { span class=(class) { (s.as_str()) } }
}

fn suspended_cell(s: Option<&Suspension>) -> Markup {
    match s {
        Some(s) => html! { span.badge.bad { "suspended" } " " (s.reason.as_str()) },
        None => html! { span.muted { "no" } },
    }
}

fn findings_table(findings: &[Finding], names: &Names) -> Markup {
    html! {
        @if findings.is_empty() {
            p.empty { "No findings: every workspace resolves, nothing drifted, nothing is suspended." }
        } @else {
            table.findings {
                thead { tr { th { "Severity" } th { "Code" } th { "Org" } th { "Workspace" } th { "Finding" } } }
                tbody {
                    @for f in findings {
                        tr {
                            td { (severity_badge(f.severity)) }
                            td { code { (f.code.as_str()) } }
                            td { a href=(format!("/ui/orgs/{}", f.org_id)) { (names.orgs.get(&f.org_id).unwrap_or(&f.org_id)) } }
                            td {
                                @if let Some(w) = &f.workspace_id {
                                    a href=(format!("/ui/workspaces/{w}")) { (names.workspaces.get(w).unwrap_or(w)) }
                                } @else { span.muted { "—" } }
                            }
                            td { (f.message) }
                        }
                    }
                }
            }
        }
    }
}

/// The overview: orgs with credit and spend against budgets, and the audit by severity.
pub(crate) fn overview(session: &Session, d: &Overview) -> Markup {
    let body = html! {
        h1 { "Overview" }
        section.cards {
            @for (s, n) in by_severity(&d.report.findings) {
                a.card href="/ui/audit" { div.num { (n) } div { (severity_badge(s)) " findings" } }
            }
            div.card { div.num { (d.report.workspaces_checked) } div { "workspaces checked" } }
        }
        h2 { "Orgs" }
        @if d.orgs.is_empty() {
            p.empty { "No orgs yet. Create one with " code { "tollgate admin orgs create" } " or " code { "POST /admin/orgs" } "." }
        } @else {
            table #orgs {
                thead { tr { th { "Org" } th.num { "Credit" } th.num { "Spend today" } th.num { "Spend this month" } th.num { "Workspaces" } th { "Suspended" } } }
                tbody {
                    @for o in &d.orgs {
                        tr {
                            td { a href=(format!("/ui/orgs/{}", o.org.id)) { (o.org.name) } }
                            td.num { (money(o.org.credit_micros.get())) }
                            td.num { (against(o.spend_today, o.org.limits.budget_micros_per_day.map(|b| b.get()))) }
                            td.num { (against(o.spend_month, o.org.limits.budget_micros_per_month.map(|b| b.get()))) }
                            td.num { (o.workspaces) }
                            td { (suspended_cell(o.org.suspended.as_ref())) }
                        }
                    }
                }
            }
        }
        h2 { "Alarms that fired" }
        (alarm_counts(&d.alarms, d.now_ms))
        (alarms_table(&d.alarms, &d.names, d.now_ms, "No alarm fired in the last 7 days."))
        h2 { "Audit findings" }
        @let (serious, info): (Vec<Finding>, Vec<Finding>) =
            d.report.findings.iter().cloned().partition(|f| f.severity != Severity::Info);
        @if serious.is_empty() && !info.is_empty() {
            p.empty { "No errors or warnings." }
        } @else {
            (findings_table(&serious, &d.names))
        }
        @if !info.is_empty() {
            p.muted { "And " (info.len()) " info findings (such as never-provisioned workspaces) on the " a href="/ui/audit" { "Audit" } " page." }
        }
    };
    layout("Overview", Some(session), &body)
}

fn usage_table(rows: &[UsageRow], what: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No requests in the last 30 days." }
        } @else {
            table {
                thead { tr { th { (what) } th.num { "Requests" } th.num { "Errors" } th.num { "Input tok" } th.num { "Output tok" } th.num { "Cost" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.key) } td.num { (count(r.requests)) } td.num { (count(r.errors)) }
                            td.num { (count(r.input_tokens)) } td.num { (count(r.output_tokens)) } td.num { (money(r.cost_micros)) }
                        }
                    }
                }
            }
        }
    }
}

fn ledger_table(rows: &[LedgerRow], now_ms: i64) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No requests yet." }
        } @else {
            table #ledger {
                thead { tr { th { "When" } th { "Request" } th { "Model" } th { "Status" } th.num { "HTTP" }
                    th.num { "Input tok" } th.num { "Output tok" } th.num { "Cost" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td.when { (ago(now_ms, r.created_at)) } td { code { (r.request_id) } } td { (r.model) }
                            td { (r.status) @if r.estimated { " " span.badge.warn { "estimated" } } }
                            td.num { (r.http_status.map_or_else(|| "—".to_owned(), |s| s.to_string())) }
                            td.num { (count(r.input_tokens)) } td.num { (count(r.output_tokens)) } td.num { (money_fine(r.cost_micros)) }
                        }
                    }
                }
            }
        }
    }
}

fn mode_cells(r: &Resolution) -> Markup {
    html! {
        @if let Some(e) = &r.error {
            td colspan="3" { span.badge.bad { (e.code.as_str()) } }
        } @else {
            td { (r.resolved_mode.map_or("—", |m| m.as_str())) }
            td { (r.source.map_or("—", |s| s.as_str())) }
            td { (r.provider.as_deref().unwrap_or("—")) }
        }
    }
}

/// The org page: its workspaces, spend by day and by model, its findings.
pub(crate) fn org(session: &Session, d: &OrgPage) -> Markup {
    let keys = chart::day_keys(d.now_ms, 30);
    let body = html! {
        p.crumbs { a href="/ui/" { "Overview" } " / org" }
        h1 { (d.org.name) }
        p {
            "Credit " strong { (money(d.org.credit_micros.get())) } " · markup " (d.org.markup_percent.to_string()) " · suspended: "
            (suspended_cell(d.org.suspended.as_ref()))
        }
        h2 { "Limits" }
        (limits_section(&d.limits, "No limits: no budget and no rate limit applies to this org."))
        h2 { "Workspaces" }
        @if d.workspaces.is_empty() {
            p.empty { "This org has no workspaces yet." }
        } @else {
            table #workspaces {
                thead { tr {
                    th { "Workspace" } th { "Runtime" } th { "Model" } th { "Mode" } th { "Source" } th { "Provider" }
                    th.num { "Spend 24 h" } th.num { "Spend 30 d" } th.num { "Findings" } th { "Suspended" }
                } }
                tbody {
                    @for w in &d.workspaces {
                        tr {
                            td { a href=(format!("/ui/workspaces/{}", w.ws.id)) { (w.ws.name) } }
                            td { (w.ws.runtime) }
                            td { (w.resolution.effective_model.as_deref().or(w.ws.model.as_deref()).unwrap_or("—")) }
                            (mode_cells(&w.resolution))
                            td.num { (money(w.spend_24h)) } td.num { (money(w.spend_30d)) }
                            td.num { (w.findings) }
                            td { (suspended_cell(w.ws.suspended.as_ref())) }
                        }
                    }
                }
            }
        }
        h2 { "Spend by day (30 days)" }
        (chart::spend_by_day(&keys, &|k| d.by_day.get(k).copied().unwrap_or(0)))
        h2 { "Spend by model (30 days)" }
        (chart::spend_by_model(&d.by_model))
        (usage_table(&d.by_model, "Model"))
        h2 { "Alarms" }
        (alarm_rules_section(d.org.alarms.as_ref(), AlarmOwnerKind::Org))
        h3 { "Fired in the last 7 days" }
        (alarms_table(&d.alarms, &d.names, d.now_ms, "No alarm fired for this org in the last 7 days."))
        h2 { "Findings" }
        (findings_table(&d.findings, &d.names))
        h2 { "Events" }
        (events_table(&d.events.events, &d.names, d.now_ms, "No events for this org yet."))
        p { a #org-events href=(format!("/ui/events?org={}", d.org.id)) { "All of this org's events →" } }
    };
    layout(&d.org.name, Some(session), &body)
}

fn resolution_section(r: &Resolution) -> Markup {
    html! {
        @if let Some(e) = &r.error {
            p.error id="resolution-error" { span.badge.bad { (e.code.as_str()) } " " (e.message) }
        }
        dl.facts {
            dt { "Resolved mode" } dd #resolved-mode { (r.resolved_mode.map_or("—", |m| m.as_str())) }
            dt { "Source" } dd { (r.source.map_or("—", |s| s.as_str())) }
            dt { "Provider" } dd { (r.provider.as_deref().unwrap_or("—")) }
            dt { "Effective model" } dd { (r.effective_model.as_deref().unwrap_or("—")) }
            dt { "Model from" } dd { (r.model_source.map_or("—", |s| s.as_str())) }
        }
        h3 { "Why: the trace" }
        ol #trace { @for step in &r.trace { li { (step) } } }
        h3 { "Credentials kept" }
        @if r.credentials.is_empty() { p.empty { "None." } } @else {
            table #kept { thead { tr { th { "Name" } th { "Origin" } th { "Why" } } }
                tbody { @for c in &r.credentials { tr { td { code { (c.name) } } td { (c.origin.as_str()) } td { (c.reason) } } } } }
        }
        h3 { "Credentials dropped" }
        @if r.dropped.is_empty() { p.empty { "None." } } @else {
            table #dropped { thead { tr { th { "Name" } th { "Origin" } th { "Why" } } }
                tbody { @for c in &r.dropped { tr { td { code { (c.name) } } td { (c.origin.as_str()) } td { (c.reason) } } } } }
        }
    }
}

fn limits_section(limits: &serde_json::Value, empty: &str) -> Markup {
    let set: Vec<(&String, &serde_json::Value)> =
        limits.as_object().map(|m| m.iter().filter(|(_, v)| !v.is_null()).collect()).unwrap_or_default();
    html! {
        @if set.is_empty() {
            p.empty { (empty) }
        } @else {
            table #limits { tbody { @for (k, v) in set { tr {
                th { (label(k)) " " span.muted { code { (k) } } }
                @if let (true, Some(m)) = (is_money(k), v.as_i64()) {
                    td.num { (money(m)) }
                } @else if let Some(list) = v.as_array() {
                    td.num { @for (i, item) in list.iter().enumerate() { @if i > 0 { ", " } (item.as_str().unwrap_or_default()) } }
                } @else {
                    td.num { (v.to_string()) }
                }
            } } } }
        }
    }
}

fn suspension_section(session: &Session, d: &WorkspacePage) -> Markup {
    let id = &d.ws.id;
    html! {
        @if let Some(s) = &d.ws.suspended {
            p #suspension.error {
                "Suspended " (ago(d.now_ms, Timestamp(s.since_ms))) " by " (s.by.as_str()) ": " (s.reason.as_str())
            }
            form method="post" action=(format!("/ui/workspaces/{id}/resume")) {
                input type="hidden" name="csrf" value=(session.csrf);
                button #resume type="submit" { "Resume" }
            }
        } @else {
            p #suspension { "Not suspended: its requests are served." }
            form method="post" action=(format!("/ui/workspaces/{id}/suspend")) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="reason" { "Reason" }
                input #reason type="text" name="reason" required maxlength="500" placeholder="runaway agent";
                button.danger #suspend type="submit" { "Suspend" }
            }
        }
        @if let Some(s) = &d.org.suspended {
            p.error { "Its org is suspended too: " (s.reason.as_str()) }
        }
    }
}

/// The workspace page: its resolution explained, limits, usage, findings, suspend/resume.
pub(crate) fn workspace(session: &Session, d: &WorkspacePage) -> Markup {
    let keys = chart::day_keys(d.now_ms, 30);
    let names = Names {
        orgs: [(d.org.id.to_string(), d.org.name.clone())].into(),
        workspaces: [(d.ws.id.to_string(), d.ws.name.clone())].into(),
    };
    let body = html! {
        p.crumbs { a href="/ui/" { "Overview" } " / " a href=(format!("/ui/orgs/{}", d.org.id)) { (d.org.name) } " / workspace" }
        h1 { (d.ws.name) }
        p.muted { "runtime " code { (d.ws.runtime) } " · model " (d.ws.model.as_deref().unwrap_or("(default)"))
            " · billing mode " (d.ws.billing_mode.map_or("(not set)", |m| m.as_str())) " · id " code { (d.ws.id) } }
        h2 { "Suspension" }
        (suspension_section(session, d))
        h2 { "Resolution" }
        (resolution_section(&d.resolution))
        h2 { "Limits" }
        (limits_section(&d.limits, "No limits of its own (its org's apply)."))
        h2 { "Usage" }
        p { "Spend: " strong { (money(d.spend_24h)) } " in 24 h · " strong { (money(d.spend_30d)) } " in 30 days" }
        (chart::spend_by_day(&keys, &|k| d.by_day.get(k).copied().unwrap_or(0)))
        (usage_table(&d.by_model, "Model"))
        h2 #alarms-section { "Alarms" }
        (alarm_rules_section(d.ws.alarms.as_ref(), AlarmOwnerKind::Workspace))
        h3 { "Fired in the last 7 days" }
        (alarms_table(&d.alarms, &names, d.now_ms, "No alarm fired for this workspace in the last 7 days."))
        h2 { "Findings" }
        (findings_table(&d.findings, &names))
        h2 { "Recent requests" }
        (ledger_table(&d.ledger, d.now_ms))
        h2 { "Events" }
        (events_table(&d.events.events, &names, d.now_ms, "No events for this workspace yet."))
        p { a href=(format!("/ui/events?org={}&workspace={}", d.org.id, d.ws.id)) { "All of this workspace's events →" } }
    };
    layout(&d.ws.name, Some(session), &body)
}

/// The audit page: every finding, most severe first.
pub(crate) fn audit(session: &Session, d: &AuditPage) -> Markup {
    let body = html! {
        h1 { "Audit" }
        p.muted { "Generated " (d.report.generated_at) " over " (d.report.workspaces_checked) " workspaces. "
            "The same report as " code { "GET /admin/audit" } " and " code { "tollgate audit" } "." }
        section.cards {
            @for (s, n) in by_severity(&d.report.findings) { div.card { div.num { (n) } div { (severity_badge(s)) } } }
        }
        (findings_table(&d.report.findings, &d.names))
    };
    layout("Audit", Some(session), &body)
}

/// A count, thousands separated.
fn count(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group_thousands(n.unsigned_abs()))
}

fn org_link(id: Option<&tollgate_policy::OrgId>, names: &Names) -> Markup {
    html! {
        @if let Some(id) = id {
            @let key = id.to_string();
            a href=(format!("/ui/orgs/{key}")) { (names.orgs.get(&key).unwrap_or(&key)) }
        } @else { span.muted { "—" } }
    }
}

fn workspace_link(id: Option<&tollgate_policy::WorkspaceId>, names: &Names) -> Markup {
    html! {
        @if let Some(id) = id {
            @let key = id.to_string();
            a href=(format!("/ui/workspaces/{key}")) { (names.workspaces.get(&key).unwrap_or(&key)) }
        } @else { span.muted { "—" } }
    }
}

/// Events, newest first: when, kind, actor, org, workspace and what happened.
fn events_table(events: &[Event], names: &Names, now_ms: i64, empty: &str) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { (empty) }
        } @else {
            table.events {
                thead { tr { th { "When" } th { "Kind" } th { "Actor" } th { "Org" } th { "Workspace" } th { "What" } } }
                tbody {
                    @for e in events {
                        tr class=(if e.kind.is_alert() { "alert" } else { "" }) {
                            td.when { (ago(now_ms, e.at)) }
                            td { (kind_badge(e.kind)) }
                            td { (e.actor.as_str()) }
                            td { (org_link(e.org_id.as_ref(), names)) }
                            td { (workspace_link(e.workspace_id.as_ref(), names)) }
                            td.detail { (summary(e)) }
                        }
                    }
                }
            }
        }
    }
}

/// Fired alarms: when, where, and the alarm's own account of it.
fn alarms_table(alarms: &Alarms, names: &Names, now_ms: i64, empty: &str) -> Markup {
    html! {
        @if alarms.fired.is_empty() {
            p.empty #no-alarms { (empty) }
        } @else {
            table #alarms {
                thead { tr { th { "When" } th { "Org" } th { "Workspace" } th { "What" } } }
                tbody {
                    @for e in &alarms.fired {
                        tr.alert {
                            td.when { (ago(now_ms, e.at)) }
                            td { (org_link(e.org_id.as_ref(), names)) }
                            td { (workspace_link(e.workspace_id.as_ref(), names)) }
                            td.detail { (summary(e)) }
                        }
                    }
                }
            }
            @if alarms.more {
                p { a href=(format!("/ui/events?kind={}", EventKind::AlarmFired.as_str())) { "More on the events page →" } }
            }
        }
    }
}

/// The overview's counts of fired alarms: the last 24 hours and the last 7 days.
fn alarm_counts(alarms: &Alarms, now_ms: i64) -> Markup {
    let day = alarms.fired.iter().filter(|e| now_ms - e.at.0 <= 86_400_000).count();
    let more = if alarms.more { "+" } else { "" };
    html! {
        section.cards {
            a class=(if day > 0 { "card alert" } else { "card" }) href=(format!("/ui/events?kind={}", EventKind::AlarmFired.as_str())) {
                div.num #alarms-24h { (day) } div { "alarms in 24 h" }
            }
            a class=(if alarms.fired.is_empty() { "card" } else { "card alert" }) href=(format!("/ui/events?kind={}", EventKind::AlarmFired.as_str())) {
                div.num { (alarms.fired.len()) (more) } div { "alarms in " (ALARM_DAYS) " days" }
            }
        }
    }
}

/// An org's or workspace's drain alarm rules (DESIGN.md section 15) as the evaluator applies
/// them: its own list, the documented default for an org with none, or none.
fn alarm_rules_section(rules: Option<&AlarmRules>, kind: AlarmOwnerKind) -> Markup {
    let in_force = rules_in_force(rules, kind);
    html! {
        div #alarm-rules {
            @match (rules, kind) {
                (None, AlarmOwnerKind::Org) => p.muted { "No rules set: the documented default rule applies. "
                    "Set " code { "alarms" } " (" code { "tollgate admin org alarms" } ") to replace it, " code { "[]" } " to turn it off." },
                (None, AlarmOwnerKind::Workspace) => p.muted { "No rules for this workspace: its spend counts towards its org's rules." },
                (Some(_), _) if in_force.is_empty() => p.muted { "Alarms turned off (" code { "[]" } ")." },
                (Some(_), _) => {},
            }
            @if !in_force.is_empty() {
                table.rules {
                    thead { tr { th { "Window" } th { "Fires when the window's spend is" } th { "Action" } } }
                    tbody {
                        @for rule in &in_force {
                            @let spec = rule.spec();
                            tr {
                                td { (window_text(spec.window_minutes)) @if rules.is_none() { " " span.badge { "default" } } }
                                td { (rule_condition(&spec)) }
                                td { @if rule.action() == AlarmAction::Suspend { span.badge.bad { "suspend" } } @else { span.badge.plain { "notify" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `60 min`, `2 h`, `1 d 12 h`: a rule's window as an operator reads it.
fn window_text(minutes: i64) -> String {
    match minutes {
        m if m % 1440 == 0 => format!("{} d", m / 1440),
        m if m >= 1440 => format!("{} d {} h", m / 1440, (m % 1440) / 60),
        m if m % 60 == 0 && m >= 60 => format!("{} h", m / 60),
        m => format!("{m} min"),
    }
}

/// The condition of a rule in words: over a cap, or over a multiple of the 7-day average.
fn rule_condition(spec: &AlarmRuleSpec) -> Markup {
    html! {
        @if let Some(max) = spec.max_cost_micros { "over " (money(max)) }
        @if spec.max_cost_micros.is_some() && spec.over_baseline_factor.is_some() { ", or " }
        @if let Some(f) = spec.over_baseline_factor {
            "over " (f) "× its 7-day average"
            @if let Some(min) = spec.min_cost_micros.filter(|m| *m > 0) { " and at least " (money(min)) }
        }
    }
}

/// The events page: the log newest first, filtered by kind, org and workspace, paged by
/// cursor.
pub(crate) fn events(session: &Session, d: &EventsPage) -> Markup {
    let f = &d.filter;
    let body = html! {
        h1 { "Events" }
        p.muted { "Every admin change and system action, newest first: the same log as " code { "GET /admin/events" } "." }
        form.filters method="get" action="/ui/events" {
            label for="kind" { "Kind" }
            select #kind name="kind" {
                option value="" selected[f.kind().is_none()] { "any" }
                @for k in EventKind::all() {
                    option value=(k.as_str()) selected[f.kind() == Some(k.as_str())] { (k.as_str()) }
                }
            }
            label for="org" { "Org" }
            select #org name="org" {
                option value="" selected[f.org().is_none()] { "any" }
                @for (id, name) in &d.orgs {
                    option value=(id) selected[f.org() == Some(id.as_str())] { (name) }
                }
            }
            @if !d.workspaces.is_empty() {
                label for="workspace" { "Workspace" }
                select #workspace name="workspace" {
                    option value="" selected[f.workspace().is_none()] { "any" }
                    @for (id, name) in &d.workspaces {
                        option value=(id) selected[f.workspace() == Some(id.as_str())] { (name) }
                    }
                }
            } @else if let Some(w) = f.workspace() {
                input type="hidden" name="workspace" value=(w);
            }
            button #filter type="submit" { "Filter" }
            @if f.kind().is_some() || f.org().is_some() || f.workspace().is_some() {
                a.reset href="/ui/events" { "clear" }
            }
        }
        (events_table(&d.page.events, &d.names, d.now_ms, "No events match."))
        nav.pager {
            @if f.cursor.as_deref().is_some_and(|c| !c.is_empty()) {
                a #newest href=(f.href(None)) { "← Newest" }
            }
            @if let Some(next) = d.page.next {
                a #older href=(f.href(Some(&EventCursor::encode(next)))) { "Older →" }
            }
        }
    };
    layout("Events", Some(session), &body)
}
