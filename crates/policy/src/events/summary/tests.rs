use serde_json::json;

use super::{dollars, summary};
use crate::events::EventKind;
use crate::money::Micros;

const ORG: Option<&str> = Some("0b6f7c1e-8a3d-4c55-9a43-2f1f0c2f5e10");
const WS: Option<&str> = Some("5d2a9e7b-1c4f-4e8a-b3d6-7f0e9c8a1b2d");

#[test]
fn alarm_with_amounts_in_dollars() {
    let detail = json!({
        "rule": {"window_minutes": 60, "max_cost_micros": 10_000_000, "action": "suspend"},
        "cost_micros": 12_340_000,
        "action": "suspend",
    });
    insta::assert_snapshot!(summary(EventKind::AlarmFired, ORG, WS, &detail));
}

#[test]
fn alarm_over_baseline_with_a_message() {
    let detail = json!({
        "message": "spend is 6.2x the 7-day baseline",
        "window_minutes": 15,
        "cost_micros": 3_100_000,
        "baseline_micros": 500_000,
        "over_baseline_factor": 5.0,
        "action": "notify",
    });
    insta::assert_snapshot!(summary(EventKind::AlarmFired, ORG, None, &detail));
}

#[test]
fn budget_soft_crossed() {
    let detail = json!({"period": "day", "budget_micros": 20_000_000, "spent_micros": 16_000_250, "percent": 80});
    insta::assert_snapshot!(summary(EventKind::BudgetSoftCrossed, ORG, WS, &detail));
}

#[test]
fn budget_exhausted() {
    let detail = json!({"period": "month", "budget_micros": 300_000_000, "resets_at": "2026-12-01T00:00:00.000Z"});
    insta::assert_snapshot!(summary(EventKind::BudgetExhausted, ORG, None, &detail));
}

#[test]
fn suspended_by_an_alarm() {
    let detail = json!({"reason": "drain alarm: $12.34 in 60 min", "by": "alarm"});
    insta::assert_snapshot!(summary(EventKind::Suspended, ORG, WS, &detail));
}

/// A detail of any shape still gives a line: arrays and nulls are left out, a non-object
/// detail gives the heading alone.
#[test]
fn odd_details() {
    let detail = json!({"models": ["a", "b"], "note": null, "ok": true, "n": -3});
    insta::assert_snapshot!(summary(EventKind::BudgetExhausted, None, None, &detail));
    assert_eq!(
        summary(EventKind::AlarmFired, None, WS, &json!("text")),
        format!(":rotating_light: Tollgate alarm on workspace {}", WS.unwrap_or_default())
    );
}

/// Slack reads `<...>` as links and mentions: a reason cannot ping `@channel` or hide a link;
/// a newline cannot start a second line.
#[test]
fn escapes_slack_markup_and_stays_on_one_line() {
    let detail = json!({"reason": "<!channel> click <https://evil.example|here> & more\nline two"});
    let text = summary(EventKind::Suspended, ORG, None, &detail);
    assert!(!text.contains('<') && !text.contains('>') && !text.contains('\n'), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn long_details_are_cut() {
    let detail = json!({"reason": "x".repeat(5000)});
    let text = summary(EventKind::AlarmFired, ORG, WS, &detail);
    assert!(text.len() <= super::MAX_SUMMARY_BYTES + 3, "{}", text.len());
    assert!(text.ends_with("..."));
}

#[test]
fn dollars_are_readable() {
    assert_eq!(dollars(Micros::new(12_340_000)), "$12.34");
    assert_eq!(dollars(Micros::new(10_000_000)), "$10.00");
    assert_eq!(dollars(Micros::new(1_234_567_890_000)), "$1,234,567.89");
    assert_eq!(dollars(Micros::new(4_200)), "$0.0042");
    assert_eq!(dollars(Micros::new(-500_000)), "-$0.50");
    assert_eq!(dollars(Micros::new(0)), "$0.00");
    assert_eq!(dollars(Micros::new(i64::MIN)), "-$9,223,372,036,854.775808");
}
