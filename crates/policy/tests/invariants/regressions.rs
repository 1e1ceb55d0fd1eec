//! Counterexamples the properties found, minimised.

use super::*;

// ---- regressions: counterexamples the properties found, minimised --------------------------
//
// Each holds when the loader refuses the registry or when the property holds for it, so each
// passes whichever way the implementation is fixed.

pub(crate) fn workspace(runtime: &str, model: Option<&str>) -> WorkspaceSpec {
    WorkspaceSpec {
        id: "ws_regression".to_owned(),
        runtime: runtime.to_owned(),
        kind: WorkspaceKind::Agent,
        model: model.map(str::to_owned),
        billing_mode: None,
    }
}

pub(crate) fn holds(result: Result<(), TestCaseError>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A registry with one claude-code runtime whose `model_env` is `model_env`, a platform
/// provider whose upstream key is `key_env`, and one BYOK provider.
pub(crate) fn registry_yaml(model_env: &str, key_env: &str) -> String {
    format!(
        r#"runtimes:
  claude-code: {{protocol: anthropic, base_url_env: ANTHROPIC_BASE_URL, token_env: ANTHROPIC_AUTH_TOKEN, model_env: {model_env}}}
providers:
  - id: platform
    platform: true
    runtimes: [claude-code]
    models:
      - {{id: platform/opus, upstream: anthropic, upstream_model: claude-opus-4-5, price: {{input: 5, output: 25}}}}
    upstreams:
      anthropic: {{url: "https://api.anthropic.com", key_env: {key_env}}}
  - id: anthropic-api
    runtimes: [claude-code]
    auth_env: [ANTHROPIC_API_KEY]
    model_prefixes: ["claude-"]
"#
    )
}

/// I4: a workspace's routing name spelled with an upper-case scheme and host still points at
/// the proxy (URL schemes and hosts are case-insensitive), so a BYOK plan must not keep it.
#[test]
pub(crate) fn regression_i4_proxy_url_in_other_case_is_not_kept_in_byok() -> Result<(), TestCaseError> {
    for url in ["HTTP://TOLLGATE.EXAMPLE/anthropic", "http://Tollgate.Example/anthropic"] {
        let case = Case::explicit(
            None,
            workspace("claude-code", Some("MiniMax-M2")),
            &[],
            &[("MINIMAX_API_KEY", "mm-key"), ("ANTHROPIC_BASE_URL", url)],
            None,
        )?
        .ok_or_else(|| TestCaseError::fail("the embedded registry"))?;
        holds(check_i4(&case));
    }
    Ok(())
}

/// I1: an upstream `key_env` that is one of the names Tollgate injects into every plan
/// (`TOLLGATE_URL`, ...) puts a platform key's name into every plan.
#[test]
pub(crate) fn regression_i1_key_env_is_not_a_name_tollgate_injects() -> Result<(), TestCaseError> {
    for key_env in ODD_KEY_ENV_POOL {
        let yaml = registry_yaml("ANTHROPIC_MODEL", key_env);
        if let Some(case) =
            Case::explicit(Some(&yaml), workspace("claude-code", Some("platform/opus")), &[], &[], None)?
        {
            holds(check_i1(&case, "X"));
        }
    }
    Ok(())
}

/// I1: a runtime `model_env` in the platform key namespace puts that name into the plan.
#[test]
pub(crate) fn regression_i1_model_env_is_not_a_platform_key_name() -> Result<(), TestCaseError> {
    let yaml = registry_yaml("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "TOLLGATE_UPSTREAM_ANTHROPIC_KEY");
    if let Some(case) = Case::explicit(Some(&yaml), workspace("claude-code", Some("platform/opus")), &[], &[], None)? {
        holds(check_i1(&case, "X"));
    }
    Ok(())
}

/// I3: a runtime `model_env` equal to its own `token_env` or `base_url_env` overwrites the
/// workspace token or the proxy URL with the model name.
#[test]
pub(crate) fn regression_i3_model_env_does_not_replace_the_token_or_the_proxy_url() -> Result<(), TestCaseError> {
    for model_env in ["ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"] {
        let yaml = registry_yaml(model_env, "TOLLGATE_UPSTREAM_ANTHROPIC_KEY");
        if let Some(case) =
            Case::explicit(Some(&yaml), workspace("claude-code", Some("platform/opus")), &[], &[], None)?
        {
            holds(check_i3(&case));
        }
    }
    Ok(())
}
