//! Test support: the API server's harness lives in tollgate-testkit.

pub(crate) use tollgate_testkit::server_app::*;
