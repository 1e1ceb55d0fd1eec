//! (a) The SSE parser, split anywhere, yields exactly the events the generator wrote.

use proptest::prelude::*;
use tollgate_proxy::{SseEvent, SseParser};

use crate::support::{Ending, cuts, ending, split};

#[derive(Clone, Debug)]
enum Line {
    Data(String),
    /// `data` with no colon: an empty value.
    DataNoColon,
    Event(String),
    Comment(String),
    Id(String),
    Retry(u32),
    Unknown(String),
}

fn value() -> impl Strategy<Value = String> {
    "[^\r\n]{0,12}"
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        6 => value().prop_map(Line::Data),
        1 => Just(Line::DataNoColon),
        2 => value().prop_map(Line::Event),
        2 => value().prop_map(Line::Comment),
        1 => value().prop_map(Line::Id),
        1 => any::<u32>().prop_map(Line::Retry),
        1 => value().prop_map(Line::Unknown),
    ]
}

#[derive(Clone, Debug)]
struct Generated {
    bytes: Vec<u8>,
    events: Vec<SseEvent>,
}

/// Blocks of lines with a mix of line endings, optionally after a byte order mark and before
/// an unterminated last block (never dispatched).
fn stream() -> impl Strategy<Value = Generated> {
    let block = (prop::collection::vec((line(), any::<bool>(), ending()), 0..6), ending());
    (any::<bool>(), prop::collection::vec(block, 0..8), prop::collection::vec((line(), any::<bool>(), ending()), 0..3))
        .prop_map(|(bom, blocks, unterminated)| {
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice(b"\xEF\xBB\xBF");
            }
            let mut last_ending: Option<Ending> = None;
            let mut push_line = |bytes: &mut Vec<u8>, text: &str, ending: Ending| {
                // After a `\r`, a blank line ending in `\n` would read as one `\r\n` ending.
                let ending = match (last_ending, text.is_empty(), ending) {
                    (Some(Ending::Cr), true, Ending::Lf) => Ending::Cr,
                    (_, _, e) => e,
                };
                bytes.extend_from_slice(text.as_bytes());
                bytes.extend_from_slice(ending.as_str().as_bytes());
                last_ending = Some(ending);
            };
            let mut events = Vec::new();
            for (lines, blank) in &blocks {
                let mut data: Option<String> = None;
                let mut event = String::new();
                for (line, space, ending) in lines {
                    let field = |name: &str, value: &str| {
                        let sep = if *space || value.starts_with(' ') { ": " } else { ":" };
                        format!("{name}{sep}{value}")
                    };
                    let text = match line {
                        Line::Data(v) => {
                            data = Some(match data.take() {
                                Some(d) => format!("{d}\n{v}"),
                                None => v.clone(),
                            });
                            field("data", v)
                        }
                        Line::DataNoColon => {
                            data = Some(match data.take() {
                                Some(d) => format!("{d}\n"),
                                None => String::new(),
                            });
                            "data".to_owned()
                        }
                        Line::Event(v) => {
                            event.clone_from(v);
                            field("event", v)
                        }
                        Line::Comment(v) => format!(":{v}"),
                        Line::Id(v) => field("id", v),
                        Line::Retry(n) => field("retry", &n.to_string()),
                        Line::Unknown(v) => field("x-unknown", v),
                    };
                    push_line(&mut bytes, &text, *ending);
                }
                push_line(&mut bytes, "", *blank);
                if let Some(data) = data {
                    events.push(SseEvent { event, data });
                }
            }
            for (line, _, ending) in &unterminated {
                let text = match line {
                    Line::Comment(v) => format!(":{v}"),
                    _ => "data: never dispatched".to_owned(),
                };
                push_line(&mut bytes, &text, *ending);
            }
            Generated { bytes, events }
        })
}

proptest! {
    #![proptest_config(crate::config())]

    /// (a) Split at any points, with any line endings, the parser yields the generated events.
    #[test]
    fn split_anywhere_parses_to_the_generated_events(generated in stream(), cuts in cuts()) {
        let mut parser = SseParser::new();
        let events: Vec<SseEvent> = split(&generated.bytes, &cuts).into_iter().flat_map(|c| parser.feed(c)).collect();
        prop_assert_eq!(&events, &generated.events);
        let whole = SseParser::new().feed(&generated.bytes);
        prop_assert_eq!(whole, events);
    }

    /// Arbitrary bytes, split anywhere, give the same events as whole, and never grow the
    /// parser's buffers beyond the limit (observed through what it dispatches).
    #[test]
    fn arbitrary_bytes_split_anywhere_are_consistent(bytes in prop::collection::vec(any::<u8>(), 0..600), cuts in cuts(), limit in 0usize..64) {
        let whole = SseParser::with_max_event_bytes(limit).feed(&bytes);
        let mut parser = SseParser::with_max_event_bytes(limit);
        let split: Vec<SseEvent> = split(&bytes, &cuts).into_iter().flat_map(|c| parser.feed(c)).collect();
        prop_assert_eq!(&split, &whole);
        for event in &split {
            prop_assert!(event.data.len() + event.event.len() <= limit.max(1) * 3, "lossy UTF-8 may triple a byte");
        }
    }
}
