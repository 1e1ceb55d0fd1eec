//! The metering proxy end to end, in process: a real store (SQLite; Postgres for the
//! two-instance test), the stand-in upstream, and the proxy's routes on port 0.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a test failure")]

mod as_sent;
mod credit;
mod debits;
mod faults;
mod flows;
mod models;
mod responses;

pub(crate) use tollgate_testkit::proxy_app::*;
