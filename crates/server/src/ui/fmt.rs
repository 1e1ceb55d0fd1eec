//! How values read on the pages: money as dollars (the exact micro-USD in a `title`), times
//! relative to now (the absolute UTC time in a `title`), and an event's `detail` as one line.

use maud::{Markup, html};
use serde_json::Value;
use tollgate_policy::{EventKind, Micros};
use tollgate_store::{Event, Timestamp};

/// `micros` as dollars with `decimals` decimals (2 or 4), thousands separated, rounded half
/// away from zero: `$1,234.56`.
pub(crate) fn dollars(micros: i64, decimals: u32) -> String {
    let decimals = decimals.min(6);
    let unit = 10_i64.pow(6 - decimals);
    let abs = micros.unsigned_abs();
    let unit_u = unit.unsigned_abs();
    let scaled = (abs + unit_u / 2) / unit_u;
    let scale = 10_u64.pow(decimals);
    let (whole, frac) = (scaled / scale, scaled % scale);
    let grouped = group_thousands(whole);
    let sign = if micros < 0 && scaled > 0 { "-" } else { "" };
    if decimals == 0 {
        format!("{sign}${grouped}")
    } else {
        format!("{sign}${grouped}.{frac:0width$}", width = usize::try_from(decimals).unwrap_or(2))
    }
}

/// `n` with a comma every three digits: `1,234,567`.
pub(crate) fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Money in a table or a sentence: dollars and cents, the exact amount on hover.
pub(crate) fn money(micros: i64) -> Markup {
    html! { span.money title=(Micros::new(micros).to_string()) { (dollars(micros, 2)) } }
}

/// Money of one request (cents are too coarse): four decimals, the exact amount on hover.
pub(crate) fn money_fine(micros: i64) -> Markup {
    html! { span.money title=(Micros::new(micros).to_string()) { (dollars(micros, 4)) } }
}

/// How long before `now_ms` the time `at_ms` was, in words: `just now`, `5 min ago`,
/// `3 h ago`, `2 d ago`; a time ahead of now (clocks differ) reads `just now`.
pub(crate) fn ago_text(now_ms: i64, at_ms: i64) -> String {
    let secs = (now_ms - at_ms).max(0) / 1000;
    match secs {
        0..=44 => "just now".to_owned(),
        45..=5_399 => format!("{} min ago", ((secs + 30) / 60).max(1)),
        5_400..=129_599 => format!("{} h ago", (secs + 1_800) / 3_600),
        _ => format!("{} d ago", (secs + 43_200) / 86_400),
    }
}

/// A time: relative to now, the absolute UTC time in its `title` and `datetime`.
pub(crate) fn ago(now_ms: i64, at: Timestamp) -> Markup {
    let abs = at.rfc3339();
    html! { time datetime=(abs) title=(abs) { (ago_text(now_ms, at.0)) } }
}

/// An event kind as a badge; alarms, budgets, suspensions and failed notifications stand out.
pub(crate) fn kind_badge(kind: EventKind) -> Markup {
    let class = match kind {
        EventKind::AlarmFired | EventKind::BudgetExhausted | EventKind::Suspended | EventKind::WebhookFailed => {
            "badge kind bad"
        }
        EventKind::BudgetSoftCrossed => "badge kind warn",
        EventKind::Resumed => "badge kind ok",
        _ => "badge kind plain",
    };
    html! { span class=(class) { (kind.as_str()) } }
}

/// One detail value as text: `*_micros` numbers as dollars, lists joined, objects as their set
/// fields; `None` for nothing worth showing (null, empty).
fn value_text(key: &str, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_owned()),
        Value::Number(n) if is_money(key) => n.as_i64().map(|m| dollars(m, 2)),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(|i| value_text(key, i)).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> =
                map.iter().filter_map(|(k, v)| value_text(k, v).map(|t| format!("{} {t}", label(k)))).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
    }
}

/// Whether a field named `key` holds micro-USD (`credit_micros`, `budget_micros_per_day`).
pub(crate) fn is_money(key: &str) -> bool {
    key.ends_with("_micros") || key.contains("_micros_")
}

/// A field name for people: `credit_micros` reads `credit`, `budget_micros_per_day`
/// `budget per day`, `window_minutes` `window minutes`.
pub(crate) fn label(key: &str) -> String {
    key.replace("_micros", "").replace('_', " ")
}

/// The fields of `detail` that `kind` leads with, in order (the rest follow).
fn leading(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::AlarmFired => &["message", "reason", "rule", "action", "cost_micros", "window_minutes"],
        EventKind::Suspended => &["reason", "by", "scope"],
        EventKind::Resumed => &["lifted_reason", "scope"],
        EventKind::CreditAdjusted => &["delta_micros", "reason", "balance_micros"],
        EventKind::SecretSet | EventKind::SecretDeleted => &["name", "scope"],
        EventKind::WorkspaceProvisioned => &["mode", "provider", "model"],
        _ => &["name", "message", "reason"],
    }
}

/// An event's detail as `label value · label value`, the kind's main fields first. Every
/// value is text escaped by maud; nothing is interpreted.
pub(crate) fn summary(event: &Event) -> String {
    let Value::Object(map) = &event.detail else {
        return value_text("", &event.detail).unwrap_or_default();
    };
    // A fired alarm's reason already says the spend, the window and the threshold: the rule's
    // fields repeated after it only make the line harder to read.
    if event.kind == EventKind::AlarmFired
        && let Some(Value::String(reason)) = map.get("reason")
    {
        return match map.get("action").and_then(Value::as_str) {
            Some(action) => format!("{reason} · action: {action}"),
            None => reason.clone(),
        };
    }
    let first = leading(event.kind);
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| first.iter().position(|f| f == k).unwrap_or(first.len()));
    keys.into_iter()
        .filter_map(|k| value_text(k, &map[k]).map(|t| format!("{}: {t}", label(k))))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tollgate_policy::Actor;

    use super::*;

    #[test]
    fn dollars_round_and_group() {
        assert_eq!(dollars(0, 2), "$0.00");
        assert_eq!(dollars(1_234_565_000, 2), "$1,234.57");
        assert_eq!(dollars(-2_500_000, 2), "-$2.50");
        assert_eq!(dollars(4_999, 2), "$0.00", "below half a cent");
        assert_eq!(dollars(-4_999, 2), "$0.00", "no minus zero");
        assert_eq!(dollars(21_349, 4), "$0.0213");
        assert_eq!(dollars(1_000_000_000_000, 2), "$1,000,000.00");
    }

    #[test]
    fn relative_times() {
        let now = 10_000_000_000;
        assert_eq!(ago_text(now, now + 5_000), "just now", "a clock ahead");
        assert_eq!(ago_text(now, now - 30_000), "just now");
        assert_eq!(ago_text(now, now - 5 * 60_000), "5 min ago");
        assert_eq!(ago_text(now, now - 3 * 3_600_000), "3 h ago");
        assert_eq!(ago_text(now, now - 2 * 86_400_000), "2 d ago");
    }

    #[test]
    fn summaries_lead_with_the_kinds_fields_and_read_money_as_dollars() {
        let event = |kind, detail| Event {
            id: 1,
            at: Timestamp(0),
            kind,
            actor: Actor::Admin,
            org_id: None,
            workspace_id: None,
            detail,
        };
        let credit = event(
            EventKind::CreditAdjusted,
            json!({"balance_micros": 7_000_000, "delta_micros": 2_000_000, "reason": "top-up"}),
        );
        assert_eq!(summary(&credit), "delta: $2.00 · reason: top-up · balance: $7.00");
        let created =
            event(EventKind::OrgCreated, json!({"name": "acme", "limits": {"a": null}, "default_billing_mode": null}));
        assert_eq!(summary(&created), "name: acme", "nulls and empty objects are left out");
        let alarm = event(EventKind::AlarmFired, json!({"window_minutes": 60, "cost_micros": 11_000_000, "x": [1, 2]}));
        assert_eq!(summary(&alarm), "cost: $11.00 · window minutes: 60 · x: 1, 2");
        let fired = event(
            EventKind::AlarmFired,
            json!({"reason": "drain alarm: $9.88 spent in the last 60 minutes, over the cap of $5", "action": "notify",
                   "cost_micros": 9_880_000, "rule_key": "w60:max5000000:x-:min-:notify"}),
        );
        assert_eq!(
            summary(&fired),
            "drain alarm: $9.88 spent in the last 60 minutes, over the cap of $5 · action: notify",
            "the reason says it all"
        );
        let limits = event(EventKind::LimitsUpdated, json!({"limits": {"budget_micros_per_day": 40_000_000}}));
        assert_eq!(summary(&limits), "limits: budget per day $40.00");
    }
}
