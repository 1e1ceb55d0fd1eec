use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn p(usd: f64) -> PicoPerToken {
    PicoPerToken::from_usd_per_mtok(usd).unwrap_or_default()
}

fn rates(input: f64, output: f64, write: f64, write_1h: f64, read: f64) -> Price {
    Price {
        input: p(input),
        output: p(output),
        cache_write: p(write),
        cache_write_1h: p(write_1h),
        cache_read: p(read),
    }
}

/// Sonnet 4.5's published prices: a long-context tier above 200k input tokens.
fn sonnet() -> Pricing {
    let tier = Tier { above_input_tokens: 200_000, price: rates(6.0, 22.5, 7.5, 12.0, 0.6) };
    Pricing::new(rates(3.0, 15.0, 3.75, 6.0, 0.3), vec![tier], BTreeMap::new()).unwrap_or_else(|_| sonnet_flat())
}

fn sonnet_flat() -> Pricing {
    Pricing::flat(rates(3.0, 15.0, 3.75, 6.0, 0.3))
}

fn gpt5() -> Pricing {
    let priority = ServicePrice { input: p(2.5), output: p(20.0), cache_read: p(0.25) };
    let flex = ServicePrice { input: p(0.625), output: p(5.0), cache_read: p(0.0625) };
    let tiers = BTreeMap::from([(ServiceTier::Priority, priority), (ServiceTier::Flex, flex)]);
    Pricing::new(rates(1.25, 10.0, 1.25, 1.25, 0.125), Vec::new(), tiers).unwrap_or_else(|_| sonnet_flat())
}

fn markup(m: i64) -> Markup {
    Markup::try_from(m).unwrap_or_default()
}

#[test]
fn the_tier_is_chosen_by_the_total_input_and_prices_the_whole_request() {
    let pricing = sonnet();
    assert_eq!(pricing.tiers().len(), 1);
    // 200,000 in total is not above the threshold: base rates.
    let at = Usage { input_tokens: 100_000, cache_read_tokens: 100_000, output_tokens: 1000, ..Usage::default() };
    assert_eq!(pricing.charge(&at, Markup::NONE).provider, Micros::new(300_000 + 30_000 + 15_000));
    // One more cache-read token crosses it: every token at the long-context rates.
    let above = Usage { cache_read_tokens: 100_001, ..at };
    assert_eq!(pricing.charge(&above, Markup::NONE).provider, Micros::new(600_000 + 60_001 + 22_500));
}

#[test]
fn one_hour_writes_cost_twice_the_input_and_five_minute_ones_one_and_a_quarter() {
    let usage = Usage { cache_write_tokens: 10_000, cache_write_1h_tokens: 4_000, ..Usage::default() };
    assert_eq!(sonnet().charge(&usage, Markup::NONE).provider, Micros::new(6_000 * 375 / 100 + 4_000 * 6));
}

#[test]
fn a_priced_service_tier_replaces_input_output_and_cache_read() {
    let pricing = gpt5();
    let usage = Usage { input_tokens: 1000, output_tokens: 1000, cache_read_tokens: 1000, ..Usage::default() };
    assert_eq!(pricing.charge(&usage, Markup::NONE).provider, Micros::new(1250 + 10_000 + 125));
    let priority = Usage { service_tier: Some(ServiceTier::Priority), ..usage };
    assert_eq!(pricing.charge(&priority, Markup::NONE).provider, Micros::new(2500 + 20_000 + 250));
    let flex = Usage { service_tier: Some(ServiceTier::Flex), ..usage };
    assert_eq!(pricing.charge(&flex, Markup::NONE).provider, Micros::new(625 + 5000 + 63), "62.5 rounds up");
    // A model without service tiers charges its base rates whatever the response says.
    assert_eq!(sonnet().charge(&priority, Markup::NONE), sonnet().charge(&usage, Markup::NONE));
}

#[test]
fn markup_is_applied_to_the_exact_price_and_rounded_up_once() {
    let pricing = gpt5();
    // 3 tokens at 1.25 USD/Mtok: 3.75 micro-USD exactly.
    let usage = Usage { input_tokens: 3, ..Usage::default() };
    assert_eq!(pricing.charge(&usage, Markup::NONE), Charge { provider: Micros::new(4), cost: Micros::new(4) });
    // +20%: 4.5 -> 5 (not ceil(4 * 1.2) = 5 by luck: see the next one).
    assert_eq!(pricing.charge(&usage, markup(20)).cost, Micros::new(5));
    // +60%: 6.0 exactly, where rounding the provider price first would give ceil(6.4) = 7.
    assert_eq!(pricing.charge(&usage, markup(60)).cost, Micros::new(6));
    // -50%: 1.875 -> 2.
    assert_eq!(pricing.charge(&usage, markup(-50)).cost, Micros::new(2));
    assert_eq!(pricing.charge(&Usage::default(), markup(1000)).cost, Micros::ZERO);
}

#[test]
fn markup_bounds() {
    assert!(Markup::try_from(-100).is_err(), "-100 would make everything free");
    assert_eq!(Markup::try_from(-99).map(Markup::percent), Ok(-99));
    assert_eq!(Markup::try_from(1000).map(Markup::percent), Ok(1000));
    assert_eq!(Markup::try_from(1001), Err(MarkupError(1001)));
    assert!(Markup::try_from(i64::MAX).is_err());
    assert_eq!(Markup::default(), Markup::NONE);
    assert_eq!(markup(25).to_string(), "25%");
}

#[test]
fn tiers_must_increase() {
    let t = |above| Tier { above_input_tokens: above, price: rates(1.0, 1.0, 1.0, 1.0, 1.0) };
    let base = rates(1.0, 1.0, 1.0, 1.0, 1.0);
    assert_eq!(
        Pricing::new(base, vec![t(10), t(10)], BTreeMap::new()),
        Err(PricingError::TiersNotIncreasing { index: 1 })
    );
    assert!(Pricing::new(base, vec![t(10), t(20)], BTreeMap::new()).is_ok());
}

#[test]
fn the_worst_case_reaches_only_the_tiers_the_input_bound_can_reach() {
    let pricing = sonnet();
    // Up to 200,000 input tokens: the base tier's dearest input rate (6, the 1-hour write).
    assert_eq!(pricing.worst_case(200_000, 0, Markup::NONE), Micros::new(1_200_000));
    // One more: the long-context tier's (12).
    assert_eq!(pricing.worst_case(200_001, 0, Markup::NONE), Micros::new(2_400_012));
    // Priority output is dearer than standard.
    assert_eq!(gpt5().worst_case(0, 1000, Markup::NONE), Micros::new(20_000));
    assert_eq!(gpt5().worst_case(0, 1000, markup(10)), Micros::new(22_000));
}

fn price_strategy() -> impl Strategy<Value = Price> {
    let r = || 0..50_000_000_u64;
    (r(), r(), r(), r(), r()).prop_map(|(i, o, w, h, c)| Price {
        input: PicoPerToken::new(i),
        output: PicoPerToken::new(o),
        cache_write: PicoPerToken::new(w),
        cache_write_1h: PicoPerToken::new(h),
        cache_read: PicoPerToken::new(c),
    })
}

prop_compose! {
    fn pricing_strategy()(
        base in price_strategy(),
        tiers in proptest::collection::vec((1..500_000_u64, price_strategy()), 0..3),
        services in proptest::collection::vec((any::<bool>(), 0..80_000_000_u64, 0..80_000_000_u64, 0..80_000_000_u64), 0..3),
    ) -> Pricing {
        let mut tiers: Vec<Tier> = tiers.into_iter().map(|(above, price)| Tier { above_input_tokens: above, price }).collect();
        tiers.sort_by_key(|t| t.above_input_tokens);
        tiers.dedup_by_key(|t| t.above_input_tokens);
        let services = services
            .into_iter()
            .map(|(prio, i, o, c)| {
                let tier = if prio { ServiceTier::Priority } else { ServiceTier::Flex };
                (tier, ServicePrice { input: PicoPerToken::new(i), output: PicoPerToken::new(o), cache_read: PicoPerToken::new(c) })
            })
            .collect();
        Pricing::new(base, tiers, services).unwrap_or_else(|_| Pricing::flat(base))
    }
}

prop_compose! {
    /// A usage within `input_bound` input tokens in total and `output_bound` output tokens.
    fn usage_within(input_bound: u64, output_bound: u64)(
        shares in (0..=input_bound, 0..=input_bound, 0..=input_bound),
        one_hour in 0..=input_bound,
        output in 0..=output_bound,
        tier in proptest::option::of(prop_oneof![Just(ServiceTier::Priority), Just(ServiceTier::Flex)]),
    ) -> Usage {
        // Split the bound among the kinds: their sum never exceeds it.
        let mut cuts = [shares.0, shares.1, shares.2];
        cuts.sort_unstable();
        let (input, write, read) = (cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1]);
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_write_tokens: write,
            cache_write_1h_tokens: one_hour,
            cache_read_tokens: read,
            service_tier: tier,
        }
    }
}

proptest! {
    /// Settlement never exceeds the reservation: for any prices (tiers and service tiers
    /// included), any markup and any usage within the request's bounds.
    #[test]
    fn no_usage_within_the_bounds_is_charged_more_than_the_worst_case(
        pricing in pricing_strategy(),
        m in Markup::MIN..=Markup::MAX,
        (input_bound, output_bound, usage) in (0..1_000_000_u64, 0..100_000_u64)
            .prop_flat_map(|(i, o)| (Just(i), Just(o), usage_within(i, o))),
    ) {
        let markup = markup(m);
        let worst = pricing.worst_case(input_bound, output_bound, markup);
        let charge = pricing.charge(&usage, markup);
        prop_assert!(charge.cost <= worst, "{charge:?} above {worst} for {usage:?}");
    }

    /// Each figure is at least its exact value and less than one micro-USD above it.
    #[test]
    fn rounding_is_at_most_one_micro_usd_and_never_under(
        pricing in pricing_strategy(),
        m in Markup::MIN..=Markup::MAX,
        usage in usage_within(1_000_000, 100_000),
    ) {
        let exact = pricing.pico_cost(&usage);
        let charge = pricing.charge(&usage, markup(m));
        let provider = u128::try_from(charge.provider.get()).unwrap_or(0) * 1_000_000;
        prop_assert!(provider >= exact && provider < exact + 1_000_000);
        let factor = u128::try_from(100 + m).unwrap_or(0);
        let exact_cost = exact * factor; // in 10^-14 USD
        let cost = u128::try_from(charge.cost.get()).unwrap_or(0) * 100_000_000;
        prop_assert!(cost >= exact_cost && cost < exact_cost + 100_000_000);
    }
}
