//! Unit tests of the resolver and the env plan, including every case the seeds name.

use super::*;
use crate::names::SecretName;
use crate::registry::Registry;
use crate::secret::{Scope, SecretState, SecretValue};
use crate::token::WorkspaceToken;

fn registry() -> Registry {
    Registry::embedded().expect("embedded registry is valid")
}

fn url() -> PublicUrl {
    PublicUrl::parse("https://tollgate.example.com").unwrap()
}

/// A workspace under test: the builder every seed case uses.
struct Case {
    ws: WorkspaceSpec,
    org: OrgSpec,
    org_secrets: Vec<(&'static str, Option<&'static str>)>,
    ws_secrets: Vec<(&'static str, Option<&'static str>)>,
    request: Option<&'static str>,
}

fn case(runtime: &str) -> Case {
    Case {
        ws: WorkspaceSpec {
            id: "ws-1".into(),
            runtime: runtime.into(),
            kind: WorkspaceKind::Agent,
            model: None,
            billing_mode: None,
        },
        org: OrgSpec::default(),
        org_secrets: Vec::new(),
        ws_secrets: Vec::new(),
        request: None,
    }
}

impl Case {
    fn model(mut self, m: &str) -> Self {
        self.ws.model = Some(m.into());
        self
    }
    fn kind(mut self, k: WorkspaceKind) -> Self {
        self.ws.kind = k;
        self
    }
    fn mode(mut self, m: BillingMode) -> Self {
        self.ws.billing_mode = Some(m);
        self
    }
    fn org_default(mut self, m: BillingMode) -> Self {
        self.org.default_billing_mode = Some(m);
        self
    }
    fn org(mut self, name: &'static str, value: &'static str) -> Self {
        self.org_secrets.push((name, Some(value)));
        self
    }
    fn ws(mut self, name: &'static str, value: &'static str) -> Self {
        self.ws_secrets.push((name, Some(value)));
        self
    }
    fn ws_unreadable(mut self, name: &'static str) -> Self {
        self.ws_secrets.push((name, None));
        self
    }
    fn org_unreadable(mut self, name: &'static str) -> Self {
        self.org_secrets.push((name, None));
        self
    }
    fn request(mut self, m: &'static str) -> Self {
        self.request = Some(m);
        self
    }
    fn secrets(&self) -> MergedSecrets {
        let conv = |list: &[(&str, Option<&str>)]| -> Vec<(SecretName, SecretState)> {
            list.iter()
                .map(|(n, v)| {
                    let state = match v {
                        Some(v) => SecretState::Value(SecretValue::parse(*v).unwrap()),
                        None => SecretState::Unreadable,
                    };
                    (SecretName::parse(n).unwrap(), state)
                })
                .collect()
        };
        let mut merged = MergedSecrets::default();
        merged.extend(Scope::Org, conv(&self.org_secrets));
        merged.extend(Scope::Workspace, conv(&self.ws_secrets));
        merged
    }
    fn resolve_with(&self, registry: &Registry) -> Resolved {
        let url = url();
        let ctx = Context { registry, public_url: &url };
        resolve(&ctx, &self.ws, &self.org, &self.secrets(), self.request)
    }
    fn resolve(&self) -> Resolved {
        self.resolve_with(&registry())
    }
}

trait ResolvedExt {
    fn mode(&self) -> Option<BillingMode>;
    fn source(&self) -> Option<ModeSource>;
    fn provider(&self) -> Option<&str>;
    fn code(&self) -> Option<ErrorCode>;
    fn has(&self, name: &str) -> bool;
    fn value(&self, name: &str) -> Option<String>;
    fn dropped(&self, name: &str) -> Option<&Dropped>;
    fn credential_names(&self) -> Vec<&str>;
}

impl ResolvedExt for Resolved {
    fn mode(&self) -> Option<BillingMode> {
        self.resolution().resolved_mode
    }
    fn source(&self) -> Option<ModeSource> {
        self.resolution().source
    }
    fn provider(&self) -> Option<&str> {
        self.resolution().provider.as_deref()
    }
    fn code(&self) -> Option<ErrorCode> {
        self.resolution().error.as_ref().map(|e| e.code)
    }
    fn has(&self, name: &str) -> bool {
        self.plan().is_some_and(|p| p.contains(name))
    }
    fn value(&self, name: &str) -> Option<String> {
        let token = WorkspaceToken::mint(|b| b.fill(7));
        self.plan()?.render(&token).get(name).map(|v| secrecy::ExposeSecret::expose_secret(v).to_owned())
    }
    fn dropped(&self, name: &str) -> Option<&Dropped> {
        self.resolution().dropped.iter().find(|d| d.name == name)
    }
    fn credential_names(&self) -> Vec<&str> {
        self.resolution().credentials.iter().map(|c| c.name.as_str()).collect()
    }
}

// ---- seed 001 (provider-matched BYOK credential injection) --------------------------------

/// Seed 001 `MinimaxStripsStrayGlobalOAuth`: the DevB repro. A MiniMax workspace inherits the
/// tenant's org-scope Claude OAuth token; it is stripped and MINIMAX_API_KEY is kept and routed.
#[test]
fn minimax_strips_stray_global_oauth() {
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org")
        .org("MINIMAX_API_KEY", "mm-org-key")
        .resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert_eq!(r.provider(), Some("minimax"));
    assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN"), "the stray org OAuth token must not reach a MiniMax workspace");
    let d = r.dropped("CLAUDE_CODE_OAUTH_TOKEN").expect("reported as dropped");
    assert_eq!(d.origin, Origin::Org);
    assert_eq!(d.reason, "not in auth_env of provider minimax");
    assert_eq!(
        r.value("MINIMAX_API_KEY").as_deref(),
        Some("mm-org-key"),
        "the org key matching minimax's auth_env is kept"
    );
    assert_eq!(r.value("ANTHROPIC_BASE_URL").as_deref(), Some("https://api.minimax.io/anthropic"));
}

/// Seed 001 `WorkspaceOriginCredExemptFromStrip`: a credential the workspace set itself
/// survives even when it does not match the provider.
#[test]
fn workspace_origin_cred_exempt_from_strip() {
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .org("MINIMAX_API_KEY", "mm-org-key")
        .ws("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own")
        .ws("OPENAI_API_KEY", "sk-own")
        .resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert_eq!(r.value("CLAUDE_CODE_OAUTH_TOKEN").as_deref(), Some("sk-ant-oat01-own"));
    assert_eq!(r.value("OPENAI_API_KEY").as_deref(), Some("sk-own"));
    assert!(r.resolution().dropped.is_empty(), "{:?}", r.resolution().dropped);
    assert_eq!(r.credential_names(), ["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY", "OPENAI_API_KEY"]);
}

/// Seed 001 `ByokGlobalScopeOAuthSurvives`: an org-scope OAuth token survives on an opus
/// workspace because anthropic-oauth's auth_env names it (the PM/reno regression guard).
#[test]
fn byok_global_scope_oauth_survives() {
    let r = case("claude-code").model("opus").org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org").resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert_eq!(r.provider(), Some("anthropic-oauth"));
    assert_eq!(r.value("CLAUDE_CODE_OAUTH_TOKEN").as_deref(), Some("sk-ant-oat01-org"));
    assert!(!r.has("ANTHROPIC_BASE_URL"), "anthropic-oauth has no base_url: the runtime talks to Anthropic directly");
    assert_eq!(r.resolution().credentials[0].origin, Origin::Org);
}

/// Seed 001, the kimi regression confirmation: KIMI_API_KEY is in kimi-coding's auth_env.
#[test]
fn kimi_org_key_is_kept() {
    let r = case("claude-code")
        .model("kimi-k2")
        .org("KIMI_API_KEY", "kimi-key")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "x")
        .resolve();
    assert_eq!(r.provider(), Some("kimi-coding"));
    assert!(r.has("KIMI_API_KEY"));
    assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN"));
    assert_eq!(r.value("ANTHROPIC_BASE_URL").as_deref(), Some("https://api.kimi.com/coding/"));
}

/// Each kept credential says why: an org one because the provider lists it, a workspace one
/// because it is the workspace's own.
#[test]
fn kept_credentials_say_why() {
    let r = case("claude-code").model("kimi-k2").org("KIMI_API_KEY", "k").ws("ANTHROPIC_API_KEY", "a").resolve();
    let reason = |name: &str| {
        r.resolution().credentials.iter().find(|c| c.name == name).map(|c| c.reason.clone()).unwrap_or_default()
    };
    assert_eq!(reason("KIMI_API_KEY"), "in auth_env of provider kimi-coding");
    assert_eq!(reason("ANTHROPIC_API_KEY"), "the workspace's own credential");
}

/// Only the runtime's own base URL, set by the workspace, stops the provider's from being
/// injected: another runtime's routing name (`OPENAI_BASE_URL` on Claude Code) does not.
#[test]
fn another_runtimes_routing_name_does_not_stop_the_providers_base_url() {
    let r = case("claude-code")
        .model("kimi-k2")
        .ws("KIMI_API_KEY", "k")
        .ws("OPENAI_BASE_URL", "https://other.example/v1")
        .resolve();
    assert_eq!(r.value("ANTHROPIC_BASE_URL").as_deref(), Some("https://api.kimi.com/coding/"));
    let own = case("claude-code")
        .model("kimi-k2")
        .ws("KIMI_API_KEY", "k")
        .ws("ANTHROPIC_BASE_URL", "https://relay.example/kimi")
        .resolve();
    assert_eq!(own.value("ANTHROPIC_BASE_URL").as_deref(), Some("https://relay.example/kimi"));
}

// ---- seed 002 (provider-aware gate on org-scope LLM credentials) ---------------------------

/// Seed 002 `ByokStripsGlobalOriginOAuthToken`: a BYOK workspace does not inherit the
/// platform's org-scope OAuth token, and is left with no usable credential.
#[test]
fn byok_strips_global_origin_oauth_token() {
    let r = case("claude-code").model("MiniMax-M2.7").org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform").resolve();
    assert_eq!(r.code(), Some(ErrorCode::MissingByokCredential));
    assert!(r.dropped("CLAUDE_CODE_OAUTH_TOKEN").is_some());
    assert!(r.plan().is_none());
}

/// Seed 002 `ByokKeepsWorkspaceOwnOAuthEvenWithGlobal`: the workspace's own token survives.
#[test]
fn byok_keeps_workspace_own_oauth_even_with_global() {
    let r = case("claude-code")
        .model("opus")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform")
        .ws("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own")
        .resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert_eq!(r.value("CLAUDE_CODE_OAUTH_TOKEN").as_deref(), Some("sk-ant-oat01-own"));
    assert_eq!(r.resolution().credentials[0].origin, Origin::Workspace);
}

/// Seed 002 `DisabledStripsGlobalButReportsNoCred`: disabled strips org credentials and
/// routing but still provisions; workspace credentials stay.
#[test]
fn disabled_strips_global_but_reports_no_cred() {
    let r = case("claude-code")
        .mode(BillingMode::Disabled)
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform")
        .org("ANTHROPIC_BASE_URL", "https://proxy.example")
        .org("GITHUB_TOKEN", "ghp")
        .ws("OPENAI_API_KEY", "sk-own")
        .resolve();
    assert_eq!(r.mode(), Some(BillingMode::Disabled));
    assert_eq!(r.source(), Some(ModeSource::Explicit));
    assert_eq!(r.code(), None);
    assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN"));
    assert!(!r.has("ANTHROPIC_BASE_URL"), "no routing for a disabled workspace");
    assert!(r.has("GITHUB_TOKEN"));
    assert!(r.has("OPENAI_API_KEY"));
    assert_eq!(r.value("LLM_BILLING_MODE").as_deref(), Some("disabled"));
}

/// Seed 002 `PlatformManagedStillReceivesGlobalCreds`, Tollgate's form: a platform-managed
/// workspace still gets working LLM access, but through the proxy with its workspace token;
/// every org credential (OAuth and API key alike) is dropped.
#[test]
fn platform_managed_routes_through_proxy_with_workspace_token() {
    let r = case("claude-code")
        .model("platform/sonnet")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform")
        .org("ANTHROPIC_API_KEY", "sk-ant-api")
        .ws("ANTHROPIC_BASE_URL", "https://elsewhere.example")
        .resolve();
    assert_eq!(r.mode(), Some(BillingMode::PlatformManaged));
    assert_eq!(r.source(), Some(ModeSource::DerivedProvider));
    assert_eq!(r.value("ANTHROPIC_BASE_URL").as_deref(), Some("https://tollgate.example.com/anthropic"));
    let token = r.value("ANTHROPIC_AUTH_TOKEN").expect("token injected");
    assert!(token.starts_with("tg_ws_"));
    assert_eq!(r.value("TOLLGATE_WORKSPACE_TOKEN"), Some(token));
    assert_eq!(r.value("ANTHROPIC_MODEL").as_deref(), Some("platform/sonnet"));
    assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN") && !r.has("ANTHROPIC_API_KEY"));
    assert_eq!(r.credential_names(), ["ANTHROPIC_AUTH_TOKEN"]);
    assert_eq!(r.resolution().credentials[0].origin, Origin::Tollgate);
    assert_eq!(r.dropped("ANTHROPIC_BASE_URL").map(|d| d.origin), Some(Origin::Workspace));
}

/// Claude Code does not know a `platform/...` alias and would assume a 1M-token window: the
/// platform plan tells it the upstream model's real one. Only where the runtime has such a
/// variable, only for platform models, and only in platform-managed mode.
#[test]
fn platform_plan_tells_the_runtime_its_context_window() {
    let r = case("claude-code").model("platform/sonnet").resolve();
    assert_eq!(r.value("CLAUDE_CODE_MAX_CONTEXT_TOKENS").as_deref(), Some("200000"));
    assert!(r.resolution().trace.iter().any(|t| t.contains("CLAUDE_CODE_MAX_CONTEXT_TOKENS=200000")));
    let codex = case("codex").model("platform/gpt").resolve();
    assert_eq!(codex.mode(), Some(BillingMode::PlatformManaged));
    assert!(!codex.has("CLAUDE_CODE_MAX_CONTEXT_TOKENS"), "codex has no such variable");
    let byok = case("claude-code").model("MiniMax-M2.7").ws("MINIMAX_API_KEY", "mm").resolve();
    assert_eq!(byok.mode(), Some(BillingMode::Byok));
    assert!(!byok.has("CLAUDE_CODE_MAX_CONTEXT_TOKENS"), "not a platform model");
    let disabled = case("claude-code").model("platform/sonnet").mode(BillingMode::Disabled).resolve();
    assert!(!disabled.has("CLAUDE_CODE_MAX_CONTEXT_TOKENS"));
}

/// Seed 002 `PrepareProvisionContext_ByokWithOnlyGlobalOAuthFailsClosed`: an explicit BYOK
/// workspace with only the platform's OAuth token aborts with MISSING_BYOK_CREDENTIAL and an
/// actionable message naming the provider and the names that would satisfy it.
#[test]
fn byok_with_only_global_oauth_fails_closed() {
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .mode(BillingMode::Byok)
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform")
        .resolve();
    let e = r.resolution().error.as_ref().expect("fails");
    assert_eq!(e.code, ErrorCode::MissingByokCredential);
    assert!(e.message.contains("minimax"), "{}", e.message);
    assert!(e.message.contains("MINIMAX_API_KEY, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_API_KEY"), "{}", e.message);
    assert!(!e.message.contains("sk-ant"), "no value in messages");
    assert_eq!(r.resolution().resolved_mode, None);
    assert_eq!(r.resolution().source, None);
    assert!(r.plan().is_none(), "nothing half-done: no plan");
}

/// Seed 002 `SecretsValues_ByokStripsGlobalLLMCred`: the pull path is the same resolver, so
/// the org LLM credential is gated there too while the workspace's own key and the org's
/// non-LLM secrets are preserved.
#[test]
fn secrets_values_byok_strips_global_llm_cred() {
    let c = case("claude-code")
        .model("MiniMax-M2.7")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-platform")
        .org("GITHUB_TOKEN", "ghp-org")
        .ws("MINIMAX_API_KEY", "mm-own");
    let provisioned = c.resolve();
    let pulled = Case { request: None, ..c }.resolve();
    for r in [&provisioned, &pulled] {
        assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN"));
        assert_eq!(r.value("MINIMAX_API_KEY").as_deref(), Some("mm-own"));
        assert_eq!(r.value("GITHUB_TOKEN").as_deref(), Some("ghp-org"));
    }
    assert_eq!(provisioned.resolution(), pulled.resolution());
}

// ---- seed 003 (read endpoint and provisioning disagree) -------------------------------------

/// Seed 003 parity: the read endpoint (no request model), provisioning (request model) and
/// the pull (after the provision is stored) report the same mode, source and provider.
#[test]
fn read_provision_and_pull_agree() {
    let c = case("claude-code").ws("MODEL", "opus").ws("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own");
    let read = c.resolve();
    let provision = c.resolve();
    let stored = Case { ws: c.ws.after_provision(None), ..c };
    let pull = stored.resolve();
    for r in [&read, &provision, &pull] {
        assert_eq!(
            r.mode(),
            Some(BillingMode::Byok),
            "an anthropic-oauth workspace is never provisioned platform_managed"
        );
        assert_eq!(r.source(), Some(ModeSource::DerivedProvider));
        assert_eq!(r.provider(), Some("anthropic-oauth"));
    }
}

/// Seed 003: a re-provision carries no model; the MODEL secret still decides (opus ->
/// anthropic-oauth -> byok), the proxy is not injected and the customer's own OAuth token is.
#[test]
fn reprovision_without_model_uses_model_secret() {
    let r = case("claude-code").ws("MODEL", "opus").ws("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own").resolve();
    assert_eq!(r.resolution().effective_model.as_deref(), Some("opus"));
    assert_eq!(r.resolution().model_source, Some(ModelSource::Secret));
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert!(!r.has("ANTHROPIC_BASE_URL"));
    assert!(!r.has("ANTHROPIC_AUTH_TOKEN"));
    assert!(r.has("CLAUDE_CODE_OAUTH_TOKEN"));
}

/// Seed 003: the effective model chain is request, then workspace, then MODEL secret
/// (workspace, then org).
#[test]
fn effective_model_chain() {
    let base = || case("claude-code").org("MODEL", "haiku").ws("CLAUDE_CODE_OAUTH_TOKEN", "t");
    let r = base().resolve();
    assert_eq!(
        (r.resolution().effective_model.as_deref(), r.resolution().model_source),
        (Some("haiku"), Some(ModelSource::Secret))
    );
    let r = base().ws("MODEL", "sonnet").resolve();
    assert_eq!(r.resolution().effective_model.as_deref(), Some("sonnet"), "workspace MODEL beats org MODEL");
    let r = base().ws("MODEL", "sonnet").model("opus").resolve();
    assert_eq!(r.resolution().trace[0], "effective model opus from workspace", "the trace says why");
    assert_eq!(
        (r.resolution().effective_model.as_deref(), r.resolution().model_source),
        (Some("opus"), Some(ModelSource::Workspace))
    );
    let r = base().ws("MODEL", "sonnet").model("opus").request("platform/opus").resolve();
    assert_eq!(
        (r.resolution().effective_model.as_deref(), r.resolution().model_source),
        (Some("platform/opus"), Some(ModelSource::Request))
    );
    assert_eq!(r.mode(), Some(BillingMode::PlatformManaged));
    // Empty strings are absent at every step.
    let r = base().model("").request("").resolve();
    assert_eq!(r.resolution().effective_model.as_deref(), Some("haiku"));
    // A workspace MODEL="" overrides the org's MODEL (workspace wins the merge) and is absent.
    let r = base().ws("MODEL", "").resolve();
    assert_eq!(r.resolution().effective_model, None);
}

/// Seed 003: the tie-break is auth-env-insensitive for an exact model match (opus is listed
/// by anthropic-oauth only), and the auth env decides only between prefix-matched providers.
#[test]
fn exact_match_beats_prefix_and_auth_env_breaks_ties() {
    let r = case("claude-code").model("opus").ws("ANTHROPIC_API_KEY", "k").ws("CLAUDE_CODE_OAUTH_TOKEN", "t").resolve();
    assert_eq!(r.provider(), Some("anthropic-oauth"));
    let r = case("claude-code").model("claude-sonnet-4-5").ws("ANTHROPIC_API_KEY", "k").resolve();
    assert_eq!(r.provider(), Some("anthropic-api"), "ANTHROPIC_API_KEY present picks anthropic-api");
    let r = case("claude-code")
        .model("claude-sonnet-4-5")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "t")
        .ws("ANTHROPIC_API_KEY", "")
        .resolve();
    assert_eq!(r.provider(), Some("anthropic-oauth"), "an empty value is not present");
    let r = case("claude-code").model("claude-sonnet-4-5").mode(BillingMode::Disabled).resolve();
    assert_eq!(r.provider(), Some("anthropic-oauth"), "no auth env: the first in registry order");
    assert!(r.resolution().trace.iter().any(|t| t.contains("first in registry order")));
}

/// Longest prefix wins across providers.
#[test]
fn longest_prefix_wins() {
    let yaml = r#"
runtimes:
  rt: {protocol: openai, base_url_env: BASE, token_env: TOKEN}
providers:
  - {id: short, runtimes: [rt], auth_env: [SHORT_KEY], model_prefixes: ["m-"]}
  - {id: long, runtimes: [rt], auth_env: [LONG_KEY], model_prefixes: ["m-large-"]}
"#;
    let reg = Registry::parse("t.yaml", yaml).unwrap();
    let r = case("rt").model("m-large-1").ws("SHORT_KEY", "k").resolve_with(&reg);
    assert_eq!(r.provider(), Some("long"), "the longer prefix wins even though only SHORT_KEY is present");
    let r = case("rt").model("m-small").ws("SHORT_KEY", "k").resolve_with(&reg);
    assert_eq!(r.provider(), Some("short"));
}

// ---- seed 004 (concierge pin) ---------------------------------------------------------------

/// Seed 004 `TestEnsureConciergeProvider_EmptyModelPins`: a concierge rebuilt with an empty
/// model is pinned to the platform, so the stray OAuth token goes and the proxy token is set.
#[test]
fn concierge_empty_model_pins_platform() {
    let r =
        case("claude-code").kind(WorkspaceKind::Concierge).org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org").resolve();
    assert_eq!(r.mode(), Some(BillingMode::PlatformManaged));
    assert_eq!(r.source(), Some(ModeSource::ConciergePin));
    assert_eq!(r.provider(), Some("platform"));
    assert_eq!(r.value("LLM_PROVIDER").as_deref(), Some("platform"));
    assert!(!r.has("CLAUDE_CODE_OAUTH_TOKEN"));
    assert!(r.value("ANTHROPIC_AUTH_TOKEN").is_some_and(|t| t.starts_with("tg_ws_")));
    let r = case("claude-code").kind(WorkspaceKind::Concierge).model("").resolve();
    assert_eq!(r.source(), Some(ModeSource::ConciergePin), "an empty string is an empty model");
    let r = case("claude-code").kind(WorkspaceKind::Concierge).model("platform/opus").resolve();
    assert_eq!(r.source(), Some(ModeSource::ConciergePin), "a platform model pins too");
}

/// Seed 004, explicit-BYOK skip: a concierge with an explicit non-platform model is not
/// pinned, and a stored LLM_PROVIDER returns before the pin.
#[test]
fn concierge_explicit_byok_model_skips_pin() {
    let r =
        case("claude-code").kind(WorkspaceKind::Concierge).model("MiniMax-M2.7").ws("MINIMAX_API_KEY", "k").resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok));
    assert_eq!(r.source(), Some(ModeSource::DerivedProvider));
    assert_eq!(r.provider(), Some("minimax"));
    let r = case("claude-code")
        .kind(WorkspaceKind::Concierge)
        .ws("LLM_PROVIDER", "minimax")
        .ws("MINIMAX_API_KEY", "k")
        .resolve();
    assert_eq!(r.source(), Some(ModeSource::StoredProvider));
    assert_eq!(r.provider(), Some("minimax"));
    // An agent is never pinned: with nothing else it falls back.
    let r = case("claude-code").resolve();
    assert_eq!(r.source(), Some(ModeSource::Fallback));
}

// ---- the remaining rules and every error code -----------------------------------------------

#[test]
fn stored_provider_is_case_insensitive_and_workspace_only() {
    let r = case("claude-code").ws("LLM_PROVIDER", "MiniMax").ws("MINIMAX_API_KEY", "k").model("opus").resolve();
    assert_eq!(r.provider(), Some("minimax"), "stored provider beats the model");
    assert_eq!(r.source(), Some(ModeSource::StoredProvider));
    let r =
        case("claude-code").org("LLM_PROVIDER", "minimax").model("opus").org("CLAUDE_CODE_OAUTH_TOKEN", "t").resolve();
    assert_eq!(r.provider(), Some("anthropic-oauth"), "an org-scope LLM_PROVIDER does not decide");
    assert!(r.resolution().trace.iter().any(|t| t.contains("org-scope LLM_PROVIDER ignored")));
    assert_eq!(
        r.value("LLM_PROVIDER").as_deref(),
        Some("anthropic-oauth"),
        "the injected LLM_PROVIDER wins over the org secret"
    );
}

#[test]
fn unknown_provider() {
    let r = case("claude-code").ws("LLM_PROVIDER", "nope").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownProvider));
    let msg = &r.resolution().error.as_ref().unwrap().message;
    assert!(msg.contains("nope") && msg.contains("minimax"), "{msg}");
    let r = case("claude-code").ws("LLM_PROVIDER", "openai").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownProvider), "openai does not serve claude-code");
    assert!(r.resolution().error.as_ref().unwrap().message.contains("does not serve"));
}

/// A plan knows whether it sets anything.
#[test]
fn plan_emptiness() {
    assert!(EnvPlan::default().is_empty());
    let r = case("claude-code").model("platform/sonnet").resolve();
    let plan = r.plan().unwrap();
    assert!(!plan.is_empty());
    assert_eq!(plan.len(), plan.iter().count());
}

#[test]
fn unknown_model() {
    let r = case("claude-code").model("gpt-5").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownModel), "gpt-5 is not served to claude-code");
    // A long model name is cut at 80 bytes, on a character boundary: here 79.
    let long = format!("a{}", "é".repeat(60));
    let r2 = case("claude-code").model(&long).resolve();
    let message = &r2.resolution().error.as_ref().unwrap().message;
    assert!(message.contains(&format!("`{}...`", &long[..79])), "{message}");
    // The message lists what each provider of the runtime serves: names and prefixes.
    let message = &r.resolution().error.as_ref().unwrap().message;
    assert!(message.contains("minimax (MiniMax-*)"), "{message}");
    assert!(message.contains("anthropic-oauth (opus, sonnet, haiku, opusplan, claude-*)"), "{message}");
    let r = case("codex").model("gpt-5").ws("OPENAI_API_KEY", "k").resolve();
    assert_eq!(r.provider(), Some("openai"));
    let r = case("claude-code").model("platform/gpt").resolve();
    assert_eq!(
        r.code(),
        Some(ErrorCode::UnknownModel),
        "an openai upstream model is not served to an anthropic runtime"
    );
    let r = case("codex").model("platform/gpt").resolve();
    assert_eq!(r.mode(), Some(BillingMode::PlatformManaged));
    assert_eq!(r.value("OPENAI_BASE_URL").as_deref(), Some("https://tollgate.example.com/openai/v1"));
    let r = case("claude-code").model("platform/unknown").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownModel));
    assert_eq!(r.provider(), Some("platform"), "the provider is reported to explain the error");
    let r = case("claude-code").ws("LLM_PROVIDER", "platform").model("opus").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownModel), "a stored platform provider with a model it does not serve");
}

#[test]
fn mode_provider_conflict() {
    let r = case("claude-code").model("opus").mode(BillingMode::PlatformManaged).resolve();
    assert_eq!(r.code(), Some(ErrorCode::ModeProviderConflict));
    assert!(r.resolution().error.as_ref().unwrap().message.contains("set billing_mode to byok"));
    let r = case("claude-code").model("platform/opus").mode(BillingMode::Byok).resolve();
    assert_eq!(r.code(), Some(ErrorCode::ModeProviderConflict));
    assert!(r.resolution().error.as_ref().unwrap().message.contains("set billing_mode to platform_managed"));
    let r = case("claude-code").model("platform/opus").mode(BillingMode::Disabled).resolve();
    assert_eq!(r.mode(), Some(BillingMode::Disabled), "disabled never conflicts");
    let r = case("claude-code").model("platform/opus").mode(BillingMode::PlatformManaged).resolve();
    assert_eq!((r.mode(), r.source()), (Some(BillingMode::PlatformManaged), Some(ModeSource::Explicit)));
    let r = case("claude-code").model("opus").mode(BillingMode::Byok).ws("CLAUDE_CODE_OAUTH_TOKEN", "t").resolve();
    assert_eq!((r.mode(), r.source()), (Some(BillingMode::Byok), Some(ModeSource::Explicit)));
}

#[test]
fn no_provider() {
    let r = case("claude-code").mode(BillingMode::Byok).ws("CLAUDE_CODE_OAUTH_TOKEN", "t").resolve();
    assert_eq!(r.code(), Some(ErrorCode::NoProvider), "byok without a model or LLM_PROVIDER does not fail open");
    let r = case("claude-code").org_default(BillingMode::Byok).resolve();
    assert_eq!(r.code(), Some(ErrorCode::NoProvider));
    let reg = Registry::parse(
        "noplatform.yaml",
        "runtimes: {rt: {protocol: openai, base_url_env: B, token_env: T}}\nproviders: [{id: p, runtimes: [rt], auth_env: [K]}]\n",
    )
    .unwrap();
    let r = case("rt").resolve_with(&reg);
    assert_eq!(r.code(), Some(ErrorCode::NoProvider), "platform_managed needs a platform provider");
}

#[test]
fn org_default_and_fallback() {
    let r = case("claude-code").org_default(BillingMode::Disabled).org("CLAUDE_CODE_OAUTH_TOKEN", "t").resolve();
    assert_eq!((r.mode(), r.source(), r.provider()), (Some(BillingMode::Disabled), Some(ModeSource::OrgDefault), None));
    assert_eq!(r.value("LLM_PROVIDER").as_deref(), Some(""));
    let r = case("claude-code").org_default(BillingMode::PlatformManaged).resolve();
    assert_eq!(
        (r.mode(), r.source(), r.provider()),
        (Some(BillingMode::PlatformManaged), Some(ModeSource::OrgDefault), Some("platform"))
    );
    let r = case("codex").resolve();
    assert_eq!(
        (r.mode(), r.source(), r.provider()),
        (Some(BillingMode::PlatformManaged), Some(ModeSource::Fallback), Some("platform"))
    );
    assert!(!r.has("ANTHROPIC_MODEL"), "no model, no model_env");
    // A model decides before the org default.
    let r = case("claude-code")
        .org_default(BillingMode::Disabled)
        .model("opus")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "t")
        .resolve();
    assert_eq!(r.source(), Some(ModeSource::DerivedProvider));
}

#[test]
fn secret_unreadable_is_never_absent() {
    let r = case("claude-code").model("MiniMax-M2.7").ws_unreadable("MINIMAX_API_KEY").resolve();
    let e = r.resolution().error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::SecretUnreadable);
    assert!(e.message.contains("MINIMAX_API_KEY (workspace)"), "{}", e.message);
    let r = case("claude-code").org_unreadable("GITHUB_TOKEN").resolve();
    assert_eq!(r.code(), Some(ErrorCode::SecretUnreadable));
    let r = case("claude-code").org_unreadable("GITHUB_TOKEN").ws("GITHUB_TOKEN", "ghp").resolve();
    assert_eq!(r.code(), None, "an unreadable org secret overridden by the workspace is not used");
}

#[test]
fn unknown_runtime() {
    let r = case("cursor").resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownRuntime));
    assert!(r.resolution().error.as_ref().unwrap().message.contains("claude-code"));
}

#[test]
fn byok_routing_rules() {
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .ws("MINIMAX_API_KEY", "k")
        .ws("ANTHROPIC_BASE_URL", "https://my-gateway")
        .resolve();
    assert_eq!(
        r.value("ANTHROPIC_BASE_URL").as_deref(),
        Some("https://my-gateway"),
        "the workspace's own base URL wins"
    );
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .ws("MINIMAX_API_KEY", "k")
        .org("ANTHROPIC_BASE_URL", "https://org-gw")
        .resolve();
    assert_eq!(
        r.value("ANTHROPIC_BASE_URL").as_deref(),
        Some("https://api.minimax.io/anthropic"),
        "org routing dropped, provider's injected"
    );
    assert!(r.dropped("ANTHROPIC_BASE_URL").is_some());
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .ws("MINIMAX_API_KEY", "k")
        .ws("ANTHROPIC_BASE_URL", "https://tollgate.example.com/anthropic")
        .resolve();
    assert_eq!(
        r.value("ANTHROPIC_BASE_URL").as_deref(),
        Some("https://api.minimax.io/anthropic"),
        "never route BYOK to the proxy"
    );
    assert!(r.dropped("ANTHROPIC_BASE_URL").is_some_and(|d| d.reason.contains("Tollgate proxy")));
    let r = case("claude-code")
        .model("opus")
        .ws("CLAUDE_CODE_OAUTH_TOKEN", "t")
        .ws("ANTHROPIC_BASE_URL", "https://tollgate.example.com")
        .resolve();
    assert!(!r.has("ANTHROPIC_BASE_URL"), "the bare public URL is ours too");
    let r = case("claude-code")
        .model("opus")
        .ws("CLAUDE_CODE_OAUTH_TOKEN", "t")
        .ws("ANTHROPIC_BASE_URL", "https://tollgate.example.com.evil")
        .resolve();
    assert!(r.has("ANTHROPIC_BASE_URL"), "a different host that shares a prefix is not ours");
}

#[test]
fn byok_needs_a_non_empty_credential_of_the_provider() {
    let r = case("claude-code").model("MiniMax-M2.7").ws("MINIMAX_API_KEY", "").resolve();
    assert_eq!(r.code(), Some(ErrorCode::MissingByokCredential), "an empty credential satisfies nothing");
    let r = case("claude-code").model("MiniMax-M2.7").ws("OPENAI_API_KEY", "k").resolve();
    assert_eq!(
        r.code(),
        Some(ErrorCode::MissingByokCredential),
        "a workspace credential of another provider is kept but does not satisfy"
    );
    assert_eq!(r.resolution().provider.as_deref(), Some("minimax"));
    let r = case("claude-code").model("MiniMax-M2.7").org("ANTHROPIC_AUTH_TOKEN", "mm").resolve();
    assert_eq!(r.mode(), Some(BillingMode::Byok), "ANTHROPIC_AUTH_TOKEN is in minimax's auth_env");
}

#[test]
fn llm_env_names_are_credentials() {
    let r = case("claude-code")
        .model("opus")
        .ws("CLAUDE_CODE_OAUTH_TOKEN", "t")
        .org("GEMINI_API_KEY", "g")
        .ws("OPENROUTER_API_KEY", "o")
        .resolve();
    assert!(!r.has("GEMINI_API_KEY"), "org-origin llm_env credential outside auth_env is dropped");
    assert!(r.has("OPENROUTER_API_KEY"), "workspace-origin one is kept");
}

#[test]
fn always_injected_names() {
    for c in [
        case("claude-code").model("opus").ws("CLAUDE_CODE_OAUTH_TOKEN", "t"),
        case("claude-code").model("platform/opus"),
        case("codex").mode(BillingMode::Disabled),
    ] {
        let r = c.resolve();
        for name in
            ["LLM_PROVIDER", "LLM_BILLING_MODE", "TOLLGATE_URL", "TOLLGATE_WORKSPACE_ID", "TOLLGATE_WORKSPACE_TOKEN"]
        {
            assert!(r.has(name), "{name} missing in {:?}", r.resolution().resolved_mode);
        }
        assert_eq!(r.value("TOLLGATE_URL").as_deref(), Some("https://tollgate.example.com"));
        assert_eq!(r.value("TOLLGATE_WORKSPACE_ID").as_deref(), Some("ws-1"));
        assert_eq!(r.value("LLM_BILLING_MODE").as_deref(), r.mode().map(BillingMode::as_str));
    }
}

#[test]
fn plan_render_and_redaction() {
    let r = case("claude-code").model("platform/opus").org("GITHUB_TOKEN", "ghp-secret").resolve();
    let plan = r.plan().unwrap();
    let redacted = plan.redacted();
    assert_eq!(redacted.get("GITHUB_TOKEN").map(String::as_str), Some(REDACTED));
    assert_eq!(redacted.get("ANTHROPIC_AUTH_TOKEN").map(String::as_str), Some(REDACTED));
    assert_eq!(redacted.get("ANTHROPIC_BASE_URL").map(String::as_str), Some("https://tollgate.example.com/anthropic"));
    assert!(!format!("{plan:?}").contains("ghp-secret"), "Debug never shows a value");
    assert_eq!(plan.get("GITHUB_TOKEN").map(|e| e.origin), Some(Origin::Org));
    assert!(!plan.is_empty());
    assert_eq!(plan.len(), plan.iter().count());
    assert_eq!(r.value("GITHUB_TOKEN").as_deref(), Some("ghp-secret"));
}

#[test]
fn resolution_json_shape_is_exact() {
    let r = case("claude-code")
        .model("MiniMax-M2.7")
        .org("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-org")
        .ws("MINIMAX_API_KEY", "mm")
        .resolve();
    let v = serde_json::to_value(r.resolution()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "credentials",
            "dropped",
            "effective_model",
            "error",
            "model_source",
            "provider",
            "resolved_mode",
            "source",
            "trace",
            "workspace_id"
        ]
    );
    assert_eq!(v["resolved_mode"], "byok");
    assert_eq!(v["source"], "derived_provider");
    assert_eq!(v["provider"], "minimax");
    assert_eq!(v["effective_model"], "MiniMax-M2.7");
    assert_eq!(v["model_source"], "workspace");
    assert!(v["error"].is_null());
    assert_eq!(v["credentials"], serde_json::json!([{"name": "MINIMAX_API_KEY", "origin": "workspace"}]));
    assert_eq!(
        v["dropped"],
        serde_json::json!([{"name": "CLAUDE_CODE_OAUTH_TOKEN", "origin": "org", "reason": "not in auth_env of provider minimax"}])
    );
    assert!(!v.to_string().contains("sk-ant-oat01-org") && !v.to_string().contains("\"mm\""));
    let back: Resolution = serde_json::from_value(v).unwrap();
    assert_eq!(back.provider, r.resolution().provider);

    let failed = case("claude-code").model("MiniMax-M2.7").resolve();
    let v = serde_json::to_value(failed.resolution()).unwrap();
    assert!(v["resolved_mode"].is_null());
    assert_eq!(v["error"]["code"], "MISSING_BYOK_CREDENTIAL");
    assert!(v["error"]["message"].as_str().unwrap().contains("minimax"));
}

#[test]
fn wire_names_round_trip() {
    for m in [BillingMode::PlatformManaged, BillingMode::Byok, BillingMode::Disabled] {
        assert_eq!(BillingMode::parse(m.as_str()), Some(m));
        assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        assert_eq!(m.to_string(), m.as_str());
    }
    assert_eq!(BillingMode::parse("BYOK"), None);
    for k in [WorkspaceKind::Agent, WorkspaceKind::Concierge] {
        assert_eq!(WorkspaceKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(WorkspaceKind::parse("robot"), None);
    for s in [
        ModeSource::Explicit,
        ModeSource::StoredProvider,
        ModeSource::ConciergePin,
        ModeSource::DerivedProvider,
        ModeSource::OrgDefault,
        ModeSource::Fallback,
    ] {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for s in [ModelSource::Request, ModelSource::Workspace, ModelSource::Secret] {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for c in [
        ErrorCode::UnknownProvider,
        ErrorCode::UnknownModel,
        ErrorCode::ModeProviderConflict,
        ErrorCode::NoProvider,
        ErrorCode::MissingByokCredential,
        ErrorCode::SecretUnreadable,
        ErrorCode::UnknownRuntime,
    ] {
        assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        assert_eq!(c.to_string(), c.as_str());
    }
    assert_eq!(ErrorCode::parse("NOPE"), None);
}

#[test]
fn public_url_parsing() {
    assert_eq!(PublicUrl::parse("http://h:8080/").unwrap().as_str(), "http://h:8080");
    assert_eq!(PublicUrl::parse("https://h/base").unwrap().as_str(), "https://h/base");
    for bad in ["", "h:8080", "ftp://h", "http://", "http:///x", "http://h?x=1", "http://h#f", "http://h x"] {
        assert!(PublicUrl::parse(bad).is_err(), "{bad}");
    }
    let u = PublicUrl::parse("https://h/base").unwrap();
    assert!(u.is_ours("HTTPS://H/base/anthropic"), "scheme and host are case-insensitive (found by I4)");
    assert!(u.is_ours("https://h:443/base/"), "the default port is the same origin");
    assert!(u.is_ours("https://h./base?x=1"), "a trailing dot on the host is the same host");
    assert!(u.is_ours(" https://user@h/base/anthropic "));
    assert!(
        u.is_ours("https://h/BASE/anthropic"),
        "a path differing only in case is ours too: fail closed (found by I4)"
    );
    assert!(!u.is_ours("https://h/basement/anthropic"));
    assert!(!u.is_ours("http://h/base"), "another scheme is another origin");
    assert!(!u.is_ours("https://h:8443/base"));
    assert!(!u.is_ours("not a url"));
    assert!(!u.is_ours("ftp://h/base"));
    assert!(u.is_ours("https://h/base/anthropic"));
    assert!(u.is_ours("https://h/base"));
    assert!(!u.is_ours("https://h/basement"));
    assert!(!u.is_ours("https://h"));
}

#[test]
fn after_provision_persists_only_a_non_empty_request_model() {
    let ws = case("claude-code").model("opus").ws;
    assert_eq!(ws.after_provision(None).model.as_deref(), Some("opus"));
    assert_eq!(ws.after_provision(Some("")).model.as_deref(), Some("opus"));
    assert_eq!(ws.after_provision(Some("platform/opus")).model.as_deref(), Some("platform/opus"));
}

#[test]
fn messages_bound_user_text() {
    let long = "x".repeat(10_000);
    let c = Case { ws: WorkspaceSpec { model: Some(long), ..case("claude-code").ws }, ..case("claude-code") };
    let r = c.resolve();
    assert_eq!(r.code(), Some(ErrorCode::UnknownModel));
    assert!(r.resolution().error.as_ref().unwrap().message.len() < 1_000);
}

/// Each enum's string table (strum) and its serde names are derived separately from the same
/// rule: they agree for every variant, and parsing a name gives the variant back.
#[test]
fn every_wire_name_is_the_serde_name_and_parses_back() {
    use strum::VariantArray;
    fn check<T: serde::Serialize + Copy + Into<&'static str> + std::fmt::Debug>(variants: &[T]) {
        for &v in variants {
            let name: &'static str = v.into();
            assert_eq!(serde_json::to_value(v).unwrap(), name, "{v:?}");
        }
    }
    check(BillingMode::VARIANTS);
    check(WorkspaceKind::VARIANTS);
    check(ModeSource::VARIANTS);
    check(ModelSource::VARIANTS);
    check(ErrorCode::VARIANTS);
    check(Origin::VARIANTS);
    check(crate::secret::Scope::VARIANTS);
    check(crate::registry::Protocol::VARIANTS);
    for &m in BillingMode::VARIANTS {
        assert_eq!(BillingMode::parse(m.as_str()), Some(m));
        assert_eq!(m.to_string(), m.as_str());
    }
    for &k in WorkspaceKind::VARIANTS {
        assert_eq!(WorkspaceKind::parse(k.as_str()), Some(k));
    }
    for &c in ErrorCode::VARIANTS {
        assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
    }
    assert_eq!(BillingMode::parse("BYOK"), None, "no case folding");
    assert_eq!(WorkspaceKind::parse(""), None);
}
