//! Slows admin-token guessing: failed admin attempts spend a token bucket per source address.
//!
//! The bucket is kept as the instant it will be full again (GCRA): each failure pushes that
//! instant one refill period later; an address whose bucket is empty is answered 429 without
//! its token being checked. Buckets live in a bounded cache, so a flood of addresses costs
//! bounded memory (the least used are evicted, and an idle bucket is full anyway).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many failed admin-token attempts an address may make at once, and how fast it earns
/// another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminThrottleConfig {
    /// Failures allowed in a burst (at least 1).
    pub burst: u32,
    /// One more failure is allowed after each period.
    pub refill_every: Duration,
}

impl Default for AdminThrottleConfig {
    /// 5 failures in a burst, then 1 per second.
    fn default() -> Self {
        Self { burst: 5, refill_every: Duration::from_secs(1) }
    }
}

/// Addresses tracked at most; beyond it the least recently used bucket is forgotten.
const MAX_ADDRESSES: u64 = 100_000;

/// The per-address buckets.
#[derive(Clone, Debug)]
pub(crate) struct AdminThrottle {
    config: AdminThrottleConfig,
    /// When each address's bucket is full again.
    full_at: moka::sync::Cache<IpAddr, Instant>,
}

impl AdminThrottle {
    pub(crate) fn new(config: AdminThrottleConfig) -> Self {
        let config = AdminThrottleConfig { burst: config.burst.max(1), ..config };
        let idle = config.refill_every.saturating_mul(config.burst);
        let full_at = moka::sync::Cache::builder().max_capacity(MAX_ADDRESSES).time_to_idle(idle).build();
        Self { config, full_at }
    }

    /// The most debt (time until full) at which one more attempt is still heard.
    fn allowed_debt(&self) -> Duration {
        self.config.refill_every.saturating_mul(self.config.burst - 1)
    }

    /// `Err(wait)` when `ip` has spent its bucket: it is heard again after `wait`.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(full_at) = self.full_at.get(&ip) else { return Ok(()) };
        let debt = full_at.saturating_duration_since(Instant::now());
        match debt.checked_sub(self.allowed_debt()) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt from `ip`.
    pub(crate) fn fail(&self, ip: IpAddr) {
        let step = self.config.refill_every;
        self.full_at.entry(ip).and_upsert_with(|old| {
            let now = Instant::now();
            old.map_or(now, |e| (*e.value()).max(now)) + step
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    /// A refill period far longer than the test, so no refill happens during it.
    fn hourly(burst: u32) -> AdminThrottle {
        AdminThrottle::new(AdminThrottleConfig { burst, refill_every: Duration::from_secs(3600) })
    }

    #[test]
    fn a_burst_is_heard_then_the_address_waits_about_one_period() {
        let t = hourly(3);
        for _ in 0..3 {
            assert_eq!(t.check(A), Ok(()));
            t.fail(A);
        }
        let wait = t.check(A).err().map(|w| w.as_secs());
        assert!(matches!(wait, Some(3590..=3600)), "{wait:?}");
        assert_eq!(t.check(B), Ok(()), "another address has its own bucket");
    }

    #[test]
    fn a_burst_of_zero_is_taken_as_one() {
        let t = hourly(0);
        assert_eq!(t.check(A), Ok(()));
        t.fail(A);
        assert!(t.check(A).is_err());
    }
}
