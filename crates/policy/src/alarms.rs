//! Drain alarms and budget notices (DESIGN.md section 15): the `alarms` rules an org or a
//! workspace carries, the documented default rule, and the pure decisions of what fires.
//!
//! The evaluator (in the server crate) reads the ledger and the budgets' spend and asks this
//! module; it records and carries out what this module answers. Money stays integer
//! micro-USD: the one fractional figure, `over_baseline_factor`, is held in thousandths.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::budget::PeriodKind;
use crate::limits::{Limits, MAX_BUDGET_MICROS};

/// The longest trailing window: 7 days, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 10_080;
/// The baseline's span: the 7 days before the window, in minutes.
pub const BASELINE_MINUTES: u32 = 10_080;
/// The most rules an org or a workspace carries.
pub const MAX_RULES: usize = 16;
/// The largest `over_baseline_factor`.
pub const MAX_FACTOR: f64 = 1000.0;
/// The largest `max_cost_micros` or `min_cost_micros`: the bound on a budget.
pub const MAX_COST_MICROS: i64 = MAX_BUDGET_MICROS;

/// The default rule's window (minutes).
pub const DEFAULT_WINDOW_MINUTES: u32 = 60;
/// The default rule's factor over the baseline (thousandths: 5x).
pub const DEFAULT_FACTOR_MILLI: u32 = 5_000;
/// The default rule's least spend in the window before it fires (5 USD).
pub const DEFAULT_MIN_COST_MICROS: i64 = 5_000_000;

/// What a firing rule does besides recording `alarm.fired` and notifying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum AlarmAction {
    /// Record and notify only.
    Notify,
    /// Also suspend the org or workspace the rule is on.
    Suspend,
}

impl AlarmAction {
    /// `notify` or `suspend`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Notify => "notify",
            Self::Suspend => "suspend",
        }
    }
}

/// One rule as JSON carries it, in requests and responses (`null` and absent optional fields
/// are the same). Parsed into an [`AlarmRule`] by [`AlarmRules::parse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleSpec {
    /// The trailing window, 1 to 10080 minutes (7 days).
    #[serde(deserialize_with = "crate::json::integral")]
    #[cfg_attr(feature = "utoipa", schema(minimum = 1, maximum = 10080))]
    pub window_minutes: i64,
    /// Fires when the window's settled cost exceeds this (micro-USD, 0 to 10^15).
    #[serde(default, deserialize_with = "crate::json::opt_integral", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(minimum = 0, maximum = 1_000_000_000_000_000_i64))]
    pub max_cost_micros: Option<i64>,
    /// Fires when the window's cost exceeds this many times the average cost of a window of
    /// the same length over the 7 days before it: above 1, at most 1000, in thousandths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(exclusive_minimum = 1.0, maximum = 1000.0))]
    pub over_baseline_factor: Option<f64>,
    /// With `over_baseline_factor` only: the least window cost that may fire (micro-USD, 0 to
    /// 10^15; default 0).
    #[serde(default, deserialize_with = "crate::json::opt_integral", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(minimum = 0, maximum = 1_000_000_000_000_000_i64))]
    pub min_cost_micros: Option<i64>,
    /// `notify` or `suspend`.
    pub action: AlarmAction,
}

/// Why an `alarms` value is refused (the API's 400 `INVALID_ALARMS`; the message names the
/// rule and the field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("alarms{}{}: {why}", index.map(|i| format!("[{i}]")).unwrap_or_default(), field.map(|f| format!(".{f}")).unwrap_or_default())]
pub struct AlarmError {
    /// The rule's position in the list, when one rule is at fault.
    pub index: Option<usize>,
    /// The field at fault, if one is.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub why: String,
}

/// A factor over the baseline in thousandths: above 1000 (1x), at most 1,000,000 (1000x).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Factor(u32);

impl Factor {
    /// Parses a factor from JSON's number, rounded to thousandths.
    ///
    /// # Errors
    /// Not finite, at most 1 once rounded, or above [`MAX_FACTOR`].
    pub fn parse(f: f64) -> Result<Self, String> {
        if !f.is_finite() || f > MAX_FACTOR {
            return Err(format!("must be a number above 1 and at most {MAX_FACTOR} (got {f})"));
        }
        let milli = (f * 1000.0).round();
        if milli <= 1000.0 {
            return Err(format!("must be above 1 (got {f}): a rule over the baseline fires on a rise"));
        }
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "within 1001..=1_000_000")]
        Ok(Self(milli as u32))
    }

    /// The factor in thousandths.
    pub const fn milli(self) -> u32 {
        self.0
    }

    /// The factor as JSON shows it.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}x")
        } else {
            write!(f, "{}x", format!("{whole}.{frac:03}").trim_end_matches('0'))
        }
    }
}

/// A parsed rule: valid by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlarmRule {
    window_minutes: u32,
    max_cost: Option<Micros>,
    over_baseline: Option<Factor>,
    min_cost: Option<Micros>,
    action: AlarmAction,
}

impl AlarmRule {
    /// The documented default rule of an org with no rules: `notify` when the last 60
    /// minutes cost over 5 times the 7-day average for 60 minutes and at least 5 USD.
    pub const DEFAULT: Self = Self {
        window_minutes: DEFAULT_WINDOW_MINUTES,
        max_cost: None,
        over_baseline: Some(Factor(DEFAULT_FACTOR_MILLI)),
        min_cost: Some(Micros::new(DEFAULT_MIN_COST_MICROS)),
        action: AlarmAction::Notify,
    };

    /// Parses one rule; `index` is its position, for the error.
    ///
    /// # Errors
    /// The first field that is wrong, or a rule that could never fire.
    pub fn parse(index: usize, spec: &AlarmRuleSpec) -> Result<Self, AlarmError> {
        let err = |field, why: String| AlarmError { index: Some(index), field, why };
        let window_minutes = u32::try_from(spec.window_minutes)
            .ok()
            .filter(|w| (1..=MAX_WINDOW_MINUTES).contains(w))
            .ok_or_else(|| {
            err(Some("window_minutes"), format!("must be 1 to {MAX_WINDOW_MINUTES} (got {})", spec.window_minutes))
        })?;
        let cost = |field: &'static str, v: Option<i64>| {
            v.map(|m| {
                if (0..=MAX_COST_MICROS).contains(&m) {
                    Ok(Micros::new(m))
                } else {
                    Err(err(Some(field), format!("must be 0 to {MAX_COST_MICROS} micro-USD (got {m})")))
                }
            })
            .transpose()
        };
        let max_cost = cost("max_cost_micros", spec.max_cost_micros)?;
        let min_cost = cost("min_cost_micros", spec.min_cost_micros)?;
        let over_baseline = spec
            .over_baseline_factor
            .map(Factor::parse)
            .transpose()
            .map_err(|why| err(Some("over_baseline_factor"), why))?;
        if max_cost.is_none() && over_baseline.is_none() {
            return Err(err(None, "a rule needs max_cost_micros or over_baseline_factor".to_owned()));
        }
        if min_cost.is_some() && over_baseline.is_none() {
            return Err(err(Some("min_cost_micros"), "applies only with over_baseline_factor".to_owned()));
        }
        Ok(Self { window_minutes, max_cost, over_baseline, min_cost, action: spec.action })
    }

    /// The rule as JSON shows it.
    pub fn spec(&self) -> AlarmRuleSpec {
        AlarmRuleSpec {
            window_minutes: i64::from(self.window_minutes),
            max_cost_micros: self.max_cost.map(Micros::get),
            over_baseline_factor: self.over_baseline.map(Factor::as_f64),
            min_cost_micros: self.min_cost.map(Micros::get),
            action: self.action,
        }
    }

    /// The trailing window in minutes.
    pub const fn window_minutes(&self) -> u32 {
        self.window_minutes
    }

    /// The trailing window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_minutes) * 60_000
    }

    /// What it does when it fires.
    pub const fn action(&self) -> AlarmAction {
        self.action
    }

    /// The rule's identity: equal rules have equal keys, any change of a field changes it.
    /// Keys the rule's firing state, so that editing a rule re-arms it, and names it in
    /// `suspended.by` (`alarm:<key>`).
    pub fn key(&self) -> String {
        let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        format!(
            "w{}:max{}:x{}:min{}:{}",
            self.window_minutes,
            opt(self.max_cost.map(Micros::get)),
            opt(self.over_baseline.map(|f| i64::from(f.milli()))),
            opt(self.min_cost.map(Micros::get)),
            self.action.as_str()
        )
    }

    /// Whether the baseline can change this rule's decision for a window that cost `cost`:
    /// when it is `false` the caller need not read the 7 days before the window.
    pub fn needs_baseline(&self, cost: Micros) -> bool {
        let over_max = self.max_cost.is_some_and(|m| cost > m);
        self.over_baseline.is_some() && !over_max && cost > Micros::ZERO && cost >= self.min_cost.unwrap_or_default()
    }
}

/// The rules of one org or workspace: at most [`MAX_RULES`], each valid. An empty list is
/// allowed: on an org it turns the default rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmRules(Vec<AlarmRule>);

impl AlarmRules {
    /// Parses a list of rules.
    ///
    /// # Errors
    /// More than [`MAX_RULES`], or the first rule that does not parse.
    pub fn parse(specs: &[AlarmRuleSpec]) -> Result<Self, AlarmError> {
        if specs.len() > MAX_RULES {
            return Err(AlarmError {
                index: None,
                field: None,
                why: format!("at most {MAX_RULES} rules (got {})", specs.len()),
            });
        }
        specs.iter().enumerate().map(|(i, s)| AlarmRule::parse(i, s)).collect::<Result<Vec<_>, _>>().map(Self)
    }

    /// The rules.
    pub fn rules(&self) -> &[AlarmRule] {
        &self.0
    }

    /// The rules as JSON shows them.
    pub fn specs(&self) -> Vec<AlarmRuleSpec> {
        self.0.iter().map(AlarmRule::spec).collect()
    }
}

/// Whose rules: the default rule applies to orgs only (a workspace's spend is its org's too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmOwnerKind {
    /// An org.
    Org,
    /// A workspace.
    Workspace,
}

/// The rules evaluated for an owner carrying `rules`: its own when it has a list (empty: none),
/// else [`AlarmRule::DEFAULT`] for an org and none for a workspace.
pub fn rules_in_force(rules: Option<&AlarmRules>, kind: AlarmOwnerKind) -> Vec<AlarmRule> {
    match (rules, kind) {
        (Some(r), _) => r.0.clone(),
        (None, AlarmOwnerKind::Org) => vec![AlarmRule::DEFAULT],
        (None, AlarmOwnerKind::Workspace) => Vec::new(),
    }
}

/// The average cost of one window of `window_minutes` over the [`BASELINE_MINUTES`] that cost
/// `cost_before` (rounded down).
pub fn baseline_per_window(window_minutes: u32, cost_before: Micros) -> Micros {
    let avg = i128::from(cost_before.get()) * i128::from(window_minutes) / i128::from(BASELINE_MINUTES);
    Micros::new(i64::try_from(avg).unwrap_or(i64::MAX))
}

/// Which threshold a firing crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The window cost more than `max_cost_micros`.
    OverMax {
        /// The cap.
        max: Micros,
    },
    /// The window cost more than the factor times the baseline, and at least the minimum.
    OverBaseline {
        /// The factor.
        factor: Factor,
        /// The average cost of a window over the 7 days before.
        baseline: Micros,
    },
}

/// The decision that a rule's condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The rule.
    pub rule: AlarmRule,
    /// The window's settled cost.
    pub cost: Micros,
    /// What it crossed.
    pub trigger: Trigger,
}

impl Firing {
    /// The reason, for the event, the notification and a suspension (one line, no value but
    /// amounts).
    pub fn reason(&self) -> String {
        let w = self.rule.window_minutes;
        match self.trigger {
            Trigger::OverMax { max } => {
                format!("drain alarm: {} spent in the last {w} minutes, over the cap of {max}", self.cost)
            }
            Trigger::OverBaseline { factor, baseline } => format!(
                "drain alarm: {} spent in the last {w} minutes, over {factor} the 7-day average of {baseline} per {w} minutes",
                self.cost
            ),
        }
    }

    /// The event's detail (amounts and the rule; JSON for readers and webhooks).
    pub fn detail(&self) -> serde_json::Value {
        let mut d = serde_json::json!({
            "rule": self.rule.spec(),
            "rule_key": self.rule.key(),
            "window_minutes": self.rule.window_minutes,
            "cost_micros": self.cost.get(),
            "action": self.rule.action.as_str(),
            "reason": self.reason(),
        });
        match self.trigger {
            Trigger::OverMax { max } => d["max_cost_micros"] = max.get().into(),
            Trigger::OverBaseline { factor, baseline } => {
                d["over_baseline_factor"] = factor.as_f64().into();
                d["baseline_micros"] = baseline.get().into();
            }
        }
        d
    }
}

/// Whether `rule` fires for a window that cost `cost`, with `baseline` the average cost of
/// a window of its length over the 7 days before (see [`baseline_per_window`]; pass zero
/// when [`AlarmRule::needs_baseline`] says it is not needed).
///
/// It fires when `cost` exceeds `max_cost_micros`, or when `cost` is positive, at least
/// `min_cost_micros` and more than `over_baseline_factor` times `baseline`.
pub fn evaluate(rule: &AlarmRule, cost: Micros, baseline: Micros) -> Option<Firing> {
    if let Some(max) = rule.max_cost.filter(|m| cost > *m) {
        return Some(Firing { rule: *rule, cost, trigger: Trigger::OverMax { max } });
    }
    let factor = rule.over_baseline?;
    let min = rule.min_cost.unwrap_or_default();
    let over = i128::from(cost.get()) * 1000 > i128::from(factor.milli()) * i128::from(baseline.get());
    (cost > Micros::ZERO && cost >= min && over).then_some(Firing {
        rule: *rule,
        cost,
        trigger: Trigger::OverBaseline { factor, baseline },
    })
}

/// A budget notice's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// Spend reached `soft_budget_percent` of the budget (`budget.soft_crossed`).
    SoftCrossed,
    /// Settled spend reached the hard budget (`budget.exhausted`).
    Exhausted,
}

impl NoticeKind {
    /// `soft_crossed` or `exhausted`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SoftCrossed => "soft_crossed",
            Self::Exhausted => "exhausted",
        }
    }

    /// The event it records.
    pub const fn event(self) -> crate::EventKind {
        match self {
            Self::SoftCrossed => crate::EventKind::BudgetSoftCrossed,
            Self::Exhausted => crate::EventKind::BudgetExhausted,
        }
    }
}

/// A notice due for one budget period: recorded once per (owner, period, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetNotice {
    /// Which notice.
    pub kind: NoticeKind,
    /// The budget's period kind.
    pub period: PeriodKind,
    /// The hard budget.
    pub budget: Micros,
    /// Settled spend in the period.
    pub spent: Micros,
    /// The soft percentage (for [`NoticeKind::SoftCrossed`]).
    pub percent: Option<u8>,
}

impl BudgetNotice {
    /// The event's detail.
    pub fn detail(&self, period_key: &str) -> serde_json::Value {
        serde_json::json!({
            "period": self.period.as_str(),
            "period_key": period_key,
            "limit": self.period.field(),
            "budget_micros": self.budget.get(),
            "spent_micros": self.spent.get(),
            "soft_budget_percent": self.percent,
        })
    }
}

/// The notices due for the budget of `period` in `limits`, given the period's settled
/// `spent`: `budget.soft_crossed` once spend reaches `soft_budget_percent` of it (when set),
/// `budget.exhausted` once spend reaches it. A budget of zero (admits nothing) and zero
/// spend notify nothing.
pub fn budget_notices(limits: &Limits, period: PeriodKind, spent: Micros) -> Vec<BudgetNotice> {
    let budget = match period {
        PeriodKind::Day => limits.budget_micros_per_day,
        PeriodKind::Month => limits.budget_micros_per_month,
    };
    let Some(budget) = budget.map(|b| Micros::new(b.get())).filter(|b| *b > Micros::ZERO) else {
        return Vec::new();
    };
    if spent <= Micros::ZERO {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(p) = limits.soft_budget_percent
        && i128::from(spent.get()) * 100 >= i128::from(budget.get()) * i128::from(p.get())
    {
        out.push(BudgetNotice { kind: NoticeKind::SoftCrossed, period, budget, spent, percent: Some(p.get()) });
    }
    if spent >= budget {
        out.push(BudgetNotice { kind: NoticeKind::Exhausted, period, budget, spent, percent: None });
    }
    out
}

#[cfg(test)]
mod tests;
