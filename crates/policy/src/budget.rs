//! Hard budgets (DESIGN.md section 14): which UTC day or month an instant falls in, when that
//! period resets, and whether a request's worst case fits under a budget. Pure: the caller
//! passes the time in (milliseconds since the Unix epoch), so day and month roll-overs are
//! tested with any clock.

use std::fmt;

use crate::Micros;
use crate::limits::{BudgetMicros, Limits};

const MS_PER_DAY: i64 = 86_400_000;

/// A budget's period kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeriodKind {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl PeriodKind {
    /// `day` or `month`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The limit's field name.
    pub const fn field(self) -> &'static str {
        match self {
            Self::Day => "budget_micros_per_day",
            Self::Month => "budget_micros_per_month",
        }
    }
}

/// Whose budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetScope {
    /// The org's (all of its workspaces together).
    Org,
    /// One workspace's.
    Workspace,
}

impl BudgetScope {
    /// `org` or `workspace`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Workspace => "workspace",
        }
    }
}

/// One UTC day or month.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Period {
    /// Day or month.
    pub kind: PeriodKind,
    /// `YYYY-MM-DD` or `YYYY-MM`: the key spend is counted under.
    pub key: String,
    /// Its first millisecond.
    pub start_ms: i64,
    /// The first millisecond of the next period: when the budget resets.
    pub reset_ms: i64,
}

impl Period {
    /// The period of kind `kind` containing `now_ms` (milliseconds since the Unix epoch, UTC).
    pub fn containing(kind: PeriodKind, now_ms: i64) -> Self {
        let day = now_ms.div_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(day);
        match kind {
            PeriodKind::Day => Self {
                kind,
                key: format!("{y:04}-{m:02}-{d:02}"),
                start_ms: day * MS_PER_DAY,
                reset_ms: (day + 1) * MS_PER_DAY,
            },
            PeriodKind::Month => {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Self {
                    kind,
                    key: format!("{y:04}-{m:02}"),
                    start_ms: days_from_civil(y, m, 1) * MS_PER_DAY,
                    reset_ms: days_from_civil(ny, nm, 1) * MS_PER_DAY,
                }
            }
        }
    }

    /// When it resets, RFC 3339 UTC (`2026-12-02T00:00:00Z`).
    pub fn reset_rfc3339(&self) -> String {
        let (y, m, d) = civil_from_days(self.reset_ms.div_euclid(MS_PER_DAY));
        format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One hard budget that applies to a request: whose, which period, how much.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Applicable {
    /// Org or workspace.
    pub scope: BudgetScope,
    /// The org's or workspace's id.
    pub owner: String,
    /// The period the request falls in.
    pub period: Period,
    /// The budget for it.
    pub budget: BudgetMicros,
}

/// Every hard budget a request at `now_ms` falls under: the workspace's and the org's, per day
/// and per month, in one fixed order (so that callers lock them in the same order).
pub fn applicable(org_id: &str, org: &Limits, workspace_id: &str, workspace: &Limits, now_ms: i64) -> Vec<Applicable> {
    let mut out = Vec::new();
    for (scope, owner, limits) in [(BudgetScope::Org, org_id, org), (BudgetScope::Workspace, workspace_id, workspace)] {
        for (kind, budget) in
            [(PeriodKind::Day, limits.budget_micros_per_day), (PeriodKind::Month, limits.budget_micros_per_month)]
        {
            if let Some(budget) = budget {
                out.push(Applicable {
                    scope,
                    owner: owner.to_owned(),
                    period: Period::containing(kind, now_ms),
                    budget,
                });
            }
        }
    }
    out
}

/// Whether a request whose worst case is `need` fits under `budget` when `spent` has been
/// settled and `reserved` is held by requests in flight in the same period: exactly when
/// `spent + reserved + need <= budget` (computed without overflow).
pub fn fits(budget: BudgetMicros, spent: i64, reserved: i64, need: i64) -> bool {
    i128::from(spent) + i128::from(reserved) + i128::from(need.max(0)) <= i128::from(budget.get())
}

/// The share of a budget's remainder one lease takes at most: 1/16, so that when an instance
/// leases, 15/16 stays for the others, and leases shrink geometrically as the budget runs out.
pub const LEASE_DIVISOR: i64 = 16;

/// How much an instance leases from a budget when its lease lacks `short` for a request
/// (`spent` settled, `reserved` held by every instance's leases and requests): `None` when
/// `short` does not fit ([`fits`]); otherwise at least `short`, at most what remains, and
/// otherwise 1/[`LEASE_DIVISOR`] of what remains, so that one database round trip serves many
/// requests while the budget is far from its end and only what is needed near it.
pub fn lease_grant(budget: BudgetMicros, spent: i64, reserved: i64, short: i64) -> Option<i64> {
    let short = short.max(0);
    if !fits(budget, spent, reserved, short) {
        return None;
    }
    let remaining = i128::from(budget.get()) - i128::from(spent) - i128::from(reserved);
    let share = remaining / i128::from(LEASE_DIVISOR);
    let grant = share.max(i128::from(short)).min(remaining);
    i64::try_from(grant).ok()
}

/// A request refused by a hard budget: says which, for which period, and when it resets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// The budget that did not fit the request.
    pub limit: Applicable,
    /// Settled plus reserved spend of the period when refused.
    pub used: i64,
}

impl fmt::Display for BudgetRefusal {
    /// The message the proxy's 402 carries: the limit, the period, when it resets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limit;
        let (adjective, period) = match l.period.kind {
            PeriodKind::Day => ("daily", "UTC day"),
            PeriodKind::Month => ("monthly", "UTC month"),
        };
        write!(
            f,
            "the {}'s {adjective} budget ({} = {}) does not cover this request for the {period} {} \
             ({} used or reserved); it resets at {}",
            l.scope.as_str(),
            l.period.kind.field(),
            Micros::new(l.budget.get()),
            l.period.key,
            Micros::new(self.used),
            l.period.reset_rfc3339()
        )
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DEC_31_2026_2359: i64 = 1_798_761_599_000; // 2026-12-31T23:59:59Z

    #[test]
    fn known_dates() {
        let d = Period::containing(PeriodKind::Day, DEC_31_2026_2359);
        assert_eq!(d.key, "2026-12-31");
        assert_eq!(d.reset_rfc3339(), "2027-01-01T00:00:00Z");
        let m = Period::containing(PeriodKind::Month, DEC_31_2026_2359);
        assert_eq!(m.key, "2026-12");
        assert_eq!(m.reset_rfc3339(), "2027-01-01T00:00:00Z");
        let next = Period::containing(PeriodKind::Day, DEC_31_2026_2359 + 1000);
        assert_eq!(next.key, "2027-01-01", "one second later is the next day");
        // 2028 is a leap year: February has 29 days.
        let feb = Period::containing(PeriodKind::Month, days_from_civil(2028, 2, 10) * MS_PER_DAY);
        assert_eq!(feb.key, "2028-02");
        assert_eq!(feb.reset_ms - feb.start_ms, 29 * MS_PER_DAY);
        assert_eq!(Period::containing(PeriodKind::Day, 0).key, "1970-01-01");
    }

    #[test]
    fn the_refusal_names_limit_period_and_reset() {
        let limits = Limits { budget_micros_per_month: BudgetMicros::parse("m", 5_000_000).ok(), ..Limits::default() };
        let a = applicable("o", &Limits::default(), "w", &limits, DEC_31_2026_2359);
        assert_eq!(a.len(), 1);
        let text = BudgetRefusal { limit: a[0].clone(), used: 4_900_000 }.to_string();
        for part in ["workspace", "budget_micros_per_month", "$5.000000", "2026-12", "2027-01-01T00:00:00Z"] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }

    proptest! {
        /// A period contains the instant, ends where the next begins, has the length of a day
        /// or a calendar month, and every instant in it has its key.
        #[test]
        fn periods_partition_time(now in 0i64..7_258_118_400_000, kind in prop_oneof![Just(PeriodKind::Day), Just(PeriodKind::Month)], frac in 0.0f64..1.0) {
            let p = Period::containing(kind, now);
            prop_assert!(p.start_ms <= now && now < p.reset_ms);
            let len = p.reset_ms - p.start_ms;
            match kind {
                PeriodKind::Day => prop_assert_eq!(len, MS_PER_DAY),
                PeriodKind::Month => prop_assert!((28 * MS_PER_DAY..=31 * MS_PER_DAY).contains(&len)),
            }
            prop_assert_eq!(p.start_ms % MS_PER_DAY, 0);
            #[expect(clippy::cast_possible_truncation, clippy::cast_precision_loss, reason = "a point inside the period")]
            let inside = p.start_ms + ((len as f64 * frac) as i64).min(len - 1);
            prop_assert_eq!(&Period::containing(kind, inside).key, &p.key);
            let next = Period::containing(kind, p.reset_ms);
            prop_assert_ne!(&next.key, &p.key);
            prop_assert_eq!(next.start_ms, p.reset_ms);
            prop_assert_eq!(Period::containing(kind, p.start_ms - 1).reset_ms, p.start_ms);
            prop_assert!(next.key > p.key, "keys sort in time order");
        }

        /// A day lies within its month.
        #[test]
        fn days_lie_in_their_month(now in 0i64..7_258_118_400_000) {
            let d = Period::containing(PeriodKind::Day, now);
            let m = Period::containing(PeriodKind::Month, now);
            prop_assert!(d.key.starts_with(&m.key));
            prop_assert!(m.start_ms <= d.start_ms && d.reset_ms <= m.reset_ms);
        }

        /// The admission decision: admitted exactly when spend, reservations and the request
        /// stay within the budget; any sequence of admitted requests never exceeds it.
        #[test]
        fn admission_never_exceeds_the_budget(budget in 0i64..1_000_000_000, needs in proptest::collection::vec(0i64..100_000_000, 0..50)) {
            let Ok(b) = BudgetMicros::parse("b", budget) else { return Err(TestCaseError::fail("parse")) };
            let mut reserved = 0i64;
            for need in needs {
                let admitted = fits(b, 0, reserved, need);
                prop_assert_eq!(admitted, reserved + need <= budget);
                if admitted {
                    reserved += need;
                }
                prop_assert!(reserved <= budget);
            }
        }

        /// A lease grant covers what is short, never takes more than remains (so leases of all
        /// instances together never pass the budget), is refused exactly when the shortfall does
        /// not fit, and takes at most a sixteenth of the remainder beyond the shortfall.
        #[test]
        fn lease_grants_stay_within_the_budget(budget in 0i64..1_000_000_000_000, spent in 0i64..1_000_000_000_000, reserved in 0i64..1_000_000_000_000, short in -10i64..1_000_000_000) {
            let Ok(b) = BudgetMicros::parse("b", budget) else { return Err(TestCaseError::fail("parse")) };
            let remaining = budget - spent - reserved;
            match lease_grant(b, spent, reserved, short) {
                None => prop_assert!(short.max(0) > remaining),
                Some(g) => {
                    prop_assert!(g >= short.max(0));
                    prop_assert!(g <= remaining);
                    prop_assert!(g <= short.max(0).max(remaining / LEASE_DIVISOR));
                }
            }
        }

        /// Instances leasing one after another from a budget, each spending its lease, never
        /// admit more than the budget, and keep being granted while a shortfall fits: the
        /// spend reaches the budget to within the last request's worst case.
        #[test]
        fn repeated_leases_use_the_budget_without_passing_it(budget in 1i64..100_000_000, need in 1i64..1_000_000) {
            let Ok(b) = BudgetMicros::parse("b", budget) else { return Err(TestCaseError::fail("parse")) };
            let mut spent = 0i64;
            let mut rounds = 0;
            while let Some(g) = lease_grant(b, spent, 0, need) {
                prop_assert!(g >= need);
                // The lease serves whole requests; what is left over goes back.
                spent += g - g % need;
                rounds += 1;
                prop_assert!(rounds < 10_000, "leases shrink but always cover the need");
            }
            prop_assert!(spent <= budget);
            prop_assert!(budget - spent < need, "refused only when the need no longer fits");
        }

        /// No overflow at the extremes: huge spend is refused, not wrapped into admission.
        #[test]
        fn fits_does_not_wrap(spent in any::<i64>(), reserved in any::<i64>(), need in any::<i64>()) {
            let Ok(b) = BudgetMicros::parse("b", MAX_BUDGET) else { return Err(TestCaseError::fail("parse")) };
            let sum = i128::from(spent) + i128::from(reserved) + i128::from(need.max(0));
            prop_assert_eq!(fits(b, spent, reserved, need), sum <= i128::from(MAX_BUDGET));
        }
    }

    const MAX_BUDGET: i64 = crate::limits::MAX_BUDGET_MICROS;
}
