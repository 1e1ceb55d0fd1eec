//! The scenario loader on arbitrary text, then `explain`'s resolution and expectation check
//! against the embedded registry.
//!
//! Properties: no panic; the `Debug` text of the merged secrets does not depend on their
//! values (it is the same with every value replaced); resolution yields an env plan exactly
//! when it reports no error; the redacted plan shows `<redacted>` for every secret and for
//! the workspace token.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_policy::resolve::REDACTED;
use tollgate_policy::scenario::{RegistryRef, Scenario};
use tollgate_policy::{
    Context, MergedSecrets, Origin, PlanValue, PublicUrl, Registry, SecretState, SecretValue, resolve,
};

fn embedded() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::embedded().ok()).as_ref()
}

/// The same secrets (names, origins, readability) with every value replaced by `v`.
fn blanked(secrets: &MergedSecrets) -> Option<MergedSecrets> {
    let mut org = Vec::new();
    let mut workspace = Vec::new();
    for (name, secret) in secrets.iter() {
        let state = match secret.state {
            SecretState::Value(_) => SecretState::Value(SecretValue::parse("v").ok()?),
            SecretState::Unreadable => SecretState::Unreadable,
        };
        match secret.origin {
            Origin::Org => org.push((name.clone(), state)),
            Origin::Workspace => workspace.push((name.clone(), state)),
            Origin::Tollgate => panic!("a scenario secret injected by Tollgate"),
        }
    }
    Some(MergedSecrets::merge(org, workspace))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(scenario) = Scenario::parse("scenario.yaml", text, "fuzz") else { return };
    if let Some(blank) = blanked(&scenario.secrets) {
        assert_eq!(format!("{:?}", scenario.secrets), format!("{blank:?}"), "Debug shows a secret value");
    }
    if scenario.registry != RegistryRef::Default {
        return;
    }
    let Some(registry) = embedded() else { return };
    let url = scenario.public_url.as_deref().unwrap_or("http://127.0.0.1:8080");
    let Ok(public_url) = PublicUrl::parse(url) else { return };
    let ctx = Context { registry, public_url: &public_url };
    let resolved =
        resolve(&ctx, &scenario.workspace, &scenario.org, &scenario.secrets, scenario.request_model.as_deref());
    assert_eq!(resolved.plan.is_some(), resolved.resolution.error.is_none());
    if let Some(expect) = &scenario.expect {
        let _differences = expect.check(&resolved);
    }
    if let Some(plan) = &resolved.plan {
        let shown = plan.redacted();
        for (name, entry) in plan.iter() {
            if !matches!(entry.value, PlanValue::Public(_)) {
                assert_eq!(shown.get(name.as_str()).map(String::as_str), Some(REDACTED), "{name} is not redacted");
            }
        }
    }
});
