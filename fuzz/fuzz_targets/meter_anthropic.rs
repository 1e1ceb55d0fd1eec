//! The Anthropic meter on arbitrary streams and bodies.
//!
//! Properties: no panic; the result (usage, completion, anomaly counts) does not depend on
//! the chunking; the input and cache counts never decrease as chunks arrive (the module keeps
//! the largest seen; output follows the latest cumulative `message_delta`, by design); the
//! protocol-generic `Meter` agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::chunkings;
use tollgate_policy::{Protocol, Usage};
use tollgate_proxy::{AnthropicMeter, Meter};

fuzz_target!(|data: &[u8]| {
    let mut first = None;
    for chunks in chunkings(data) {
        let mut meter = AnthropicMeter::new();
        let mut generic = Meter::new(Protocol::Anthropic);
        let mut prev = Usage::default();
        for chunk in &chunks {
            meter.observe_chunk(chunk);
            generic.observe_chunk(chunk);
            let now = meter.usage();
            assert!(now.input_tokens >= prev.input_tokens, "input tokens went down");
            assert!(now.cache_write_tokens >= prev.cache_write_tokens, "cache writes went down");
            assert!(now.cache_read_tokens >= prev.cache_read_tokens, "cache reads went down");
            prev = now;
        }
        let seen = (meter.usage(), meter.completed(), meter.malformed_events(), meter.oversized_events());
        assert_eq!(generic.usage(), seen.0);
        assert_eq!(generic.completed(), seen.1);
        assert_eq!(generic.anomalies(), seen.2 + seen.3);
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(f, &seen, "the result depends on the chunking"),
        }
    }

    let mut body = AnthropicMeter::new();
    body.observe_body(data);
    let usage = body.usage();
    if !body.completed() {
        assert_eq!(usage, Usage::default(), "usage from a body that was not a message");
    }
});
