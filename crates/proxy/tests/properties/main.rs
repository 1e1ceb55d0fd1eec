//! Property tests of the proxy's wire formats.
//!
//! - `sse`: any stream, split anywhere, parses to the events the generator put in it (a);
//! - `meter`: split anywhere, a meter reports the complete stream's usage, the last
//!   cumulative `message_delta` for Anthropic (a, c); cut anywhere, it never panics and never
//!   reports more than the complete stream (d);
//! - `strip`: split anywhere, the stripper's output is the input minus exactly the usage
//!   event, forwarded as soon as each block is complete, and a cut stream loses nothing else (b);
//! - `estimate`: the input estimate against a documented tokenizer model (e);
//! - `charge`: a recorded stream cut anywhere is charged at least the estimate of the content
//!   it relayed and at most the worst case reserved (f).
#![expect(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

mod charge;
mod estimate;
mod meter;
mod sse;
mod strip;
mod support;

use proptest::test_runner::{Config, FileFailurePersistence};

/// Cases per property: a few seconds for the whole binary in a debug build.
pub const CASES: u32 = 256;

/// The proptest configuration of every property: [`CASES`] cases, failures kept next to
/// the source in `regressions`.
pub fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}
