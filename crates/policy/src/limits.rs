//! Spend controls (DESIGN.md section 14): the `limits` an org or a workspace carries, as
//! parsed values. Each field is a newtype built only through its `parse`, so a value that
//! reaches the store or the proxy is valid by construction: no caller re-checks a range.
//!
//! Budgets are enforced by the proxy with [`crate::budget`]; the rate-limit fields are parsed
//! and stored here and enforced elsewhere.

use serde::{Deserialize, Serialize};

/// The largest budget: 10^15 micro-USD, the bound on an org's balance.
pub const MAX_BUDGET_MICROS: i64 = 1_000_000_000_000_000;
/// The largest per-minute or concurrency figure accepted: beyond it a limit means nothing.
pub const MAX_RATE: u64 = 1_000_000_000_000;

/// Why a `limits` value is refused (the API's 400; the message names the field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field}: {why}")]
pub struct LimitError {
    /// The field, e.g. `budget_micros_per_day`.
    pub field: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl LimitError {
    fn new(field: &'static str, why: impl Into<String>) -> Self {
        Self { field, why: why.into() }
    }
}

/// A hard budget in micro-USD for one period: 0 (admits nothing) to [`MAX_BUDGET_MICROS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BudgetMicros(i64);

impl BudgetMicros {
    /// Parses a budget for field `field`.
    ///
    /// # Errors
    /// Negative or above [`MAX_BUDGET_MICROS`].
    pub fn parse(field: &'static str, micros: i64) -> Result<Self, LimitError> {
        if micros < 0 {
            return Err(LimitError::new(field, format!("a budget cannot be negative (got {micros})")));
        }
        if micros > MAX_BUDGET_MICROS {
            return Err(LimitError::new(field, format!("a budget is at most {MAX_BUDGET_MICROS} micro-USD")));
        }
        Ok(Self(micros))
    }

    /// The budget in micro-USD.
    pub const fn get(self) -> i64 {
        self.0
    }
}

/// The share of a budget whose crossing is notified: 1 to 100 percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SoftPercent(u8);

impl SoftPercent {
    /// Parses a percentage.
    ///
    /// # Errors
    /// Outside 1..=100.
    pub fn parse(percent: i64) -> Result<Self, LimitError> {
        match u8::try_from(percent) {
            Ok(p) if (1..=100).contains(&p) => Ok(Self(p)),
            _ => Err(LimitError::new("soft_budget_percent", format!("must be 1 to 100 (got {percent})"))),
        }
    }

    /// The percentage.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A positive count per minute or at once (`requests_per_minute`, `tokens_per_minute`,
/// `max_concurrent_requests`): 1 to [`MAX_RATE`]. Zero is refused: it would admit nothing,
/// which is what suspension is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RateLimit(u64);

impl RateLimit {
    /// Parses a count for field `field`.
    ///
    /// # Errors
    /// Zero, negative or above [`MAX_RATE`].
    pub fn parse(field: &'static str, n: i64) -> Result<Self, LimitError> {
        match u64::try_from(n) {
            Ok(v) if (1..=MAX_RATE).contains(&v) => Ok(Self(v)),
            _ => Err(LimitError::new(field, format!("must be 1 to {MAX_RATE} (got {n})"))),
        }
    }

    /// The count.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// The `limits` of an org or a workspace. `None`: no such limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Hard budget per UTC day.
    pub budget_micros_per_day: Option<BudgetMicros>,
    /// Hard budget per UTC calendar month.
    pub budget_micros_per_month: Option<BudgetMicros>,
    /// Share of a budget whose crossing is notified (stored; notified by the alarms).
    pub soft_budget_percent: Option<SoftPercent>,
    /// Requests admitted per minute.
    pub requests_per_minute: Option<RateLimit>,
    /// Input plus output tokens per minute.
    pub tokens_per_minute: Option<RateLimit>,
    /// Requests in flight at once.
    pub max_concurrent_requests: Option<RateLimit>,
    /// The platform model ids it may use; `None`: no narrowing. On an org, narrows all of its
    /// workspaces.
    pub allowed_models: Option<Vec<String>>,
}

impl Limits {
    /// Whether any hard budget is set (the proxy's fast path skips budgets otherwise).
    pub fn has_budget(&self) -> bool {
        self.budget_micros_per_day.is_some() || self.budget_micros_per_month.is_some()
    }

    /// `self` with `patch` applied: a field the patch sets replaces this one (`Some(None)`
    /// removes it), the others stay.
    #[must_use]
    pub fn patched(&self, patch: &LimitsPatch) -> Self {
        fn pick<T: Clone>(old: &Option<T>, new: &Option<Option<T>>) -> Option<T> {
            new.as_ref().map_or_else(|| old.clone(), Clone::clone)
        }
        Self {
            budget_micros_per_day: pick(&self.budget_micros_per_day, &patch.budget_micros_per_day),
            budget_micros_per_month: pick(&self.budget_micros_per_month, &patch.budget_micros_per_month),
            soft_budget_percent: pick(&self.soft_budget_percent, &patch.soft_budget_percent),
            requests_per_minute: pick(&self.requests_per_minute, &patch.requests_per_minute),
            tokens_per_minute: pick(&self.tokens_per_minute, &patch.tokens_per_minute),
            max_concurrent_requests: pick(&self.max_concurrent_requests, &patch.max_concurrent_requests),
            allowed_models: pick(&self.allowed_models, &patch.allowed_models),
        }
    }

    /// The models allowed by both an org's and a workspace's `allowed_models` (`None` when
    /// neither narrows): the org's list narrows every one of its workspaces.
    pub fn allowed_models_with(org: Option<&[String]>, workspace: Option<&[String]>) -> Option<Vec<String>> {
        match (org, workspace) {
            (None, None) => None,
            (Some(o), None) => Some(o.to_vec()),
            (None, Some(w)) => Some(w.to_vec()),
            (Some(o), Some(w)) => Some(w.iter().filter(|m| o.contains(m)).cloned().collect()),
        }
    }
}

/// A change to [`Limits`]: `None` leaves a field, `Some(None)` removes it, `Some(Some(v))`
/// sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    /// See [`Limits::budget_micros_per_day`].
    pub budget_micros_per_day: Option<Option<BudgetMicros>>,
    /// See [`Limits::budget_micros_per_month`].
    pub budget_micros_per_month: Option<Option<BudgetMicros>>,
    /// See [`Limits::soft_budget_percent`].
    pub soft_budget_percent: Option<Option<SoftPercent>>,
    /// See [`Limits::requests_per_minute`].
    pub requests_per_minute: Option<Option<RateLimit>>,
    /// See [`Limits::tokens_per_minute`].
    pub tokens_per_minute: Option<Option<RateLimit>>,
    /// See [`Limits::max_concurrent_requests`].
    pub max_concurrent_requests: Option<Option<RateLimit>>,
    /// See [`Limits::allowed_models`] (validated against the registry by the caller).
    pub allowed_models: Option<Option<Vec<String>>>,
}

impl LimitsPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The raw numbers of a `limits` body as JSON gives them (`None`: absent, `Some(None)`:
/// `null`), before parsing. Unknown fields are refused by the deserializer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    /// Micro-USD per UTC day, 0 to 10^15; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_000_i64))]
    pub budget_micros_per_day: Option<Option<i64>>,
    /// Micro-USD per UTC calendar month, 0 to 10^15; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_000_i64))]
    pub budget_micros_per_month: Option<Option<i64>>,
    /// 1 to 100; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 1, maximum = 100))]
    pub soft_budget_percent: Option<Option<i64>>,
    /// At least 1; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000_000_000_i64))]
    pub requests_per_minute: Option<Option<i64>>,
    /// At least 1; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000_000_000_i64))]
    pub tokens_per_minute: Option<Option<i64>>,
    /// At least 1; `null` removes it.
    #[serde(default, deserialize_with = "nullable_integer", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<i64>, minimum = 1, maximum = 1_000_000_000_000_i64))]
    pub max_concurrent_requests: Option<Option<i64>>,
    /// Platform model ids; `null` removes the narrowing.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<Vec<String>>))]
    pub allowed_models: Option<Option<Vec<String>>>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field (with `#[serde(default)]`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// [`nullable`] for an integer, as JSON Schema counts one: `5` or `5.0` (the OpenAPI
/// document's `integer` admits a number with no fraction). Beyond 2^53 it must be written
/// without a fraction, where a float could not hold it exactly.
fn nullable_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(Some(None)),
        Some(n) => crate::json::exact_integer(&n).map(|i| Some(Some(i))),
    }
}

impl LimitsInput {
    /// Parses every given field into a [`LimitsPatch`] (`allowed_models` is passed through:
    /// checking it needs the registry and the runtime).
    ///
    /// # Errors
    /// The first field out of range.
    pub fn parse(&self) -> Result<LimitsPatch, LimitError> {
        fn each<T>(
            v: Option<Option<i64>>,
            f: impl Fn(i64) -> Result<T, LimitError>,
        ) -> Result<Option<Option<T>>, LimitError> {
            v.map(|inner| inner.map(f).transpose()).transpose()
        }
        Ok(LimitsPatch {
            budget_micros_per_day: each(self.budget_micros_per_day, |v| {
                BudgetMicros::parse("budget_micros_per_day", v)
            })?,
            budget_micros_per_month: each(self.budget_micros_per_month, |v| {
                BudgetMicros::parse("budget_micros_per_month", v)
            })?,
            soft_budget_percent: each(self.soft_budget_percent, SoftPercent::parse)?,
            requests_per_minute: each(self.requests_per_minute, |v| RateLimit::parse("requests_per_minute", v))?,
            tokens_per_minute: each(self.tokens_per_minute, |v| RateLimit::parse("tokens_per_minute", v))?,
            max_concurrent_requests: each(self.max_concurrent_requests, |v| {
                RateLimit::parse("max_concurrent_requests", v)
            })?,
            allowed_models: self.allowed_models.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> LimitsInput {
        match serde_json::from_str(json) {
            Ok(r) => r,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn absent_null_and_set_are_three_different_things() {
        let p = raw(r#"{"budget_micros_per_day": 5, "tokens_per_minute": null}"#).parse();
        let p = p.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.budget_micros_per_day, Some(Some(BudgetMicros(5))));
        assert_eq!(p.tokens_per_minute, Some(None));
        assert_eq!(p.requests_per_minute, None);
        let before = Limits {
            tokens_per_minute: Some(RateLimit(9)),
            requests_per_minute: Some(RateLimit(3)),
            ..Limits::default()
        };
        let after = before.patched(&p);
        assert_eq!(after.budget_micros_per_day.map(BudgetMicros::get), Some(5));
        assert_eq!(after.tokens_per_minute, None, "null removes");
        assert_eq!(after.requests_per_minute, Some(RateLimit(3)), "absent leaves");
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases = [
            (r#"{"budget_micros_per_day": -1}"#, "budget_micros_per_day"),
            (r#"{"budget_micros_per_month": 1000000000000001}"#, "budget_micros_per_month"),
            (r#"{"soft_budget_percent": 0}"#, "soft_budget_percent"),
            (r#"{"soft_budget_percent": 101}"#, "soft_budget_percent"),
            (r#"{"requests_per_minute": 0}"#, "requests_per_minute"),
            (r#"{"tokens_per_minute": -5}"#, "tokens_per_minute"),
            (r#"{"max_concurrent_requests": 0}"#, "max_concurrent_requests"),
        ];
        for (json, field) in cases {
            let err = raw(json).parse().err().unwrap_or_else(|| panic!("{json} accepted"));
            assert_eq!(err.field, field, "{json}");
            assert!(err.to_string().starts_with(&format!("limits.{field}")), "{err}");
        }
        assert!(raw(r#"{"budget_micros_per_day": 0, "soft_budget_percent": 100}"#).parse().is_ok());
    }

    #[test]
    fn unknown_fields_and_wrong_types_do_not_parse() {
        assert!(serde_json::from_str::<LimitsInput>(r#"{"budget_per_day": 5}"#).is_err());
        assert!(serde_json::from_str::<LimitsInput>(r#"{"requests_per_minute": "5"}"#).is_err());
        assert!(serde_json::from_str::<LimitsInput>(r#"{"requests_per_minute": 1.5}"#).is_err());
    }

    #[test]
    fn an_orgs_list_narrows_its_workspaces() {
        let l = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(Limits::allowed_models_with(None, None), None);
        assert_eq!(Limits::allowed_models_with(Some(&l(&["a"])), None), Some(l(&["a"])));
        assert_eq!(Limits::allowed_models_with(None, Some(&l(&["b"]))), Some(l(&["b"])));
        assert_eq!(Limits::allowed_models_with(Some(&l(&["a", "b"])), Some(&l(&["b", "c"]))), Some(l(&["b"])));
    }
}
