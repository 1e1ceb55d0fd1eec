//! Rate limits for the proxy's requests (DESIGN.md section 14), held across instances.
//!
//! Per-minute limits (`requests_per_minute`, `tokens_per_minute`) use the sliding window of
//! [`tollgate_policy::rate`]: the store keeps each limiter's per-slot counts and grants an
//! instance a **block** of the current 2-second slot under a lock, so that the instances'
//! blocks never sum past the limit; the instance admits from its block in memory (no IO, no
//! allocation), and returns what it did not spend when the slot ends. This is the credit
//! lease's idea (crates/proxy/src/credit.rs) cut to the window's shape: a credit lease can be
//! held for a minute, a rate block only for its slot, since a unit spent in a later slot than
//! it was counted in would let 60 seconds admit more than the limit. Blocks are a sixteenth of
//! the limit, so a busy instance touches the store a few times per slot at most, and under
//! excess demand the blocks are spent, so at least 90% of the limit is admitted (the policy
//! crate's property tests).
//!
//! `max_concurrent_requests` is shared the same way: an instance leases request slots one at
//! a time from the store (which counts every live instance's), reuses a freed one for the next
//! request in memory, and returns spare ones every tick; an instance that dies stops counting
//! when its row expires.
//!
//! A settlement corrects a token count: admission counted the request's worst case (input
//! estimate plus output limit), and the unused rest goes back to the slot it was counted in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tollgate_policy::rate::{self, Grant, RateKind, RateLimits, Share, Take};
use tollgate_policy::{OrgId, WorkspaceId};
use tollgate_store::{RateKey, Store, StoreError, Timestamp};

/// How long an instance's request slots count without renewal (its death frees them after
/// this).
const CONCURRENCY_TTL: Duration = Duration::from_secs(30);
/// How often spare blocks and request slots go back to the store.
const TICK: Duration = Duration::from_millis(50);

/// A poisoned lock only means a panic mid-update of plain integers.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum RateRefusal {
    /// A limit is reached.
    Limited {
        /// Whose limit: `workspace` or `org`.
        scope: &'static str,
        /// Which limit.
        kind: RateKind,
        /// Its value.
        limit: u64,
        /// What the request needed of it (1 request, or its token worst case).
        need: u64,
        /// Seconds until it may fit; `None` when it never fits (the need exceeds the limit).
        retry_after: Option<u64>,
    },
    /// The store could not be reached.
    Store(StoreError),
}

/// One per-minute limiter's state on this instance.
struct Limiter {
    key: RateKey,
    share: Mutex<Share>,
    /// One store request at a time per limiter.
    refill: tokio::sync::Mutex<()>,
    /// The last refusal: (slot, smallest need refused, retry at in ms). Within that slot a
    /// need at least as big is refused without asking the store again.
    refused: Mutex<Option<(i64, u64, i64)>>,
}

/// One concurrency limiter's state on this instance.
struct Concurrency {
    key: RateKey,
    state: Mutex<ConcurrencyState>,
    refill: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct ConcurrencyState {
    /// Request slots this instance holds in the store.
    leased: u64,
    /// Of them, in use.
    in_flight: u64,
}

/// The limiters that apply to one workspace's requests, resolved once per authorisation
/// (cached with it), so that admission looks nothing up.
pub(crate) struct RateHandles {
    /// Per-minute limiters: (scope, kind, limit, limiter).
    minute: Vec<(&'static str, RateKind, u64, Arc<Limiter>)>,
    /// Concurrency limiters: (scope, limit, limiter).
    concurrent: Vec<(&'static str, u64, Arc<Concurrency>)>,
}

impl std::fmt::Debug for RateHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateHandles").finish_non_exhaustive()
    }
}

/// The most limiters one request passes: requests and tokens per minute, workspace and org.
const MAX_MINUTE: usize = 4;
/// Workspace and org.
const MAX_CONCURRENT: usize = 2;

/// What an admitted request holds: its token counts (to correct at settlement) and its request
/// slots (given back when it is dropped).
pub(crate) struct RatePermit {
    rates: Rates,
    /// Tokens counted: (limiter, slot, units).
    tokens: [Option<(Arc<Limiter>, i64, u64)>; MAX_MINUTE],
    /// Requests counted: (limiter, slot).
    requests: [Option<(Arc<Limiter>, i64)>; MAX_MINUTE],
    concurrent: [Option<Arc<Concurrency>>; MAX_CONCURRENT],
}

impl std::fmt::Debug for RatePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatePermit").finish_non_exhaustive()
    }
}

impl RatePermit {
    /// Gives back everything the request counted: it was refused after its admission here
    /// (no budget or credit), so it was never admitted.
    pub(crate) fn cancel(mut self) {
        let (rates, mut requests) = (self.rates.clone(), std::mem::take(&mut self.requests));
        rates.undo(&mut self, &mut requests);
    }

    /// Corrects the token counts to `used` tokens (input plus output): the rest of what
    /// admission counted goes back to its slot.
    pub(crate) fn settle(mut self, used: u64) {
        for (limiter, slot, units) in self.tokens.iter_mut().filter_map(Option::take) {
            if units > used {
                self.rates.give_back(&limiter, slot, units - used);
            }
        }
    }
}

impl Drop for RatePermit {
    fn drop(&mut self) {
        for c in self.concurrent.iter_mut().filter_map(Option::take) {
            let mut s = lock(&c.state);
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

/// The rate limiters of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Rates {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rates").finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    instance: String,
    minute: Mutex<HashMap<RateKey, Arc<Limiter>>>,
    concurrent: Mutex<HashMap<RateKey, Arc<Concurrency>>>,
    /// Units to take back from the store's counts: (limiter, slot, units).
    returns: Mutex<Vec<(RateKey, i64, u64)>>,
}

impl Rates {
    /// Limiters over `store`. Spawns its background task (returns of spare blocks and request
    /// slots) on the current Tokio runtime, if any; it ends when the last clone is dropped.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let rates = Self {
            inner: Arc::new(Inner {
                store,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                minute: Mutex::new(HashMap::new()),
                concurrent: Mutex::new(HashMap::new()),
                returns: Mutex::new(Vec::new()),
            }),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(background(Arc::downgrade(&rates.inner)));
        }
        rates
    }

    /// The limiters of a workspace with `ws` limits in an org with `org` limits; `None` when
    /// neither sets any (admission then costs nothing). A limiter keeps its state across
    /// calls (re-authorisations after a change of limits).
    pub(crate) fn handles(
        &self,
        ws_id: &WorkspaceId,
        ws: &RateLimits,
        org_id: &OrgId,
        org: &RateLimits,
    ) -> Option<Arc<RateHandles>> {
        if ws.is_empty() && org.is_empty() {
            return None;
        }
        let mut handles = RateHandles { minute: Vec::new(), concurrent: Vec::new() };
        self.add_scope(&mut handles, "workspace", ws, |kind| RateKey::workspace(ws_id, kind));
        self.add_scope(&mut handles, "org", org, |kind| RateKey::org(org_id, kind));
        Some(Arc::new(handles))
    }

    /// Adds the limiters of one scope's `limits`, each named by `key(kind)`.
    fn add_scope(
        &self,
        handles: &mut RateHandles,
        scope: &'static str,
        limits: &RateLimits,
        key: impl Fn(RateKind) -> RateKey,
    ) {
        for (kind, limit) in [
            (RateKind::RequestsPerMinute, limits.requests_per_minute),
            (RateKind::TokensPerMinute, limits.tokens_per_minute),
        ] {
            if let Some(limit) = limit {
                handles.minute.push((scope, kind, limit.get(), self.limiter(key(kind))));
            }
        }
        if let Some(limit) = limits.max_concurrent_requests {
            handles.concurrent.push((scope, limit.get(), self.concurrency(key(RateKind::MaxConcurrentRequests))));
        }
    }

    fn limiter(&self, key: RateKey) -> Arc<Limiter> {
        lock(&self.inner.minute)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Limiter {
                    key,
                    share: Mutex::new(Share::default()),
                    refill: tokio::sync::Mutex::new(()),
                    refused: Mutex::new(None),
                })
            })
            .clone()
    }

    fn concurrency(&self, key: RateKey) -> Arc<Concurrency> {
        lock(&self.inner.concurrent)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Concurrency {
                    key,
                    state: Mutex::new(ConcurrencyState::default()),
                    refill: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Admits one request whose worst case is `tokens` tokens under every limit of `handles`,
    /// at `now_millis` (milliseconds since the epoch): counts it against each, or counts
    /// nothing and refuses. In memory when this instance's blocks cover it.
    pub(crate) async fn admit(
        &self,
        handles: &RateHandles,
        tokens: u64,
        now_millis: i64,
    ) -> Result<RatePermit, RateRefusal> {
        let mut permit = RatePermit {
            rates: self.clone(),
            tokens: Default::default(),
            requests: Default::default(),
            concurrent: Default::default(),
        };
        let mut requests: [Option<(Arc<Limiter>, i64)>; MAX_MINUTE] = Default::default();
        for (i, (scope, kind, limit, limiter)) in handles.minute.iter().enumerate().take(MAX_MINUTE) {
            let need = if *kind == RateKind::TokensPerMinute { tokens.max(1) } else { 1 };
            match self.take(limiter, *limit, need, now_millis).await {
                Ok(slot) if *kind == RateKind::TokensPerMinute => {
                    permit.tokens[i] = Some((limiter.clone(), slot, need))
                }
                Ok(slot) => requests[i] = Some((limiter.clone(), slot)),
                Err(refusal) => {
                    self.undo(&mut permit, &mut requests);
                    return Err(refusal.into_refusal(scope, *kind, *limit, need));
                }
            }
        }
        for (i, (scope, limit, c)) in handles.concurrent.iter().enumerate().take(MAX_CONCURRENT) {
            match self.enter(c, *limit).await {
                Ok(()) => permit.concurrent[i] = Some(c.clone()),
                Err(refusal) => {
                    self.undo(&mut permit, &mut requests);
                    return Err(refusal.into_refusal(scope, RateKind::MaxConcurrentRequests, *limit, 1));
                }
            }
        }
        permit.requests = requests;
        Ok(permit)
    }

    /// Gives back what a refused request had counted before the limit that refused it.
    fn undo(&self, permit: &mut RatePermit, requests: &mut [Option<(Arc<Limiter>, i64)>; MAX_MINUTE]) {
        for (limiter, slot) in requests.iter_mut().filter_map(Option::take) {
            self.give_back(&limiter, slot, 1);
        }
        for (limiter, slot, units) in permit.tokens.iter_mut().filter_map(Option::take) {
            self.give_back(&limiter, slot, units);
        }
    }

    /// Puts `units` counted in `slot` back: into this instance's block while the slot lasts,
    /// else into the store's count (queued, written by the background task).
    fn give_back(&self, limiter: &Limiter, slot: i64, units: u64) {
        // Room was made: a refusal remembered for this slot no longer holds.
        *lock(&limiter.refused) = None;
        let rest = lock(&limiter.share).give_back(slot, units);
        if rest > 0 {
            lock(&self.inner.returns).push((limiter.key.clone(), slot, rest));
        }
    }

    /// Counts `need` units of `limiter` at `now_millis`; returns the slot they were counted in.
    async fn take(&self, limiter: &Limiter, limit: u64, need: u64, now_millis: i64) -> Result<i64, Refused> {
        if need > limit {
            return Err(Refused::Never);
        }
        if let Some(slot) = self.take_local(limiter, need, now_millis) {
            return Ok(slot);
        }
        let _refill = limiter.refill.lock().await;
        // Another request may have brought a block while this one waited.
        if let Some(slot) = self.take_local(limiter, need, now_millis) {
            return Ok(slot);
        }
        let slot = rate::slot_of(now_millis);
        if let Some((s, smallest, retry_at)) = *lock(&limiter.refused)
            && s == slot
            && need >= smallest
        {
            return Err(Refused::Until(retry_at - now_millis));
        }
        let want = rate::block_size(limit, need);
        // The rest of this slot's block goes back in the same transaction: it is too small for
        // this need, and the store counts it until then.
        let returning = {
            let mut share = lock(&limiter.share);
            let rest = if share.slot == slot { share.granted - share.spent } else { 0 };
            share.granted -= rest;
            rest
        };
        let granted = match self.inner.store.lease_rate(&limiter.key, limit, need, want, returning, now_millis).await {
            Ok(granted) => granted,
            Err(e) => {
                // Still counted in the store: keep spending it here.
                let mut share = lock(&limiter.share);
                if share.slot == slot {
                    share.granted += returning;
                } else if returning > 0 {
                    lock(&self.inner.returns).push((limiter.key.clone(), slot, returning));
                }
                return Err(Refused::Store(e));
            }
        };
        match granted {
            Grant::Granted(units) => {
                let mut share = lock(&limiter.share);
                if let Some(stale) = share.add(slot, units) {
                    // The slot moved on meanwhile: the request is counted in the slot it was
                    // granted in; the rest of the grant goes back.
                    let (s, u) = stale;
                    let u = if s == slot { u - need } else { u };
                    if u > 0 {
                        lock(&self.inner.returns).push((limiter.key.clone(), s, u));
                    }
                    if s == slot {
                        return Ok(slot);
                    }
                }
                match share.take(slot, need) {
                    Take::Taken => Ok(slot),
                    // A grant covers its need; this is unreachable, and refusing is the safe side.
                    Take::Lease { .. } => Err(Refused::Until(rate::SLOT_MILLIS)),
                }
            }
            Grant::Refused { retry_after_millis } => {
                let Some(ms) = retry_after_millis else {
                    return Err(Refused::Never);
                };
                let mut refused = lock(&limiter.refused);
                let smallest = match *refused {
                    Some((s, n, _)) if s == slot => n.min(need),
                    _ => need,
                };
                *refused = Some((slot, smallest, now_millis + ms));
                Err(Refused::Until(ms))
            }
        }
    }

    /// Takes `need` from this instance's block of the current slot, if it covers it. A block
    /// of an earlier slot is closed and its rest queued back to the store.
    fn take_local(&self, limiter: &Limiter, need: u64, now_millis: i64) -> Option<i64> {
        let mut share = lock(&limiter.share);
        // Never step back a slot (requests' clocks race by a few milliseconds).
        let slot = rate::slot_of(now_millis).max(share.slot);
        match share.take(slot, need) {
            Take::Taken => Some(slot),
            Take::Lease { stale } => {
                if let Some((s, u)) = stale {
                    lock(&self.inner.returns).push((limiter.key.clone(), s, u));
                }
                None
            }
        }
    }

    /// Enters one request under a concurrency limit: a request slot this instance holds and
    /// nobody uses, else one more from the store.
    async fn enter(&self, c: &Concurrency, limit: u64) -> Result<(), Refused> {
        let enter_local = || {
            let mut s = lock(&c.state);
            if s.in_flight < s.leased.min(limit) {
                s.in_flight += 1;
                return Some(true);
            }
            (s.in_flight >= limit).then_some(false)
        };
        match enter_local() {
            Some(true) => return Ok(()),
            Some(false) => return Err(Refused::Until(1_000)),
            None => {}
        }
        let _refill = c.refill.lock().await;
        match enter_local() {
            Some(true) => return Ok(()),
            Some(false) => return Err(Refused::Until(1_000)),
            None => {}
        }
        let leased = self
            .inner
            .store
            .lease_concurrency(&c.key, &self.inner.instance, limit, CONCURRENCY_TTL)
            .await
            .map_err(Refused::Store)?;
        if !leased {
            return Err(Refused::Until(1_000));
        }
        let mut s = lock(&c.state);
        s.leased += 1;
        s.in_flight += 1;
        Ok(())
    }
}

/// A refusal before it is told whose limit it was.
enum Refused {
    /// Room may appear after this many milliseconds.
    Until(i64),
    /// The need exceeds the limit.
    Never,
    Store(StoreError),
}

impl Refused {
    fn into_refusal(self, scope: &'static str, kind: RateKind, limit: u64, need: u64) -> RateRefusal {
        match self {
            Self::Until(ms) => {
                RateRefusal::Limited { scope, kind, limit, need, retry_after: Some(rate::retry_after_secs(ms)) }
            }
            Self::Never => RateRefusal::Limited { scope, kind, limit, need, retry_after: None },
            Self::Store(e) => RateRefusal::Store(e),
        }
    }
}

/// The rate limits of a workspace and of its org, as loaded for its authorisation.
pub(crate) fn limits_of(inputs: &tollgate_store::ResolutionInputs) -> (RateLimits, RateLimits) {
    (RateLimits::from(&inputs.workspace.limits), RateLimits::from(&inputs.org.limits))
}

/// Returns queued units to the store, and spare request slots; renews held ones.
async fn tick(inner: &Inner, renew: bool) {
    let returns = std::mem::take(&mut *lock(&inner.returns));
    if !returns.is_empty() {
        // Only slots still in some admission's window matter.
        let oldest = rate::window_start(rate::slot_of(Timestamp::now().0));
        let returns: Vec<_> = returns.into_iter().filter(|(_, slot, _)| *slot >= oldest).collect();
        if let Err(e) = inner.store.return_rate(&returns).await {
            // Counts only stay higher than they are: safe, and they leave the window in a minute.
            tracing::warn!(error = %e, "could not return rate-limit units");
        }
    }
    let limiters: Vec<Arc<Concurrency>> = lock(&inner.concurrent).values().cloned().collect();
    for c in limiters {
        // A request that found no spare slot asks the store only after this return is written,
        // or it would find the slots still counted.
        let _refill = c.refill.lock().await;
        let (spare, held) = {
            let mut s = lock(&c.state);
            let spare = s.leased - s.in_flight.min(s.leased);
            s.leased -= spare;
            (spare, s.leased)
        };
        if (spare > 0 || (renew && held > 0))
            && let Err(e) = inner.store.release_concurrency(&c.key, &inner.instance, spare, CONCURRENCY_TTL).await
        {
            tracing::warn!(error = %e, "could not return request slots");
            // Still ours in the store until they expire: count them again.
            lock(&c.state).leased += spare;
        }
    }
}

/// The background loop: returns every [`TICK`], renews request slots every few seconds. Ends
/// when the [`Rates`] is dropped.
async fn background(inner: Weak<Inner>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        ticks += 1;
        tick(&inner, ticks.is_multiple_of(100)).await;
    }
}
