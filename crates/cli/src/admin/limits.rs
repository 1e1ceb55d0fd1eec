//! `tollgate admin org limits ID ...` and `tollgate admin workspace limits ID ...`: show or
//! change an org's or a workspace's `limits` (DESIGN.md section 14) through `PATCH`.

use tollgate_server::api::{Limits, PatchLimits};

/// The flags of a `limits` command. Without any, the limits are shown; `--clear-X` removes
/// limit X (sent as `null`).
#[derive(Debug, Default, clap::Args)]
pub(super) struct LimitArgs {
    /// Hard budget per UTC day, micro-USD.
    #[arg(long, value_name = "MICROS")]
    budget_per_day: Option<i64>,
    /// Remove the daily budget.
    #[arg(long, conflicts_with = "budget_per_day")]
    clear_budget_per_day: bool,
    /// Hard budget per UTC calendar month, micro-USD.
    #[arg(long, value_name = "MICROS")]
    budget_per_month: Option<i64>,
    /// Remove the monthly budget.
    #[arg(long, conflicts_with = "budget_per_month")]
    clear_budget_per_month: bool,
    /// Percent of a budget whose crossing is notified (1 to 100).
    #[arg(long, value_name = "PERCENT")]
    soft_budget_percent: Option<i64>,
    /// Remove the soft budget percentage.
    #[arg(long, conflicts_with = "soft_budget_percent")]
    clear_soft_budget_percent: bool,
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    requests_per_minute: Option<i64>,
    /// Remove the requests-per-minute limit.
    #[arg(long, conflicts_with = "requests_per_minute")]
    clear_requests_per_minute: bool,
    /// Input plus output tokens per minute.
    #[arg(long, value_name = "N")]
    tokens_per_minute: Option<i64>,
    /// Remove the tokens-per-minute limit.
    #[arg(long, conflicts_with = "tokens_per_minute")]
    clear_tokens_per_minute: bool,
    /// Requests in flight at once.
    #[arg(long, value_name = "N")]
    max_concurrent_requests: Option<i64>,
    /// Remove the concurrency limit.
    #[arg(long, conflicts_with = "max_concurrent_requests")]
    clear_max_concurrent_requests: bool,
    /// The platform models allowed, comma-separated (empty: none).
    #[arg(long, value_name = "IDS")]
    allowed_models: Option<String>,
    /// Remove the model narrowing.
    #[arg(long, conflicts_with = "allowed_models")]
    clear_allowed_models: bool,
}

/// A set value, a clear, or neither.
fn field<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear { Some(None) } else { value.map(Some) }
}

impl LimitArgs {
    /// The `limits` body the flags ask for; `None` when no flag is given (show only).
    pub(super) fn patch(&self) -> Option<PatchLimits> {
        let models = self
            .allowed_models
            .as_ref()
            .map(|s| s.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect());
        let patch = PatchLimits {
            budget_micros_per_day: field(self.budget_per_day, self.clear_budget_per_day),
            budget_micros_per_month: field(self.budget_per_month, self.clear_budget_per_month),
            soft_budget_percent: field(self.soft_budget_percent, self.clear_soft_budget_percent),
            requests_per_minute: field(self.requests_per_minute, self.clear_requests_per_minute),
            tokens_per_minute: field(self.tokens_per_minute, self.clear_tokens_per_minute),
            max_concurrent_requests: field(self.max_concurrent_requests, self.clear_max_concurrent_requests),
            allowed_models: field(models, self.clear_allowed_models),
        };
        (patch != PatchLimits::default()).then_some(patch)
    }
}

/// The table of a `limits` object: one row per field, `-` when unset.
pub(super) fn rows(l: &Limits) -> Vec<Vec<String>> {
    let n = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let u = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let row = |k: &str, v: String| vec![k.to_owned(), v];
    vec![
        row("budget_micros_per_day", n(l.budget_micros_per_day)),
        row("budget_micros_per_month", n(l.budget_micros_per_month)),
        row("soft_budget_percent", u(l.soft_budget_percent.map(u64::from))),
        row("requests_per_minute", u(l.requests_per_minute)),
        row("tokens_per_minute", u(l.tokens_per_minute)),
        row("max_concurrent_requests", u(l.max_concurrent_requests)),
        row("allowed_models", l.allowed_models.as_ref().map_or_else(|| "-".to_owned(), |m| m.join(","))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_a_patch_and_clears_become_null() -> Result<(), String> {
        assert!(LimitArgs::default().patch().is_none(), "no flag: show only");
        let args = LimitArgs {
            budget_per_day: Some(5_000_000),
            clear_tokens_per_minute: true,
            allowed_models: Some("platform/sonnet, platform/haiku".to_owned()),
            ..LimitArgs::default()
        };
        let json = serde_json::to_string(&args.patch()).map_err(|e| e.to_string())?;
        assert_eq!(
            json,
            r#"{"budget_micros_per_day":5000000,"tokens_per_minute":null,"allowed_models":["platform/sonnet","platform/haiku"]}"#
        );
        Ok(())
    }
}
