//! (f) The charge of a stream that ends without its usage (DESIGN.md section 13): cut a
//! recorded stream of any of the three protocols at any byte, and the charge is at least the
//! estimate of the content relayed before the cut and never more than the request's
//! worst-case reservation; with OpenAI's tokenizer (`o200k_base`, OpenAI's meters) as with
//! the characters-per-token ratio, and for a reasoning model (hidden reasoning) too.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use tollgate_policy::money::{PicoPerToken, Price};
use tollgate_policy::registry::Protocol;
use tollgate_policy::{Markup, Micros, Pricing};
use tollgate_proxy::meter::relayed::{
    CHARS_PER_TOKEN, TokenCounter, estimated_charge, estimated_usage, estimated_usage_hiding_reasoning,
};
use tollgate_proxy::{Meter, Usage};

/// Which meter reads a recorded stream.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Anthropic,
    Chat,
    Responses,
}

const RESPONSES: &str = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n\
event: response.reasoning_summary_text.delta\ndata: {\"type\":\"response.reasoning_summary_text.delta\",\"delta\":\"Thinking about the \\\"weather\\\".\"}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"It is sunny \u{2600} in Paris.\"}\n\n\
event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"city\\\":\\\"Paris\\\"}\"}\n\n\
event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"It is sunny in Paris.\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":50,\"output_tokens\":30}}}\n\n";

/// Recorded streams (the fixtures) and the meter for each.
fn recorded() -> [(Kind, &'static str); 5] {
    [
        (Kind::Anthropic, include_str!("../fixtures/anthropic_text.sse")),
        (Kind::Anthropic, include_str!("../fixtures/anthropic_tool_use.sse")),
        (Kind::Chat, include_str!("../fixtures/openai_usage.sse")),
        (Kind::Chat, include_str!("../fixtures/openai_no_usage.sse")),
        (Kind::Responses, RESPONSES),
    ]
}

fn meter(kind: Kind, tokenizer: bool) -> Meter {
    let m = match kind {
        Kind::Anthropic => Meter::new(Protocol::Anthropic),
        Kind::Chat => Meter::new(Protocol::Openai),
        Kind::Responses => Meter::responses(),
    };
    let counter = if tokenizer { TokenCounter::for_model(Protocol::Openai, "gpt-5") } else { TokenCounter::Ratio };
    m.with_counter(counter)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The content pieces (text, thinking, tool-call arguments) of the events completed in
/// `prefix`, read independently of the meter: whole blocks only, JSON decoded.
fn relayed_before(kind: Kind, prefix: &str) -> Vec<String> {
    let complete = prefix.rfind("\n\n").map_or("", |at| &prefix[..at + 2]);
    let payloads = complete
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim_start()).ok());
    payloads
        .flat_map(|p| match kind {
            Kind::Anthropic if p["type"] == "content_block_delta" => {
                let d = &p["delta"];
                [text(&d["text"]), text(&d["thinking"]), text(&d["partial_json"])].into_iter().flatten().collect()
            }
            Kind::Chat => p["choices"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| {
                    let calls = c["delta"]["tool_calls"].as_array().cloned().unwrap_or_default();
                    let args = calls.iter().filter_map(|t| text(&t["function"]["arguments"])).collect::<Vec<_>>();
                    text(&c["delta"]["content"]).into_iter().chain(args)
                })
                .collect(),
            Kind::Responses if p["type"].as_str().is_some_and(|t| t.ends_with(".delta")) => {
                text(&p["delta"]).into_iter().collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The independent estimate of `pieces`: OpenAI's `o200k_base` count of each (when
/// `tokenizer`), else their characters at [`CHARS_PER_TOKEN`].
fn estimate_of(pieces: &[String], tokenizer: bool) -> u64 {
    if tokenizer {
        let bpe = tiktoken_rs::o200k_base_singleton();
        pieces.iter().map(|p| bpe.encode_ordinary(p).len() as u64).sum()
    } else {
        pieces.iter().map(|p| p.chars().count() as u64).sum::<u64>().div_ceil(CHARS_PER_TOKEN)
    }
}

fn price() -> impl Strategy<Value = Pricing> {
    (0..5_000_000_u64, 0..20_000_000_u64, 0..6_000_000_u64, 0..10_000_000_u64, 0..1_000_000_u64).prop_map(
        |(i, o, w, h, r)| {
            Pricing::flat(Price {
                input: PicoPerToken::new(i),
                output: PicoPerToken::new(o),
                cache_write: PicoPerToken::new(w),
                cache_write_1h: PicoPerToken::new(h),
                cache_read: PicoPerToken::new(r),
            })
        },
    )
}

/// The worst case the proxy reserves ([`Pricing::worst_case`]; its own property tests show it
/// bounds every usage within the request's bounds).
fn worst_case(price: &Pricing, input_estimate: u64, max_output: u64, markup: Markup) -> Micros {
    price.worst_case(input_estimate, max_output, markup)
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn a_cut_stream_is_charged_at_least_what_it_relayed_and_at_most_the_worst_case(
        which in 0..5_usize,
        cut in any::<Index>(),
        price in price(),
        input_estimate in 0..100_000_u64,
        max_output in 1..2_000_u64,
        markup in -99..=1000_i64,
        tokenizer in any::<bool>(),
        reasoning in any::<bool>(),
    ) {
        let markup = Markup::try_from(markup).unwrap();
        let (kind, stream) = recorded()[which];
        // OpenAI's tokenizer applies to OpenAI's meters only; Anthropic keeps the ratio.
        let tokenizer = tokenizer && !matches!(kind, Kind::Anthropic);
        let at = cut.index(stream.len() + 1);
        let prefix = stream.as_bytes().get(..at).unwrap();
        let mut m = meter(kind, tokenizer);
        m.observe_chunk(prefix);
        let seen = m.usage();
        let usage = if reasoning {
            estimated_usage_hiding_reasoning(seen, m.relayed_tokens(), input_estimate, max_output)
        } else {
            estimated_usage(seen, m.relayed_tokens(), input_estimate, max_output)
        };
        let reserved = worst_case(&price, input_estimate, max_output, markup);
        let cost = estimated_charge(&price, &usage, markup, reserved).cost;

        let pieces = relayed_before(kind, &String::from_utf8_lossy(prefix));
        let estimate = estimate_of(&pieces, tokenizer).min(max_output);
        prop_assert!(usage.output_tokens >= estimate, "{usage:?} below the estimate {estimate}");
        if reasoning {
            prop_assert!(usage.output_tokens >= max_output, "hidden reasoning is charged the output limit");
        }
        prop_assert!(usage.output_tokens >= seen.output_tokens && usage.input_tokens >= seen.input_tokens);
        let no_input = seen.input_tokens + seen.cache_read_tokens + seen.cache_write_tokens == 0;
        let floor = Usage {
            input_tokens: if no_input { input_estimate } else { seen.input_tokens },
            output_tokens: estimate,
            ..seen
        };
        let floor_cost = price.charge(&floor, markup).cost;
        prop_assert!(cost >= floor_cost.min(reserved), "{cost} below the floor {floor_cost}");
        prop_assert!(cost <= reserved, "{cost} above the worst case {reserved}");
    }
}

/// Whole, each recorded stream's relayed content is what the independent count finds, and
/// not nothing.
#[test]
fn the_meter_counts_all_the_content_of_each_recorded_stream() {
    for (kind, stream) in recorded() {
        let mut m = meter(kind, false);
        m.observe_chunk(stream.as_bytes());
        let pieces = relayed_before(kind, stream);
        assert!(m.relayed_chars() > 0, "{kind:?}");
        assert!(m.relayed_chars() >= pieces.iter().map(|p| p.chars().count() as u64).sum::<u64>(), "{kind:?}");
        if !matches!(kind, Kind::Anthropic) {
            let mut t = meter(kind, true);
            t.observe_chunk(stream.as_bytes());
            assert_eq!(t.relayed_tokens(), estimate_of(&pieces, true), "{kind:?}: o200k counts every piece");
            assert!(t.relayed_tokens() > 0);
        }
    }
}
