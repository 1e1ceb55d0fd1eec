//! Spend by day as a server-built SVG bar chart: no script, no external asset, nothing a
//! strict Content-Security-Policy would refuse (presentation attributes, no `style`).

use maud::{Markup, html};
use tollgate_policy::Micros;
use tollgate_policy::budget::{Period, PeriodKind};
use tollgate_store::UsageRow;

use super::fmt::dollars;

const DAY_MS: i64 = 24 * 3_600_000;
const WIDTH: i64 = 720;
const HEIGHT: i64 = 180;
const TOP: i64 = 16;
const BOTTOM: i64 = 22;

/// The `days` UTC day keys (`YYYY-MM-DD`) ending with the day of `now_ms`, oldest first.
pub(crate) fn day_keys(now_ms: i64, days: i64) -> Vec<String> {
    (0..days).rev().map(|back| Period::containing(PeriodKind::Day, now_ms - back * DAY_MS).key).collect()
}

/// A bar per day of `keys`, its height `cost` of that day (days missing from `cost` are 0);
/// each bar carries a `<title>` with the day and the amount. No spend at all: a sentence.
pub(crate) fn spend_by_day(keys: &[String], cost: &dyn Fn(&str) -> i64) -> Markup {
    let values: Vec<i64> = keys.iter().map(|k| cost(k).max(0)).collect();
    let max = values.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return html! { p.empty { "No spend in the last 30 days." } };
    }
    let n = i64::try_from(keys.len()).unwrap_or(1).max(1);
    let slot = WIDTH / n;
    let plot = HEIGHT - TOP - BOTTOM;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="Spend by day, last 30 days" {
            line x1="0" y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#9aa5b1" stroke-width="1" {}
            text x="4" y="12" font-size="11" fill="#52606d" { "max " (dollars(max, 2)) " a day" }
            @for (i, (key, v)) in keys.iter().zip(&values).enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * slot;
                @let h = if *v == 0 { 0 } else { (v * plot / max).max(1) };
                rect x=(x + 2) y=(HEIGHT - BOTTOM - h) width=((slot - 4).max(1)) height=(h) fill="#3e7bd6" {
                    title { (key) ": " (dollars(*v, 2)) }
                }
                @if i + 1 == keys.len() {
                    text x=(x + slot - 2) y=(HEIGHT - 6) font-size="10" fill="#52606d" text-anchor="end" { (key.get(5..).unwrap_or(key)) }
                } @else if i % 5 == 0 {
                    text x=(x + 2) y=(HEIGHT - 6) font-size="10" fill="#52606d" { (key.get(5..).unwrap_or(key)) }
                }
            }
        }
    }
}

/// Spend by model as horizontal bars, dearest first, each labelled with the model and its
/// amount. No spend: nothing (the table below says so).
pub(crate) fn spend_by_model(rows: &[UsageRow]) -> Markup {
    let mut rows: Vec<&UsageRow> = rows.iter().filter(|r| r.cost_micros > 0).collect();
    rows.sort_by(|a, b| b.cost_micros.cmp(&a.cost_micros).then_with(|| a.key.cmp(&b.key)));
    let Some(max) = rows.first().map(|r| r.cost_micros) else { return html! {} };
    let label_w = 170;
    let amount_w = 90;
    let bar_h = 18;
    let gap = 8;
    let n = i64::try_from(rows.len()).unwrap_or(0);
    let height = n * (bar_h + gap) + gap;
    let plot = WIDTH - label_w - amount_w;
    html! {
        svg.chart.models xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {height}"))
            role="img" aria-label="Spend by model, last 30 days" {
            @for (i, r) in rows.iter().enumerate() {
                @let y = gap + i64::try_from(i).unwrap_or(0) * (bar_h + gap);
                @let w = (r.cost_micros * plot / max).max(1);
                text x=(label_w - 8) y=(y + 13) font-size="12" fill="#1f2933" text-anchor="end" { (r.key) }
                rect x=(label_w) y=(y) width=(w) height=(bar_h) rx="2" fill=(COLOURS[i % COLOURS.len()]) {
                    title { (r.key) ": " (Micros::new(r.cost_micros)) }
                }
                text x=(label_w + w + 6) y=(y + 13) font-size="12" fill="#52606d" { (dollars(r.cost_micros, 2)) }
            }
        }
    }
}

/// Bar colours for categories, distinguishable side by side.
const COLOURS: [&str; 6] = ["#3e7bd6", "#2e9e8f", "#d08a2c", "#8e5cc4", "#c2494b", "#5f7387"];
