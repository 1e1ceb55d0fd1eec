//! (a, c, d) Meters: split anywhere they report the complete stream's usage; cut anywhere
//! they never panic and never report more.

use proptest::prelude::*;
use proptest::sample::Index;
use tollgate_proxy::{AnthropicMeter, OpenAiMeter, Usage};

use crate::support::{Stream, anthropic_stream, cuts, openai_stream, split};

fn anthropic(pieces: &[&[u8]]) -> AnthropicMeter {
    let mut meter = AnthropicMeter::new();
    for piece in pieces {
        meter.observe_chunk(piece);
    }
    meter
}

fn openai(pieces: &[&[u8]]) -> OpenAiMeter {
    let mut meter = OpenAiMeter::new();
    for piece in pieces {
        meter.observe_chunk(piece);
    }
    meter
}

fn at_most(seen: Usage, full: Usage) -> bool {
    seen.input_tokens <= full.input_tokens
        && seen.output_tokens <= full.output_tokens
        && seen.cache_write_tokens <= full.cache_write_tokens
        && seen.cache_write_1h_tokens <= full.cache_write_1h_tokens
        && seen.cache_read_tokens <= full.cache_read_tokens
}

/// The offset at which the marked block's event is dispatched: its blank line's first byte of
/// ending (`\r` of a `\r\n`) has been seen.
fn dispatch_point(stream: &Stream) -> usize {
    let (_, end) = stream.marked_range();
    if stream.bytes[..end].ends_with(b"\r\n") { end - 1 } else { end }
}

proptest! {
    #![proptest_config(crate::config())]

    /// (c) The output count is the last message_delta's (cumulative, never summed); the input
    /// and cache counts the largest seen, the 1-hour part of the writes included; whatever the
    /// split.
    #[test]
    fn anthropic_usage_is_the_last_cumulative_delta(s in anthropic_stream(), cuts in cuts()) {
        let expected = Usage {
            input_tokens: s.input,
            output_tokens: s.output,
            cache_write_tokens: s.cache_write,
            cache_write_1h_tokens: s.cache_write_1h,
            cache_read_tokens: s.cache_read,
            ..Usage::default()
        };
        let meter = anthropic(&split(&s.stream.bytes, &cuts));
        prop_assert_eq!(meter.usage(), expected);
        prop_assert!(meter.completed());
        prop_assert_eq!(meter.malformed_events(), 0);
        prop_assert_eq!(anthropic(&[&s.stream.bytes]).usage(), expected, "whole");
    }

    /// (d) Cut at any byte and split anywhere: no panic, no more than the complete stream,
    /// and not completed before message_stop's blank line.
    #[test]
    fn anthropic_truncated_reports_at_most_the_complete_usage(s in anthropic_stream(), cut in any::<Index>(), cuts in cuts()) {
        let full = anthropic(&[&s.stream.bytes]).usage();
        let cut = cut.index(s.stream.bytes.len() + 1);
        let prefix = &s.stream.bytes[..cut];
        let meter = anthropic(&split(prefix, &cuts));
        prop_assert!(at_most(meter.usage(), full), "{:?} > {:?}", meter.usage(), full);
        prop_assert_eq!(meter.completed(), cut >= dispatch_point(&s.stream));
        prop_assert_eq!(meter.usage(), anthropic(&[prefix]).usage(), "the split does not matter");
    }

    /// (a) OpenAI: the usage chunk gives input = prompt - cached, whatever the split.
    #[test]
    fn openai_usage_whatever_the_split(s in openai_stream(), cuts in cuts()) {
        let meter = openai(&split(&s.stream.bytes, &cuts));
        let expected = Usage {
            input_tokens: s.prompt - s.cached,
            output_tokens: s.completion,
            cache_write_tokens: 0,
            cache_read_tokens: s.cached,
            ..Usage::default()
        };
        prop_assert_eq!(meter.usage(), expected);
        prop_assert!(meter.completed());
        prop_assert_eq!(meter.malformed_events(), 0);
    }

    /// (d) OpenAI cut at any byte: zero or the whole usage, complete only once the usage chunk
    /// was seen.
    #[test]
    fn openai_truncated_reports_at_most_the_complete_usage(s in openai_stream(), cut in any::<Index>(), cuts in cuts()) {
        let full = openai(&[&s.stream.bytes]).usage();
        let cut = cut.index(s.stream.bytes.len() + 1);
        let meter = openai(&split(&s.stream.bytes[..cut], &cuts));
        let seen = cut >= dispatch_point(&s.stream);
        prop_assert_eq!(meter.usage(), if seen { full } else { Usage::default() });
        prop_assert_eq!(meter.completed(), seen);
    }

    /// (d) Arbitrary bytes never panic a meter, streamed or as a body.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), cuts in cuts()) {
        let pieces = split(&bytes, &cuts);
        let mut a = anthropic(&pieces);
        let mut o = openai(&pieces);
        a.observe_body(&bytes);
        o.observe_body(&bytes);
        let _ = (a.usage(), o.usage(), a.completed(), o.completed());
    }
}
