//! `tollgate admin org alarms ID ...` and `tollgate admin workspace alarms ID ...`: show or
//! change an org's or a workspace's drain alarm rules (DESIGN.md section 15) through `PATCH`.

use tollgate_policy::AlarmRuleSpec;

use crate::exit::{CliError, USAGE};

/// The flags of an `alarms` command. Without any, the rules are shown.
#[derive(Debug, Default, clap::Args)]
pub(super) struct AlarmArgs {
    /// The new rules, a JSON list replacing the old, e.g.
    /// `[{"window_minutes":60,"max_cost_micros":20000000,"action":"suspend"}]` (`[]`: none,
    /// which on an org also turns the default rule off).
    #[arg(long, value_name = "JSON")]
    set: Option<String>,
    /// Remove the rules (an org falls back to the default rule).
    #[arg(long, conflicts_with = "set")]
    clear: bool,
}

impl AlarmArgs {
    /// The `alarms` value to send: `None` to only show, `Some(None)` to clear.
    ///
    /// # Errors
    /// `--set` is not a JSON list of rules (exit 2; the server checks the values).
    pub(super) fn patch(&self) -> Result<Option<Option<Vec<AlarmRuleSpec>>>, CliError> {
        if self.clear {
            return Ok(Some(None));
        }
        self.set
            .as_deref()
            .map(|json| {
                serde_json::from_str::<Vec<AlarmRuleSpec>>(json)
                    .map(Some)
                    .map_err(|e| CliError::with_code(USAGE, format!("--set must be a JSON list of alarm rules: {e}")))
            })
            .transpose()
    }
}

/// The table of a rules list: one row per rule, `-` for an absent field.
pub(super) fn rows(rules: Option<&[AlarmRuleSpec]>) -> Vec<Vec<String>> {
    let n = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    rules
        .unwrap_or_default()
        .iter()
        .map(|r| {
            vec![
                r.window_minutes.to_string(),
                n(r.max_cost_micros),
                r.over_baseline_factor.map_or_else(|| "-".to_owned(), |f| f.to_string()),
                n(r.min_cost_micros),
                r.action.as_str().to_owned(),
            ]
        })
        .collect()
}

/// The table's columns.
pub(super) const COLUMNS: &[&str] =
    &["window_minutes", "max_cost_micros", "over_baseline_factor", "min_cost_micros", "action"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_and_show() -> Result<(), String> {
        assert!(AlarmArgs::default().patch().map_err(|e| e.to_string())?.is_none(), "no flag: show only");
        let clear = AlarmArgs { clear: true, ..AlarmArgs::default() };
        assert_eq!(clear.patch().map_err(|e| e.to_string())?, Some(None));
        let set = AlarmArgs {
            set: Some(r#"[{"window_minutes": 5, "max_cost_micros": 9, "action": "suspend"}]"#.to_owned()),
            ..AlarmArgs::default()
        };
        let rules = set.patch().map_err(|e| e.to_string())?.flatten().unwrap_or_default();
        assert_eq!(rows(Some(&rules)), vec![vec!["5", "9", "-", "-", "suspend"]]);
        let bad = AlarmArgs { set: Some("{}".to_owned()), ..AlarmArgs::default() };
        assert_eq!(bad.patch().err().map(|e| e.code), Some(USAGE));
        Ok(())
    }
}
