//! Runtime normalisation: seed 000's cases, and the proxy rules of seed 004.

use super::*;

const WS_TOKEN: &str = "tg_ws_0123456789abcdefghijABCDEFGHIJ0123456789abc";

fn registry() -> Registry {
    Registry::embedded().unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from(*v))).collect()
}

fn run(pairs: &[(&str, &str)]) -> Normalised {
    normalise(env(pairs), &registry())
}

fn has(n: &Normalised, name: &str) -> bool {
    n.env.contains_key(name)
}

/// Seed 000 "minimax drops oauth": the DevB drain. The inherited tenant OAuth token is
/// dropped before the OAuth short-circuit can hijack auth; with no MiniMax key, preflight
/// fails loudly instead of falling back.
#[test]
fn minimax_drops_oauth() {
    let n = run(&[("LLM_PROVIDER", "minimax"), ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-tenant")]);
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert_eq!(n.removed[0].name, CLAUDE_CODE_OAUTH_TOKEN);
    assert!(n.removed[0].reason.contains("not an Anthropic-OAuth provider"));
    let e = n.preflight.unwrap_err();
    assert_eq!(e.missing, ["MINIMAX_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"]);
    assert!(e.message.contains("minimax") && !e.message.contains("sk-ant"), "{}", e.message);
}

/// Seed 000 "anthropic and claude-code keep it": every Anthropic-OAuth-family provider
/// keeps the OAuth token.
#[test]
fn anthropic_family_keeps_oauth() {
    for p in ["anthropic", "anthropic-oauth", "claude", "claude-code"] {
        let n = run(&[("LLM_PROVIDER", p), ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-own")]);
        assert!(has(&n, CLAUDE_CODE_OAUTH_TOKEN), "{p} must keep the OAuth token");
        assert!(n.removed.is_empty(), "{p}: {:?}", n.removed);
    }
    let n = run(&[("LLM_PROVIDER", "anthropic-oauth"), ("CLAUDE_CODE_OAUTH_TOKEN", "t")]);
    assert!(n.preflight.is_ok());
}

/// Seed 000 "minimax keeps proxy token after dropping oauth": MiniMax's own bearer in
/// ANTHROPIC_AUTH_TOKEN survives the OAuth drop and satisfies preflight.
#[test]
fn minimax_keeps_proxy_token_after_dropping_oauth() {
    let n = run(&[
        ("LLM_PROVIDER", "minimax"),
        ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-tenant"),
        ("ANTHROPIC_AUTH_TOKEN", "mm-bearer"),
        ("ANTHROPIC_BASE_URL", "https://api.minimax.io/anthropic"),
    ]);
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert!(has(&n, "ANTHROPIC_AUTH_TOKEN"));
    assert!(has(&n, "ANTHROPIC_BASE_URL"));
    assert!(n.preflight.is_ok());
    assert!(!n.routed_to_proxy);
}

/// Seed 000 "empty or missing provider is legacy": nothing is dropped, with a warning.
#[test]
fn empty_or_missing_provider_is_legacy() {
    for pairs in [
        vec![("CLAUDE_CODE_OAUTH_TOKEN", "t")],
        vec![("LLM_PROVIDER", ""), ("CLAUDE_CODE_OAUTH_TOKEN", "t")],
        vec![("LLM_PROVIDER", "  "), ("CLAUDE_CODE_OAUTH_TOKEN", "t")],
    ] {
        let n = run(&pairs);
        assert!(has(&n, CLAUDE_CODE_OAUTH_TOKEN));
        assert!(n.removed.is_empty());
        assert_eq!(n.provider, None);
        assert!(n.warnings.iter().any(|w| w.contains("legacy")), "{:?}", n.warnings);
        assert!(n.preflight.is_ok(), "legacy skips preflight");
    }
}

/// Seed 000 "case-insensitive": provider names compare case-insensitively both ways.
#[test]
fn provider_is_case_insensitive() {
    let n = run(&[("LLM_PROVIDER", "MiniMax"), ("CLAUDE_CODE_OAUTH_TOKEN", "t"), ("MINIMAX_API_KEY", "k")]);
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert_eq!(n.provider.as_deref(), Some("minimax"));
    assert!(n.preflight.is_ok());
    let n = run(&[("LLM_PROVIDER", "Anthropic-OAuth"), ("CLAUDE_CODE_OAUTH_TOKEN", "t")]);
    assert!(has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    let n = run(&[("LLM_PROVIDER", "CLAUDE-CODE"), ("CLAUDE_CODE_OAUTH_TOKEN", "t")]);
    assert!(has(&n, CLAUDE_CODE_OAUTH_TOKEN));
}

/// Seed 000 "openai drops": any non-Anthropic provider drops the OAuth token.
#[test]
fn openai_drops_oauth() {
    let n = run(&[("LLM_PROVIDER", "openai"), ("CLAUDE_CODE_OAUTH_TOKEN", "t"), ("OPENAI_API_KEY", "sk")]);
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert!(has(&n, "OPENAI_API_KEY"));
    assert!(n.preflight.is_ok());
}

/// Seed 004's runtime defence in depth: routed through the proxy, every other LLM
/// credential is dropped even with no provider set, and an OAuth-shaped bearer is refused.
#[test]
fn proxy_routing_drops_everything_but_the_workspace_token() {
    let n = run(&[
        ("TOLLGATE_URL", "https://tg.example"),
        ("ANTHROPIC_BASE_URL", "https://tg.example/anthropic"),
        ("ANTHROPIC_AUTH_TOKEN", WS_TOKEN),
        ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-tenant"),
        ("ANTHROPIC_API_KEY", "sk-ant-api"),
        ("OPENAI_API_KEY", "sk-openai"),
        ("GITHUB_TOKEN", "ghp"),
    ]);
    assert!(n.routed_to_proxy);
    let mut removed: Vec<&str> = n.removed.iter().map(|r| r.name.as_str()).collect();
    removed.sort_unstable();
    assert_eq!(removed, ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY"]);
    assert!(has(&n, "ANTHROPIC_AUTH_TOKEN") && has(&n, "GITHUB_TOKEN"));
    assert!(n.preflight.is_ok(), "{:?}", n.preflight);
}

#[test]
fn proxy_routing_refuses_an_oauth_bearer() {
    let n = run(&[
        ("LLM_PROVIDER", "platform"),
        ("LLM_BILLING_MODE", "platform_managed"),
        ("TOLLGATE_URL", "https://tg.example"),
        ("ANTHROPIC_BASE_URL", "https://tg.example/anthropic"),
        ("ANTHROPIC_AUTH_TOKEN", "sk-ant-oat01-tenant"),
    ]);
    let e = n.preflight.unwrap_err();
    assert_eq!(e.missing, ["ANTHROPIC_AUTH_TOKEN"]);
    assert!(e.message.contains("Claude OAuth token") && !e.message.contains("sk-ant-oat01-tenant"), "{}", e.message);
    let n = run(&[
        ("LLM_BILLING_MODE", "platform_managed"),
        ("TOLLGATE_URL", "https://tg.example"),
        ("ANTHROPIC_BASE_URL", "https://tg.example/anthropic"),
    ]);
    assert_eq!(n.preflight.unwrap_err().missing, ["ANTHROPIC_AUTH_TOKEN"]);
    let n = run(&[
        ("LLM_BILLING_MODE", "platform_managed"),
        ("TOLLGATE_URL", "https://tg.example"),
        ("ANTHROPIC_BASE_URL", "https://tg.example/anthropic"),
        ("ANTHROPIC_AUTH_TOKEN", "random"),
    ]);
    assert!(!n.preflight.unwrap_err().message.contains("OAuth"));
}

#[test]
fn platform_managed_without_proxy_routing_fails_preflight() {
    let n = run(&[
        ("LLM_PROVIDER", "platform"),
        ("LLM_BILLING_MODE", "platform_managed"),
        ("ANTHROPIC_AUTH_TOKEN", WS_TOKEN),
        ("CLAUDE_CODE_OAUTH_TOKEN", "t"),
    ]);
    assert!(n.routed_to_proxy);
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert!(!has(&n, "ANTHROPIC_AUTH_TOKEN"), "no routed runtime: nothing is known to be the proxy token");
    let e = n.preflight.unwrap_err();
    assert!(
        e.missing.contains(&"ANTHROPIC_BASE_URL".to_owned()) && e.missing.contains(&"TOLLGATE_URL".to_owned()),
        "{:?}",
        e.missing
    );
    // LLM_PROVIDER=platform alone also means proxy routing.
    let n = run(&[("LLM_PROVIDER", "PLATFORM")]);
    assert!(n.routed_to_proxy);
    assert!(n.preflight.is_err());
}

#[test]
fn openai_runtime_through_the_proxy() {
    let n = run(&[
        ("LLM_BILLING_MODE", "platform_managed"),
        ("TOLLGATE_URL", "https://tg.example/"),
        ("OPENAI_BASE_URL", "https://tg.example/openai/v1"),
        ("OPENAI_API_KEY", WS_TOKEN),
        ("ANTHROPIC_AUTH_TOKEN", "stray"),
    ]);
    assert!(has(&n, "OPENAI_API_KEY"));
    assert!(!has(&n, "ANTHROPIC_AUTH_TOKEN"));
    assert!(n.preflight.is_ok(), "{:?}", n.preflight);
}

#[test]
fn byok_preflight_names_what_is_missing() {
    let n = run(&[("LLM_PROVIDER", "kimi-coding"), ("LLM_BILLING_MODE", "byok"), ("KIMI_API_KEY", "")]);
    assert_eq!(n.preflight.unwrap_err().missing, ["KIMI_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"]);
    let n = run(&[("LLM_PROVIDER", "nope")]);
    let e = n.preflight.unwrap_err();
    assert_eq!(e.missing, ["LLM_PROVIDER"]);
    assert!(e.message.contains("`nope`"));
}

#[test]
fn disabled_needs_no_credential() {
    let n = run(&[("LLM_PROVIDER", "minimax"), ("LLM_BILLING_MODE", "disabled"), ("CLAUDE_CODE_OAUTH_TOKEN", "t")]);
    assert!(n.preflight.is_ok());
    assert!(!has(&n, CLAUDE_CODE_OAUTH_TOKEN));
    assert!(n.warnings.iter().any(|w| w.contains("disabled")));
}

#[test]
fn overlay_pulled_wins_and_dropped_go() {
    let inherited = env(&[("A", "inherited"), ("CLAUDE_CODE_OAUTH_TOKEN", "stray"), ("PATH", "/bin")]);
    let pulled = env(&[("A", "pulled"), ("B", "new")]);
    let (out, removed) = overlay(inherited, pulled, &["CLAUDE_CODE_OAUTH_TOKEN".to_owned()], &registry());
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(keys, ["A", "B", "PATH"]);
    assert_eq!(out.get("A").map(|v| v.expose_secret()), Some("pulled"));
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (removed[0].name.as_str(), removed[0].reason.as_str()),
        ("CLAUDE_CODE_OAUTH_TOKEN", "the plan dropped it")
    );
}

/// With a plan pulled, an LLM credential the host injected and Tollgate never saw is not the
/// agent's: a BYOK MiniMax plan carries `ANTHROPIC_AUTH_TOKEN` (MiniMax's key), so a stray
/// inherited `ANTHROPIC_API_KEY` (also in MiniMax's `auth_env`, which normalisation alone
/// would keep) and an OpenAI key go; the plan's own credentials and other variables stay.
#[test]
fn overlay_removes_llm_credentials_the_plan_does_not_carry() {
    let inherited = env(&[
        ("ANTHROPIC_API_KEY", "sk-ant-api03-host"),
        ("OPENAI_API_KEY", "sk-host"),
        ("ANTHROPIC_AUTH_TOKEN", "sk-ant-oat01-host"),
        ("HOME", "/home/agent"),
    ]);
    let pulled = env(&[("ANTHROPIC_AUTH_TOKEN", "mm-key"), ("LLM_PROVIDER", "minimax")]);
    let (out, removed) = overlay(inherited, pulled, &[], &registry());
    let keys: Vec<&str> = out.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ANTHROPIC_AUTH_TOKEN", "HOME", "LLM_PROVIDER"]);
    assert_eq!(out.get("ANTHROPIC_AUTH_TOKEN").map(|v| v.expose_secret()), Some("mm-key"));
    let names: Vec<&str> = removed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    assert!(removed.iter().all(|r| r.reason.contains("does not carry")));
}

/// A routing name the plan dropped (an org-origin `ANTHROPIC_BASE_URL`) and injected again (the
/// provider's `base_url`): the plan's value stays, the inherited one goes.
#[test]
fn overlay_keeps_a_dropped_name_the_plan_injects_again() {
    let inherited = env(&[("ANTHROPIC_BASE_URL", "https://org-relay.example/anthropic")]);
    let pulled = env(&[("ANTHROPIC_BASE_URL", "https://api.minimax.io/anthropic")]);
    let (out, removed) = overlay(inherited, pulled, &["ANTHROPIC_BASE_URL".to_owned()], &registry());
    assert!(removed.is_empty(), "replaced, not removed");
    assert_eq!(out.get("ANTHROPIC_BASE_URL").map(|v| v.expose_secret()), Some("https://api.minimax.io/anthropic"));
}

/// The server's secrets never reach an agent, in any mode, even when the host leaks them into
/// the workspace: platform keys, the admin token, the master key.
#[test]
fn server_secrets_are_always_removed() {
    for mode in ["platform_managed", "byok", "disabled", ""] {
        let n = run(&[
            ("LLM_BILLING_MODE", mode),
            ("LLM_PROVIDER", "minimax"),
            ("MINIMAX_API_KEY", "mm"),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "sk-ant-platform"),
            ("TOLLGATE_ADMIN_TOKEN", "tg_admin_x"),
            ("TOLLGATE_MASTER_KEY", "AAAA"),
            ("TOLLGATE_URL", "https://tollgate.example"),
        ]);
        for name in ["TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "TOLLGATE_ADMIN_TOKEN", "TOLLGATE_MASTER_KEY"] {
            assert!(!has(&n, name), "{name} in mode `{mode}`");
            assert!(n.removed.iter().any(|r| r.name == name && r.reason.contains("server secret")));
        }
        assert!(has(&n, "TOLLGATE_URL"), "not a secret");
    }
}

/// Seed 000's permanently-401 `CODEX_AUTH_JSON`: a ChatGPT login Codex would read and then
/// fail with forever is a preflight failure naming the variable, never the value; a login of
/// the shape Codex reads passes.
#[test]
fn a_chatgpt_login_of_the_wrong_shape_fails_the_preflight() {
    let good = r#"{"tokens":{"id_token":"e30.e30.sig","access_token":"a","refresh_token":"r"}}"#;
    let n = run(&[("LLM_PROVIDER", "openai-chatgpt"), ("CODEX_AUTH_JSON", good)]);
    assert!(n.preflight.is_ok(), "{:?}", n.preflight);
    for bad in ["{}", "sk-not-json-secret", r#"{"tokens":{"id_token":"x","access_token":"a","refresh_token":"r"}}"#] {
        let n = run(&[("LLM_PROVIDER", "openai-chatgpt"), ("CODEX_AUTH_JSON", bad)]);
        let e = n.preflight.unwrap_err();
        assert_eq!(e.missing, [CODEX_AUTH_JSON], "{bad}");
        assert!(e.message.starts_with("CODEX_AUTH_JSON ") && e.message.contains("openai-chatgpt"), "{}", e.message);
        assert!(!e.message.contains("sk-not-json-secret"), "{}", e.message);
    }
    let e = run(&[("LLM_PROVIDER", "openai-chatgpt")]).preflight.unwrap_err();
    assert_eq!(e.missing, [CODEX_AUTH_JSON]);
}
