//! What a request costs: the provider's price of its usage (input-size tiers, service tiers,
//! 5-minute and 1-hour cache writes) and what the org is charged for it (its markup), in
//! integer micro-USD (DESIGN.md section 20).
//!
//! # Rounding
//!
//! A request's usage is priced exactly in pico-USD (integer arithmetic, no float). Then
//! - `provider_cost = ceil(exact / 10^6)` micro-USD, and
//! - `cost = ceil(exact * (100 + markup_percent) / 10^8)` micro-USD (the DESIGN's
//!   `ceil(provider cost x (100 + markup) / 100)` applied to the exact provider cost),
//!
//! each rounded once, upwards: neither is ever below its exact value nor more than one
//! micro-USD above it, so no request is rounded against the customer by more than one
//! micro-USD, and none is under-charged.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::money::{Micros, PicoPerToken, Price, ServiceTier, Usage};

/// An input-size tier: above `above_input_tokens` total input tokens, the whole request is
/// priced at `price` (as Anthropic prices long prompts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tier {
    /// The request's total input (uncached, cache writes and reads) must exceed this.
    pub above_input_tokens: u64,
    /// The rates of the whole request in this tier.
    pub price: Price,
}

/// A service tier's rates, replacing the input, output and cache-read rates of whichever
/// input-size tier applies (cache writes keep theirs: OpenAI reports none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServicePrice {
    /// Uncached input tokens.
    pub input: PicoPerToken,
    /// Output tokens.
    pub output: PicoPerToken,
    /// Tokens read from the prompt cache.
    pub cache_read: PicoPerToken,
}

/// Everything a platform model costs: base rates, input-size tiers in increasing threshold
/// order, and service tiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pricing {
    base: Price,
    tiers: Vec<Tier>,
    service_tiers: BTreeMap<ServiceTier, ServicePrice>,
}

/// Why a [`Pricing`] is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Thresholds must strictly increase (tier `index` does not).
    #[error("tier {index}: above_input_tokens must be greater than the previous tier's")]
    TiersNotIncreasing {
        /// The offending tier.
        index: usize,
    },
}

impl Pricing {
    /// A pricing from its parts. Tiers must be listed with strictly increasing thresholds.
    pub fn new(
        base: Price,
        tiers: Vec<Tier>,
        service_tiers: BTreeMap<ServiceTier, ServicePrice>,
    ) -> Result<Self, PricingError> {
        for (index, pair) in tiers.windows(2).enumerate() {
            if let [a, b] = pair
                && b.above_input_tokens <= a.above_input_tokens
            {
                return Err(PricingError::TiersNotIncreasing { index: index + 1 });
            }
        }
        Ok(Self { base, tiers, service_tiers })
    }

    /// One flat set of rates: no tier, no service tier.
    pub fn flat(base: Price) -> Self {
        Self { base, tiers: Vec::new(), service_tiers: BTreeMap::new() }
    }

    /// The base rates (below every tier, standard service tier).
    pub fn base(&self) -> &Price {
        &self.base
    }

    /// The input-size tiers, thresholds increasing.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The service tiers priced separately.
    pub fn service_tiers(&self) -> &BTreeMap<ServiceTier, ServicePrice> {
        &self.service_tiers
    }

    /// The input-size rates for a request of `total_input` tokens: the last tier whose
    /// threshold it exceeds (thresholds increase, so that is the highest one), else the base.
    fn size_rates(&self, total_input: u64) -> Price {
        self.tiers.iter().rev().find(|t| total_input > t.above_input_tokens).map_or(self.base, |t| t.price)
    }

    /// `rates` with `tier`'s replacements, if the model prices that service tier.
    fn with_service(&self, rates: Price, tier: Option<ServiceTier>) -> Price {
        match tier.and_then(|t| self.service_tiers.get(&t)) {
            Some(s) => Price { input: s.input, output: s.output, cache_read: s.cache_read, ..rates },
            None => rates,
        }
    }

    /// The rates that price `usage`: its input-size tier, then its service tier.
    pub fn rates(&self, usage: &Usage) -> Price {
        self.with_service(self.size_rates(usage.total_input()), usage.service_tier)
    }

    /// The exact provider price of `usage`, in pico-USD.
    pub fn pico_cost(&self, usage: &Usage) -> u128 {
        self.rates(usage).pico_cost(usage)
    }

    /// What the provider bills for `usage` and what an org with `markup` is charged, rounded
    /// as the module docs say.
    pub fn charge(&self, usage: &Usage, markup: Markup) -> Charge {
        let exact = self.pico_cost(usage);
        Charge { provider: Micros::from_pico_ceil(exact), cost: markup.apply(exact) }
    }

    /// The most any request of at most `input_bound` input tokens in total (of any kind) and
    /// at most `output_bound` output tokens can be charged with `markup`: every input token at
    /// the dearest input-side rate and every output token at the dearest output rate, over
    /// every input-size tier such a request can reach and every service tier. For every usage
    /// within the bounds, [`Pricing::charge`]'s `cost` is at most this.
    pub fn worst_case(&self, input_bound: u64, output_bound: u64, markup: Markup) -> Micros {
        let reachable = std::iter::once(self.base)
            .chain(self.tiers.iter().filter(|t| input_bound > t.above_input_tokens).map(|t| t.price));
        let mut worst: u128 = 0;
        for size in reachable {
            let services = std::iter::once(None).chain(self.service_tiers.keys().copied().map(Some));
            for service in services {
                let r = self.with_service(size, service);
                let pico = u128::from(input_bound)
                    .saturating_mul(u128::from(r.dearest_input().get()))
                    .saturating_add(u128::from(output_bound).saturating_mul(u128::from(r.output.get())));
                worst = worst.max(pico);
            }
        }
        markup.apply(worst)
    }
}

/// The provider's price of a request and what the org is charged for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Charge {
    /// What the provider bills the platform, micro-USD.
    pub provider: Micros,
    /// What the org is charged (the provider's price with the org's markup), micro-USD.
    pub cost: Micros,
}

/// An org's price plan: a percentage added to (or, negative, taken off) the provider's
/// price. Greater than -100 (nothing is free by markup) and at most 1000.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Markup(i16);

/// A markup outside (-100, 1000].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("markup_percent must be an integer greater than -100 and at most 1000, not {0}")]
pub struct MarkupError(pub i64);

impl Markup {
    /// No markup: the org pays the provider's price.
    pub const NONE: Markup = Markup(0);
    /// The lowest markup accepted.
    pub const MIN: i64 = -99;
    /// The highest markup accepted.
    pub const MAX: i64 = 1000;

    /// The percentage.
    pub fn percent(self) -> i64 {
        i64::from(self.0)
    }

    /// `ceil(pico * (100 + percent) / 10^8)` micro-USD: the charge for an exact provider price
    /// of `pico` pico-USD, saturating at `i64::MAX`.
    pub fn apply(self, pico: u128) -> Micros {
        // 100 + percent is in [1, 1100]: positive.
        let factor = u128::from(self.0.saturating_add(100).unsigned_abs());
        Micros::from_pico_ceil(pico.saturating_mul(factor).div_ceil(100))
    }
}

impl TryFrom<i64> for Markup {
    type Error = MarkupError;

    fn try_from(value: i64) -> Result<Self, MarkupError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            i16::try_from(value).map(Markup).map_err(|_| MarkupError(value))
        } else {
            Err(MarkupError(value))
        }
    }
}

impl fmt::Display for Markup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

#[cfg(test)]
mod tests;
