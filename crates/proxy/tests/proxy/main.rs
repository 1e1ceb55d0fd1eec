//! The metering proxy end to end, in process: a real store (SQLite; Postgres for the
//! two-instance test), the stand-in upstream, and the proxy's routes on port 0.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

mod access;
mod as_sent;
mod budgets;
mod credit;
mod debits;
mod estimate;
mod faults;
mod flows;
mod models;
mod observe;
mod pricing;
mod rates;
mod responses;
mod shapes;
mod suspension;

pub(crate) use tollgate_testkit::proxy_app::*;

/// Checks that `r` is a 200 event stream and reads it whole: its text and how many chunks it
/// came in (more than a few means it was relayed as it came, not buffered).
pub(crate) async fn read_event_stream(r: reqwest::Response) -> (usize, String) {
    use futures_util::StreamExt;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut chunks = 0;
    let mut text = String::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        chunks += 1;
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    (chunks, text)
}
