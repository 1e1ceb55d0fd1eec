//! Money in integer micro-USD and prices in integer pico-USD per token.
//!
//! A list price of 1 USD per million tokens is exactly 1 micro-USD per token, so prices are
//! kept as pico-USD per token (six decimal places of USD per million tokens) and every cost
//! is integer arithmetic: no float ever touches a balance.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in micro-USD (1 USD = 1,000,000). Signed: a ledger delta can be negative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(i64);

impl Micros {
    /// Zero micro-USD.
    pub const ZERO: Micros = Micros(0);

    /// Wraps a raw micro-USD amount.
    pub const fn new(micros: i64) -> Self {
        Self(micros)
    }

    /// The raw micro-USD amount.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Micros) -> Option<Micros> {
        self.0.checked_sub(other.0).map(Micros)
    }
}

impl fmt::Display for Micros {
    /// Formats as USD with six decimals, e.g. `$1.250000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// A per-token price in pico-USD (10^-12 USD). `3 USD / Mtok` is `3_000_000` pico-USD per token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PicoPerToken(u64);

/// Why a price in the registry is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// Negative, NaN or infinite.
    #[error("a price must be a finite number of USD per million tokens, at least 0")]
    NotFinite,
    /// More precision than a pico-USD per token.
    #[error("a price has at most 6 decimal places (USD per million tokens)")]
    TooPrecise,
    /// Absurdly large.
    #[error("a price above 1,000,000 USD per million tokens is surely a mistake")]
    TooLarge,
}

impl PicoPerToken {
    /// Converts a list price in USD per million tokens, exactly, to pico-USD per token.
    ///
    /// Rejects negative, non-finite, over-precise (more than 6 decimals) and absurd prices.
    pub fn from_usd_per_mtok(usd: f64) -> Result<Self, PriceError> {
        if !usd.is_finite() || usd < 0.0 {
            return Err(PriceError::NotFinite);
        }
        if usd > 1_000_000.0 {
            return Err(PriceError::TooLarge);
        }
        let scaled = usd * 1_000_000.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return Err(PriceError::TooPrecise);
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "rounded is a non-negative integer below 1e12, exact in f64 and u64"
        )]
        Ok(Self(rounded as u64))
    }

    /// Wraps a raw pico-USD-per-token value.
    pub const fn new(pico: u64) -> Self {
        Self(pico)
    }

    /// The raw pico-USD per token.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// The four token prices of a platform model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Price {
    /// Uncached input tokens.
    pub input: PicoPerToken,
    /// Output tokens.
    pub output: PicoPerToken,
    /// Tokens written to the prompt cache.
    pub cache_write: PicoPerToken,
    /// Tokens read from the prompt cache.
    pub cache_read: PicoPerToken,
}

/// Token counts of one request, as metered from the provider's response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: u64,
}

impl Price {
    /// The cost of `usage`, rounded up to the next micro-USD so that a request is never
    /// under-charged; saturates at `i64::MAX` micro-USD rather than wrapping.
    pub fn cost(&self, usage: &Usage) -> Micros {
        let term = |tokens: u64, price: PicoPerToken| u128::from(tokens) * u128::from(price.0);
        // Each term is below 2^128; the sum of four may not be, hence saturating adds.
        let pico = term(usage.input_tokens, self.input)
            .saturating_add(term(usage.output_tokens, self.output))
            .saturating_add(term(usage.cache_write_tokens, self.cache_write))
            .saturating_add(term(usage.cache_read_tokens, self.cache_read));
        let micros = pico.div_ceil(1_000_000);
        Micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(usd: f64) -> PicoPerToken {
        PicoPerToken::from_usd_per_mtok(usd).unwrap_or_default()
    }

    #[test]
    fn list_prices_convert_exactly() {
        assert_eq!(p(3.0).get(), 3_000_000);
        assert_eq!(p(0.125).get(), 125_000);
        assert_eq!(p(6.25).get(), 6_250_000);
        assert_eq!(p(0.000001).get(), 1);
        assert_eq!(p(0.0).get(), 0);
    }

    #[test]
    fn price_boundaries() {
        assert_eq!(PicoPerToken::from_usd_per_mtok(0.0), Ok(PicoPerToken::new(0)), "free is a price");
        assert_eq!(PicoPerToken::from_usd_per_mtok(1_000_000.0), Ok(PicoPerToken::new(1_000_000_000_000)));
        assert_eq!(PicoPerToken::from_usd_per_mtok(1_000_000.5), Err(PriceError::TooLarge));
    }

    #[test]
    fn bad_prices_are_rejected() {
        assert_eq!(PicoPerToken::from_usd_per_mtok(-1.0), Err(PriceError::NotFinite));
        assert_eq!(PicoPerToken::from_usd_per_mtok(f64::NAN), Err(PriceError::NotFinite));
        assert_eq!(PicoPerToken::from_usd_per_mtok(f64::INFINITY), Err(PriceError::NotFinite));
        assert_eq!(PicoPerToken::from_usd_per_mtok(0.0000001), Err(PriceError::TooPrecise));
        assert_eq!(PicoPerToken::from_usd_per_mtok(2e6), Err(PriceError::TooLarge));
    }

    /// The precision check tolerates float noise up to and including a millionth of a
    /// pico-USD: 1e-12 USD per million tokens is exactly that far from zero in f64.
    #[test]
    fn float_noise_at_the_tolerance_is_accepted() {
        assert_eq!(PicoPerToken::from_usd_per_mtok(1e-12), Ok(PicoPerToken::new(0)));
    }

    #[test]
    fn cost_is_exact_and_rounds_up() {
        let price = Price { input: p(3.0), output: p(15.0), cache_write: p(3.75), cache_read: p(0.3) };
        let usage = Usage { input_tokens: 1000, output_tokens: 500, cache_write_tokens: 200, cache_read_tokens: 100 };
        // 3000 + 7500 + 750 + 30 micro-USD
        assert_eq!(price.cost(&usage), Micros::new(11_280));
        let tiny = Price { input: p(0.125), output: p(0.0), cache_write: p(0.0), cache_read: p(0.0) };
        let one = Usage { input_tokens: 1, ..Usage::default() };
        assert_eq!(tiny.cost(&one), Micros::new(1), "a fraction of a micro-USD rounds up");
        assert_eq!(tiny.cost(&Usage::default()), Micros::ZERO);
        let eight = Usage { input_tokens: 8, ..Usage::default() };
        assert_eq!(tiny.cost(&eight), Micros::new(1), "8 * 0.125 is exactly 1");
        let nine = Usage { input_tokens: 9, ..Usage::default() };
        assert_eq!(tiny.cost(&nine), Micros::new(2));
    }

    #[test]
    fn cost_saturates_instead_of_wrapping() {
        let price = Price {
            input: PicoPerToken::new(u64::MAX),
            output: PicoPerToken::new(u64::MAX),
            cache_write: PicoPerToken::new(u64::MAX),
            cache_read: PicoPerToken::new(u64::MAX),
        };
        let usage = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            cache_read_tokens: u64::MAX,
        };
        assert_eq!(price.cost(&usage), Micros::new(i64::MAX));
    }

    #[test]
    fn micros_display_and_arithmetic() {
        assert_eq!(Micros::new(1_250_000).to_string(), "$1.250000");
        assert_eq!(Micros::new(-5).to_string(), "-$0.000005");
        assert_eq!(Micros::ZERO.to_string(), "$0.000000", "zero has no sign");
        assert_eq!(Micros::new(1).checked_add(Micros::new(2)), Some(Micros::new(3)));
        assert_eq!(Micros::new(1).checked_sub(Micros::new(2)), Some(Micros::new(-1)));
        assert_eq!(Micros::new(i64::MAX).checked_add(Micros::new(1)), None);
        assert_eq!(Micros::new(i64::MIN).checked_sub(Micros::new(1)), None);
        assert_eq!(Micros::new(7).get(), 7);
    }
}
