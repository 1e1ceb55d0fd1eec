//! Hard budgets (DESIGN.md section 14) on the proxy's path, without a database round trip per
//! request: a request's worst case is reserved in memory under every budget of its workspace
//! and org before it is forwarded, its cost is counted when it settles and the rest released,
//! exactly as credit is (`crate::credit`).
//!
//! **Leases.** Each instance holds, per budget and period (`org`/`workspace`, owner, day or
//! month key), a lease: a block of the budget reserved in the database under a hold of its
//! own (`Store::lease_budget`, the budget's row locked), so that the leases and requests of
//! all instances together never reserve more than the budget. Requests reserve from the lease
//! in memory; when it lacks what a request needs, the instance asks for the shortfall plus a
//! sixteenth of what remains ([`tollgate_policy::budget::lease_grant`]): large far from the
//! budget's end, only what is needed near it, so that under excess demand what one instance
//! cannot use is left to the others. A background task writes settled spend into the lease
//! every flush interval (`Store::adjust_budget_lease`: spent exact per period, the ledger's
//! cost), renews leases in use, and returns a lease idle for [`IDLE_RETURN`]; a limit change
//! (an org or workspace invalidation) or a different budget value retires the lease at once, so
//! that requests from then on lease under the new budget. Holds of an instance that died
//! expire after the lease TTL and are reclaimed by any instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tollgate_policy::budget::{Applicable, BudgetRefusal, BudgetScope, applicable};
use tollgate_policy::{Limits, Micros};
use tollgate_store::{RequestId, Store, StoreError};

/// A lease with nothing in flight and unused this long is returned to its budget: short, so
/// that near a budget's end another instance can use what this one no longer needs.
pub const IDLE_RETURN: Duration = Duration::from_millis(250);

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

/// One budget's lease key: scope, owner id, period key.
type Key = (BudgetScope, String, String);

/// One lease: what the database reserves for it is `available + held + unflushed` (less
/// what was released).
struct Lease {
    id: RequestId,
    /// Leased and not reserved by a request.
    available: i64,
    /// Reserved by requests in flight.
    held: i64,
    /// Settled cost not yet written.
    unflushed: i64,
    /// Whether the database holds it (something was granted).
    opened: bool,
    /// The budget is near its end (the last grant was little more than the shortfall): what
    /// the lease does not use is returned every flush, for another instance to use.
    tight: bool,
    last_used: Instant,
    renewed: Instant,
}

impl Lease {
    fn fresh() -> Self {
        let now = Instant::now();
        Self {
            id: RequestId::mint(),
            available: 0,
            held: 0,
            unflushed: 0,
            opened: false,
            tight: false,
            last_used: now,
            renewed: now,
        }
    }
}

/// This instance's leases of one budget period: the one requests reserve from, and those
/// retired (cut, idle, reclaimed) until their requests have settled and they are closed.
struct KeyState {
    /// The budget value `current` was leased under.
    budget: i64,
    current: Lease,
    retired: Vec<Lease>,
}

impl KeyState {
    fn retire(&mut self) {
        let old = std::mem::replace(&mut self.current, Lease::fresh());
        if old.opened {
            self.retired.push(old);
        }
    }

    fn lease_mut(&mut self, id: &RequestId) -> Option<&mut Lease> {
        if self.current.id == *id {
            return Some(&mut self.current);
        }
        self.retired.iter_mut().find(|l| l.id == *id)
    }
}

struct KeyLeases {
    state: Mutex<KeyState>,
    /// One lease request at a time per budget: requests arriving while the lease is short
    /// wait for it rather than each asking the database.
    refill: tokio::sync::Mutex<()>,
}

struct Inner {
    store: Arc<dyn Store>,
    ttl: Duration,
    leases: Mutex<HashMap<Key, Arc<KeyLeases>>>,
}

/// The budget leases of one instance. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Budgets {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").finish_non_exhaustive()
    }
}

/// What one request reserved from one budget's lease.
struct Part {
    entry: Arc<KeyLeases>,
    lease: RequestId,
    amount: i64,
}

impl Part {
    /// Gives the reservation back, `cost` of it spent.
    fn settle(self, cost: i64) {
        let mut s = lock(&self.entry.state);
        if let Some(l) = s.lease_mut(&self.lease) {
            l.held -= self.amount;
            l.available = l.available.saturating_add(self.amount.saturating_sub(cost));
            l.unflushed = l.unflushed.saturating_add(cost);
            l.last_used = Instant::now();
        } else {
            // Leases are kept until their requests settle; this is a bug, not a race.
            tracing::error!(cost, "a budget reservation settled after its lease was closed: its cost is not counted");
        }
    }
}

/// A request's reservation under its budgets; settled once through [`BudgetTicket::settle`].
pub(crate) struct BudgetTicket {
    parts: Vec<Part>,
}

impl std::fmt::Debug for BudgetTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetTicket").field("budgets", &self.parts.len()).finish()
    }
}

impl BudgetTicket {
    /// Settles the request with its `cost` (clamped at zero below): counted as spent in each
    /// of its budgets, the rest of its reservation back in the leases. No IO.
    pub(crate) fn settle(self, cost: Micros) {
        let cost = cost.get().max(0);
        for part in self.parts {
            part.settle(cost);
        }
    }
}

impl Budgets {
    /// The leases of an instance on `store`: settled spend is written every `flush_interval`,
    /// a lease not renewed for `ttl` is reclaimed by any instance. Starts the background task
    /// (when called on a runtime); it ends when the last clone is dropped.
    pub(crate) fn new(store: Arc<dyn Store>, flush_interval: Duration, ttl: Duration) -> Self {
        let inner = Arc::new(Inner { store, ttl, leases: Mutex::new(HashMap::new()) });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(background(Arc::downgrade(&inner), flush_interval));
        }
        Self { inner }
    }

    /// Reserves `need` for a request under every hard budget of `org` and `workspace` at the
    /// clock's time, from this instance's leases (leasing more when one lacks it). `Ok(None)`
    /// when no budget applies or the request is free (`count_tokens`): nothing to reserve.
    pub(crate) async fn reserve(
        &self,
        clock: &Clock,
        (org_id, org): (&str, &Limits),
        (workspace_id, workspace): (&str, &Limits),
        need: Micros,
    ) -> Result<Option<BudgetTicket>, BudgetDenied> {
        if need.get() <= 0 || (!org.has_budget() && !workspace.has_budget()) {
            return Ok(None);
        }
        let mut parts = Vec::new();
        for a in applicable(org_id, org, workspace_id, workspace, clock.now_ms()) {
            match self.take(&a, need.get()).await {
                Ok(part) => parts.push(part),
                Err(denied) => {
                    for part in parts {
                        part.settle(0);
                    }
                    return Err(denied);
                }
            }
        }
        Ok(Some(BudgetTicket { parts }))
    }

    fn entry(&self, a: &Applicable) -> Arc<KeyLeases> {
        let key = (a.scope, a.owner.clone(), a.period.key.clone());
        lock(&self.inner.leases)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(KeyLeases {
                    state: Mutex::new(KeyState {
                        budget: a.budget.get(),
                        current: Lease::fresh(),
                        retired: Vec::new(),
                    }),
                    refill: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Reserves `need` under budget `a` from this instance's lease, leasing the shortfall
    /// (and more, see [`tollgate_policy::budget::lease_grant`]) when the lease lacks it.
    async fn take(&self, a: &Applicable, need: i64) -> Result<Part, BudgetDenied> {
        let entry = self.entry(a);
        if let Some(part) = try_take(&entry, a.budget.get(), need) {
            return Ok(part);
        }
        let _one_at_a_time = entry.refill.lock().await;
        // Others may take what a grant adds before this request does: a few rounds.
        for _ in 0..4 {
            if let Some(part) = try_take(&entry, a.budget.get(), need) {
                return Ok(part);
            }
            let (id, short) = {
                let s = lock(&entry.state);
                (s.current.id.clone(), need.saturating_sub(s.current.available))
            };
            let granted = self.inner.store.lease_budget(&id, a, Micros::new(short), self.inner.ttl).await;
            match granted {
                Ok(Ok(grant)) => {
                    let mut s = lock(&entry.state);
                    if let Some(l) = s.lease_mut(&id) {
                        l.available = l.available.saturating_add(grant.get());
                        l.opened = true;
                        l.tight = grant.get() <= short.saturating_mul(2);
                        l.renewed = Instant::now();
                    } else {
                        // Retired and closed while the grant was under way: return it.
                        let mut l = Lease::fresh();
                        (l.id, l.available, l.opened) = (id, grant.get(), true);
                        s.retired.push(l);
                    }
                }
                Ok(Err(refusal)) => return Err(BudgetDenied::Refused(refusal)),
                Err(e) => return Err(BudgetDenied::Store(e)),
            }
        }
        try_take(&entry, a.budget.get(), need).ok_or_else(|| {
            BudgetDenied::Refused(BudgetRefusal { limit: a.clone(), used: a.budget.get().saturating_sub(need) })
        })
    }

    /// Retires this instance's leases of `owner`'s budgets (its limits changed): requests from
    /// now on lease under the new limits; what the old leases hold goes back to the budgets.
    pub(crate) fn cut_owner(&self, owner: &str) {
        for ((_, o, _), entry) in lock(&self.inner.leases).iter() {
            if o == owner {
                lock(&entry.state).retire();
            }
        }
    }

    /// Retires every lease (notices may have been lost).
    pub(crate) fn cut_all(&self) {
        for entry in lock(&self.inner.leases).values() {
            lock(&entry.state).retire();
        }
    }

    /// Returns every lease, writing its settled spend (graceful shutdown, after the in-flight
    /// requests ended). Waits up to 10 s for reservations still held to be settled.
    pub(crate) async fn shutdown(&self) {
        self.cut_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tend(&self.inner).await;
            if lock(&self.inner.leases).is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Takes `need` from the current lease in memory, if it covers it; a lease granted under
/// another budget value (the limit changed) is retired first.
fn try_take(entry: &Arc<KeyLeases>, budget: i64, need: i64) -> Option<Part> {
    let mut s = lock(&entry.state);
    if s.budget != budget {
        s.retire();
        s.budget = budget;
    }
    let l = &mut s.current;
    if l.available < need {
        return None;
    }
    l.available -= need;
    l.held += need;
    l.last_used = Instant::now();
    Some(Part { entry: entry.clone(), lease: l.id.clone(), amount: need })
}

/// What the background task writes for one lease.
enum Op {
    /// Count `spent`, release `release`, renew.
    Adjust { id: RequestId, spent: i64, release: i64 },
    /// Count `spent` and close it (nothing in flight).
    Close { id: RequestId, spent: i64 },
}

/// Collects the writes one budget's leases need: retires an idle lease, writes settled spend,
/// renews, releases what retired leases hold, closes those with nothing in flight.
fn ops_of(s: &mut KeyState, ttl: Duration) -> Vec<Op> {
    let mut ops = Vec::new();
    if s.current.opened && s.current.held == 0 && s.current.last_used.elapsed() >= IDLE_RETURN {
        s.retire();
    }
    let c = &mut s.current;
    let release = if c.tight && c.available > 0 { std::mem::take(&mut c.available) } else { 0 };
    if c.opened && (c.unflushed != 0 || release != 0 || c.renewed.elapsed() >= ttl / 4) {
        c.renewed = Instant::now();
        ops.push(Op::Adjust { id: c.id.clone(), spent: std::mem::take(&mut c.unflushed), release });
    }
    s.retired.retain_mut(|l| {
        if l.held == 0 {
            ops.push(Op::Close { id: l.id.clone(), spent: l.unflushed });
            false
        } else {
            let (spent, release) = (std::mem::take(&mut l.unflushed), std::mem::take(&mut l.available).max(0));
            if spent != 0 || release != 0 {
                ops.push(Op::Adjust { id: l.id.clone(), spent, release });
            }
            true
        }
    });
    ops
}

/// One round of the background task over every budget's leases.
async fn tend(inner: &Inner) {
    let entries: Vec<(Key, Arc<KeyLeases>)> = lock(&inner.leases).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, entry) in entries {
        let ops = ops_of(&mut lock(&entry.state), inner.ttl);
        for op in ops {
            match op {
                Op::Adjust { id, spent, release } => {
                    match inner
                        .store
                        .adjust_budget_lease(&id, Micros::new(spent), Micros::new(release), inner.ttl)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            // Reclaimed (this instance lost the database a while): its budget
                            // was released, so none of what it held may be spent here.
                            tracing::warn!("a budget lease was reclaimed while in use; starting a new one");
                            let mut s = lock(&entry.state);
                            if s.current.id == id {
                                s.retire();
                            }
                            if let Some(l) = s.lease_mut(&id) {
                                l.available = 0;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not write a budget lease; retrying");
                            if let Some(l) = lock(&entry.state).lease_mut(&id) {
                                l.unflushed = l.unflushed.saturating_add(spent);
                                l.available = l.available.saturating_add(release);
                            }
                        }
                    }
                }
                Op::Close { id, spent } => {
                    if let Err(e) = inner.store.settle_budget(&id, Micros::new(spent)).await {
                        tracing::warn!(error = %e, "could not return a budget lease; retrying");
                        let mut l = Lease::fresh();
                        (l.id, l.unflushed, l.opened) = (id, spent, true);
                        lock(&entry.state).retired.push(l);
                    }
                }
            }
        }
        // Forget a period with nothing leased, unless a request just took its entry (the map's
        // lock is held: nobody else can take it meanwhile).
        let mut map = lock(&inner.leases);
        let empty = {
            let s = lock(&entry.state);
            !s.current.opened && s.retired.is_empty()
        };
        if empty && Arc::strong_count(&entry) == 2 {
            map.remove(&key);
        }
    }
}

/// Writes settled spend and tends leases every `interval`, reclaims expired holds of dead
/// instances every ten seconds. Ends when the [`Budgets`] is dropped.
async fn background(inner: Weak<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reclaim: Option<Instant> = None;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        tend(&inner).await;
        if last_reclaim.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_reclaim = Some(Instant::now());
            if let Err(e) = inner.store.reclaim_expired_budget_holds().await {
                tracing::warn!(error = %e, "could not reclaim expired budget holds");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(available: i64, held: i64, unflushed: i64) -> Lease {
        Lease { available, held, unflushed, opened: true, ..Lease::fresh() }
    }

    #[test]
    fn a_flush_writes_spend_releases_retired_leases_and_closes_those_without_requests() {
        let mut s =
            KeyState { budget: 1000, current: lease(500, 100, 30), retired: vec![lease(40, 10, 5), lease(7, 0, 9)] };
        let (current, busy, idle) = (s.current.id.clone(), s.retired[0].id.clone(), s.retired[1].id.clone());
        let ops = ops_of(&mut s, Duration::from_secs(60));
        let mut seen = Vec::new();
        for op in ops {
            match op {
                Op::Adjust { id, spent, release } => seen.push((id, spent, release, false)),
                Op::Close { id, spent } => seen.push((id, spent, 0, true)),
            }
        }
        assert_eq!(seen, vec![(current, 30, 0, false), (busy.clone(), 5, 40, false), (idle, 9, 0, true)]);
        assert_eq!((s.current.available, s.current.unflushed), (500, 0), "a lease in use keeps what it leased");
        assert_eq!(s.retired.len(), 1, "the retired lease without requests is closed");
        assert_eq!((s.retired[0].id.clone(), s.retired[0].available, s.retired[0].held), (busy, 0, 10));
    }

    #[test]
    fn near_the_end_a_lease_returns_what_it_does_not_use_and_an_idle_one_is_retired() {
        let mut s = KeyState { budget: 1000, current: Lease { tight: true, ..lease(300, 50, 0) }, retired: Vec::new() };
        let ops = ops_of(&mut s, Duration::from_secs(60));
        assert!(matches!(ops.as_slice(), [Op::Adjust { spent: 0, release: 300, .. }]));
        assert_eq!(s.current.available, 0);
        let mut idle = KeyState { budget: 1000, current: lease(300, 0, 20), retired: Vec::new() };
        idle.current.last_used = Instant::now().checked_sub(IDLE_RETURN * 2).unwrap_or_else(Instant::now);
        let ops = ops_of(&mut idle, Duration::from_secs(60));
        assert!(matches!(ops.as_slice(), [Op::Close { spent: 20, .. }]), "closed with its spend");
        assert!(!idle.current.opened && idle.retired.is_empty());
    }

    #[test]
    fn a_request_takes_from_the_lease_and_a_changed_budget_retires_it() {
        let entry = Arc::new(KeyLeases {
            state: Mutex::new(KeyState { budget: 1000, current: lease(100, 0, 0), retired: Vec::new() }),
            refill: tokio::sync::Mutex::new(()),
        });
        let part = try_take(&entry, 1000, 60).unwrap_or_else(|| panic!("fits the lease"));
        assert!(try_take(&entry, 1000, 60).is_none(), "40 left");
        let old = part.lease.clone();
        assert!(try_take(&entry, 500, 10).is_none(), "a new budget value: a fresh lease, empty");
        part.settle(25);
        let s = lock(&entry.state);
        assert_ne!(s.current.id, old);
        let retired = s.retired.iter().find(|l| l.id == old).unwrap_or_else(|| panic!("retired"));
        assert_eq!((retired.available, retired.held, retired.unflushed), (75, 0, 25));
    }
}
