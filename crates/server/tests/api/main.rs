//! The HTTP API end to end: real servers on 127.0.0.1 over SQLite files and a throwaway
//! Postgres, talked to with reqwest.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a test failure")]

mod support;
mod throttle;
pub(crate) use tollgate_testkit::both_backends;

mod alarms;
mod atomic;
mod audit;
mod auth;
mod bodies;
mod demo;
mod encryption;
mod errors;
mod events;
mod limits;
mod logs;
mod notify;
mod ops;
mod orgs;
mod parity;
mod persistence;
mod provision;
mod rotation;
mod schemathesis;
mod secrets;
mod suspension;
mod ui;
mod usage;
mod workspaces;
