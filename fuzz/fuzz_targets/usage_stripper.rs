//! The usage-chunk stripper on arbitrary streams.
//!
//! Properties: no panic; the bytes forwarded (every `push` then `finish`) and the count of
//! stripped events do not depend on the chunking; with nothing stripped the output is the
//! input, byte for byte; the output's events are the input's minus exactly the stripped
//! ones, each of which is a JSON object with `"choices": []` and a non-null `usage`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tollgate_fuzz::{RefEvent, chunkings, reference_events};
use tollgate_proxy::UsageChunkStripper;

/// The oracle, written independently of the proxy's typed parse. Invalid UTF-8 is replaced
/// first: serde_json does not validate the strings of fields a typed parse ignores (`id`, say),
/// so such a chunk still counts as a usage chunk, for the meter and the stripper alike.
fn is_usage_chunk(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    map.get("choices").and_then(|c| c.as_array()).is_some_and(Vec::is_empty)
        && map.get("usage").is_some_and(|u| !u.is_null())
}

fuzz_target!(|data: &[u8]| {
    let mut first: Option<(Vec<u8>, u64)> = None;
    for chunks in chunkings(data) {
        let mut stripper = UsageChunkStripper::new();
        let mut out = Vec::new();
        for chunk in &chunks {
            out.extend_from_slice(&stripper.push(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&stripper.finish());
        let seen = (out, stripper.stripped_events());
        match &first {
            None => first = Some(seen),
            Some(f) => assert_eq!(f, &seen, "the output depends on the chunking"),
        }
    }
    let Some((out, stripped)) = first else { return };
    if stripped == 0 {
        assert_eq!(out, data, "nothing stripped, yet the bytes changed");
        return;
    }
    let before = reference_events(data);
    let after = reference_events(&out);
    // Walk both: every event of the output is the next kept event of the input.
    let mut removed: Vec<&RefEvent> = Vec::new();
    let mut kept = after.iter().peekable();
    for event in &before {
        if kept.peek() == Some(&event) {
            kept.next();
        } else {
            removed.push(event);
        }
    }
    assert!(kept.next().is_none(), "the output has an event the input did not");
    assert_eq!(u64::try_from(removed.len()).ok(), Some(stripped), "stripped count and removed events differ");
    for (_, data) in removed {
        assert!(is_usage_chunk(data), "stripped an event that is not a usage chunk");
    }
});
