//! The drain alarm evaluator (DESIGN.md section 15): a background task, off the request
//! path, that reads the ledger's window sums and the budgets' spend, asks the policy crate
//! what fires (`tollgate_policy::alarms`), and carries it out: records the event (the store
//! decides, in SQL, which instance's evaluation is the one crossing), suspends when the rule
//! says so, invalidates the suspended owner everywhere, and notifies.
//!
//! Every instance runs it; a rule fires once per crossing whichever instances evaluate it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tollgate_policy::alarms::{
    AlarmAction, AlarmOwnerKind, AlarmRule, BASELINE_MINUTES, Firing, baseline_per_window, budget_notices, evaluate,
    rules_in_force,
};
use tollgate_policy::budget::{BudgetScope, Period, PeriodKind};
use tollgate_policy::{Micros, OrgId, SuspendedBy, SuspensionReason, WorkspaceId};
use tollgate_store::{
    AlarmFire, AlarmOwner, AlarmStateKey, BudgetNoticeRecord, Event, EventKind, Invalidation, Owner, StoreError,
    Timestamp,
};

use crate::AppState;

/// The default interval of the evaluator (`TOLLGATE_ALARM_INTERVAL`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// What one evaluation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Rules whose condition holds now (firing, newly or still).
    pub holding: usize,
    /// Events this evaluation recorded (`alarm.fired`, `suspended`, budget notices): the
    /// crossings it was the one to see.
    pub recorded: Vec<EventKind>,
    /// Rules re-armed because their condition no longer holds.
    pub rearmed: usize,
}

/// Runs [`evaluate_once`] every `every`, reading the time from `now_ms` (the system clock but
/// in tests), until `shutdown` resolves. A failed evaluation is logged and retried at the next
/// tick; nothing it did is undone (each firing is its own transaction).
pub async fn run_alarms(
    state: AppState,
    every: Duration,
    now_ms: impl Fn() -> i64 + Send + 'static,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match evaluate_once(&state, Timestamp(now_ms())).await {
            Ok(e) if !e.recorded.is_empty() || e.rearmed > 0 => {
                tracing::info!(recorded = ?e.recorded, rearmed = e.rearmed, holding = e.holding, "alarms evaluated");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alarm evaluation failed; retrying at the next tick"),
        }
    }
}

/// One owner's window: its spend in the trailing window and the rules of that length.
struct Candidate {
    owner: Owner,
    org_id: OrgId,
    cost: Micros,
}

/// Evaluates every rule and budget notice once, as of `now`.
///
/// Only owners with spend in a window are looked at for that window's rules (the ledger is
/// read through its time index, grouped in SQL); the 7-day baseline is read only for a rule
/// the baseline can still decide ([`AlarmRule::needs_baseline`]). Rules whose condition held
/// before and no longer does are re-armed, but only after a whole evaluation succeeded.
///
/// # Errors
/// The store's; firings recorded before the error stay recorded.
pub async fn evaluate_once(state: &AppState, now: Timestamp) -> Result<Evaluation, StoreError> {
    let store = state.store();
    // Read before the ledger: only a firing this evaluation saw may be re-armed by it. A rule
    // another instance fires meanwhile (its ledger read saw rows this one's did not) has a
    // newer `changed_at` and stays firing.
    let firing_before = store.firing_alarms().await?;
    let owners = store.alarm_owners().await?;
    let configured: HashMap<&Owner, &AlarmOwner> = owners.iter().map(|o| (&o.owner, o)).collect();
    let rules_of = |owner: &Owner| {
        let kind = match owner {
            Owner::Org(_) => AlarmOwnerKind::Org,
            Owner::Workspace(_) => AlarmOwnerKind::Workspace,
        };
        rules_in_force(configured.get(owner).and_then(|o| o.alarms.as_ref()), kind)
    };
    let mut windows: BTreeSet<u32> = BTreeSet::from([AlarmRule::DEFAULT.window_minutes()]);
    windows.extend(
        owners.iter().flat_map(|o| o.alarms.iter().flat_map(|r| r.rules().iter().map(AlarmRule::window_minutes))),
    );

    let mut evaluation = Evaluation::default();
    let mut holding: HashSet<AlarmStateKey> = HashSet::new();
    for window in windows {
        for c in window_candidates(state, now, window).await? {
            for rule in rules_of(&c.owner).into_iter().filter(|r| r.window_minutes() == window) {
                let baseline = if rule.needs_baseline(c.cost) {
                    baseline(state, &c.owner, now, &rule).await?
                } else {
                    Micros::ZERO
                };
                let Some(firing) = evaluate(&rule, c.cost, baseline) else { continue };
                let key = AlarmStateKey { owner: c.owner.clone(), rule_key: rule.key() };
                // An owner deleted since the ledger was read has nothing left to alarm on.
                let events = match fire(state, &key, &c.org_id, now, &firing).await {
                    Err(StoreError::NotFound(_)) => continue,
                    other => other?,
                };
                evaluation.recorded.extend(events.iter().map(|e| e.kind));
                holding.insert(key);
            }
        }
    }
    evaluation.holding = holding.len();
    for seen in &firing_before {
        if !holding.contains(&seen.key) && store.rearm_alarm(seen, now).await? {
            evaluation.rearmed += 1;
        }
    }
    for owner in &owners {
        let recorded = match notices(state, owner, now).await {
            Err(StoreError::NotFound(_)) => continue,
            other => other?,
        };
        for event in recorded {
            evaluation.recorded.push(event.kind);
        }
    }
    Ok(evaluation)
}

/// The orgs and workspaces with spend in the `window` minutes before `now`, with that spend.
async fn window_candidates(state: &AppState, now: Timestamp, window: u32) -> Result<Vec<Candidate>, StoreError> {
    let since = Timestamp(now.0.saturating_sub(i64::from(window) * 60_000));
    let rows = state.store().spend_by_workspace(since, now).await?;
    let mut orgs: HashMap<OrgId, Micros> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let total = orgs.entry(r.org_id.clone()).or_default();
        *total = total.checked_add(r.cost).unwrap_or(Micros::new(i64::MAX));
        out.push(Candidate { owner: Owner::Workspace(r.workspace_id), org_id: r.org_id, cost: r.cost });
    }
    out.extend(orgs.into_iter().map(|(id, cost)| Candidate { owner: Owner::Org(id.clone()), org_id: id, cost }));
    Ok(out)
}

/// The average cost of one of `rule`'s windows over the 7 days before the window ending now.
async fn baseline(state: &AppState, owner: &Owner, now: Timestamp, rule: &AlarmRule) -> Result<Micros, StoreError> {
    let start = now.0.saturating_sub(rule.window_ms());
    let from = start.saturating_sub(i64::from(BASELINE_MINUTES) * 60_000);
    let before = state.store().owner_spend(owner, Timestamp(from), Timestamp(start)).await?;
    Ok(baseline_per_window(rule.window_minutes(), before))
}

/// Records `firing` (once per crossing: the store says whether this evaluation is the one),
/// then invalidates a suspended owner and notifies each recorded event.
async fn fire(
    state: &AppState,
    key: &AlarmStateKey,
    org_id: &OrgId,
    now: Timestamp,
    firing: &Firing,
) -> Result<Vec<Event>, StoreError> {
    let suspend = match firing.rule.action() {
        AlarmAction::Notify => None,
        AlarmAction::Suspend => match SuspensionReason::parse(&firing.reason()) {
            Ok(reason) => Some((reason, SuspendedBy::alarm(&firing.rule))),
            Err(e) => {
                tracing::error!(error = %e, "an alarm's reason is not a valid suspension reason: not suspending");
                None
            }
        },
    };
    let mut detail = firing.detail();
    detail["scope"] = if matches!(key.owner, Owner::Org(_)) { "org" } else { "workspace" }.into();
    let fire = AlarmFire { key: key.clone(), at: now, detail, suspend };
    let events = state.store().fire_alarm(&fire).await?;
    if events.iter().any(|e| e.kind == EventKind::Suspended) {
        let notice = match &key.owner {
            Owner::Org(id) => Invalidation::Org(id.clone()),
            Owner::Workspace(id) => Invalidation::Workspace(id.clone()),
        };
        state.invalidate(notice).await;
    }
    for event in &events {
        tracing::warn!(event_id = event.id, kind = %event.kind, org_id = %org_id, "drain alarm");
        state.notifier().notify(event);
    }
    Ok(events)
}

/// Records the budget notices due for `owner` in the current day and month (once per period
/// across instances) and notifies each recorded one.
async fn notices(state: &AppState, owner: &AlarmOwner, now: Timestamp) -> Result<Vec<Event>, StoreError> {
    if !owner.limits.has_budget() {
        return Ok(Vec::new());
    }
    let (scope, id) = match &owner.owner {
        Owner::Org(id) => (BudgetScope::Org, id.as_str()),
        Owner::Workspace(id) => (BudgetScope::Workspace, WorkspaceId::as_str(id)),
    };
    let mut recorded = Vec::new();
    for kind in [PeriodKind::Day, PeriodKind::Month] {
        let period = Period::containing(kind, now.0);
        let (spent, _) = state.store().budget_usage(scope, id, &period.key).await?;
        for notice in budget_notices(&owner.limits, kind, spent) {
            let record = BudgetNoticeRecord {
                owner: owner.owner.clone(),
                period_key: period.key.clone(),
                notice: notice.kind,
                detail: notice.detail(&period.key),
            };
            if let Some(event) = state.store().record_budget_notice(&record).await? {
                tracing::warn!(event_id = event.id, kind = %event.kind, org_id = %owner.org_id, "budget notice");
                state.notifier().notify(&event);
                recorded.push(event);
            }
        }
    }
    Ok(recorded)
}
