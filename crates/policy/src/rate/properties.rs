//! Property tests of the limiter: several instances sharing one store's counts, driven with
//! the time passed in. Never more than the limit in any 60 seconds; at least 90% of it under
//! excess demand.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Instances and the store's counts, as the proxy and the store keep them.
struct Sim {
    limit: u64,
    counted: BTreeMap<i64, u64>,
    shares: Vec<Share>,
    /// (time, units) of every admission, after settlement's correction.
    admitted: Vec<(i64, u64)>,
}

impl Sim {
    fn new(limit: u64, instances: usize) -> Self {
        Self { limit, counted: BTreeMap::new(), shares: vec![Share::default(); instances], admitted: Vec::new() }
    }

    fn give_back_to_store(&mut self, (slot, units): (i64, u64)) {
        let c = self.counted.entry(slot).or_default();
        *c = c.saturating_sub(units);
    }

    /// One request of `need` units at `now` on instance `i`, settled at `used` units (at most
    /// `need`). Whether it was admitted.
    fn request(&mut self, i: usize, now: i64, need: u64, used: u64) -> bool {
        let slot = slot_of(now);
        let mut admitted = false;
        match self.shares[i].take(slot, need) {
            Take::Taken => admitted = true,
            Take::Lease { stale } => {
                if let Some(stale) = stale {
                    self.give_back_to_store(stale);
                }
                let counted: Vec<(i64, u64)> = self.counted.iter().map(|(s, u)| (*s, *u)).collect();
                if let Grant::Granted(g) = grant(self.limit, need, block_size(self.limit, need), slot, &counted, now) {
                    *self.counted.entry(slot).or_default() += g;
                    if let Some(stale) = self.shares[i].add(slot, g) {
                        self.give_back_to_store(stale);
                    }
                    assert_eq!(self.shares[i].take(slot, need), Take::Taken, "a grant covers the need");
                    admitted = true;
                }
            }
        }
        if admitted {
            let rest = self.shares[i].give_back(slot, need - used);
            self.give_back_to_store((slot, rest));
            self.admitted.push((now, used));
        }
        admitted
    }

    /// The most units admitted in any 60 seconds.
    fn worst_minute(&self) -> u64 {
        let mut worst = 0;
        for (j, (t, _)) in self.admitted.iter().enumerate() {
            let sum: u64 = self.admitted[j..].iter().take_while(|(u, _)| *u < t + 60_000).map(|(_, n)| n).sum();
            worst = worst.max(sum);
        }
        worst
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_more_than_the_limit_in_any_minute(
        limit in 1u64..500,
        instances in 1usize..4,
        start in 0i64..10_000_000,
        events in prop::collection::vec((0i64..4_000, 0usize..4, 1u64..200, 0u64..=100), 1..400),
    ) {
        let mut sim = Sim::new(limit, instances);
        let mut now = start;
        for (dt, i, need, percent) in events {
            now += dt;
            let used = need * percent / 100;
            sim.request(i % instances, now, need, used);
        }
        prop_assert!(sim.worst_minute() <= limit, "{} admitted in a minute, limit {limit}", sim.worst_minute());
    }

    #[test]
    fn admits_at_least_ninety_percent_of_what_can_be_admitted(
        limit in 20u64..2_000,
        instances in 1usize..4,
        start in 0i64..10_000_000,
        seconds in 60i64..200,
        step in 1i64..200,
        needs in prop::collection::vec(1u64..=1_000, 1..50),
    ) {
        let mut sim = Sim::new(limit, instances);
        let max_need = (limit / 20).max(1);
        let mut now = start;
        let mut k = 0;
        // What was asked: the generator does not always ask more than the limit (1 unit every
        // 102 ms is 589 a minute), and the bound is on what can be admitted: the limit, or
        // the whole demand when it is smaller.
        let (mut asked_first_minute, mut asked) = (0u64, 0u64);
        while now < start + seconds * 1_000 {
            for i in 0..instances {
                let need = needs[k % needs.len()] % max_need + 1;
                k += 1;
                asked += need;
                if now < start + 60_000 {
                    asked_first_minute += need;
                }
                sim.request(i, now, need, need);
            }
            now += step;
        }
        let first_minute: u64 = sim.admitted.iter().filter(|(t, _)| *t < start + 60_000).map(|(_, n)| n).sum();
        let total: u64 = sim.admitted.iter().map(|(_, n)| n).sum();
        let admissible_first = limit.min(asked_first_minute);
        prop_assert!(first_minute * 10 >= admissible_first * 9, "first minute admitted {first_minute} of {admissible_first}");
        let admissible = (u128::from(limit) * u128::try_from(seconds).unwrap_or(0)).min(u128::from(asked) * 60);
        prop_assert!(
            u128::from(total) * 60 * 10 >= admissible * 9,
            "{seconds} s admitted {total} of {asked} asked at {limit} a minute"
        );
        prop_assert!(sim.worst_minute() <= limit);
    }
}
