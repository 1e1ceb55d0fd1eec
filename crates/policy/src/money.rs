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

/// One set of token prices (a model's base rates, one input-size tier's, or a service tier's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Price {
    /// Uncached input tokens.
    pub input: PicoPerToken,
    /// Output tokens.
    pub output: PicoPerToken,
    /// Tokens written to the prompt cache with the default (5-minute) TTL.
    pub cache_write: PicoPerToken,
    /// Tokens written to the prompt cache with the 1-hour TTL.
    pub cache_write_1h: PicoPerToken,
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
    /// Tokens written to the prompt cache, whatever their TTL.
    pub cache_write_tokens: u64,
    /// Of `cache_write_tokens`, those written with the 1-hour TTL (the rest are 5-minute
    /// writes). Never more than `cache_write_tokens` in a usage a meter reports.
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// The service tier the response reports it was served at (OpenAI's `service_tier`);
    /// `None` for the standard tier or one the registry does not price separately.
    #[serde(default)]
    pub service_tier: Option<ServiceTier>,
}

impl Usage {
    /// Every input token of the request: uncached, written to and read from the cache. What
    /// selects an input-size tier (DESIGN.md section 20).
    pub fn total_input(&self) -> u64 {
        self.input_tokens.saturating_add(self.cache_write_tokens).saturating_add(self.cache_read_tokens)
    }

    /// The 5-minute and 1-hour parts of the cache writes; a 1-hour count above the total
    /// is clamped to it.
    pub fn cache_write_split(&self) -> (u64, u64) {
        let one_hour = self.cache_write_1h_tokens.min(self.cache_write_tokens);
        (self.cache_write_tokens - one_hour, one_hour)
    }
}

/// A provider's service tier with its own prices (OpenAI's `service_tier` in a response).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ServiceTier {
    /// Priority processing: dearer, faster.
    Priority,
    /// Flex processing: cheaper, slower.
    Flex,
}

impl ServiceTier {
    /// The tier a response's `service_tier` names, `None` for the standard one (`default`,
    /// `auto`) or any other value (priced at the standard rates).
    pub fn from_response(value: &str) -> Option<Self> {
        value.parse().ok()
    }

    /// The name as the registry and the provider write it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Price {
    /// The exact cost of `usage` at these rates in pico-USD, each cache write at its TTL's
    /// rate; saturates rather than wrapping.
    pub fn pico_cost(&self, usage: &Usage) -> u128 {
        let term = |tokens: u64, price: PicoPerToken| u128::from(tokens) * u128::from(price.0);
        let (write_5m, write_1h) = usage.cache_write_split();
        // Each term is below 2^128; the sum of five may not be, hence saturating adds.
        term(usage.input_tokens, self.input)
            .saturating_add(term(usage.output_tokens, self.output))
            .saturating_add(term(write_5m, self.cache_write))
            .saturating_add(term(write_1h, self.cache_write_1h))
            .saturating_add(term(usage.cache_read_tokens, self.cache_read))
    }

    /// The cost of `usage` at these rates, rounded up to the next micro-USD so that a request
    /// is never under-charged (and over-charged by less than one micro-USD); saturates at
    /// `i64::MAX` micro-USD rather than wrapping.
    pub fn cost(&self, usage: &Usage) -> Micros {
        Micros::from_pico_ceil(self.pico_cost(usage))
    }

    /// The dearest of the four input-side prices: what an input token of unknown kind may cost.
    pub fn dearest_input(&self) -> PicoPerToken {
        self.input.max(self.cache_write).max(self.cache_write_1h).max(self.cache_read)
    }
}

impl Micros {
    /// `pico` pico-USD rounded up to the next micro-USD, saturating at `i64::MAX`.
    pub fn from_pico_ceil(pico: u128) -> Micros {
        Micros(i64::try_from(pico.div_ceil(1_000_000)).unwrap_or(i64::MAX))
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
        let price =
            Price { input: p(3.0), output: p(15.0), cache_write: p(3.75), cache_write_1h: p(6.0), cache_read: p(0.3) };
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 500,
            cache_write_tokens: 200,
            cache_read_tokens: 100,
            ..Usage::default()
        };
        // 3000 + 7500 + 750 + 30 micro-USD
        assert_eq!(price.cost(&usage), Micros::new(11_280));
        let tiny =
            Price { input: p(0.125), output: p(0.0), cache_write: p(0.0), cache_write_1h: p(0.0), cache_read: p(0.0) };
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
            cache_write_1h: PicoPerToken::new(u64::MAX),
            cache_read: PicoPerToken::new(u64::MAX),
        };
        let usage = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            cache_write_1h_tokens: u64::MAX / 2,
            cache_read_tokens: u64::MAX,
            service_tier: None,
        };
        assert_eq!(price.cost(&usage), Micros::new(i64::MAX));
    }

    #[test]
    fn one_hour_writes_are_priced_at_their_rate() {
        let price =
            Price { input: p(3.0), output: p(15.0), cache_write: p(3.75), cache_write_1h: p(6.0), cache_read: p(0.3) };
        let usage = Usage { cache_write_tokens: 1000, cache_write_1h_tokens: 400, ..Usage::default() };
        // 600 * 3.75 + 400 * 6 micro-USD
        assert_eq!(price.cost(&usage), Micros::new(2250 + 2400));
        let clamped = Usage { cache_write_tokens: 100, cache_write_1h_tokens: 500, ..Usage::default() };
        assert_eq!(clamped.cache_write_split(), (0, 100), "the 1-hour part never exceeds the writes");
        assert_eq!(price.cost(&clamped), Micros::new(600));
    }

    #[test]
    fn service_tiers_parse_from_responses() {
        assert_eq!(ServiceTier::from_response("priority"), Some(ServiceTier::Priority));
        assert_eq!(ServiceTier::from_response("flex"), Some(ServiceTier::Flex));
        assert_eq!(ServiceTier::from_response("default"), None);
        assert_eq!(ServiceTier::from_response("auto"), None);
        assert_eq!(ServiceTier::Priority.as_str(), "priority");
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
