//! `tollgate serve --demo`'s data: an example org with one workspace per interesting case and,
//! when the org is new, a week of usage for its platform-managed workspaces.
//!
//! The usage is written through the ledger path the proxy uses (a credit lease taken with
//! [`Store::lease_credit`], the rows written and charged by [`Store::record_usage`], the rest
//! returned by [`Store::release_lease`]), priced by the registry's [`Pricing::charge`] with the
//! org's markup, with past `created_at` times. So the org's credit is its start minus the
//! ledger's sum, as after real traffic, and everything that reads the ledger (usage, audit,
//! alarms, dashboard) sees ordinary rows. The variation is a fixed pseudo-random sequence: no
//! randomness is drawn, the same `now` gives the same rows.

use std::fmt;
use std::time::Duration;

use tollgate_policy::resolve::{BillingMode, WorkspaceKind};
use tollgate_policy::secret::SecretValue;
use tollgate_policy::{
    AlarmAction, AlarmRuleSpec, AlarmRules, Limits, Markup, Micros, Pricing, Registry, SecretName, Usage,
};
use tollgate_store::{
    AgentSessionId, LeaseId, LeaseRequest, Leased, LedgerEntry, NewOrg, NewWorkspace, Org, Owner, RequestId,
    Settlement, Store, StoreError, Timestamp, Workspace,
};

/// The demo org's name.
pub const DEMO_ORG: &str = "demo";

/// The demo org's starting credit: $250, enough for the week of history with most left.
pub const DEMO_CREDIT: Micros = Micros::new(250_000_000);

/// The workspace whose last minutes hold a drain (a runaway agent's burst of large requests).
pub const DRAIN_WORKSPACE: &str = "platform-managed";

const HOUR_MS: i64 = 3_600_000;
const HOUR_MS_U64: u64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Days of history written.
const HISTORY_DAYS: i64 = 7;
/// The drain's span: it ends half a minute before `now`.
const DRAIN_MS: i64 = 12 * 60_000;

/// A demo workspace's traffic: models by weight, requests per hour at the day's peak and the
/// size of a typical request.
struct Traffic {
    models: &'static [(&'static str, u64)],
    peak_per_hour: u64,
    input: u64,
    output: u64,
    cache_read: u64,
}

struct DemoWorkspace {
    name: &'static str,
    runtime: &'static str,
    kind: WorkspaceKind,
    model: Option<&'static str>,
    billing_mode: Option<BillingMode>,
    secrets: &'static [(&'static str, &'static str)],
    traffic: Option<Traffic>,
}

const WORKSPACES: &[DemoWorkspace] = &[
    DemoWorkspace {
        name: DRAIN_WORKSPACE,
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("platform/sonnet"),
        billing_mode: None,
        secrets: &[],
        traffic: Some(Traffic {
            models: &[("platform/sonnet", 7), ("platform/haiku", 3)],
            peak_per_hour: 22,
            input: 2_500,
            output: 700,
            cache_read: 18_000,
        }),
    },
    DemoWorkspace {
        name: "byok-anthropic-oauth",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("opus"),
        billing_mode: None,
        secrets: &[("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-demo-customer-own")],
        traffic: None,
    },
    DemoWorkspace {
        name: "byok-minimax-stray-oauth",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("MiniMax-M2.7"),
        billing_mode: None,
        secrets: &[("MINIMAX_API_KEY", "demo-minimax-key")],
        traffic: None,
    },
    DemoWorkspace {
        name: "concierge",
        runtime: "claude-code",
        kind: WorkspaceKind::Concierge,
        model: None,
        billing_mode: None,
        secrets: &[],
        traffic: Some(Traffic {
            models: &[("platform/haiku", 1)],
            peak_per_hour: 8,
            input: 1_800,
            output: 400,
            cache_read: 6_000,
        }),
    },
    DemoWorkspace {
        name: "disabled",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: None,
        billing_mode: Some(BillingMode::Disabled),
        secrets: &[],
        traffic: None,
    },
    DemoWorkspace {
        name: "byok-missing-credential",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("MiniMax-M2.7"),
        billing_mode: Some(BillingMode::Byok),
        secrets: &[],
        traffic: None,
    },
    // Codex: the plan carries its config.toml settings (`tollgate exec --pull` writes them).
    DemoWorkspace {
        name: "codex-platform-managed",
        runtime: "codex",
        kind: WorkspaceKind::Agent,
        model: Some("platform/gpt"),
        billing_mode: None,
        secrets: &[],
        traffic: Some(Traffic {
            models: &[("platform/gpt", 6), ("platform/gpt-mini", 4)],
            peak_per_hour: 16,
            input: 3_000,
            output: 900,
            cache_read: 12_000,
        }),
    },
    DemoWorkspace {
        name: "codex-byok-openai",
        runtime: "codex",
        kind: WorkspaceKind::Agent,
        model: Some("gpt-5"),
        billing_mode: None,
        secrets: &[("OPENAI_API_KEY", "sk-demo-customer-own-openai")],
        traffic: None,
    },
];

/// Why the demo could not be seeded.
#[derive(Debug)]
pub enum DemoError {
    /// The store refused or failed.
    Store(StoreError),
    /// The registry lacks a platform model the demo's traffic uses, or the org's credit does
    /// not cover the history.
    Setup(String),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "{e}"),
            Self::Setup(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DemoError {}

impl From<StoreError> for DemoError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// What [`seed`] left in the store.
#[derive(Debug)]
pub struct Seeded {
    /// The demo org, as read after the history (its credit net of it).
    pub org: Org,
    /// Its workspaces, in the demo's order.
    pub workspaces: Vec<Workspace>,
    /// The history written now; `None` when the org already existed (nothing is written twice).
    pub history: Option<History>,
}

/// The usage history written for a new demo org.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    /// Ledger rows written.
    pub requests: usize,
    /// Their total charge.
    pub cost: Micros,
}

fn secret(name: &str, value: &str) -> Result<(SecretName, SecretValue), DemoError> {
    let n = SecretName::parse(name).map_err(|e| DemoError::Setup(e.to_string()))?;
    let v = SecretValue::parse(value).map_err(|e| DemoError::Setup(e.to_string()))?;
    Ok((n, v))
}

/// Seeds the demo org idempotently: an existing org named [`DEMO_ORG`] is reused, its missing
/// workspaces created; only a new org gets the week of history (ending at `now`, with the drain
/// on [`DRAIN_WORKSPACE`] in its last minutes).
pub async fn seed(store: &dyn Store, registry: &Registry, now: Timestamp) -> Result<Seeded, DemoError> {
    let existing = store.list_orgs().await?.into_iter().find(|o| o.name == DEMO_ORG);
    let fresh = existing.is_none();
    let org = match existing {
        Some(org) => org,
        None => {
            let new = NewOrg {
                name: DEMO_ORG.to_owned(),
                default_billing_mode: None,
                credit_micros: DEMO_CREDIT,
                ..NewOrg::default()
            };
            let org = store.create_org(&new).await?;
            // The tenant-wide OAuth token that caused the drain of seed 000.
            for (name, value) in
                [("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-demo-tenant-wide"), ("GITHUB_TOKEN", "ghp-demo-shared")]
            {
                let (n, v) = secret(name, value)?;
                store.put_secret(&Owner::Org(org.id.clone()), &n, &v).await?;
            }
            org
        }
    };
    let present = store.list_workspaces(Some(&org.id)).await?;
    let mut workspaces = Vec::with_capacity(WORKSPACES.len());
    for demo in WORKSPACES {
        let ws = match present.iter().find(|w| w.name == demo.name) {
            Some(ws) => ws.clone(),
            None => create_workspace(store, &org, demo).await?,
        };
        workspaces.push(ws);
    }
    let history = if fresh { Some(write_history(store, registry, &org, &workspaces, now).await?) } else { None };
    let org = store.get_org(&org.id).await?;
    Ok(Seeded { org, workspaces, history })
}

async fn create_workspace(store: &dyn Store, org: &Org, demo: &DemoWorkspace) -> Result<Workspace, DemoError> {
    let ws = store
        .create_workspace(&NewWorkspace {
            org_id: org.id.clone(),
            name: demo.name.to_owned(),
            runtime: demo.runtime.to_owned(),
            model: demo.model.map(str::to_owned),
            billing_mode: demo.billing_mode,
            kind: demo.kind,
            limits: Limits::default(),
            alarms: if demo.name == DRAIN_WORKSPACE { Some(drain_rule()?) } else { None },
        })
        .await?;
    for (name, value) in demo.secrets {
        let (n, v) = secret(name, value)?;
        store.put_secret(&Owner::Workspace(ws.id.clone()), &n, &v).await?;
    }
    Ok(ws)
}

/// The drain workspace's own alarm rule: notify when an hour costs over
/// [`DRAIN_RULE_MAX_MICROS`]. Its org keeps the documented default rule, so the demo's drain
/// fires both (the evaluator's first tick, at start, sees it).
fn drain_rule() -> Result<AlarmRules, DemoError> {
    AlarmRules::parse(&[AlarmRuleSpec {
        window_minutes: 60,
        max_cost_micros: Some(DRAIN_RULE_MAX_MICROS),
        over_baseline_factor: None,
        min_cost_micros: None,
        action: AlarmAction::Notify,
    }])
    .map_err(|e| DemoError::Setup(e.to_string()))
}

/// The drain workspace's hourly cap (5 USD): its ordinary hours cost cents.
pub const DRAIN_RULE_MAX_MICROS: i64 = 5_000_000;

/// A fixed pseudo-random sequence (splitmix64): varied rows without drawing randomness.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `v` scaled by a factor between 0.5 and 1.5.
    fn around(&mut self, v: u64) -> u64 {
        v * (50 + self.below(101)) / 100
    }
}

/// Requests per hour, in percent of the peak: a working day in UTC, quiet nights, quieter
/// weekends.
fn rhythm_percent(hour_start_ms: i64) -> u64 {
    let hour = hour_start_ms.rem_euclid(DAY_MS) / HOUR_MS;
    let by_hour = match hour {
        8..=17 => 100,
        6 | 7 | 18..=20 => 45,
        _ => 8,
    };
    // 1970-01-01 was a Thursday: day 2 and 3 of the week from it are Saturday and Sunday.
    let weekday = hour_start_ms.div_euclid(DAY_MS).rem_euclid(7);
    if matches!(weekday, 2 | 3) { by_hour * 3 / 10 } else { by_hour }
}

/// One request of the history, before pricing.
struct Planned {
    workspace: usize,
    model: &'static str,
    at: i64,
    usage: Usage,
    session: String,
}

fn pick_model(traffic: &Traffic, seq: &mut Sequence) -> &'static str {
    let total: u64 = traffic.models.iter().map(|(_, w)| w).sum();
    let mut roll = seq.below(total);
    for (model, weight) in traffic.models {
        if roll < *weight {
            return model;
        }
        roll -= weight;
    }
    traffic.models.first().map_or("platform/sonnet", |(m, _)| m)
}

/// The week's ordinary traffic of every workspace with some, hour by hour, up to the drain.
fn plan_week(now: i64, seq: &mut Sequence) -> Vec<Planned> {
    let first_hour = (now - HISTORY_DAYS * DAY_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let end = now - DRAIN_MS - 60_000;
    let mut planned = Vec::new();
    for (i, demo) in WORKSPACES.iter().enumerate() {
        let Some(traffic) = &demo.traffic else { continue };
        let mut hour = first_hour;
        while hour < end {
            let n = seq.around(traffic.peak_per_hour * rhythm_percent(hour)) / 100;
            for _ in 0..n {
                let at = hour + i64::try_from(seq.below(HOUR_MS_U64)).unwrap_or(0);
                if at >= end || at < now - HISTORY_DAYS * DAY_MS {
                    continue;
                }
                let usage = Usage {
                    input_tokens: seq.around(traffic.input),
                    output_tokens: seq.around(traffic.output),
                    cache_read_tokens: seq.around(traffic.cache_read),
                    ..Usage::default()
                };
                let session = format!("demo-{}-{}", demo.name, hour / (3 * HOUR_MS));
                planned.push(Planned { workspace: i, model: pick_model(traffic, seq), at, usage, session });
            }
            hour += HOUR_MS;
        }
    }
    planned
}

/// The drain: a runaway loop of large Sonnet requests on [`DRAIN_WORKSPACE`], one every
/// 12 seconds over the last [`DRAIN_MS`] before `now`: some $11, many times the workspace's
/// usual hour.
fn plan_drain(now: i64, seq: &mut Sequence) -> Vec<Planned> {
    let Some(i) = WORKSPACES.iter().position(|w| w.name == DRAIN_WORKSPACE) else { return Vec::new() };
    let start = now - DRAIN_MS - 30_000;
    (0..DRAIN_MS / 12_000)
        .map(|k| Planned {
            workspace: i,
            model: "platform/sonnet",
            at: start + k * 12_000,
            usage: Usage {
                input_tokens: seq.around(30_000),
                output_tokens: seq.around(2_500),
                cache_read_tokens: seq.around(90_000),
                ..Usage::default()
            },
            session: "demo-runaway-loop".to_owned(),
        })
        .collect()
}

/// Prices the planned requests as the proxy would and writes them through a credit lease.
async fn write_history(
    store: &dyn Store,
    registry: &Registry,
    org: &Org,
    workspaces: &[Workspace],
    now: Timestamp,
) -> Result<History, DemoError> {
    let mut seq = Sequence(0x7011_6A7E);
    let mut planned = plan_week(now.0, &mut seq);
    planned.extend(plan_drain(now.0, &mut seq));
    planned.sort_by_key(|p| p.at);
    let mut entries = Vec::with_capacity(planned.len());
    let mut total = Micros::ZERO;
    for (n, p) in planned.into_iter().enumerate() {
        let (price, markup) = (pricing(registry, p.model)?, org.markup_percent);
        let entry = entry(&workspaces[p.workspace], n, p, price, markup)?;
        total = total.checked_add(entry.settlement.cost).ok_or(StoreError::Overflow)?;
        entries.push(entry);
    }
    let lease_id = LeaseId::parse(&format!("demo-history-{}", org.id)).map_err(DemoError::Setup)?;
    let ttl = Duration::from_secs(60);
    let request = LeaseRequest { lease_id: lease_id.clone(), org_id: org.id.clone(), need: total, want: total, ttl };
    if let Leased::Insufficient { available, .. } = store.lease_credit(&request).await? {
        return Err(DemoError::Setup(format!("the demo's history costs {total}, its org has {available}")));
    }
    store.record_usage(&lease_id, &org.id, &entries, ttl).await?;
    store.release_lease(&lease_id, None, ttl).await?;
    Ok(History { requests: entries.len(), cost: total })
}

fn pricing<'r>(registry: &'r Registry, model: &str) -> Result<&'r Pricing, DemoError> {
    registry
        .platform_model(model)
        .map(|(m, _)| m.price())
        .ok_or_else(|| DemoError::Setup(format!("the registry has no platform model `{model}` for the demo")))
}

fn entry(ws: &Workspace, n: usize, p: Planned, price: &Pricing, markup: Markup) -> Result<LedgerEntry, DemoError> {
    let charge = price.charge(&p.usage, markup);
    let reserved = price.worst_case(p.usage.total_input(), p.usage.output_tokens.max(8_192), markup);
    Ok(LedgerEntry {
        request_id: RequestId::parse(&format!("demo-{}-{n}", ws.id)).map_err(DemoError::Setup)?,
        workspace_id: ws.id.clone(),
        model: p.model.to_owned(),
        reserved,
        settlement: Settlement {
            usage: p.usage,
            cost: charge.cost,
            provider_cost: charge.provider,
            http_status: Some(200),
            estimated: false,
        },
        rejected: false,
        created_at: Timestamp(p.at),
        session_id: AgentSessionId::parse(&p.session),
    })
}
