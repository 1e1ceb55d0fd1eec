//! Tollgate's metering proxy (DESIGN.md section 8) and its wire formats.
//!
//! The proxy forwards a client's request to the platform upstream and streams the response
//! back chunk by chunk, without buffering. Its pure, synchronous parts see each chunk on its
//! way and never hold a whole stream:
//!
//! - [`sse`]: an incremental Server-Sent Events parser, [`SseParser`], which observes the
//!   bytes and reassembles events across any chunk boundaries, with a bounded buffer;
//! - [`meter`]: [`AnthropicMeter`], [`OpenAiMeter`] and [`ResponsesMeter`], which read token [`Usage`] from the
//!   response as it streams (or from a whole JSON body) and report what they saw at any
//!   moment, so that a broken stream is settled with the usage seen so far;
//! - [`rewrite`]: the request body: the model alias replaced by the upstream model,
//!   `stream_options.include_usage` requested for OpenAI streams, the request's output limit,
//!   and the conservative input-token estimate that the credit reservation uses;
//! - [`strip`]: [`UsageChunkStripper`], which removes from an OpenAI stream the usage chunk
//!   the proxy asked for on the client's behalf, and passes every other byte through.
//!
//! A streaming exchange, schematically (`forward` stands for the HTTP plumbing):
//!
//! ```
//! use bytes::Bytes;
//! use tollgate_proxy::{Meter, UsageChunkStripper, rewrite};
//! use tollgate_policy::Protocol;
//!
//! let mut body = rewrite::parse_request(br#"{"model":"fast","stream":true,"max_tokens":100,"messages":[]}"#)?;
//! rewrite::set_model(&mut body, "gpt-4.1-mini")?;
//! let strip = rewrite::ensure_include_usage(&mut body);
//! let forwarded = rewrite::to_body(&body);
//! let _reserve_input = rewrite::estimate_input_tokens(forwarded.len());
//! let _reserve_output = rewrite::max_output_tokens(&body, Protocol::Openai);
//!
//! let mut meter = Meter::new(Protocol::Openai);
//! let mut stripper = strip.then(UsageChunkStripper::new);
//! let upstream = [&b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\n"[..], b"data: [DONE]\n\n"];
//! let mut forward = |_bytes: Bytes| {};
//! for chunk in upstream {
//!     let chunk = Bytes::copy_from_slice(chunk);
//!     meter.observe_chunk(&chunk);
//!     forward(match &mut stripper { Some(s) => s.push(chunk), None => chunk });
//! }
//! if let Some(s) = &mut stripper {
//!     forward(s.finish());
//! }
//! assert!(meter.completed());
//! assert_eq!(meter.usage().output_tokens, 2);
//! # Ok::<(), tollgate_proxy::rewrite::RewriteError>(())
//! ```
//!
//! Those modules do no IO, spawn no task and read no clock. The HTTP side ([`Proxy`]) and
//! the credit bookkeeping ([`credit`]) are built on them.

pub mod budget;
pub mod credentials;
pub mod credit;
mod http;
pub mod meter;
pub mod metric_names;
pub mod models;
pub mod observe;
pub mod rate;
pub mod rewrite;
pub mod sse;
pub mod strip;
mod upstream;

pub use budget::Clock;
pub use credit::{Credit, CreditConfig};
pub use http::{DEFAULT_MAX_OUTPUT_TOKENS, MAX_REQUEST_BYTES, Proxy, ProxyConfig, UpstreamTarget};
pub use meter::{AnthropicMeter, Meter, OpenAiMeter, ResponsesMeter};
pub use rewrite::{
    RewriteError, ensure_include_usage, estimate_input_tokens, max_output_tokens, parse_request, requested_model,
    set_model, to_body, wants_stream,
};
pub use sse::{DEFAULT_MAX_EVENT_BYTES, EventRef, SseEvent, SseParser};
pub use strip::UsageChunkStripper;
pub use tollgate_policy::Usage;
pub use upstream::ClientBuildError;
