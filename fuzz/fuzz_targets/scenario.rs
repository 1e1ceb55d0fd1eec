//! The scenario loader on arbitrary text, then `explain`'s resolution and expectation check
//! against the embedded registry.
//!
//! Properties: no panic; an accepted scenario's merged secrets never show a value in their
//! `Debug` text; resolution yields an env plan exactly when it reports no error, and the
//! redacted plan shows no secret value.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_policy::scenario::{RegistryRef, Scenario};
use tollgate_policy::{Context, PublicUrl, Registry, resolve};

/// Secret values this short may occur in other text by chance (`<redacted>`, names, ids).
const MIN_CHECKED_LEN: usize = 12;

fn embedded() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::embedded().ok()).as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(scenario) = Scenario::parse("scenario.yaml", text, "fuzz") else { return };
    let values: Vec<&str> = scenario
        .secrets
        .iter()
        .filter_map(|(_, s)| s.value().map(|v| v.expose()))
        .filter(|v| v.len() >= MIN_CHECKED_LEN)
        .collect();
    let debug = format!("{:?}", scenario.secrets);
    let names: Vec<&str> = scenario.secrets.iter().map(|(n, _)| n.as_str()).collect();
    for value in &values {
        if !names.iter().any(|n| n.contains(value)) {
            assert!(!debug.contains(value), "a secret value in Debug output");
        }
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
        let _ = expect.check(&resolved);
    }
    if let Some(plan) = &resolved.plan {
        let shown = plan.redacted();
        for value in &values {
            // A secret may legitimately become a public value (a model id, say); only the
            // values the plan marks as secret must be hidden.
            for (name, entry) in plan.iter() {
                if matches!(entry.value, tollgate_policy::PlanValue::Secret(_)) {
                    let text = shown.get(name.as_str()).map_or("", String::as_str);
                    assert!(!text.contains(value), "a secret value in the redacted plan");
                }
            }
        }
    }
});
