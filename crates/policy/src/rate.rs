//! Section 14's rate limits as pure arithmetic: a sliding minute made of short slots, the
//! grant a shared store makes from it, and the share of it one proxy instance holds.
//!
//! **The window.** Time is cut into slots of [`SLOT_MILLIS`]; what is admitted is counted in the
//! slot it was admitted in. An admission in slot `s` is allowed only if the units counted in
//! slots `s - SLOTS_PER_MINUTE ..= s` ([`WINDOW_SLOTS`] slots, which together cover more than a
//! minute) plus its own stay within the limit. Any 60 seconds of admissions lie within
//! `WINDOW_SLOTS` consecutive slots, all of which the last admission of them counted, so **no
//! 60 seconds ever admit more than the limit**, whether they start on a minute or not (a fixed
//! calendar-minute window would admit twice the limit across a minute boundary). Under
//! sustained excess demand the limit is admitted once per `WINDOW_SLOTS` slots, i.e. 30/31 of
//! it per minute, which meets the "at least 90%" rule with room for the instances' shares.
//!
//! **Across instances.** The store keeps each limiter's per-slot counts and grants blocks of
//! units with [`grant`], under a lock, so the instances' blocks never sum past the limit. An
//! instance spends its block in memory ([`Share`]) and only within the slot it was granted in
//! (spending it later would count an admission in an earlier slot than it happened in, which
//! would break the argument above); what is left when the slot ends is returned.
//!
//! Nothing here reads a clock: callers pass the time in milliseconds since the epoch.

use std::num::NonZeroU64;

/// The length of one slot of the sliding window.
pub const SLOT_MILLIS: i64 = 2_000;
/// Slots per minute.
pub const SLOTS_PER_MINUTE: i64 = 60_000 / SLOT_MILLIS;
/// Slots an admission counts: its own and the `SLOTS_PER_MINUTE` before it.
pub const WINDOW_SLOTS: i64 = SLOTS_PER_MINUTE + 1;

/// The slot that the instant `now_millis` (milliseconds since the epoch) falls in.
#[must_use]
pub fn slot_of(now_millis: i64) -> i64 {
    now_millis.div_euclid(SLOT_MILLIS)
}

/// The first slot still counted by an admission in `slot`.
#[must_use]
pub fn window_start(slot: i64) -> i64 {
    slot - SLOTS_PER_MINUTE
}

/// The rate limits of one org or workspace (section 14), each optional. Zero is not a limit
/// (the type cannot hold it): a limit is removed with `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests admitted in any minute.
    pub requests_per_minute: Option<NonZeroU64>,
    /// Tokens (input plus output) admitted in any minute: admission counts the request's
    /// worst case, settlement corrects it to what was used.
    pub tokens_per_minute: Option<NonZeroU64>,
    /// Requests in flight at once, across instances.
    pub max_concurrent_requests: Option<NonZeroU64>,
}

impl RateLimits {
    /// Whether no limit is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none() && self.max_concurrent_requests.is_none()
    }
}

impl From<&crate::limits::Limits> for RateLimits {
    /// The rate-limit fields of a `limits` object (the parsed values are never zero).
    fn from(limits: &crate::limits::Limits) -> Self {
        let get = |l: Option<crate::limits::RateLimit>| l.and_then(|l| NonZeroU64::new(l.get()));
        Self {
            requests_per_minute: get(limits.requests_per_minute),
            tokens_per_minute: get(limits.tokens_per_minute),
            max_concurrent_requests: get(limits.max_concurrent_requests),
        }
    }
}

/// Which per-minute limit a figure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::AsRefStr)]
#[strum(serialize_all = "snake_case")]
pub enum RateKind {
    /// `requests_per_minute`.
    RequestsPerMinute,
    /// `tokens_per_minute`.
    TokensPerMinute,
    /// `max_concurrent_requests`.
    MaxConcurrentRequests,
}

impl RateKind {
    /// The limit's field name in `limits` (DESIGN.md section 14).
    #[must_use]
    pub fn field(self) -> &'static str {
        self.into()
    }
}

/// The store's answer to a request for units of a limiter's current slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// This many units (at least the need, at most the want) are counted in the slot.
    Granted(u64),
    /// The window has no room for the need; room appears after this many milliseconds at the
    /// earliest (`None`: never, the need exceeds the limit itself).
    Refused {
        /// Milliseconds from `now` until enough counted units leave the window.
        retry_after_millis: Option<i64>,
    },
}

/// Decides a grant of units of `slot` for a limiter with `limit`, given the units already
/// counted in the window (`counted`: (slot, units) pairs, any order; slots outside the window
/// are ignored). Grants between `need` and `want` units (as many as fit), or refuses when not
/// even `need` fits. `now_millis` is only used to say when to retry.
#[must_use]
pub fn grant(limit: u64, need: u64, want: u64, slot: i64, counted: &[(i64, u64)], now_millis: i64) -> Grant {
    let first = window_start(slot);
    let used: u64 =
        counted.iter().filter(|(s, _)| (first..=slot).contains(s)).map(|(_, u)| *u).fold(0, u64::saturating_add);
    let room = limit.saturating_sub(used);
    let need = need.max(1);
    if need <= room {
        return Grant::Granted(want.max(need).min(room));
    }
    if need > limit {
        return Grant::Refused { retry_after_millis: None };
    }
    // Walk the window from its oldest slot: each slot leaves it when `slot` passes it by
    // `SLOTS_PER_MINUTE`; the first at which enough has left is when to come back.
    let mut in_window: Vec<(i64, u64)> =
        counted.iter().copied().filter(|(s, u)| (first..=slot).contains(s) && *u > 0).collect();
    in_window.sort_unstable();
    let mut freed = room;
    for (s, u) in in_window {
        freed = freed.saturating_add(u);
        if freed >= need {
            let leaves_at = (s + WINDOW_SLOTS) * SLOT_MILLIS;
            return Grant::Refused { retry_after_millis: Some((leaves_at - now_millis).max(1)) };
        }
    }
    // Unreachable when the counts are consistent (everything leaves eventually); a whole
    // window is the safe answer.
    Grant::Refused { retry_after_millis: Some(WINDOW_SLOTS * SLOT_MILLIS) }
}

/// How many units an instance asks for when it needs a block: enough for `need`, and a
/// sixteenth of the limit so that most admissions touch no store, but small enough that the
/// blocks other instances hold unspent at a slot's end cost little of the limit.
#[must_use]
pub fn block_size(limit: u64, need: u64) -> u64 {
    need.max(limit / 16).max(1)
}

/// Rounds a wait up to whole seconds for a `retry-after` header (at least one).
#[must_use]
pub fn retry_after_secs(millis: i64) -> u64 {
    u64::try_from(millis.max(1)).unwrap_or(1).div_ceil(1000).max(1)
}

/// One instance's block of one limiter's current slot: what the store granted it and what it
/// has admitted from it. Spent only within its slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// The slot the block belongs to.
    pub slot: i64,
    /// Units granted to this instance in `slot`.
    pub granted: u64,
    /// Units of them admitted.
    pub spent: u64,
}

/// What [`Share::take`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Admitted from the block in memory.
    Taken,
    /// The block does not cover the need: ask the store for more. `stale` is the unspent rest
    /// of a block of an earlier slot, which the caller returns to the store.
    Lease {
        /// An earlier slot's unspent block: (slot, units).
        stale: Option<(i64, u64)>,
    },
}

impl Share {
    /// Admits `need` units at `slot` from the block when it covers them. A block of an earlier
    /// slot is closed (its rest reported as stale) and never spent.
    pub fn take(&mut self, slot: i64, need: u64) -> Take {
        let mut stale = None;
        if self.slot != slot {
            let rest = self.granted - self.spent;
            if rest > 0 && self.slot < slot {
                stale = Some((self.slot, rest));
            }
            *self = Self { slot, granted: 0, spent: 0 };
        }
        if self.granted - self.spent >= need {
            self.spent += need;
            return Take::Taken;
        }
        Take::Lease { stale }
    }

    /// Adds a block granted in `slot`. A grant for a slot that has already passed is not
    /// spendable: it is returned as stale (slot, units) for the caller to give back.
    pub fn add(&mut self, slot: i64, granted: u64) -> Option<(i64, u64)> {
        if slot == self.slot {
            self.granted += granted;
            None
        } else if slot > self.slot {
            let rest = self.granted - self.spent;
            let stale = (rest > 0).then_some((self.slot, rest));
            *self = Self { slot, granted, spent: 0 };
            stale
        } else {
            Some((slot, granted))
        }
    }

    /// Gives `units` admitted in `slot` back (a settlement that used less than its estimate).
    /// Returns the units that could not go back into this block (its slot has ended), which
    /// the caller returns to the store.
    pub fn give_back(&mut self, slot: i64, units: u64) -> u64 {
        if slot == self.slot {
            let back = units.min(self.spent);
            self.spent -= back;
            units - back
        } else {
            units
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_what_fits_between_need_and_want() {
        let counted = [(100, 5), (99, 3)];
        assert_eq!(grant(10, 1, 5, 100, &counted, 200_000), Grant::Granted(2));
        assert_eq!(grant(20, 1, 5, 100, &counted, 200_000), Grant::Granted(5));
        assert_eq!(grant(20, 8, 5, 100, &counted, 200_000), Grant::Granted(8));
    }

    #[test]
    fn slots_before_the_window_do_not_count() {
        let slot = 1_000;
        let counted = [(window_start(slot) - 1, 10), (window_start(slot), 4)];
        assert_eq!(grant(10, 6, 6, slot, &counted, slot * SLOT_MILLIS), Grant::Granted(6));
        assert!(matches!(grant(10, 7, 7, slot, &counted, slot * SLOT_MILLIS), Grant::Refused { .. }));
    }

    #[test]
    fn a_refusal_says_when_the_oldest_counted_units_leave() {
        let slot = 1_000;
        let now = slot * SLOT_MILLIS + 500;
        let counted = [(990, 4), (995, 6)];
        // Needs 5: 4 leave with slot 990, not enough; slot 995's leave at (995 + 31) slots.
        let Grant::Refused { retry_after_millis: Some(ms) } = grant(10, 5, 5, slot, &counted, now) else {
            panic!("expected a refusal with a time");
        };
        assert_eq!(ms, (995 + WINDOW_SLOTS) * SLOT_MILLIS - now);
        assert_eq!(grant(10, 11, 11, slot, &counted, now), Grant::Refused { retry_after_millis: None });
    }

    #[test]
    fn a_share_spends_only_within_its_slot() {
        let mut share = Share::default();
        assert_eq!(share.take(7, 1), Take::Lease { stale: None });
        assert_eq!(share.add(7, 3), None);
        assert_eq!(share.take(7, 2), Take::Taken);
        assert_eq!(share.take(8, 1), Take::Lease { stale: Some((7, 1)) });
        assert_eq!(share.add(7, 4), Some((7, 4)));
        assert_eq!(share.add(8, 2), None);
        assert_eq!(share.take(8, 2), Take::Taken);
        assert_eq!(share.give_back(8, 1), 0);
        assert_eq!(share.give_back(7, 1), 1);
        assert_eq!(share.take(8, 1), Take::Taken);
    }

    #[test]
    fn retry_after_rounds_up_to_a_second() {
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(1_000), 1);
        assert_eq!(retry_after_secs(1_001), 2);
        assert_eq!(retry_after_secs(-5), 1);
    }
}

#[cfg(test)]
mod properties;
