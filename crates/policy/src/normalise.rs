//! Runtime normalisation (DESIGN.md section 7): the last line of defence, run by
//! `tollgate exec` inside the workspace just before the agent starts.
//!
//! Pure functions over an env map; `tollgate exec` only does the IO around them.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use crate::codex::CODEX_AUTH_JSON;
use crate::registry::{LLM_BILLING_MODE, LLM_PROVIDER, Registry};
use crate::resolve::{ANTHROPIC_OAUTH_FAMILY, BillingMode, PublicUrl};
use crate::token::{WORKSPACE_TOKEN_PREFIX, has_token_shape};

/// A process environment; values are secrets until proven otherwise.
pub type Env = BTreeMap<String, SecretString>;

/// The variable that holds a Claude subscription token (seed 000).
pub const CLAUDE_CODE_OAUTH_TOKEN: &str = "CLAUDE_CODE_OAUTH_TOKEN";

/// Overlays a pulled plan on the inherited environment: pulled names win, the names the plan
/// dropped are removed even if the workspace inherited them from elsewhere, and so is every
/// other LLM credential of `registry` (and `CLAUDE_CODE_OAUTH_TOKEN`) the plan does not carry:
/// once a plan is pulled, it is the only source of credentials, so a token the host injected
/// behind Tollgate's back (seed 000's tenant-wide token) never reaches the agent. Returns the
/// environment and what was removed from the inherited one.
pub fn overlay(mut inherited: Env, pulled: Env, dropped: &[String], registry: &Registry) -> (Env, Vec<Removal>) {
    let mut removed = Vec::new();
    for name in dropped {
        if !pulled.contains_key(name) {
            remove(&mut inherited, &mut removed, name, "the plan dropped it");
        }
    }
    let credentials: Vec<String> =
        registry.llm_credentials().chain([CLAUDE_CODE_OAUTH_TOKEN]).map(str::to_owned).collect();
    for name in &credentials {
        if !pulled.contains_key(name) {
            remove(
                &mut inherited,
                &mut removed,
                name,
                "an LLM credential the pulled plan does not carry: with --pull the plan is its only source",
            );
        }
    }
    inherited.extend(pulled);
    (inherited, removed)
}

/// A variable normalisation removed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The variable.
    pub name: String,
    /// Why it was removed.
    pub reason: String,
}

/// Why the agent must not start (exit 78).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightError {
    /// The variables that are missing or unacceptable.
    pub missing: Vec<String>,
    /// What is wrong and how to fix it; names only, never values.
    pub message: String,
}

/// The outcome of [`normalise`].
#[derive(Debug)]
pub struct Normalised {
    /// The environment to start the agent with.
    pub env: Env,
    /// What was removed, in order.
    pub removed: Vec<Removal>,
    /// Things a person should know (legacy behaviour, skipped checks).
    pub warnings: Vec<String>,
    /// The provider from `LLM_PROVIDER`, lower-cased; `None` when empty (legacy).
    pub provider: Option<String>,
    /// Whether LLM traffic goes through the Tollgate proxy.
    pub routed_to_proxy: bool,
    /// `Ok` when the agent may start.
    pub preflight: Result<(), PreflightError>,
}

/// The server's secrets: platform upstream keys (`TOLLGATE_UPSTREAM_*`), the admin token and
/// the master key.
fn is_server_secret(name: &str) -> bool {
    name.starts_with(crate::registry::UPSTREAM_KEY_PREFIX)
        || name == "TOLLGATE_ADMIN_TOKEN"
        || name == "TOLLGATE_MASTER_KEY"
}

fn value<'e>(env: &'e Env, name: &str) -> Option<&'e str> {
    env.get(name).map(|v| v.expose_secret()).filter(|v| !v.is_empty())
}

fn remove(env: &mut Env, removed: &mut Vec<Removal>, name: &str, reason: &str) {
    if env.remove(name).is_some() {
        removed.push(Removal { name: name.to_owned(), reason: reason.to_owned() });
    }
}

/// Normalises `env` for the agent about to start, following DESIGN.md section 7:
/// drops `CLAUDE_CODE_OAUTH_TOKEN` for providers outside the Anthropic-OAuth family, drops
/// every other LLM credential when routed through the proxy, and runs the preflight.
/// An empty `LLM_PROVIDER` keeps the legacy behaviour (nothing dropped by provider) with a
/// warning; proxy routing is still enforced, because a stray credential sent to the proxy
/// is exactly seed 004's outage.
pub fn normalise(mut env: Env, registry: &Registry) -> Normalised {
    let mut removed = Vec::new();
    let mut warnings = Vec::new();
    let provider = value(&env, LLM_PROVIDER).map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty());
    let mode = value(&env, LLM_BILLING_MODE).and_then(BillingMode::parse);

    // The server's own secrets are never an agent's, whatever else holds (a platform key in
    // an agent's environment is seed 003's bill on the platform's account).
    let server_secrets: Vec<String> = env.keys().filter(|k| is_server_secret(k)).cloned().collect();
    for name in &server_secrets {
        remove(&mut env, &mut removed, name, "a Tollgate server secret: never in an agent's environment");
    }

    // Step 3: a non-Anthropic-OAuth provider never sees a Claude subscription token.
    match &provider {
        None => {
            warnings.push("LLM_PROVIDER is not set: legacy behaviour, no credential dropped by provider".to_owned())
        }
        Some(p) if !ANTHROPIC_OAUTH_FAMILY.contains(&p.as_str()) => {
            remove(
                &mut env,
                &mut removed,
                CLAUDE_CODE_OAUTH_TOKEN,
                &format!("provider {p} is not an Anthropic-OAuth provider"),
            );
        }
        Some(_) => {}
    }

    // Step 4: routed through the proxy, only the workspace token may remain.
    let public = value(&env, "TOLLGATE_URL").and_then(|u| PublicUrl::parse(u).ok());
    let routed_runtimes: Vec<_> = registry
        .runtimes()
        .filter(|rt| {
            public.as_ref().is_some_and(|p| value(&env, rt.base_url_env().as_str()).is_some_and(|u| p.is_ours(u)))
        })
        .collect();
    let provider_is_platform = provider.as_deref().and_then(|p| registry.provider(p)).is_some_and(|p| p.is_platform());
    let routed = mode == Some(BillingMode::PlatformManaged) || provider_is_platform || !routed_runtimes.is_empty();

    let preflight = if routed {
        let keep: Vec<&str> = routed_runtimes.iter().map(|rt| rt.token_env().as_str()).collect();
        let names: Vec<String> = registry.llm_credentials().map(str::to_owned).collect();
        for name in names.iter().map(String::as_str).chain([CLAUDE_CODE_OAUTH_TOKEN]) {
            if !keep.contains(&name) {
                remove(
                    &mut env,
                    &mut removed,
                    name,
                    "routed through the Tollgate proxy: only the workspace token is sent",
                );
            }
        }
        proxy_preflight(&env, registry, &routed_runtimes)
    } else if mode == Some(BillingMode::Disabled) {
        warnings.push("LLM_BILLING_MODE is disabled: no LLM credential is required".to_owned());
        Ok(())
    } else {
        match &provider {
            None => {
                warnings.push("no provider known: preflight skipped".to_owned());
                Ok(())
            }
            Some(p) => byok_preflight(&env, registry, p),
        }
    };

    Normalised { env, removed, warnings, provider, routed_to_proxy: routed, preflight }
}

fn proxy_preflight(env: &Env, registry: &Registry, routed: &[&crate::registry::Runtime]) -> Result<(), PreflightError> {
    if routed.is_empty() {
        let mut missing: Vec<String> = registry.runtimes().map(|rt| rt.base_url_env().as_str().to_owned()).collect();
        missing.dedup();
        missing.push("TOLLGATE_URL".to_owned());
        return Err(PreflightError {
            message: format!(
                "platform-managed, but no base URL points at the Tollgate proxy under TOLLGATE_URL: set one of {} (run with --pull to fetch the plan)",
                missing.join(", ")
            ),
            missing,
        });
    }
    for rt in routed {
        let token_env = rt.token_env().as_str();
        match value(env, token_env) {
            None => {
                return Err(PreflightError {
                    missing: vec![token_env.to_owned()],
                    message: format!(
                        "routed through the Tollgate proxy but {token_env} is empty: it must hold the workspace token"
                    ),
                });
            }
            Some(v) if !has_token_shape(v, WORKSPACE_TOKEN_PREFIX) => {
                let hint = if crate::token::is_oauth_shaped(v) { " (it holds a Claude OAuth token)" } else { "" };
                return Err(PreflightError {
                    missing: vec![token_env.to_owned()],
                    message: format!(
                        "routed through the Tollgate proxy but {token_env} is not a workspace token{hint}: the proxy accepts only the workspace token"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn byok_preflight(env: &Env, registry: &Registry, provider: &str) -> Result<(), PreflightError> {
    let Some(p) = registry.provider(provider) else {
        return Err(PreflightError {
            missing: vec![LLM_PROVIDER.to_owned()],
            message: format!("LLM_PROVIDER names `{provider}`, which is not a provider of the registry"),
        });
    };
    // A ChatGPT login that Codex would read and then answer 401 with forever (seed 000) is
    // found here, before the agent starts.
    if p.accepts_credential(CODEX_AUTH_JSON)
        && let Some(v) = value(env, CODEX_AUTH_JSON)
        && let Err(why) = crate::codex::check_auth_json(v)
    {
        return Err(PreflightError {
            missing: vec![CODEX_AUTH_JSON.to_owned()],
            message: format!("{CODEX_AUTH_JSON} {why}: provider {} cannot log Codex in with it", p.id()),
        });
    }
    if p.auth_env().iter().any(|n| value(env, n.as_str()).is_some()) {
        return Ok(());
    }
    let missing: Vec<String> = p.auth_env().iter().map(|n| n.as_str().to_owned()).collect();
    Err(PreflightError {
        message: format!(
            "provider {} needs one of {} and none is set: refusing to start rather than fall back to another credential",
            p.id(),
            missing.join(", ")
        ),
        missing,
    })
}

#[cfg(test)]
mod tests;
