//! The generators reach every outcome, so that no property passes vacuously.

use super::*;

/// How often each outcome occurs over a fixed-seed run of the generators.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) cases: usize,
    /// Generated registries with a colliding name that the loader refused.
    pub(crate) refused_registries: usize,
    /// Generated registries with a colliding name that the loader accepted.
    pub(crate) odd_registries: usize,
    pub(crate) embedded: usize,
    pub(crate) modes: BTreeMap<&'static str, usize>,
    pub(crate) sources: BTreeMap<&'static str, usize>,
    pub(crate) errors: BTreeMap<&'static str, usize>,
    pub(crate) ties: usize,
    pub(crate) byok_with_ws_credential: usize,
    pub(crate) disabled_with_ws_credential: usize,
    pub(crate) byok_with_dropped_org_credential: usize,
    pub(crate) byok_base_url_injected: usize,
    pub(crate) byok_proxy_routing_dropped: usize,
    pub(crate) request_model_provisions: usize,
    pub(crate) concierge_pins: usize,
}

pub(crate) fn count_outcomes(n: usize) -> Result<Counts, TestCaseError> {
    let mut runner =
        TestRunner::new_with_rng(ProptestConfig::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = input();
    let mut c = Counts::default();
    for _ in 0..n {
        let tree = strategy.new_tree(&mut runner).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let input = tree.current();
        let case = match Case::build(&input) {
            Ok(case) => case,
            Err(TestCaseError::Reject(_)) => {
                c.refused_registries += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        c.cases += 1;
        c.embedded += usize::from(case.yaml.is_none());
        c.odd_registries += usize::from(input.registry.as_ref().is_some_and(RegistryDesc::is_odd));
        let r = case.provision();
        let res = r.resolution();
        if let Some(m) = res.resolved_mode {
            *c.modes.entry(m.as_str()).or_default() += 1;
        }
        if let Some(s) = res.source {
            *c.sources.entry(s.as_str()).or_default() += 1;
        }
        if let Some(e) = &res.error {
            *c.errors.entry(e.code.as_str()).or_default() += 1;
        }
        c.ties += usize::from(res.trace.iter().any(|t| t.contains("ties between")));
        let ws_cred = res.credentials.iter().any(|x| x.origin == Origin::Workspace);
        match res.resolved_mode {
            Some(BillingMode::Byok) => {
                c.byok_with_ws_credential += usize::from(ws_cred);
                c.byok_with_dropped_org_credential += usize::from(
                    res.dropped.iter().any(|d| d.origin == Origin::Org && case.registry.is_llm_credential(&d.name)),
                );
                c.byok_base_url_injected += usize::from(r.plan().is_some_and(|p| {
                    p.iter().any(|(n, e)| e.origin == Origin::Tollgate && case.registry.is_routing(n.as_str()))
                }));
                c.byok_proxy_routing_dropped +=
                    usize::from(res.dropped.iter().any(|d| d.reason.contains("points at the Tollgate proxy")));
            }
            Some(BillingMode::Disabled) => c.disabled_with_ws_credential += usize::from(ws_cred),
            _ => {}
        }
        c.request_model_provisions +=
            usize::from(res.model_source == Some(tollgate_policy::ModelSource::Request) && res.error.is_none());
        c.concierge_pins += usize::from(res.source == Some(ModeSource::ConciergePin));
    }
    Ok(c)
}

/// The generators reach every mode and source, most error codes and the interesting
/// branches, so that I2 to I5 are not vacuously true.
#[test]
pub(crate) fn coverage_generators_reach_every_outcome() -> Result<(), TestCaseError> {
    const N: usize = 2000;
    let c = count_outcomes(N)?;
    eprintln!("{c:#?}");
    let at_least = |what: &str, got: usize, min: usize| {
        if got >= min { Ok(()) } else { Err(TestCaseError::fail(format!("{what}: {got} < {min}\n{c:#?}"))) }
    };
    for mode in ["platform_managed", "byok", "disabled"] {
        at_least(mode, c.modes.get(mode).copied().unwrap_or(0), N / 50)?;
    }
    for source in ["explicit", "stored_provider", "concierge_pin", "derived_provider", "org_default", "fallback"] {
        at_least(source, c.sources.get(source).copied().unwrap_or(0), N / 200)?;
    }
    at_least("distinct error codes", c.errors.len(), 6)?;
    at_least("embedded registry", c.embedded, N / 10)?;
    at_least("ties", c.ties, N / 100)?;
    at_least("byok with a workspace credential", c.byok_with_ws_credential, N / 100)?;
    at_least("disabled with a workspace credential", c.disabled_with_ws_credential, N / 200)?;
    at_least("byok dropping an org credential", c.byok_with_dropped_org_credential, N / 200)?;
    at_least("byok with a base_url injected", c.byok_base_url_injected, N / 200)?;
    at_least("byok dropping a routing name pointing at the proxy", c.byok_proxy_routing_dropped, 1)?;
    at_least("successful provisions with a request model", c.request_model_provisions, N / 50)?;
    at_least("concierge pins", c.concierge_pins, N / 200)?;
    Ok(())
}

/// The embedded registry is one of the generators' choices; make sure it loads and has what
/// the properties rely on (a platform provider with upstreams in the reserved namespace).
#[test]
pub(crate) fn embedded_registry_has_reserved_upstream_keys() -> Result<(), TestCaseError> {
    let reg = embedded()?;
    let platform = reg.platform().ok_or_else(|| TestCaseError::fail("no platform provider"))?;
    if platform.upstreams().is_empty() {
        return Err(TestCaseError::fail("the platform has no upstream"));
    }
    for u in platform.upstreams() {
        let k = u.key_env().as_str();
        if !k.starts_with("TOLLGATE_UPSTREAM_") || SecretName::parse(k).is_ok() {
            return Err(TestCaseError::fail(format!("upstream key_env {k} is not reserved")));
        }
    }
    Ok(())
}
