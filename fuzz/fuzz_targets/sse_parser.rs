//! The SSE parser against a plain reference implementation, under every chunking.
//!
//! Properties: with the default limit the events equal the reference parser's, whatever the
//! chunking; the blank lines reported by `feed_with_offsets` are the same stream positions
//! whatever the chunking; with a small limit, the events are the same under every chunking, a
//! subsequence of the reference's, and none exceeds the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::{RefEvent, chunkings, reference_events};
use tollgate_proxy::SseParser;

const SMALL_LIMIT: usize = 48;

/// Feeds `chunks`; returns the events and the absolute stream offsets of the blank lines.
fn run(parser: &mut SseParser, stream: &[u8], chunks: &[&[u8]]) -> (Vec<RefEvent>, Vec<usize>) {
    let mut events = Vec::new();
    let mut blanks = Vec::new();
    let mut base = 0;
    for chunk in chunks {
        let mut last = 0;
        parser.feed_with_offsets(chunk, |end, event| {
            assert!(end > last || (last == 0 && end > 0), "offsets increase within a chunk");
            assert!(end <= chunk.len(), "offset within the chunk");
            assert!(matches!(chunk[end - 1], b'\n' | b'\r'), "a blank line ends in a line ending");
            last = end;
            let mut at = base + end;
            // A CRLF split between chunks is reported after its CR (documented): normalise.
            if chunk[end - 1] == b'\r' && stream.get(at) == Some(&b'\n') {
                at += 1;
            }
            blanks.push(at);
            if let Some(e) = event {
                events.push((e.event.to_vec(), e.data.to_vec()));
            }
        });
        base += chunk.len();
    }
    (events, blanks)
}

fn is_subsequence(small: &[RefEvent], big: &[RefEvent]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

fuzz_target!(|data: &[u8]| {
    let expected = reference_events(data);
    let mut first: Option<(Vec<usize>, Vec<RefEvent>, u64)> = None;
    for chunks in chunkings(data) {
        let mut parser = SseParser::new();
        let (events, blanks) = run(&mut parser, data, &chunks);
        assert_eq!(events, expected, "events differ from the reference");
        assert_eq!(parser.dropped_events(), 0);

        let mut small = SseParser::with_max_event_bytes(SMALL_LIMIT);
        let (small_events, small_blanks) = run(&mut small, data, &chunks);
        assert_eq!(small_blanks, blanks, "the size limit changes no block boundary");
        assert!(is_subsequence(&small_events, &expected), "limited events are the reference's");
        for (event, data) in &small_events {
            assert!(event.len() + data.len() <= SMALL_LIMIT, "an event beyond the limit");
        }
        let seen = (blanks, small_events, small.dropped_events());
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(f, &seen, "the result depends on the chunking"),
        }
    }
});
