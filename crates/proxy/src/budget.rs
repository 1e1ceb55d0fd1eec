//! Hard budgets (DESIGN.md section 14) on the proxy's path: a request's worst case is reserved
//! under every budget of its workspace and org before it is forwarded, its cost is counted when
//! it settles and the rest released, exactly as credit is.
//!
//! **Why not leases.** Credit is leased per instance because every request needs credit: a
//! database round trip per request would cost every request. Budgets are opt-in and bind only
//! near their end, where leases go wrong: near the limit the rest is split between instances,
//! so one refuses while another holds unused budget (a recall protocol only narrows that gap),
//! and a lease sized for throughput is large next to a small daily budget. Here each admitted
//! request reserves in one transaction, with the budgets' rows locked in a fixed order
//! (`Store::reserve_budget`): instances never admit more than a budget between them, and
//! admission is exact, so when demand exceeds a budget everything that fits is admitted (no
//! starvation). The price is one transaction at admission and one at settlement for requests of
//! workspaces that have a budget (org's or own); requests without a budget do no budget IO.
//! Holds of an instance that died expire after [`HOLD_TTL`] and are reclaimed by any instance.

use std::sync::Arc;
use std::time::Duration;

use tollgate_policy::budget::{BudgetRefusal, applicable};
use tollgate_policy::{Limits, Micros};
use tollgate_store::{BudgetHold, RequestId, Store, StoreError};

/// How long a budget hold lives unsettled before any instance may reclaim it: longer than
/// any request lasts (a reclaimed hold is still charged when its request settles).
pub const HOLD_TTL: Duration = Duration::from_secs(30 * 60);

/// The time, in milliseconds since the Unix epoch, that decides a request's budget periods.
/// The system clock by default; tests pass their own to cross day and month boundaries.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The time now, milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    /// The system clock.
    fn default() -> Self {
        Self::new(|| tollgate_store::Timestamp::now().0)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Why a request was not admitted under its budgets.
#[derive(Debug)]
pub(crate) enum BudgetDenied {
    /// A budget does not cover the request's worst case (402).
    Refused(BudgetRefusal),
    /// The database could not be reached.
    Store(StoreError),
}

/// A request's reservation under its budgets; settled once through [`settle`].
#[derive(Debug)]
pub(crate) struct BudgetTicket {
    id: RequestId,
}

/// Reserves `need` for request `id` under every hard budget of `org` and `workspace` at the
/// clock's time. `Ok(None)` when no budget applies (no IO).
pub(crate) async fn reserve(
    store: &dyn Store,
    clock: &Clock,
    id: &RequestId,
    (org_id, org): (&str, &Limits),
    (workspace_id, workspace): (&str, &Limits),
    need: Micros,
) -> Result<Option<BudgetTicket>, BudgetDenied> {
    if !org.has_budget() && !workspace.has_budget() {
        return Ok(None);
    }
    let budgets = applicable(org_id, org, workspace_id, workspace, clock.now_ms());
    let hold = BudgetHold { id: id.clone(), budgets, need, ttl: HOLD_TTL };
    match store.reserve_budget(&hold).await {
        Ok(Ok(())) => Ok(Some(BudgetTicket { id: id.clone() })),
        Ok(Err(refusal)) => Err(BudgetDenied::Refused(refusal)),
        Err(e) => Err(BudgetDenied::Store(e)),
    }
}

/// Settles `ticket` with the request's `cost`, off the response's path (a task): the
/// reservation stays counted until then, so a budget is never exceeded meanwhile.
pub(crate) fn settle(store: Arc<dyn Store>, ticket: BudgetTicket, cost: Micros) {
    let work = async move {
        if let Err(e) = store.settle_budget(&ticket.id, cost).await {
            // The hold expires and is reclaimed; the cost is then missing from the budget.
            tracing::error!(error = %e, "could not settle a budget hold");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(work);
        }
        Err(_) => tracing::error!("no runtime to settle a budget hold on"),
    }
}

/// Reclaims expired budget holds every ten seconds, as long as `store` is alive elsewhere.
pub(crate) async fn reclaim_loop(store: std::sync::Weak<dyn Store>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Err(e) = store.reclaim_expired_budget_holds().await {
            tracing::warn!(error = %e, "could not reclaim expired budget holds");
        }
    }
}
