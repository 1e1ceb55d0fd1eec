//! Integers as JSON Schema counts them, for every body that carries one (the API's and the
//! policy's own wire shapes): `5` or `5.0`. A number with no fraction is an integer there, so
//! the OpenAPI document's `integer` admits it; beyond 2^53 it must be written without a
//! fraction, where a float could not hold it exactly.

use serde::Deserialize;

/// `n` as an exact `i64`, or the serde error `invalid type: ..., expected an integer`.
///
/// # Errors
/// A fraction, a float beyond ±2^53, or an integer outside `i64`.
pub fn exact_integer<E: serde::de::Error>(n: &serde_json::Number) -> Result<i64, E> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        #[expect(clippy::cast_possible_truncation, reason = "integral and within ±2^53: exact")]
        Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Ok(f as i64),
        _ => Err(E::custom(format!("invalid type: `{n}`, expected an integer"))),
    }
}

/// [`exact_integer`] as a field's deserializer (`#[serde(deserialize_with = ...)]`).
///
/// # Errors
/// Not a number, or as [`exact_integer`].
pub fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    exact_integer(&serde_json::Number::deserialize(d)?)
}

/// [`integral`] for an optional field (with `#[serde(default)]`): `null` is `None`.
///
/// # Errors
/// As [`integral`].
pub fn opt_integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(|n| exact_integer(&n)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<i64, serde_json::Error> {
        exact_integer(&serde_json::from_str::<serde_json::Number>(text)?)
    }

    #[test]
    fn integers_as_json_schema_counts_them() {
        assert_eq!(parse("5").ok(), Some(5));
        assert_eq!(parse("5.0").ok(), Some(5));
        assert_eq!(parse("-9007199254740992.0").ok(), Some(-9_007_199_254_740_992));
        assert_eq!(parse("9223372036854775807").ok(), Some(i64::MAX));
        assert!(parse("5.5").is_err());
        assert!(parse("1e300").is_err());
        assert!(parse("9223372036854775808").is_err());
    }
}
