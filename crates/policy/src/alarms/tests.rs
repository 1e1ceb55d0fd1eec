use proptest::prelude::*;

use super::*;
use crate::limits::{BudgetMicros, SoftPercent};

fn spec(json: &str) -> AlarmRuleSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn rule(json: &str) -> AlarmRule {
    AlarmRule::parse(0, &spec(json)).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn usd(n: i64) -> Micros {
    Micros::new(n * 1_000_000)
}

#[test]
fn invalid_rules_name_their_index_and_field() {
    let cases = [
        (r#"{"window_minutes": 0, "max_cost_micros": 1, "action": "notify"}"#, "alarms[0].window_minutes"),
        (r#"{"window_minutes": 10081, "max_cost_micros": 1, "action": "notify"}"#, "alarms[0].window_minutes"),
        (r#"{"window_minutes": 5, "max_cost_micros": -1, "action": "notify"}"#, "alarms[0].max_cost_micros"),
        (r#"{"window_minutes": 5, "over_baseline_factor": 1.0, "action": "notify"}"#, "alarms[0].over_baseline_factor"),
        (
            r#"{"window_minutes": 5, "over_baseline_factor": 1001, "action": "notify"}"#,
            "alarms[0].over_baseline_factor",
        ),
        (
            r#"{"window_minutes": 5, "max_cost_micros": 1, "min_cost_micros": 1, "action": "notify"}"#,
            "alarms[0].min_cost_micros",
        ),
        (r#"{"window_minutes": 5, "action": "notify"}"#, "alarms[0]:"),
    ];
    for (json, prefix) in cases {
        let err = AlarmRule::parse(0, &spec(json)).err().unwrap_or_else(|| panic!("{json} accepted"));
        assert!(err.to_string().starts_with(prefix), "{json}: {err}");
    }
    let many = vec![rule(r#"{"window_minutes": 5, "max_cost_micros": 1, "action": "notify"}"#).spec(); MAX_RULES + 1];
    assert!(AlarmRules::parse(&many).is_err());
    assert!(AlarmRules::parse(&many[..MAX_RULES]).is_ok());
}

#[test]
fn the_wire_shape_is_strict_and_round_trips() {
    assert!(
        serde_json::from_str::<AlarmRuleSpec>(r#"{"window_minutes": 5, "max_cost": 1, "action": "notify"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<AlarmRuleSpec>(r#"{"window_minutes": 5, "max_cost_micros": 1, "action": "page"}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<AlarmRuleSpec>(r#"{"window_minutes": 1.5, "max_cost_micros": 1, "action": "notify"}"#)
            .is_err()
    );
    let r = rule(r#"{"window_minutes": 30.0, "over_baseline_factor": 2.5, "min_cost_micros": 7, "action": "suspend"}"#);
    assert_eq!(AlarmRule::parse(0, &r.spec()), Ok(r));
    assert_eq!(r.spec().over_baseline_factor, Some(2.5));
    assert_eq!(r.key(), "w30:max-:x2500:min7:suspend");
}

#[test]
fn a_cap_fires_strictly_above_it() {
    let r = rule(r#"{"window_minutes": 10, "max_cost_micros": 1000, "action": "notify"}"#);
    assert_eq!(evaluate(&r, Micros::new(1000), Micros::ZERO), None);
    let f = evaluate(&r, Micros::new(1001), Micros::ZERO).map(|f| f.trigger);
    assert_eq!(f, Some(Trigger::OverMax { max: Micros::new(1000) }));
}

#[test]
fn over_baseline_needs_the_minimum_and_the_factor() {
    let r =
        rule(r#"{"window_minutes": 60, "over_baseline_factor": 3, "min_cost_micros": 5000000, "action": "notify"}"#);
    assert_eq!(evaluate(&r, usd(4), Micros::ZERO), None, "below the minimum");
    assert!(evaluate(&r, usd(5), Micros::ZERO).is_some(), "no history: the minimum decides");
    assert_eq!(evaluate(&r, usd(6), usd(2)), None, "exactly 3x is not over");
    assert!(evaluate(&r, Micros::new(6_000_001), usd(2)).is_some());
    let reason = evaluate(&r, usd(9), usd(2)).map(|f| f.reason()).unwrap_or_default();
    assert_eq!(
        reason,
        "drain alarm: $9.000000 spent in the last 60 minutes, over 3x the 7-day average of $2.000000 per 60 minutes"
    );
}

#[test]
fn the_baseline_is_the_average_window_of_the_seven_days() {
    assert_eq!(baseline_per_window(60, usd(168)), usd(1));
    assert_eq!(baseline_per_window(10_080, usd(7)), usd(7));
    assert_eq!(baseline_per_window(1, Micros::new(10_079)), Micros::ZERO, "rounded down");
}

#[test]
fn the_default_rule_is_the_documented_one() {
    assert_eq!(AlarmRule::DEFAULT.key(), "w60:max-:x5000:min5000000:notify");
    assert_eq!(AlarmRule::parse(0, &AlarmRule::DEFAULT.spec()), Ok(AlarmRule::DEFAULT));
}

#[test]
fn budget_notices_soft_then_exhausted() {
    let limits = Limits {
        budget_micros_per_day: BudgetMicros::parse("d", 100).ok(),
        soft_budget_percent: SoftPercent::parse(80).ok(),
        ..Limits::default()
    };
    let kinds =
        |spent| budget_notices(&limits, PeriodKind::Day, Micros::new(spent)).iter().map(|n| n.kind).collect::<Vec<_>>();
    assert_eq!(kinds(79), vec![]);
    assert_eq!(kinds(80), vec![NoticeKind::SoftCrossed]);
    assert_eq!(kinds(100), vec![NoticeKind::SoftCrossed, NoticeKind::Exhausted]);
    assert!(budget_notices(&limits, PeriodKind::Month, Micros::new(1000)).is_empty(), "no monthly budget");
    let no_soft = Limits { soft_budget_percent: None, ..limits.clone() };
    assert_eq!(budget_notices(&no_soft, PeriodKind::Day, Micros::new(99)), vec![]);
    let zero = Limits { budget_micros_per_day: BudgetMicros::parse("d", 0).ok(), ..limits };
    assert!(budget_notices(&zero, PeriodKind::Day, Micros::new(5)).is_empty());
}

fn any_rule() -> impl Strategy<Value = AlarmRule> {
    (
        1..=MAX_WINDOW_MINUTES,
        proptest::option::of(0..10_000_000_i64),
        proptest::option::of(1001..100_000_u32),
        proptest::option::of(0..10_000_000_i64),
        prop_oneof![Just(AlarmAction::Notify), Just(AlarmAction::Suspend)],
    )
        .prop_filter_map("a rule must be able to fire", |(w, max, factor, min, action)| {
            let s = AlarmRuleSpec {
                window_minutes: i64::from(w),
                max_cost_micros: max,
                over_baseline_factor: factor.map(|f| f64::from(f) / 1000.0),
                min_cost_micros: min,
                action,
            };
            AlarmRule::parse(0, &s).ok()
        })
}

proptest! {
    /// Never fires at or below the cap when the baseline part cannot fire either.
    #[test]
    fn never_fires_below_both_thresholds(r in any_rule(), cost in 0..20_000_000_i64, baseline in 0..20_000_000_i64) {
        let (c, b) = (Micros::new(cost), Micros::new(baseline));
        let over_max = r.max_cost.is_some_and(|m| c > m);
        let over_base = r.over_baseline.is_some_and(|f| {
            c > Micros::ZERO && c >= r.min_cost.unwrap_or_default()
                && i128::from(cost) * 1000 > i128::from(f.milli()) * i128::from(baseline)
        });
        prop_assert_eq!(evaluate(&r, c, b).is_some(), over_max || over_base);
    }

    /// More spend never stops a rule firing; a higher baseline never starts one.
    #[test]
    fn monotone_in_cost_and_baseline(r in any_rule(), cost in 0..20_000_000_i64, more in 0..20_000_000_i64, baseline in 0..20_000_000_i64) {
        if evaluate(&r, Micros::new(cost), Micros::new(baseline)).is_some() {
            prop_assert!(evaluate(&r, Micros::new(cost + more), Micros::new(baseline)).is_some());
        }
        if evaluate(&r, Micros::new(cost), Micros::new(baseline + more)).is_some() {
            prop_assert!(evaluate(&r, Micros::new(cost), Micros::new(baseline)).is_some());
        }
    }

    /// Skipping the baseline when `needs_baseline` says so never changes the decision.
    #[test]
    fn the_baseline_is_read_only_when_it_matters(r in any_rule(), cost in 0..20_000_000_i64, baseline in 0..20_000_000_i64) {
        let c = Micros::new(cost);
        if !r.needs_baseline(c) {
            prop_assert_eq!(
                evaluate(&r, c, Micros::new(baseline)).is_some(),
                evaluate(&r, c, Micros::ZERO).is_some()
            );
        }
    }

    /// The default rule applies exactly to an org with no rules.
    #[test]
    fn the_default_applies_iff_no_rules(rules in proptest::option::of(proptest::collection::vec(any_rule(), 0..4))) {
        let rules = rules.map(AlarmRules);
        let org = rules_in_force(rules.as_ref(), AlarmOwnerKind::Org);
        let ws = rules_in_force(rules.as_ref(), AlarmOwnerKind::Workspace);
        match &rules {
            None => { prop_assert_eq!(org, vec![AlarmRule::DEFAULT]); prop_assert!(ws.is_empty()); }
            Some(r) => { prop_assert_eq!(&org, &r.0); prop_assert_eq!(&ws, &r.0); }
        }
    }

    /// A parsed rule round-trips through its JSON, and its key identifies it.
    #[test]
    fn parse_spec_round_trip(a in any_rule(), b in any_rule()) {
        prop_assert_eq!(AlarmRule::parse(0, &a.spec()), Ok(a));
        prop_assert_eq!(a.key() == b.key(), a == b);
    }

    /// Notices are monotone in spend: once due in a period, still due with more spend.
    #[test]
    fn notices_are_monotone(budget in 0..1000_i64, pct in 1..=100_i64, spent in 0..2000_i64, more in 0..2000_i64) {
        let limits = Limits {
            budget_micros_per_month: BudgetMicros::parse("m", budget).ok(),
            soft_budget_percent: SoftPercent::parse(pct).ok(),
            ..Limits::default()
        };
        let before = budget_notices(&limits, PeriodKind::Month, Micros::new(spent));
        let after = budget_notices(&limits, PeriodKind::Month, Micros::new(spent + more));
        for n in &before {
            prop_assert!(after.iter().any(|m| m.kind == n.kind));
        }
        prop_assert_eq!(before.iter().any(|n| n.kind == NoticeKind::Exhausted), budget > 0 && spent >= budget);
    }
}
