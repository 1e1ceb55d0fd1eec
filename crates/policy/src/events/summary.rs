//! The one-line, Slack-compatible summary of an event that a webhook notification carries.
//!
//! The detail of an event is free JSON written by whoever records it (alarms, budgets), so the
//! summary is generic: the kind, the org and workspace, a `reason` or `message` first, then
//! every other plain field, amounts (`*_micros`) in dollars. Nothing in a detail is a secret
//! (the event log's contract), so the summary holds none either.

use serde_json::Value;

use super::EventKind;
use crate::money::Micros;

/// The longest summary, in bytes: a notification is a line, not a report.
const MAX_SUMMARY_BYTES: usize = 1000;

/// Nested objects of a detail are shown this deep (`rule.window_minutes`), no deeper.
const MAX_DEPTH: usize = 2;

/// The summary of an event of `kind` about `org_id` / `workspace_id` with `detail`, e.g.
/// `:rotating_light: Tollgate alarm on workspace W (org O): cost $12.34; max cost $10.00`.
///
/// One line (control characters become spaces), at most 1000 bytes, with
/// `&`, `<` and `>` escaped as Slack's message format requires.
pub fn summary(kind: EventKind, org_id: Option<&str>, workspace_id: Option<&str>, detail: &Value) -> String {
    let (emoji, title) = heading(kind);
    let mut text = format!("{emoji} Tollgate {title}");
    match (workspace_id, org_id) {
        (Some(ws), Some(org)) => text.push_str(&format!(" on workspace {ws} (org {org})")),
        (Some(ws), None) => text.push_str(&format!(" on workspace {ws}")),
        (None, Some(org)) => text.push_str(&format!(" on org {org}")),
        (None, None) => {}
    }
    let mut parts = Vec::new();
    if let Some(map) = detail.as_object() {
        for key in ["reason", "message"] {
            if let Some(Value::String(s)) = map.get(key) {
                parts.push(s.clone());
            }
        }
        fields(map, "", 1, &mut parts);
    }
    if !parts.is_empty() {
        text.push_str(": ");
        text.push_str(&parts.join("; "));
    }
    crate::text::truncate(&slack_escape(&text), MAX_SUMMARY_BYTES)
}

/// The emoji and title of each kind; the kinds that are not notified get a plain heading.
fn heading(kind: EventKind) -> (&'static str, &'static str) {
    match kind {
        EventKind::AlarmFired => (":rotating_light:", "alarm"),
        EventKind::BudgetSoftCrossed => (":warning:", "budget warning"),
        EventKind::BudgetExhausted => (":no_entry:", "budget exhausted"),
        EventKind::Suspended => (":octagonal_sign:", "suspension"),
        EventKind::WebhookFailed => (":warning:", "webhook delivery failed"),
        other => (":information_source:", other.as_str()),
    }
}

/// Appends `label value` for every plain field of `map` (keys in the map's order), nested
/// objects up to [`MAX_DEPTH`] with their key as a prefix; arrays and `null` are left out.
fn fields(map: &serde_json::Map<String, Value>, prefix: &str, depth: usize, parts: &mut Vec<String>) {
    for (key, value) in map {
        if depth == 1 && (key == "reason" || key == "message") && value.is_string() {
            continue;
        }
        let amount = key.strip_suffix("_micros");
        let label = format!("{prefix}{}", amount.unwrap_or(key).replace('_', " "));
        match value {
            Value::Number(n) => match (amount, n.as_i64()) {
                (Some(_), Some(micros)) => parts.push(format!("{label} {}", dollars(Micros::new(micros)))),
                _ => parts.push(format!("{label} {n}")),
            },
            Value::String(s) => parts.push(format!("{label} {s}")),
            Value::Bool(b) => parts.push(format!("{label} {}", if *b { "yes" } else { "no" })),
            Value::Object(inner) if depth < MAX_DEPTH => fields(inner, &format!("{label} "), depth + 1, parts),
            Value::Object(_) | Value::Array(_) | Value::Null => {}
        }
    }
}

/// An amount as people read it: `$12.34`, `$1,250.00`, `-$0.50`; sub-cent amounts keep their
/// digits (`$0.0042`) rather than round to a misleading `$0.00`.
pub fn dollars(amount: Micros) -> String {
    let sign = if amount.get() < 0 { "-" } else { "" };
    let abs = amount.get().unsigned_abs();
    let whole = abs / 1_000_000;
    let frac = abs % 1_000_000;
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut decimals = format!("{frac:06}");
    while decimals.len() > 2 && decimals.ends_with('0') {
        decimals.pop();
    }
    format!("{sign}${grouped}.{decimals}")
}

/// One line, escaped for Slack's `text` (which reads `<...>` as links and mentions).
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
