//! Property tests for the invariants I1 to I6 of DESIGN.md section 6.
//!
//! Every property runs over generated inputs: a registry (the embedded default, or a generated
//! description rendered to YAML and loaded through `Registry::parse`, so that the validation is
//! part of what is exercised), an org, a workspace, org and workspace secrets, and the provision
//! request's model. The pools the generators draw from overlap on purpose (credential names
//! shared by several providers, models and prefixes listed by several providers, the platform
//! included) so that ties, conflicts and every error code happen.
//!
//! `coverage_*` runs the same generators with a fixed seed and asserts that every mode, every
//! source and the error codes actually occur, so that no property can pass vacuously.

mod case;
mod checks;
mod coverage;
mod generate;
mod pools;
mod regressions;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use secrecy::ExposeSecret;
use tollgate_policy::codex::{BaseUrl, CodexProvider, WORKSPACE_TOKEN_ENV, WireApi};
use tollgate_policy::registry::RuntimeConfig;
use tollgate_policy::{
    BillingMode, Context, EnvName, EnvPlan, ErrorCode, MergedSecrets, ModeSource, OrgSpec, Origin, PlanValue, Protocol,
    PublicUrl, Registry, Resolution, Resolved, SecretName, SecretState, SecretValue, WorkspaceKind, WorkspaceSpec,
    WorkspaceToken, resolve,
};

use case::*;
use checks::*;
use generate::*;
use pools::*;

/// Cases per property. Six properties of 512 cases run in a few seconds in debug.
pub(crate) const CASES: u32 = 512;

/// The value of every platform upstream key, as the server's environment would hold it. The
/// planner is never given it; generated registries carry it only next to their `key_env` (in
/// the upstream URL and a comment), which is platform-side data no plan may leak.
pub(crate) const PLATFORM_KEY_VALUE: &str = "sk-platform-upstream-key-0c9f3e7a1b";

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/invariants.regressions")))),
        ..ProptestConfig::default()
    })]

    /// I1 "a platform upstream key never appears in any plan": no plan (provision, read or
    /// pull) holds an upstream `key_env` name or any `TOLLGATE_UPSTREAM_` name, no rendered or
    /// redacted env and no resolution holds the platform key's value (which generated
    /// registries carry next to their `key_env`), and `SecretName::parse` refuses every
    /// `TOLLGATE_` name.
    #[test]
    fn i1_platform_upstream_key_never_in_a_plan(input in input(), suffix in "[A-Z0-9_]{0,40}") {
        check_i1(&Case::build(&input)?, &suffix)?;
    }

    /// I2 "the read endpoint, the provision response and the secrets pull report the same
    /// mode, source and provider for the same state": after a successful provision with
    /// request model m, the stored workspace (`after_provision(m)`) reads and pulls with the
    /// same mode, source, provider, model, credentials and dropped list, and the pulled env is
    /// the provisioned env. After a failed provision the read is deterministic and the error a
    /// named code.
    #[test]
    fn i2_read_provision_and_pull_agree(input in input()) {
        check_i2(&Case::build(&input)?)?;
    }

    /// I3 "`platform_managed` plans hold exactly one credential (the workspace token) and
    /// route to the proxy": the only LLM credential name in the plan is the runtime's
    /// `token_env`, holding the workspace token; the runtime's `base_url_env` is the proxy
    /// URL of its protocol; the resolution lists exactly one credential, of origin `tollgate`.
    #[test]
    fn i3_platform_managed_holds_only_the_workspace_token(input in input()) {
        check_i3(&Case::build(&input)?)?;
    }

    /// I4 "a successful `byok` plan holds a credential from the provider's `auth_env`, holds
    /// no org-origin credential outside it, and never routes to the proxy".
    #[test]
    fn i4_byok_holds_a_provider_credential_and_never_routes_to_the_proxy(input in input()) {
        check_i4(&Case::build(&input)?)?;
    }

    /// I5 "a workspace-origin credential is never dropped in `byok` or `disabled`": it is not
    /// in `dropped`, and on success it is in the plan with its value unchanged.
    #[test]
    fn i5_workspace_credentials_are_never_dropped_in_byok_or_disabled(input in input()) {
        check_i5(&Case::build(&input)?)?;
    }

    /// I6 "resolution is deterministic and total: every input gives a resolution or a named
    /// error": resolving twice gives equal resolutions and plans, exactly one of a mode and an
    /// error, a plan exactly when there is no error, and no panic.
    #[test]
    fn i6_resolution_is_deterministic_and_total(input in input()) {
        check_i6(&Case::build(&input)?)?;
    }
}
