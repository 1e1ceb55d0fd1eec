//! The registry loader (`providers.yaml`) on arbitrary text, and resolution against whatever
//! registry it accepts.
//!
//! Properties: no panic; a refusal lists at least one problem, each with a message; an
//! accepted registry finds each of its runtimes and providers by id, and `resolve` answers
//! (without panicking) for every runtime under every billing mode, with an env plan exactly
//! when it reports no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_policy::{
    BillingMode, Context, MergedSecrets, OrgSpec, PublicUrl, Registry, WorkspaceKind, WorkspaceSpec, resolve,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let registry = match Registry::parse("providers.yaml", text) {
        Ok(registry) => registry,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal with no reason");
            assert!(errors.0.iter().all(|e| !e.message.is_empty()), "an empty error message");
            return;
        }
    };
    for provider in registry.providers() {
        assert_eq!(registry.provider(provider.id()).map(|p| p.id()), Some(provider.id()));
        for model in provider.models() {
            assert!(provider.model(model.id()).is_some(), "a provider's model is not found by id");
        }
    }
    let Ok(public_url) = PublicUrl::parse("http://127.0.0.1:8080") else { return };
    let ctx = Context { registry: &registry, public_url: &public_url };
    let secrets = MergedSecrets::default();
    let runtimes: Vec<String> = registry.runtimes().map(|r| r.id().to_owned()).collect();
    for runtime in &runtimes {
        assert!(registry.runtime(runtime).is_some(), "a runtime is not found by id");
        for mode in [None, Some(BillingMode::PlatformManaged), Some(BillingMode::Byok), Some(BillingMode::Disabled)] {
            for kind in [WorkspaceKind::Agent, WorkspaceKind::Concierge] {
                let workspace = WorkspaceSpec {
                    id: "ws-fuzz".to_owned(),
                    runtime: runtime.clone(),
                    kind,
                    model: None,
                    billing_mode: mode,
                };
                let org = OrgSpec { default_billing_mode: None };
                let resolved = resolve(&ctx, &workspace, &org, &secrets, None);
                assert_eq!(resolved.plan.is_some(), resolved.resolution.error.is_none());
            }
        }
    }
});
