//! Unit tests of Codex's configuration: what the resolver decides for each mode and provider,
//! and the ChatGPT-login check.

use super::*;
use crate::names::SecretName;
use crate::registry::Registry;
use crate::resolve::{Context, OrgSpec, Resolved, WorkspaceKind, WorkspaceSpec, resolve};
use crate::secret::{MergedSecrets, Scope, SecretState, SecretValue};

const URL: &str = "https://tollgate.example.com";

fn registry() -> Registry {
    Registry::embedded().unwrap()
}

/// Resolves a workspace of `runtime` with `model` and workspace secrets `ws`.
fn resolved(registry: &Registry, runtime: &str, model: Option<&str>, ws: &[(&str, &str)]) -> Resolved {
    let public = PublicUrl::parse(URL).unwrap();
    let ctx = Context { registry, public_url: &public };
    let spec = WorkspaceSpec {
        id: "ws-1".into(),
        runtime: runtime.into(),
        kind: WorkspaceKind::Agent,
        model: model.map(str::to_owned),
        billing_mode: None,
    };
    let mut secrets = MergedSecrets::default();
    secrets.extend(
        Scope::Workspace,
        ws.iter()
            .map(|(n, v)| (SecretName::parse(n).unwrap(), SecretState::Value(SecretValue::parse(*v).unwrap())))
            .collect::<Vec<_>>(),
    );
    resolve(&ctx, &spec, &OrgSpec::default(), &secrets, None)
}

fn codex(r: &Resolved) -> Option<CodexConfig> {
    r.plan().and_then(|p| p.codex().cloned())
}

fn endpoint(base_url: BaseUrl, env_key: &str, model: &str) -> CodexConfig {
    CodexConfig {
        provider: CodexProvider::Endpoint {
            base_url,
            env_key: EnvName::parse(env_key).unwrap(),
            wire_api: WireApi::Responses,
        },
        model: Some(model.to_owned()),
    }
}

/// A JWT whose payload is `{}` (what Codex needs to parse the login).
const ID_TOKEN: &str = "e30.e30.sig";

fn login() -> String {
    format!(
        r#"{{"OPENAI_API_KEY":null,"tokens":{{"id_token":"{ID_TOKEN}","access_token":"access-secret","refresh_token":"refresh-secret","account_id":"acc"}},"last_refresh":"2026-11-30T00:00:00Z"}}"#
    )
}

#[test]
fn platform_managed_codex_talks_to_the_proxy_with_the_workspace_token_variable() {
    let r = resolved(&registry(), "codex", Some("platform/gpt"), &[]);
    let want = endpoint(BaseUrl::Url(format!("{URL}/openai/v1")), WORKSPACE_TOKEN_ENV, "platform/gpt");
    assert_eq!(codex(&r), Some(want));
    assert!(r.resolution().trace.iter().any(|l| l.starts_with("codex config: model_provider tollgate")));
}

#[test]
fn byok_openai_codex_talks_to_the_provider_base_url_with_the_customer_key() {
    let r = resolved(&registry(), "codex", Some("gpt-5"), &[("OPENAI_API_KEY", "sk-customer")]);
    assert_eq!(r.resolution().provider.as_deref(), Some("openai"));
    let want = endpoint(BaseUrl::Url(OPENAI_PUBLIC_BASE_URL.to_owned()), "OPENAI_API_KEY", "gpt-5");
    assert_eq!(codex(&r), Some(want));
}

#[test]
fn a_registry_can_point_openai_at_a_stand_in() {
    let yaml = crate::registry::DEFAULT_REGISTRY_YAML
        .replace(r#"base_url: "https://api.openai.com/v1""#, r#"base_url: "http://127.0.0.1:9/v1""#);
    let reg = Registry::parse("test", &yaml).unwrap();
    let r = resolved(&reg, "codex", Some("gpt-5"), &[("OPENAI_API_KEY", "sk-customer")]);
    let want = endpoint(BaseUrl::Url("http://127.0.0.1:9/v1".to_owned()), "OPENAI_API_KEY", "gpt-5");
    assert_eq!(codex(&r), Some(want));
}

#[test]
fn a_workspace_base_url_is_codex_endpoint_by_name_never_by_value() {
    let r = resolved(
        &registry(),
        "codex",
        Some("gpt-5"),
        &[("OPENAI_API_KEY", "sk-customer"), ("OPENAI_BASE_URL", "https://relay.example/v1")],
    );
    let want = endpoint(BaseUrl::Env(EnvName::parse("OPENAI_BASE_URL").unwrap()), "OPENAI_API_KEY", "gpt-5");
    assert_eq!(codex(&r), Some(want));
    let described = codex(&r).map(|c| c.describe()).unwrap_or_default();
    assert!(!described.contains("relay.example"), "{described}");
}

#[test]
fn only_a_chatgpt_login_picks_openai_chatgpt_and_the_builtin_provider() {
    let value = login();
    let r = resolved(&registry(), "codex", Some("gpt-5"), &[("CODEX_AUTH_JSON", value.as_str())]);
    assert_eq!(r.resolution().provider.as_deref(), Some("openai-chatgpt"));
    let c = codex(&r).unwrap();
    assert_eq!(c.provider, CodexProvider::ChatgptLogin { auth_json_env: EnvName::parse(CODEX_AUTH_JSON).unwrap() });
    assert_eq!(c.model_provider(), BUILTIN_OPENAI_PROVIDER);
    assert!(!c.describe().contains("-secret"), "names only: {}", c.describe());
}

#[test]
fn with_both_credentials_the_api_key_provider_comes_first() {
    let value = login();
    let r = resolved(
        &registry(),
        "codex",
        Some("gpt-5"),
        &[("CODEX_AUTH_JSON", value.as_str()), ("OPENAI_API_KEY", "sk-customer")],
    );
    assert_eq!(r.resolution().provider.as_deref(), Some("openai"));
    assert!(matches!(codex(&r).map(|c| c.provider), Some(CodexProvider::Endpoint { .. })));
}

#[test]
fn other_runtimes_carry_no_codex_config() {
    for (runtime, model) in [("openai-compatible", "platform/gpt"), ("claude-code", "platform/sonnet")] {
        let r = resolved(&registry(), runtime, Some(model), &[]);
        assert!(r.plan().is_some(), "{runtime}");
        assert_eq!(codex(&r), None, "{runtime}");
    }
}

#[test]
fn a_codex_config_needs_the_openai_protocol_and_a_known_kind() {
    let bad = crate::registry::DEFAULT_REGISTRY_YAML.replace(
        "token_env: ANTHROPIC_AUTH_TOKEN, model_env: ANTHROPIC_MODEL,",
        "token_env: ANTHROPIC_AUTH_TOKEN, config: codex, model_env: ANTHROPIC_MODEL,",
    );
    let errors = Registry::parse("test", &bad).unwrap_err().to_string();
    assert!(errors.contains("runtimes.claude-code.config") && errors.contains("needs protocol `openai`"), "{errors}");
    let unknown = crate::registry::DEFAULT_REGISTRY_YAML.replace("config: codex", "config: cursor");
    let errors = Registry::parse("test", &unknown).unwrap_err().to_string();
    assert!(errors.contains("unknown config `cursor`"), "{errors}");
}

#[test]
fn a_real_shaped_login_passes() {
    assert_eq!(check_auth_json(&login()), Ok(()));
    let with_mode = login().replacen('{', r#"{"auth_mode":"chatgpt","#, 1);
    assert_eq!(check_auth_json(&with_mode), Ok(()));
}

#[test]
fn logins_codex_would_answer_401_with_are_refused_naming_fields_only() {
    let cases = [
        ("not json", "is not JSON"),
        ("[]", "not a JSON object"),
        ("{}", "no `tokens` object"),
        (r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-secret-value"}"#, "auth_mode `apikey`"),
        (r#"{"tokens":{"id_token":"e30.e30.x","access_token":"a"}}"#, "tokens.refresh_token"),
        (r#"{"tokens":{"id_token":"e30.e30.x","access_token":"","refresh_token":"r"}}"#, "tokens.access_token"),
        (r#"{"tokens":{"id_token":"abc","access_token":"a","refresh_token":"r"}}"#, "not a JWT"),
        (r#"{"tokens":{"id_token":"e30.W10.x","access_token":"a","refresh_token":"r"}}"#, "not a JWT"),
        (
            r#"{"OPENAI_API_KEY":7,"tokens":{"id_token":"e30.e30.x","access_token":"a","refresh_token":"r"}}"#,
            "`OPENAI_API_KEY`",
        ),
    ];
    for (value, want) in cases {
        let got = check_auth_json(value).unwrap_err();
        assert!(got.contains(want), "{value}: {got}");
        assert!(!got.contains("sk-secret-value"), "{got}");
    }
}

#[test]
fn base64url_round_trips_what_a_jwt_encodes() {
    assert_eq!(base64url_decode("e30"), Some(b"{}".to_vec()));
    assert_eq!(base64url_decode("eyJhIjoxfQ"), Some(br#"{"a":1}"#.to_vec()));
    assert_eq!(base64url_decode("e3+"), None);
}
