use super::*;

const ANTHROPIC_TEXT: &[u8] = include_bytes!("../../tests/fixtures/anthropic_text.sse");
const ANTHROPIC_TOOL_USE: &[u8] = include_bytes!("../../tests/fixtures/anthropic_tool_use.sse");
const ANTHROPIC_BODY: &[u8] = include_bytes!("../../tests/fixtures/anthropic_message.json");
const OPENAI_USAGE: &[u8] = include_bytes!("../../tests/fixtures/openai_usage.sse");
const OPENAI_NO_USAGE: &[u8] = include_bytes!("../../tests/fixtures/openai_no_usage.sse");
const OPENAI_BODY: &[u8] = include_bytes!("../../tests/fixtures/openai_completion.json");

const CHUNK_SIZES: [usize; 7] = [1, 2, 3, 7, 64, 1024, usize::MAX];

fn usage(input: u64, output: u64, cache_write: u64, cache_read: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_write_tokens: cache_write,
        cache_read_tokens: cache_read,
        ..Usage::default()
    }
}

fn anthropic(stream: &[u8], chunk: usize) -> AnthropicMeter {
    let mut meter = AnthropicMeter::new();
    for c in stream.chunks(chunk.min(stream.len().max(1))) {
        meter.observe_chunk(c);
    }
    meter
}

fn openai(stream: &[u8], chunk: usize) -> OpenAiMeter {
    let mut meter = OpenAiMeter::new();
    for c in stream.chunks(chunk.min(stream.len().max(1))) {
        meter.observe_chunk(c);
    }
    meter
}

fn crlf(stream: &[u8]) -> Vec<u8> {
    String::from_utf8(stream.to_vec()).unwrap().replace('\n', "\r\n").into_bytes()
}

/// The prefix of `stream` up to and including the first occurrence of `needle`.
fn up_to<'a>(stream: &'a [u8], needle: &str) -> &'a [u8] {
    let at = memmem::find(stream, needle.as_bytes()).unwrap();
    &stream[..at + needle.len()]
}

#[test]
fn anthropic_text_stream() {
    for chunk in CHUNK_SIZES {
        for stream in [ANTHROPIC_TEXT.to_vec(), crlf(ANTHROPIC_TEXT)] {
            let meter = anthropic(&stream, chunk);
            assert_eq!(meter.usage(), usage(472, 15, 1024, 2048), "chunk {chunk}");
            assert!(meter.completed());
            assert_eq!(meter.malformed_events(), 0);
        }
    }
}

#[test]
fn anthropic_deltas_are_cumulative_and_newer_fields_are_merged() {
    // Two message_delta events (40, then 89 output tokens): the latest counts, not the sum;
    // the second carries the input and cache fields, which exceed message_start's.
    for chunk in CHUNK_SIZES {
        let meter = anthropic(ANTHROPIC_TOOL_USE, chunk);
        assert_eq!(meter.usage(), usage(472, 89, 0, 3072), "chunk {chunk}");
        assert!(meter.completed());
    }
}

#[test]
fn anthropic_cut_stream_reports_what_it_saw() {
    let before_delta = up_to(ANTHROPIC_TEXT, "event: content_block_stop");
    let meter = anthropic(before_delta, 5);
    assert_eq!(meter.usage(), usage(472, 1, 1024, 2048), "message_start's initial output count");
    assert!(!meter.completed());

    let after_delta = up_to(ANTHROPIC_TEXT, "\"output_tokens\":15}}\n\n");
    let meter = anthropic(after_delta, 5);
    assert_eq!(meter.usage(), usage(472, 15, 1024, 2048));
    assert!(!meter.completed(), "no message_stop yet");

    // The delta's blank line has not arrived: the event is not complete, so not counted.
    let mid_delta = up_to(ANTHROPIC_TEXT, "\"output_tokens\":15}}\n");
    assert_eq!(anthropic(mid_delta, 5).usage(), usage(472, 1, 1024, 2048));

    assert_eq!(anthropic(b"", 1).usage(), Usage::default());
    assert_eq!(anthropic(&ANTHROPIC_TEXT[..40], 1).usage(), Usage::default());
}

#[test]
fn anthropic_null_fields_and_lower_values_never_lower_the_input() {
    let stream = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"usage":{"input_tokens":100,"cache_read_input_tokens":50,"output_tokens":1}}}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{},"usage":{"input_tokens":null,"cache_creation_input_tokens":null,"cache_read_input_tokens":7,"output_tokens":20}}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{},"usage":{"input_tokens":120,"output_tokens":30}}"#,
        "\n\n"
    );
    assert_eq!(anthropic(stream.as_bytes(), 9).usage(), usage(120, 30, 0, 50));
}

#[test]
fn anthropic_without_event_fields_and_with_multi_line_data() {
    // Some relays drop the `event:` lines; the payload's type still decides. Data may also be
    // split over several `data:` lines, joined with `\n` (whitespace to JSON).
    let stream = concat!(
        "data: {\"type\":\"message_start\",\r\n",
        "data:  \"message\":{\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\r\n\r\n",
        ": keep-alive\r\n\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{},\r\n",
        "data: \"usage\":{\"output_tokens\":5}}\r\n\r\n",
        "data: {\"type\":\"message_stop\"}\r\n\r\n",
    );
    for chunk in CHUNK_SIZES {
        let meter = anthropic(stream.as_bytes(), chunk);
        assert_eq!(meter.usage(), usage(11, 5, 0, 0));
        assert!(meter.completed());
    }
}

#[test]
fn anthropic_error_event_midway() {
    let mut stream = up_to(ANTHROPIC_TEXT, "event: content_block_stop").to_vec();
    stream.truncate(stream.len() - "event: content_block_stop".len());
    stream.extend_from_slice(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let meter = anthropic(&stream, 16);
    assert_eq!(meter.usage(), usage(472, 1, 1024, 2048));
    assert!(!meter.completed());
    assert_eq!(meter.malformed_events(), 0);
}

#[test]
fn anthropic_malformed_usage_events_are_counted_and_skipped() {
    let stream = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        "\n\nevent: content_block_delta\ndata: {not json, and not parsed\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-3}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n",
    );
    let meter = anthropic(stream.as_bytes(), 3);
    assert_eq!(meter.usage(), usage(10, 4, 0, 0));
    assert_eq!(meter.malformed_events(), 2);
}

#[test]
fn anthropic_body() {
    let mut meter = AnthropicMeter::new();
    meter.observe_body(ANTHROPIC_BODY);
    assert_eq!(meter.usage(), usage(2095, 503, 2051, 40960));
    assert!(meter.completed());

    let mut meter = AnthropicMeter::new();
    meter.observe_body(br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 0"}}"#);
    assert_eq!(meter.usage(), Usage::default());
    assert!(!meter.completed());
    assert_eq!(meter.malformed_events(), 0);

    let mut meter = AnthropicMeter::new();
    meter.observe_body(&ANTHROPIC_BODY[..100]);
    assert_eq!((meter.usage(), meter.completed(), meter.malformed_events()), (Usage::default(), false, 1));
}

#[test]
fn openai_stream_with_usage() {
    for chunk in CHUNK_SIZES {
        for stream in [OPENAI_USAGE.to_vec(), crlf(OPENAI_USAGE)] {
            let meter = openai(&stream, chunk);
            // 1117 prompt tokens of which 1024 cached.
            assert_eq!(meter.usage(), usage(93, 46, 0, 1024), "chunk {chunk}");
            assert!(meter.completed());
            assert_eq!(meter.malformed_events(), 0);
        }
    }
}

#[test]
fn openai_cut_stream() {
    let before_usage = up_to(OPENAI_USAGE, "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    let meter = openai(before_usage, 10);
    assert_eq!(meter.usage(), Usage::default());
    assert!(!meter.completed());

    let after_usage = up_to(OPENAI_USAGE, "\"rejected_prediction_tokens\":0}}}\n\n");
    let meter = openai(after_usage, 10);
    assert_eq!(meter.usage(), usage(93, 46, 0, 1024));
    assert!(meter.completed(), "the usage chunk is the last one that matters");
}

#[test]
fn openai_stream_without_usage_completes_with_zero() {
    for chunk in CHUNK_SIZES {
        let meter = openai(OPENAI_NO_USAGE, chunk);
        assert_eq!(meter.usage(), Usage::default());
        assert!(meter.completed());
    }
}

#[test]
fn openai_usage_on_every_chunk_takes_the_latest_and_completes_at_done() {
    let stream = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\" : {\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n",
    );
    let meter = openai(stream.as_bytes(), 4);
    assert_eq!(meter.usage(), usage(10, 2, 0, 0));
    assert!(!meter.completed(), "usage beside choices is not the final chunk");
    let mut meter = meter;
    meter.observe_chunk(b"data: [DONE]\n\n");
    assert!(meter.completed());
}

#[test]
fn openai_cached_tokens_are_clamped_to_the_prompt() {
    let mut meter = OpenAiMeter::new();
    meter.observe_chunk(
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":9}}}\n\n",
    );
    assert_eq!(meter.usage(), usage(0, 1, 0, 5));
    let mut meter = OpenAiMeter::new();
    meter.observe_chunk(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"prompt_tokens_details\":null}}\n\n");
    assert_eq!(meter.usage(), usage(5, 0, 0, 0));
}

#[test]
fn openai_body() {
    let mut meter = OpenAiMeter::new();
    meter.observe_body(OPENAI_BODY);
    assert_eq!(meter.usage(), usage(1117, 46, 0, 0));
    assert!(meter.completed());

    let mut meter = OpenAiMeter::new();
    meter.observe_body(br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#);
    assert_eq!((meter.usage(), meter.completed(), meter.malformed_events()), (Usage::default(), false, 0));
    meter.observe_body(b"<html>bad gateway</html>");
    assert_eq!(meter.malformed_events(), 1);
}

#[test]
fn usage_prefilter() {
    assert!(may_carry_usage(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#));
    assert!(may_carry_usage(br#"{"usage" :	{}}"#));
    assert!(may_carry_usage(br#"{"usage":null,"x":{"usage":{}}}"#), "a later non-null occurrence");
    assert!(!may_carry_usage(br#"{"choices":[],"usage":null}"#));
    assert!(!may_carry_usage(br#"{"usage" : null}"#));
    assert!(!may_carry_usage(br#"{"content":"usage"}"#), "a string value, not a key");
    assert!(!may_carry_usage(br#"{"content":"the \"usage\": 5"}"#), "escaped quotes");
    assert!(!may_carry_usage(br#"{"usage"#));
    assert!(!may_carry_usage(b""));
    assert!(is_done(b"[DONE]") && is_done(b" [DONE] ") && !is_done(b"[DONE"));
}

#[test]
fn meter_dispatches_on_protocol() {
    let mut meter = Meter::new(Protocol::Anthropic);
    meter.observe_chunk(ANTHROPIC_TEXT);
    assert_eq!((meter.usage(), meter.completed(), meter.anomalies()), (usage(472, 15, 1024, 2048), true, 0));
    let mut meter = Meter::new(Protocol::Openai);
    meter.observe_body(OPENAI_BODY);
    assert_eq!((meter.usage(), meter.completed(), meter.anomalies()), (usage(1117, 46, 0, 0), true, 0));
    let mut meter = Meter::new(Protocol::Openai);
    meter.observe_chunk(OPENAI_USAGE);
    assert_eq!(meter.usage(), usage(93, 46, 0, 1024));
    let mut meter = Meter::new(Protocol::Anthropic);
    meter.observe_body(ANTHROPIC_BODY);
    assert!(meter.completed());
}

/// Claude Code's 1-hour cache writes: the split in `message_start`, or only in the cumulative
/// `message_delta`, streaming or not; without it, every write is a 5-minute one.
#[test]
fn anthropic_cache_writes_split_by_ttl() {
    let start = |usage: &str| {
        format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"usage\":{usage}}}}}\n\n"
        )
    };
    let delta = |usage: &str| {
        format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{}},\"usage\":{usage}}}\n\n")
    };
    let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let split = r#"{"input_tokens":5,"cache_creation_input_tokens":1000,"cache_read_input_tokens":7,"cache_creation":{"ephemeral_5m_input_tokens":400,"ephemeral_1h_input_tokens":600},"output_tokens":1}"#;
    let plain =
        r#"{"input_tokens":5,"cache_creation_input_tokens":1000,"cache_read_input_tokens":7,"output_tokens":1}"#;
    let cases = [
        (format!("{}{}{stop}", start(split), delta(r#"{"output_tokens":9}"#)), 600),
        (format!("{}{}{stop}", start(plain), delta(&split.replace("\"output_tokens\":1", "\"output_tokens\":9"))), 600),
        (format!("{}{}{stop}", start(plain), delta(r#"{"output_tokens":9}"#)), 0),
    ];
    for (stream, one_hour) in cases {
        for chunk in CHUNK_SIZES {
            let u = anthropic(stream.as_bytes(), chunk).usage();
            assert_eq!(
                (u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_write_1h_tokens, u.cache_read_tokens),
                (5, 9, 1000, one_hour, 7),
                "chunk {chunk}: {stream}"
            );
            assert_eq!(u.cache_write_split(), (1000 - one_hour, one_hour));
        }
    }
    let mut body = AnthropicMeter::new();
    body.observe_body(format!(r#"{{"type":"message","usage":{split}}}"#).as_bytes());
    assert_eq!((body.usage().cache_write_tokens, body.usage().cache_write_1h_tokens), (1000, 600));
    // A split whose parts exceed the total is billed part by part.
    let mut odd = AnthropicMeter::new();
    odd.observe_body(br#"{"type":"message","usage":{"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":8,"ephemeral_1h_input_tokens":9}}}"#);
    assert_eq!(odd.usage().cache_write_split(), (8, 9));
}

/// OpenAI's `service_tier`: in a body, in the usage chunk of a stream.
#[test]
fn openai_service_tier_is_metered() {
    let mut body = OpenAiMeter::new();
    body.observe_body(
        br#"{"id":"c","service_tier":"priority","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2}}"#,
    );
    assert_eq!(body.usage().service_tier, Some(ServiceTier::Priority));
    let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"service_tier\":\"flex\"}\n\n\
data: {\"choices\":[],\"service_tier\":\"flex\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    assert_eq!(openai(stream, 5).usage().service_tier, Some(ServiceTier::Flex));
    let mut standard = OpenAiMeter::new();
    standard.observe_body(br#"{"service_tier":"default","choices":[],"usage":{"prompt_tokens":1}}"#);
    assert_eq!(standard.usage().service_tier, None);
    let mut responses = ResponsesMeter::new();
    responses.observe_chunk(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"service_tier\":\"priority\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n\n");
    assert_eq!(responses.usage().service_tier, Some(ServiceTier::Priority));
    let mut responses_body = ResponsesMeter::new();
    responses_body.observe_body(br#"{"service_tier":"flex","usage":{"input_tokens":3,"output_tokens":4}}"#);
    assert_eq!(responses_body.usage().service_tier, Some(ServiceTier::Flex));
}

/// Splits `stream` into chunks of pseudo-random sizes from 1 byte to 16 KiB (a fixed LCG, so a
/// failure reproduces), cutting events, lines and `\r\n` pairs anywhere.
fn ragged_chunks(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= stream.len() {
            return None;
        }
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let len = 1 + usize::try_from(state >> 50).unwrap_or(0) % (16 * 1024);
        let end = (at + len).min(stream.len());
        let chunk = &stream[at..end];
        at = end;
        Some(chunk)
    })
}

/// What a relay holds for one stream, fed `events` events (`event` repeated) and then `last`:
/// the largest retained size seen after any chunk, and the retained size at the end.
fn relay_retained(meter: &mut Meter, event: &[u8], events: usize, last: &[u8]) -> (usize, usize, u64) {
    let mut stream = event.repeat(events);
    stream.extend_from_slice(last);
    let mut stripper = crate::strip::UsageChunkStripper::new();
    let (mut most, mut relayed) = (0, 0u64);
    for chunk in ragged_chunks(&stream) {
        meter.observe_chunk(chunk);
        relayed += stripper.push(bytes::Bytes::copy_from_slice(chunk)).len() as u64;
        most = most.max(meter.retained_bytes() + stripper.retained_bytes());
    }
    relayed += stripper.finish().len() as u64;
    (most, meter.retained_bytes() + stripper.retained_bytes(), relayed)
}

#[test]
fn a_long_streams_relay_state_does_not_grow_with_the_response() {
    // 32 MiB of OpenAI content chunks (and the usage chunk the stripper removes), in ragged
    // chunks: the meter's and the stripper's buffers stay within a few events' size, the same
    // after 32 MiB as the bound the 1 MiB limit on one event sets, however long the stream.
    let event = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{"index":0,"delta":{"content":" The quick brown fox jumps over the lazy dog."},"finish_reason":null}]}"#;
    let event = [&event[..], b"\n\n"].concat();
    let events = (32 << 20) / event.len();
    let usage = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":7}}\n\ndata: [DONE]\n\n";
    let mut meter =
        Meter::new(Protocol::Openai).with_counter(relayed::TokenCounter::for_model(Protocol::Openai, "gpt-5"));
    let (most, end, relayed) = relay_retained(&mut meter, &event, events, usage);
    assert!(most <= 64 * 1024, "the relay held {most} bytes for one stream");
    assert!(end <= 64 * 1024, "{end}");
    assert!(meter.completed());
    assert!(meter.relayed_chars() >= (events * 45) as u64, "every delta was counted");
    let sent = (event.len() * events + usage.len()) as u64;
    assert_eq!(relayed, sent - (usage.len() as u64 - b"data: [DONE]\n\n".len() as u64), "all but the usage chunk");

    let event = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" The quick brown fox jumps over the lazy dog.\"}}\n\n";
    let mut meter = Meter::new(Protocol::Anthropic);
    let (most, _, _) = relay_retained(&mut meter, event, (32 << 20) / event.len(), b"");
    assert!(most <= 64 * 1024, "the relay held {most} bytes for one stream");
}

#[test]
fn one_huge_event_is_not_kept_after_it_passed() {
    // A 12 MiB text delta (over the parser's 1 MiB event limit: dropped from metering, passed
    // on by the stripper as it comes) and then ordinary events. While it passes, the meter's
    // parser, the stripper's parser and its held-back bytes each grow to at most twice the
    // limit (a doubling Vec), not to the event's size; afterwards what is held is small again.
    let huge =
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "x".repeat(12 << 20));
    let small = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    let mut meter = Meter::new(Protocol::Openai);
    let (most, end, _) = relay_retained(&mut meter, huge.as_bytes(), 1, &small.repeat(1000));
    assert!(most <= 6 * crate::sse::DEFAULT_MAX_EVENT_BYTES, "bounded by the event limit: {most}");
    assert!(end <= 64 * 1024, "released after the huge event: {end}");
    // A 600 KiB event (under the limit): buffered while it passes, released after.
    let big =
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "y".repeat(600 << 10));
    let mut meter = Meter::new(Protocol::Openai);
    let (_, end, _) = relay_retained(&mut meter, big.as_bytes(), 2, &small.repeat(1000));
    assert!(end <= 64 * 1024, "released after the big events: {end}");
}
