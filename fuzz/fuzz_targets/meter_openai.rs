//! The OpenAI Chat Completions meter on arbitrary streams and bodies.
//!
//! Properties: no panic; the result does not depend on the chunking; OpenAI reports no cache
//! writes; the protocol-generic `Meter` agrees; a body that yields usage is complete.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::chunkings;
use tollgate_policy::{Protocol, Usage};
use tollgate_proxy::{Meter, OpenAiMeter};

fuzz_target!(|data: &[u8]| {
    let mut first = None;
    for chunks in chunkings(data) {
        let mut meter = OpenAiMeter::new();
        let mut generic = Meter::new(Protocol::Openai);
        for chunk in &chunks {
            meter.observe_chunk(chunk);
            generic.observe_chunk(chunk);
            assert_eq!(meter.usage().cache_write_tokens, 0, "OpenAI reports no cache writes");
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

    let mut body = OpenAiMeter::new();
    body.observe_body(data);
    let usage = body.usage();
    assert_eq!(usage.cache_write_tokens, 0);
    if !body.completed() {
        assert_eq!(usage, Usage::default(), "usage from a body without usage");
    }
});
