use super::*;

const ANTHROPIC: &[u8] = include_bytes!("../../tests/fixtures/anthropic_text.sse");
const OPENAI: &[u8] = include_bytes!("../../tests/fixtures/openai_usage.sse");

fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    chunks.iter().flat_map(|chunk| parser.feed(chunk)).collect()
}

fn ev(event: &str, data: &str) -> SseEvent {
    SseEvent { event: event.into(), data: data.into() }
}

/// Rewrites every `\n` of a fixture as `ending`.
fn with_endings(stream: &[u8], ending: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in stream {
        if b == b'\n' { out.extend_from_slice(ending) } else { out.push(b) }
    }
    out
}

#[test]
fn anthropic_stream_events_in_order() {
    let events = parse_all(&[ANTHROPIC]);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].data, r#"{"type": "ping"}"#);
    for e in &events {
        let json: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(json["type"], e.event.as_str(), "the event field names the payload type");
    }
    // The text delta holds an escaped "\n\nevent: message_stop": not a line ending.
    assert!(events[5].data.contains(r"\n\nevent: message_stop"));
}

#[test]
fn openai_stream_events_have_no_type() {
    let events = parse_all(&[OPENAI]);
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.event.is_empty()));
    assert_eq!(events[6].data, "[DONE]");
}

#[test]
fn every_line_ending_gives_the_same_events() {
    let lf = parse_all(&[ANTHROPIC]);
    for ending in [&b"\r\n"[..], b"\r"] {
        let stream = with_endings(ANTHROPIC, ending);
        assert_eq!(parse_all(&[&stream]), lf, "{ending:?}");
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), lf, "{ending:?} byte by byte");
    }
    // Mixed endings within one stream.
    let mixed = b"event: a\r\ndata: 1\rdata: 2\n\r\nevent: b\rdata: 3\r\r";
    assert_eq!(parse_all(&[mixed]), [ev("a", "1\n2"), ev("b", "3")]);
}

#[test]
fn crlf_split_between_chunks_is_one_line_ending() {
    // If the `\n` after a `\r` were a second line ending, it would dispatch "a" early.
    assert_eq!(parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]), [ev("", "a\nb")]);
    // A `\r` then a chunk not starting with `\n`.
    assert_eq!(parse_all(&[b"data: a\r", b"\r"]), [ev("", "a")]);
    // Empty chunks in between change nothing.
    assert_eq!(parse_all(&[b"data: a\r", b"", b"\n", b"", b"\r\n"]), [ev("", "a")]);
}

#[test]
fn field_parsing_follows_the_standard() {
    let stream = b"data:no-space\ndata:  two spaces\ndata\ndata:\n\n";
    assert_eq!(parse_all(&[stream]), [ev("", "no-space\n two spaces\n\n")]);
    // A single `data:` line with nothing dispatches an empty event.
    assert_eq!(parse_all(&[b"data:\n\n"]), [ev("", "")]);
    // id, retry and unknown fields are ignored; the last event field wins; a colon in the
    // value is kept.
    let stream = b"id: 7\nretry: 1000\nevent: x\nevent: y\nfoo: bar\ndata: {\"a\":\"b:c\"}\n\n";
    assert_eq!(parse_all(&[stream]), [ev("y", r#"{"a":"b:c"}"#)]);
    // The field name is case-sensitive and exact.
    assert_eq!(parse_all(&[b"Data: x\ndata : y\ndata: z\n\n"]), [ev("", "z")]);
}

#[test]
fn comments_and_events_without_data_are_not_dispatched() {
    let stream = b": keep-alive\n\nevent: ping\n\n:comment\ndata: 1\n: between\ndata: 2\n\n";
    assert_eq!(parse_all(&[stream]), [ev("", "1\n2")]);
    // The event type does not leak into the next event.
    assert_eq!(parse_all(&[b"event: a\n\ndata: x\n\n"]), [ev("", "x")]);
}

#[test]
fn an_unterminated_last_event_is_not_dispatched() {
    assert_eq!(parse_all(&[b"data: a\n\ndata: b\n"]), [ev("", "a")]);
    assert_eq!(parse_all(&[b"data: a\n\ndata: b"]), [ev("", "a")]);
}

#[test]
fn a_leading_byte_order_mark_is_ignored_once() {
    assert_eq!(parse_all(&[b"\xEF\xBB\xBFdata: a\n\n"]), [ev("", "a")]);
    assert_eq!(parse_all(&[b"\xEF", b"\xBB", b"\xBFevent: e\ndata: a\n\n"]), [ev("e", "a")]);
    assert_eq!(parse_all(&[b"\xEF\xBB\xBF\ndata: a\n\n"]), [ev("", "a")], "a BOM-only line is blank");
    assert_eq!(parse_all(&[b"\xEF\xBB\xBF: comment\ndata: a\n\n"]), [ev("", "a")]);
    // Only at the start of the stream: later it is part of the field name.
    assert_eq!(parse_all(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]), [ev("", "a")]);
}

#[test]
fn invalid_utf8_is_replaced_in_owned_events_and_kept_in_borrowed_ones() {
    assert_eq!(parse_all(&[b"data: \xFF\n\n"]), [ev("", "\u{FFFD}")]);
    let mut seen = Vec::new();
    SseParser::new().feed_with(b"data: \xFF\n\n", |e| seen.push(e.data.to_vec()));
    assert_eq!(seen, [vec![0xFF]]);
}

#[test]
fn an_oversized_event_is_dropped_and_counted_and_memory_stays_bounded() {
    let mut parser = SseParser::with_max_event_bytes(64);
    let big = format!("data: {}\n", "x".repeat(50));
    let mut stream = Vec::new();
    stream.extend_from_slice(b"data: small\n\n");
    stream.extend_from_slice(big.as_bytes());
    stream.extend_from_slice(big.as_bytes()); // the second line crosses the limit
    stream.extend_from_slice(b"event: dropped\ndata: more of the same event\n\n");
    stream.extend_from_slice(b"data: after\n\n");
    let mut events = Vec::new();
    for chunk in stream.chunks(7) {
        events.extend(parser.feed(chunk));
        assert!(parser.line.len() + parser.data.len() + parser.event.len() <= 64);
    }
    assert_eq!(events, [ev("", "small"), ev("", "after")]);
    assert_eq!(parser.dropped_events(), 1);

    // One line longer than the limit, fed in pieces, is never buffered whole.
    let mut parser = SseParser::with_max_event_bytes(1024);
    parser.feed(b"data: ");
    for _ in 0..1000 {
        parser.feed(&[b'y'; 100]);
        assert!(parser.line.len() <= 1024);
    }
    assert_eq!(parser.feed(b"\n\ndata: ok\n\n"), [ev("", "ok")]);
    assert_eq!(parser.dropped_events(), 1);
}

#[test]
fn an_event_exactly_at_the_limit_is_kept() {
    // "data: " + 4 bytes = 10 bytes buffered as the line, then 4 bytes of data.
    let mut parser = SseParser::with_max_event_bytes(10);
    assert_eq!(parser.feed(b"data: abcd\n\n"), [ev("", "abcd")]);
    let mut parser = SseParser::with_max_event_bytes(9);
    assert_eq!(parser.feed(b"data: abcd\n\n"), []);
    assert_eq!(parser.dropped_events(), 1);
}

#[test]
fn comments_do_not_count_against_the_limit() {
    let mut parser = SseParser::with_max_event_bytes(16);
    let mut stream = b":".to_vec();
    stream.extend(std::iter::repeat_n(b'p', 10_000));
    stream.extend_from_slice(b"\ndata: kept\n\n");
    assert_eq!(parser.feed(&stream), [ev("", "kept")]);
    assert_eq!(parser.dropped_events(), 0);
    assert!(parser.line.capacity() < 1024, "the comment was not buffered");
}

#[test]
fn buffers_of_a_large_event_are_released() {
    let mut parser = SseParser::new();
    let big = format!("data: {}\n\n", "z".repeat(200_000));
    assert_eq!(parser.feed(big.as_bytes()).len(), 1);
    assert!(parser.data.capacity() <= KEEP_CAPACITY && parser.line.capacity() <= KEEP_CAPACITY);
}

#[test]
fn blank_line_offsets_mark_the_end_of_each_block() {
    let stream = b": hi\n\ndata: a\r\n\r\nevent: e\r\rdata: b\n\n";
    let mut blocks = Vec::new();
    SseParser::new().feed_with_offsets(stream, |end, e| blocks.push((end, e.map(|e| e.to_owned_event()))));
    assert_eq!(blocks, [(6, None), (17, Some(ev("", "a"))), (27, None), (36, Some(ev("", "b")))]);
    // Split inside the `\r\n` of a blank line: reported after the `\r`, in the first chunk.
    let mut parser = SseParser::new();
    let mut ends = Vec::new();
    parser.feed_with_offsets(b"data: a\r\n\r", |end, _| ends.push(end));
    assert_eq!(ends, [10]);
    parser.feed_with_offsets(b"\ndata: b\n\n", |end, _| ends.push(end));
    assert_eq!(ends, [10, 10]);
}
