//! Spend by day as a server-built SVG bar chart: no script, no external asset, nothing a
//! strict Content-Security-Policy would refuse (presentation attributes, no `style`).

use maud::{Markup, html};
use tollgate_policy::Micros;
use tollgate_policy::budget::{Period, PeriodKind};

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
            text x="4" y="12" font-size="11" fill="#52606d" { "max " (Micros::new(max)) }
            @for (i, (key, v)) in keys.iter().zip(&values).enumerate() {
                @let x = i64::try_from(i).unwrap_or(0) * slot;
                @let h = if *v == 0 { 0 } else { (v * plot / max).max(1) };
                rect x=(x + 2) y=(HEIGHT - BOTTOM - h) width=((slot - 4).max(1)) height=(h) fill="#3e7bd6" {
                    title { (key) ": " (Micros::new(*v)) }
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
