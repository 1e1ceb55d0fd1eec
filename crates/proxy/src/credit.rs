//! Credit for the proxy's requests, without a database write on the request's path.
//!
//! Each instance holds, per org, a **lease**: a block of the org's credit moved atomically in
//! SQL from the org's balance (so instances never take more than the balance between them).
//! A request's worst case is reserved from the lease in memory; its settlement returns the
//! rest to the lease and queues its one ledger row. A background task writes queued rows in
//! batches, charging their cost to the lease in the same transaction, renews leases that are
//! in use, returns idle ones, and reclaims leases of instances that died.
//!
//! What this keeps of DESIGN.md section 8: the worst case is reserved before forwarding, a
//! request that does not fit is refused (402) without reaching the upstream, each request has
//! exactly one ledger row written once (idempotent per request id), and credit is never
//! overspent across instances beyond the reservations in flight. What it changes: a row
//! reaches the database up to [`CreditConfig::flush_interval`] after the response, and credit
//! another instance holds is recalled (an [`Invalidation::CreditRecall`] notice) before a request is
//! refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tollgate_policy::{Micros, OrgId};
use tollgate_store::{Invalidation, LeaseId, LeaseRequest, Leased, LedgerEntry, MAX_BALANCE_MICROS, Store, StoreError};

/// How the lease bookkeeping behaves.
#[derive(Clone, Debug)]
pub struct CreditConfig {
    /// How often queued ledger rows are written.
    pub flush_interval: Duration,
    /// A lease not renewed for this long is reclaimed by any instance.
    pub lease_ttl: Duration,
    /// A lease with nothing in flight and unused this long is returned to the org.
    pub idle_return: Duration,
    /// A new lease asks for this many times the request's worst case, or for what this
    /// instance reserved from the org over the last second if that is more (bounded by an
    /// eighth of the org's balance, so other instances find credit too): a busy org refills
    /// about once a second, not every few dozen requests, each refill being a database write
    /// the requests that find the lease empty wait for.
    pub lease_multiple: i64,
    /// After recalling other instances' leases, how long to wait for them to return credit
    /// before refusing a request.
    pub recall_wait: Duration,
    /// How often expired leases (of instances that died) are looked for and reclaimed.
    pub reclaim_interval: Duration,
    /// The most ledger rows held in memory unwritten (a database outage): at this many, new
    /// requests are refused ([`Refusal::Backlog`]) rather than served unrecorded.
    pub backlog_rows: usize,
    /// The most bytes those rows may take (an estimate per row; see [`backlog_bytes_of`]).
    pub backlog_bytes: usize,
}

impl Default for CreditConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(60),
            idle_return: Duration::from_secs(5),
            lease_multiple: 64,
            recall_wait: Duration::from_millis(200),
            reclaim_interval: Duration::from_secs(10),
            backlog_rows: DEFAULT_BACKLOG_ROWS,
            backlog_bytes: DEFAULT_BACKLOG_BYTES,
        }
    }
}

/// Default of [`CreditConfig::backlog_rows`]: at 1,000 requests a second, 100 s of outage.
pub const DEFAULT_BACKLOG_ROWS: usize = 100_000;
/// Default of [`CreditConfig::backlog_bytes`]: 64 MiB.
pub const DEFAULT_BACKLOG_BYTES: usize = 64 << 20;

/// The environment variables [`CreditConfig::from_env`] reads, with what each sets.
pub const CREDIT_ENV: [(&str, &str); 5] = [
    ("TOLLGATE_LEDGER_FLUSH_MS", "how often queued ledger rows are written (ms, default 50)"),
    ("TOLLGATE_LEASE_TTL_MS", "a lease not renewed this long is reclaimed by any instance (ms, default 60000)"),
    ("TOLLGATE_LEASE_RECLAIM_MS", "how often expired leases are reclaimed (ms, default 10000)"),
    (
        "TOLLGATE_LEDGER_BACKLOG_ROWS",
        "most unwritten ledger rows held in memory before refusing requests (default 100000)",
    ),
    ("TOLLGATE_LEDGER_BACKLOG_BYTES", "most bytes of unwritten ledger rows held in memory (default 67108864)"),
];

impl CreditConfig {
    /// The defaults, with each variable of [`CREDIT_ENV`] that `env` returns (non-empty)
    /// applied. Errors name the variable whose value is not a positive integer.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read = |name: &str| -> Result<Option<u64>, String> {
            match env(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{name} must be a positive integer, not `{v}`")),
                },
            }
        };
        let mut c = Self::default();
        if let Some(ms) = read("TOLLGATE_LEDGER_FLUSH_MS")? {
            c.flush_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = read("TOLLGATE_LEASE_TTL_MS")? {
            c.lease_ttl = Duration::from_millis(ms);
        }
        if let Some(ms) = read("TOLLGATE_LEASE_RECLAIM_MS")? {
            c.reclaim_interval = Duration::from_millis(ms);
        }
        if let Some(n) = read("TOLLGATE_LEDGER_BACKLOG_ROWS")? {
            c.backlog_rows = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = read("TOLLGATE_LEDGER_BACKLOG_BYTES")? {
            c.backlog_bytes = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(c)
    }
}

/// What one queued ledger row costs in memory, roughly: the entry and its queue slot, plus
/// its strings' heap. Counted against [`CreditConfig::backlog_bytes`].
pub fn backlog_bytes_of(entry: &LedgerEntry) -> usize {
    std::mem::size_of::<(LeaseId, OrgId, LedgerEntry)>()
        + entry.model.len()
        + entry.request_id.as_str().len()
        + entry.workspace_id.as_str().len()
        + 64
}

/// Why a reservation was not made.
#[derive(Debug)]
pub enum Refusal {
    /// The org's credit does not cover it.
    Insufficient {
        /// What the org could still spend (its balance plus this instance's unspent lease).
        available: Micros,
    },
    /// The database could not be reached.
    Store(StoreError),
    /// Too many ledger rows wait unwritten (the database is down): serving more would be
    /// serving traffic that may never be recorded.
    Backlog {
        /// Rows waiting.
        rows: usize,
        /// Their estimated size in bytes.
        bytes: usize,
    },
}

/// A reservation held for one request; give it back with [`Credit::settle`].
pub struct Hold {
    org_id: OrgId,
    /// The org's lease state, so that settling needs no look-up.
    org: Arc<OrgCredit>,
    lease_id: LeaseId,
    amount: i64,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold").field("org_id", &self.org_id).field("amount", &self.amount).finish_non_exhaustive()
    }
}

impl Hold {
    /// The amount reserved.
    pub fn amount(&self) -> Micros {
        Micros::new(self.amount)
    }

    /// The lease it was reserved from.
    pub fn lease_id(&self) -> &LeaseId {
        &self.lease_id
    }
}

/// The lease bookkeeping of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Credit {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credit").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    config: CreditConfig,
    /// Names this instance in recall notices, so that it does not answer its own.
    instance: String,
    orgs: Mutex<HashMap<OrgId, Arc<OrgCredit>>>,
    /// Rows to write.
    queue: Mutex<Queue>,
}

/// Ledger rows waiting to be written, with their estimated size.
#[derive(Default)]
struct Queue {
    /// (lease id, org id, row).
    rows: Vec<(LeaseId, OrgId, LedgerEntry)>,
    /// Sum of [`backlog_bytes_of`] over `rows`.
    bytes: usize,
    /// Rows and bytes taken by the flush under way: still unwritten, so still counted (a
    /// flush against an unreachable database can wait seconds before failing).
    flushing: (usize, usize),
}

impl Queue {
    fn push(&mut self, lease_id: LeaseId, org_id: OrgId, entry: LedgerEntry) {
        self.bytes += backlog_bytes_of(&entry);
        self.rows.push((lease_id, org_id, entry));
    }

    /// Takes every row for a flush, which counts as in flight until [`Queue::flushed`].
    fn take(&mut self) -> Vec<(LeaseId, OrgId, LedgerEntry)> {
        self.flushing = (self.rows.len(), std::mem::take(&mut self.bytes));
        std::mem::take(&mut self.rows)
    }

    /// The flush ended; the rows it could not write were pushed back.
    fn flushed(&mut self) {
        self.flushing = (0, 0);
    }

    /// Unwritten rows and their bytes, the flush under way included.
    fn backlog(&self) -> (usize, usize) {
        (self.rows.len() + self.flushing.0, self.bytes + self.flushing.1)
    }
}

/// One org's lease on this instance.
struct OrgCredit {
    state: Mutex<LeaseState>,
    /// One lease request at a time per org: requests arriving while the lease is empty wait
    /// for it rather than each asking the database.
    refill: tokio::sync::Mutex<()>,
    /// The last few lease ids this instance stopped spending from, so that it can confirm a
    /// debit's cut of a lease it had already left (see [`Credit::cut`]).
    retired: Mutex<Vec<LeaseId>>,
}

impl OrgCredit {
    fn retire(&self, lease_id: LeaseId) {
        let mut retired = lock(&self.retired);
        if retired.len() >= RETIRED_KEPT {
            retired.remove(0);
        }
        retired.push(lease_id);
    }
}

/// How many retired lease ids an org's entry remembers.
const RETIRED_KEPT: usize = 8;

struct LeaseState {
    /// The lease's id; replaced when the lease is closed or lost, so that holds of the old
    /// one never credit the new one.
    lease_id: LeaseId,
    /// Leased credit not reserved by any request.
    available: i64,
    /// Reserved by requests in flight.
    held: i64,
    last_used: Instant,
    /// When its expiry was last pushed back by this instance's tending.
    renewed: Instant,
    /// Whether the lease exists in the database (credit was granted to it).
    opened: bool,
    /// The flow of reservations, which sizes the next refill.
    flow: Flow,
}

/// Reservations counted per one-second window: the current window's and the last full one's.
#[derive(Clone, Copy, Debug)]
struct Flow {
    window: Instant,
    current: i64,
    last: i64,
}

/// The window [`Flow`] counts over.
const FLOW_WINDOW: Duration = Duration::from_secs(1);

impl Flow {
    fn new(now: Instant) -> Self {
        Self { window: now, current: 0, last: 0 }
    }

    /// Counts `amount` reserved at `now`.
    fn add(&mut self, amount: i64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window);
        if elapsed >= FLOW_WINDOW {
            // A window with no reservation in between leaves nothing to carry over.
            self.last = if elapsed < 2 * FLOW_WINDOW { self.current } else { 0 };
            self.current = 0;
            self.window = now;
        }
        self.current = self.current.saturating_add(amount);
    }

    /// Reservations per window, recently: the more of the last full window and this one.
    fn per_window(&self) -> i64 {
        self.last.max(self.current)
    }
}

/// What a refill asks the store for: `multiple` times the request's `amount`, or a window's
/// worth of the reservations `flow` counted if that is more; never less than `need`.
fn lease_want(amount: i64, need: i64, multiple: i64, flow: &Flow) -> i64 {
    amount.saturating_mul(multiple).max(flow.per_window()).max(need)
}

impl LeaseState {
    fn fresh() -> Self {
        Self {
            lease_id: LeaseId::mint(),
            available: 0,
            held: 0,
            last_used: Instant::now(),
            renewed: Instant::now(),
            opened: false,
            flow: Flow::new(Instant::now()),
        }
    }
}

/// A poisoned lock only means another request panicked mid-update of plain integers; the
/// numbers are still the best we have.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Credit {
    /// Bookkeeping over `store`. Spawns its background task on the current Tokio runtime (if
    /// any); the task ends when the last clone is dropped.
    pub fn new(store: Arc<dyn Store>, config: CreditConfig) -> Self {
        let credit = Self {
            inner: Arc::new(Inner {
                store,
                config,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                orgs: Mutex::new(HashMap::new()),
                queue: Mutex::new(Queue::default()),
            }),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(background(Arc::downgrade(&credit.inner)));
        }
        credit
    }

    fn org(&self, org_id: &OrgId) -> Arc<OrgCredit> {
        let mut orgs = lock(&self.inner.orgs);
        // The common case allocates nothing: the org is known.
        if let Some(org) = orgs.get(org_id) {
            return org.clone();
        }
        orgs.entry(org_id.clone())
            .or_insert_with(|| {
                Arc::new(OrgCredit {
                    state: Mutex::new(LeaseState::fresh()),
                    refill: tokio::sync::Mutex::new(()),
                    retired: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Reserves `amount` of `org_id`'s credit for one request: from this instance's lease in
    /// memory when it covers it (the common case: no IO), else after moving more credit into
    /// the lease. Refuses only when the org's balance, this lease and whatever other
    /// instances return when recalled do not cover it.
    pub async fn reserve(&self, org_id: &OrgId, amount: Micros) -> Result<Hold, Refusal> {
        let amount = amount.get().max(0);
        self.check_backlog()?;
        let org = self.org(org_id);
        if let Some(hold) = take(&org, org_id, amount) {
            return Ok(hold);
        }
        let _refill = org.refill.lock().await;
        let mut recalled = false;
        let deadline = Instant::now() + self.inner.config.recall_wait;
        loop {
            // Another request may have refilled the lease while this one waited.
            if let Some(hold) = take(&org, org_id, amount) {
                return Ok(hold);
            }
            let (lease_id, need, want) = {
                let s = lock(&org.state);
                let need = amount - s.available;
                (s.lease_id.clone(), need, lease_want(amount, need, self.inner.config.lease_multiple, &s.flow))
            };
            let request = LeaseRequest {
                lease_id: lease_id.clone(),
                org_id: org_id.clone(),
                need: Micros::new(need),
                want: Micros::new(want),
                ttl: self.inner.config.lease_ttl,
            };
            match self.inner.store.lease_credit(&request).await.map_err(Refusal::Store)? {
                Leased::Granted(m) => {
                    let mut s = lock(&org.state);
                    if s.lease_id == lease_id {
                        s.available += m.get();
                        s.opened = true;
                    }
                }
                Leased::Insufficient { available, leased_elsewhere } => {
                    let mine = lock(&org.state).available;
                    let could = available.get().saturating_add(mine).saturating_add(leased_elsewhere.get());
                    if leased_elsewhere.get() == 0 || could < amount || Instant::now() >= deadline {
                        return Err(Refusal::Insufficient { available: Micros::new(available.get() + mine) });
                    }
                    // Other instances hold enough: ask them to return what they are not using.
                    if !recalled {
                        recalled = true;
                        let notice =
                            Invalidation::CreditRecall { org: org_id.clone(), from: self.inner.instance.clone() };
                        if let Err(e) = self.inner.store.publish_invalidation(&notice).await {
                            tracing::warn!(error = %e, "could not recall leased credit");
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Ends `hold`'s request: charges `entry`'s cost, returns the rest of the reservation to
    /// the lease, and queues the request's ledger row. No IO: the row is written by the
    /// background task (or [`Credit::shutdown`]).
    ///
    /// The cost (and the provider's cost beside it) is clamped to `0..=`[`MAX_BALANCE_MICROS`]:
    /// a price that saturated on absurd usage must neither overflow the lease's arithmetic nor
    /// write a row the database cannot subtract from a balance or sum (which would block the
    /// ledger's batch, or every usage report, for good).
    pub fn settle(&self, hold: Hold, mut entry: LedgerEntry) {
        let cost = entry.settlement.cost.get().clamp(0, MAX_BALANCE_MICROS);
        entry.settlement.cost = Micros::new(cost);
        let provider = entry.settlement.provider_cost.get().clamp(0, MAX_BALANCE_MICROS);
        entry.settlement.provider_cost = Micros::new(provider);
        {
            let mut s = lock(&hold.org.state);
            if s.lease_id == hold.lease_id {
                s.held -= hold.amount;
                s.available = s.available.saturating_add(hold.amount - cost);
                s.last_used = Instant::now();
            }
        }
        lock(&self.inner.queue).push(hold.lease_id, hold.org_id, entry);
    }

    /// Refuses when the unwritten rows reach [`CreditConfig::backlog_rows`] or
    /// [`CreditConfig::backlog_bytes`]. Rows of requests already admitted are still queued
    /// (they were served), so the bound can be passed by at most the requests in flight.
    fn check_backlog(&self) -> Result<(), Refusal> {
        let (rows, bytes) = self.backlog();
        if rows >= self.inner.config.backlog_rows || bytes >= self.inner.config.backlog_bytes {
            return Err(Refusal::Backlog { rows, bytes });
        }
        Ok(())
    }

    /// The ledger rows waiting to be written and their estimated bytes.
    pub fn backlog(&self) -> (usize, usize) {
        lock(&self.inner.queue).backlog()
    }

    /// Queues the ledger row of a request refused before it held anything (402).
    pub fn record_refusal(&self, org_id: &OrgId, entry: LedgerEntry) {
        let lease_id = lock(&self.org(org_id).state).lease_id.clone();
        lock(&self.inner.queue).push(lease_id, org_id.clone(), entry);
    }

    /// Answers a recall notice ([`Invalidation::CreditRecall`], published by instance `from`
    /// that could not reserve): returns the unreserved credit of this instance's lease of
    /// `org_id` to the org. Ignores its own notices.
    pub async fn recall(&self, org_id: &OrgId, from: &str) {
        if from == self.inner.instance {
            return;
        }
        let Some(org) = lock(&self.inner.orgs).get(org_id).cloned() else {
            return;
        };
        let (lease_id, amount) = {
            let mut s = lock(&org.state);
            (s.lease_id.clone(), std::mem::take(&mut s.available))
        };
        if amount <= 0 {
            lock(&org.state).available += amount;
            return;
        }
        match self.inner.store.release_lease(&lease_id, Some(Micros::new(amount)), self.inner.config.lease_ttl).await {
            Ok(true) => {}
            Ok(false) => reset_if(&org, &lease_id),
            Err(e) => {
                tracing::warn!(error = %e, "could not return leased credit");
                let mut s = lock(&org.state);
                if s.lease_id == lease_id {
                    s.available += amount;
                }
            }
        }
    }

    /// Drops this instance's lease of `org_id` after a debit closed it in the store: the lease
    /// state starts afresh under a new id (so a grant to the old id still in flight is never
    /// spent here), then the old lease is closed in case a grant re-opened it after the debit
    /// (its credit goes back to the org). Holds of the old lease are settled as usual; their
    /// rows, finding the lease gone, are charged to the balance.
    ///
    /// Returns every lease id of the org this instance no longer spends from (the one just
    /// dropped and those retired before), for the debit to know whom it waits for.
    pub async fn cut(&self, org_id: &OrgId) -> Vec<LeaseId> {
        let Some(org) = lock(&self.inner.orgs).get(org_id).cloned() else {
            return Vec::new();
        };
        let old = {
            let mut s = lock(&org.state);
            let old = s.lease_id.clone();
            *s = LeaseState::fresh();
            old
        };
        org.retire(old.clone());
        if let Err(e) = self.inner.store.release_lease(&old, None, Duration::ZERO).await {
            // It expires and is reclaimed like a dead instance's lease.
            tracing::warn!(error = %e, "could not close a debited credit lease");
        }
        lock(&org.retired).clone()
    }

    /// [`Credit::cut`] for every org this instance holds a lease of: for when notices may have
    /// been lost (a lagging or reconnected channel), so a debit's cut among them cannot be
    /// missed. The credit goes back to the orgs; the next request of each leases afresh.
    /// Returns every lease id this instance no longer spends from.
    pub async fn cut_all(&self) -> Vec<LeaseId> {
        let orgs: Vec<OrgId> = lock(&self.inner.orgs).keys().cloned().collect();
        let mut left = Vec::new();
        for org in orgs {
            left.extend(self.cut(&org).await);
        }
        left
    }

    /// Writes every queued row and returns every lease to its org (graceful shutdown, after
    /// the in-flight requests have ended).
    ///
    /// Requests whose responses have ended may still be settling (a body's guard drops after
    /// its last byte is sent): it first waits, up to 10 s, until no request holds
    /// a reservation, so that their rows are written here rather than lost.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + SETTLE_WAIT;
        while self.holds_in_flight() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.holds_in_flight() {
            tracing::warn!("shutting down while requests still hold reservations: their ledger rows are lost");
        }
        flush(&self.inner).await?;
        let orgs: Vec<Arc<OrgCredit>> = lock(&self.inner.orgs).drain().map(|(_, o)| o).collect();
        for org in orgs {
            let lease_id = lock(&org.state).lease_id.clone();
            self.inner.store.release_lease(&lease_id, None, Duration::ZERO).await?;
        }
        Ok(())
    }
}

/// How long [`Credit::shutdown`] waits for reservations still held to be settled.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

impl Credit {
    /// Whether any request still holds a reservation: every [`Hold`] keeps its org's entry
    /// alive, so an entry shared beyond the map is one in use.
    fn holds_in_flight(&self) -> bool {
        lock(&self.inner.orgs).values().any(|org| Arc::strong_count(org) > 1)
    }
}

/// Takes `amount` from the lease in memory, if it covers it.
fn take(org: &Arc<OrgCredit>, org_id: &OrgId, amount: i64) -> Option<Hold> {
    let mut s = lock(&org.state);
    if s.available < amount {
        return None;
    }
    s.available -= amount;
    s.held += amount;
    let now = Instant::now();
    s.last_used = now;
    s.flow.add(amount, now);
    Some(Hold { org_id: org_id.clone(), org: org.clone(), lease_id: s.lease_id.clone(), amount })
}

/// Forgets the lease `lease_id` if it is still the org's current one: it was found gone
/// (reclaimed while this instance could not reach the database), its credit went back to the
/// org, so none of it may be spent here. Requests still holding it are charged to the balance
/// when their rows are written.
fn reset_if(org: &OrgCredit, lease_id: &LeaseId) {
    let mut s = lock(&org.state);
    if s.lease_id == *lease_id {
        if s.available != 0 || s.held != 0 {
            tracing::warn!("a credit lease was reclaimed while in use; starting a new one");
        }
        *s = LeaseState::fresh();
        drop(s);
        org.retire(lease_id.clone());
    }
}

async fn flush(inner: &Inner) -> Result<(), StoreError> {
    let queued = lock(&inner.queue).take();
    if queued.is_empty() {
        return Ok(());
    }
    let mut batches: HashMap<(LeaseId, OrgId), Vec<LedgerEntry>> = HashMap::new();
    for (lease_id, org_id, entry) in queued {
        batches.entry((lease_id, org_id)).or_default().push(entry);
    }
    let mut result = Ok(());
    for ((lease_id, org_id), entries) in batches {
        match inner.store.record_usage(&lease_id, &org_id, &entries, inner.config.lease_ttl).await {
            Ok(true) => {}
            Ok(false) => {
                let org = lock(&inner.orgs).get(&org_id).cloned();
                if let Some(org) = org {
                    reset_if(&org, &lease_id);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = entries.len(), "ledger rows not written; retrying");
                let mut queue = lock(&inner.queue);
                for e in entries {
                    queue.push(lease_id.clone(), org_id.clone(), e);
                }
                result = Err(e);
            }
        }
    }
    lock(&inner.queue).flushed();
    result
}

/// Returns idle leases to their orgs and renews the others.
async fn tend_leases(inner: &Inner) {
    let orgs: Vec<(OrgId, Arc<OrgCredit>)> = lock(&inner.orgs).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (org_id, org) in orgs {
        let (lease_id, close) = {
            let mut s = lock(&org.state);
            if !s.opened {
                continue;
            }
            let lease_id = s.lease_id.clone();
            let close = s.held == 0 && s.last_used.elapsed() >= inner.config.idle_return;
            if close {
                // A request arriving from now on opens a new lease. The old one is retired: a
                // debit that closes it (before this release lands, or after it failed) waits
                // for this instance to confirm it among those it left (see `Credit::cut`).
                *s = LeaseState::fresh();
                org.retire(lease_id.clone());
            } else if s.renewed.elapsed() < inner.config.lease_ttl / 4 {
                // Renewed recently enough: one write per lease per quarter TTL, not per tick.
                continue;
            } else {
                s.renewed = Instant::now();
            }
            (lease_id, close)
        };
        let ttl = if close { Duration::ZERO } else { inner.config.lease_ttl };
        let amount = if close { None } else { Some(Micros::ZERO) };
        match inner.store.release_lease(&lease_id, amount, ttl).await {
            Ok(true) => {}
            Ok(false) => reset_if(&org, &lease_id),
            Err(e) => tracing::warn!(error = %e, org_id = %org_id, "could not tend a credit lease"),
        }
    }
}

/// The bookkeeping loop: writes rows every `flush_interval`, tends leases every second (or
/// every `flush_interval` if longer), reclaims dead instances' leases every `reclaim_interval`. Ends when the [`Credit`] is dropped.
async fn background(inner: Weak<Inner>) {
    let Some(interval) = inner.upgrade().map(|i| i.config.flush_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tend = Instant::now();
    let mut last_reclaim: Option<Instant> = None;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let _ = flush(&inner).await;
        if last_tend.elapsed() >= Duration::from_secs(1) {
            last_tend = Instant::now();
            tend_leases(&inner).await;
        }
        if last_reclaim.is_none_or(|t| t.elapsed() >= inner.config.reclaim_interval) {
            last_reclaim = Some(Instant::now());
            if let Err(e) = inner.store.reclaim_expired_leases().await {
                tracing::warn!(error = %e, "could not reclaim expired credit leases");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn from_env_applies_each_variable_and_keeps_the_defaults_of_the_others() {
        let c = CreditConfig::from_env(env(&[
            ("TOLLGATE_LEDGER_FLUSH_MS", "300"),
            ("TOLLGATE_LEASE_TTL_MS", "2000"),
            ("TOLLGATE_LEASE_RECLAIM_MS", " 250 "),
            ("TOLLGATE_LEDGER_BACKLOG_ROWS", "25"),
            ("TOLLGATE_LEDGER_BACKLOG_BYTES", ""),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.flush_interval, Duration::from_millis(300));
        assert_eq!(c.lease_ttl, Duration::from_secs(2));
        assert_eq!(c.reclaim_interval, Duration::from_millis(250));
        assert_eq!(c.backlog_rows, 25);
        assert_eq!(c.backlog_bytes, DEFAULT_BACKLOG_BYTES, "an empty variable is unset");
        assert_eq!(c.idle_return, CreditConfig::default().idle_return);
    }

    #[test]
    fn from_env_names_the_variable_of_a_value_that_is_not_a_positive_integer() {
        for bad in ["0", "-5", "soon", "1.5"] {
            let err = CreditConfig::from_env(env(&[("TOLLGATE_LEDGER_BACKLOG_ROWS", bad)])).err();
            assert!(err.as_deref().is_some_and(|e| e.contains("TOLLGATE_LEDGER_BACKLOG_ROWS")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn a_refill_asks_for_a_window_of_the_flow_when_that_is_more_than_the_multiple() {
        let start = Instant::now();
        let mut flow = Flow::new(start);
        assert_eq!(lease_want(10, 10, 64, &flow), 640, "no flow yet: the multiple");
        for _ in 0..1000 {
            flow.add(10, start);
        }
        assert_eq!(lease_want(10, 10, 64, &flow), 10_000, "a busy lease: what it reserved in the window");
        flow.add(10, start + FLOW_WINDOW);
        assert_eq!(flow.per_window(), 10_000, "the last full window still counts");
        flow.add(10, start + 4 * FLOW_WINDOW);
        assert_eq!(flow.per_window(), 10, "a quiet gap forgets the old flow");
        assert_eq!(lease_want(10, 50_000, 64, &flow), 50_000, "never less than the need");
    }

    #[test]
    fn the_backlog_counts_the_rows_of_a_flush_under_way_until_it_ends() {
        let entry = LedgerEntry {
            request_id: tollgate_store::RequestId::mint(),
            workspace_id: tollgate_policy::WorkspaceId::parse("5f0c7d9e-1a2b-4c3d-8e4f-0a1b2c3d4e5f")
                .unwrap_or_else(|e| panic!("{e}")),
            model: "platform/sonnet".to_owned(),
            reserved: Micros::ZERO,
            settlement: tollgate_store::Settlement {
                usage: tollgate_policy::Usage::default(),
                cost: Micros::ZERO,
                provider_cost: Micros::ZERO,
                http_status: Some(200),
                estimated: false,
            },
            rejected: false,
            created_at: tollgate_store::Timestamp(0),
            session_id: None,
        };
        let org = OrgId::parse("0f0c7d9e-1a2b-4c3d-8e4f-0a1b2c3d4e5f").unwrap_or_else(|e| panic!("{e}"));
        let bytes = backlog_bytes_of(&entry);
        let mut q = Queue::default();
        q.push(LeaseId::mint(), org.clone(), entry.clone());
        q.push(LeaseId::mint(), org.clone(), entry.clone());
        assert_eq!(q.backlog(), (2, 2 * bytes));
        let taken = q.take();
        assert_eq!(taken.len(), 2);
        q.push(LeaseId::mint(), org, entry);
        assert_eq!(q.backlog(), (3, 3 * bytes), "rows being written still count");
        q.flushed();
        assert_eq!(q.backlog(), (1, bytes));
    }
}
