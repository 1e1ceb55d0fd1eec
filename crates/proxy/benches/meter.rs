//! The meters, the SSE parser and the usage-chunk stripper over a 200-event stream split into
//! 1 KiB chunks, as the proxy would see it from the upstream socket.
//!
//! Run: `cargo bench -p tollgate-proxy --bench meter`. Throughput is reported per event;
//! divide the time per iteration by 200 for nanoseconds per event.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_proxy::{AnthropicMeter, OpenAiMeter, SseParser, UsageChunkStripper};

const EVENTS: usize = 200;
const CHUNK: usize = 1024;

/// A realistic Anthropic stream of 200 events: message_start, content_block_start, text
/// deltas with a ping every 50 events, content_block_stop, message_delta, message_stop.
fn anthropic_stream() -> Vec<u8> {
    let mut s = String::new();
    let mut event = |name: &str, data: &str| s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    event(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":1024,"cache_read_input_tokens":2048,"output_tokens":1}}}"#,
    );
    event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    for i in 0..(EVENTS - 5) {
        if i % 50 == 25 {
            event("ping", r#"{"type": "ping"}"#);
        } else {
            let text = serde_json::to_string(&format!("token {i} of a reasonably typical delta, ")).unwrap();
            event(
                "content_block_delta",
                &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#),
            );
        }
    }
    event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#);
    event(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":1523}}"#,
    );
    event("message_stop", r#"{"type":"message_stop"}"#);
    s.into_bytes()
}

/// A realistic OpenAI stream of 200 events with `include_usage`: 197 content chunks (each with
/// `"usage":null`), the finish chunk, the usage chunk and `[DONE]`.
fn openai_stream() -> Vec<u8> {
    let mut s = String::new();
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b376dfbbd5\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        )
    };
    for i in 0..(EVENTS - 3) {
        let text = serde_json::to_string(&format!("token {i} of a typical delta, ")).unwrap();
        s.push_str(&chunk(&format!("{{\"content\":{text}}}"), "null"));
    }
    s.push_str(&chunk("{}", "\"stop\""));
    s.push_str("data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741569952,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b376dfbbd5\",\"choices\":[],\"usage\":{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_tokens\":1163,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

fn chunks(stream: &[u8]) -> Vec<Bytes> {
    stream.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

fn bench(c: &mut Criterion) {
    let anthropic = chunks(&anthropic_stream());
    let openai = chunks(&openai_stream());
    let count = |chunks: &[Bytes]| {
        let mut parser = SseParser::new();
        chunks.iter().map(|c| parser.feed(c).len()).sum::<usize>()
    };
    assert_eq!(count(&anthropic), EVENTS);
    assert_eq!(count(&openai), EVENTS);

    let mut group = c.benchmark_group("200 events in 1 KiB chunks");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("sse parser (anthropic stream)", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut n = 0;
            for chunk in &anthropic {
                parser.feed_with(chunk, |e| n += e.data.len());
            }
            black_box(n)
        });
    });
    group.bench_function("anthropic meter", |b| {
        b.iter(|| {
            let mut meter = AnthropicMeter::new();
            for chunk in &anthropic {
                meter.observe_chunk(chunk);
            }
            assert!(meter.completed());
            black_box(meter.usage())
        });
    });
    group.bench_function("openai meter", |b| {
        b.iter(|| {
            let mut meter = OpenAiMeter::new();
            for chunk in &openai {
                meter.observe_chunk(chunk);
            }
            assert!(meter.completed());
            black_box(meter.usage())
        });
    });
    group.bench_function("usage chunk stripper", |b| {
        b.iter(|| {
            let mut stripper = UsageChunkStripper::new();
            let mut n = 0;
            for chunk in &openai {
                n += stripper.push(chunk.clone()).len();
            }
            n += stripper.finish().len();
            black_box(n)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
