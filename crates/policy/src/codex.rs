//! Codex's own configuration (DESIGN.md section 12).
//!
//! The Codex CLI ignores `OPENAI_BASE_URL`: a custom endpoint is set only in its config
//! (`$CODEX_HOME/config.toml`), and a ChatGPT login only in `$CODEX_HOME/auth.json`. So for a
//! runtime whose registry entry says `config: codex`, the plan carries a [`CodexConfig`]: which
//! endpoint, token variable, wire API and model Codex must use. It is decided here, from the
//! same resolution as the env plan; `tollgate exec` only writes it.

use serde::{Deserialize, Serialize};

use crate::names::EnvName;
use crate::registry::{Protocol, Provider, Runtime};
use crate::resolve::{BillingMode, PublicUrl};

/// The variable that holds a ChatGPT login: the contents of Codex's `auth.json`.
pub const CODEX_AUTH_JSON: &str = "CODEX_AUTH_JSON";

/// The id of the `[model_providers.<id>]` table Tollgate writes and owns in `config.toml`.
pub const MODEL_PROVIDER_ID: &str = "tollgate";

/// Codex's built-in provider, which authenticates with the ChatGPT login of `auth.json`.
pub const BUILTIN_OPENAI_PROVIDER: &str = "openai";

/// The variable a platform-managed Codex authenticates with: the workspace token, under a
/// name only Tollgate sets. Not the runtime's `token_env` (`OPENAI_API_KEY`): the config file
/// outlives the run, and a later `codex` started outside `tollgate exec` must not send a
/// personal `OPENAI_API_KEY` to the proxy; without this variable it sends nothing.
pub const WORKSPACE_TOKEN_ENV: &str = "TOLLGATE_WORKSPACE_TOKEN";

/// Where a BYOK Codex provider without a `base_url` in the registry is reached: OpenAI's
/// public endpoint, which is what Codex itself would call.
pub const OPENAI_PUBLIC_BASE_URL: &str = "https://api.openai.com/v1";

/// The API a Codex provider speaks. Codex 0.169 refuses `chat`, so there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WireApi {
    /// The OpenAI Responses API (`POST {base_url}/responses`).
    Responses,
}

impl WireApi {
    /// The value of Codex's `wire_api` key.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where Codex's provider endpoint comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseUrl {
    /// A URL Tollgate decided (the proxy's `/openai/v1`, or the provider's `base_url`).
    Url(String),
    /// The value of this variable of the final environment: the workspace set the runtime's
    /// routing name itself, and its value is the workspace's (a secret; never shown).
    Env(EnvName),
}

/// The provider Codex is to use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CodexProvider {
    /// A `[model_providers.tollgate]` table: Codex sends the value of `env_key` as
    /// `Authorization: Bearer` to `base_url`.
    Endpoint {
        /// The endpoint (Codex appends `/responses`).
        base_url: BaseUrl,
        /// The variable whose value Codex sends as its bearer token.
        env_key: EnvName,
        /// The API it speaks.
        wire_api: WireApi,
    },
    /// Codex's built-in `openai` provider with the ChatGPT login written to `auth.json`
    /// from `auth_json_env`.
    ChatgptLogin {
        /// The variable that holds the `auth.json` contents.
        auth_json_env: EnvName,
    },
}

/// Codex's configuration for one workspace: its provider and model. Holds names and URLs,
/// never a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodexConfig {
    /// The provider.
    pub provider: CodexProvider,
    /// The model (`model = ...`); `None` leaves Codex's (or the user's) choice.
    pub model: Option<String>,
}

impl CodexConfig {
    /// The value of Codex's top-level `model_provider` key.
    pub fn model_provider(&self) -> &'static str {
        match self.provider {
            CodexProvider::Endpoint { .. } => MODEL_PROVIDER_ID,
            CodexProvider::ChatgptLogin { .. } => BUILTIN_OPENAI_PROVIDER,
        }
    }

    /// One line for people (`explain`, `exec --check`): names and URLs, never values.
    pub fn describe(&self) -> String {
        let model = self.model.as_deref().unwrap_or("(Codex's default)");
        match &self.provider {
            CodexProvider::Endpoint { base_url, env_key, wire_api } => {
                let url = match base_url {
                    BaseUrl::Url(u) => u.clone(),
                    BaseUrl::Env(name) => format!("the value of {name}"),
                };
                format!(
                    "model_provider {MODEL_PROVIDER_ID} (base_url {url}, env_key {env_key}, wire_api {}), model {model}",
                    wire_api.as_str()
                )
            }
            CodexProvider::ChatgptLogin { auth_json_env } => {
                format!(
                    "model_provider {BUILTIN_OPENAI_PROVIDER} with the ChatGPT login of {auth_json_env} in auth.json, model {model}"
                )
            }
        }
    }
}

/// What [`decide`] needs from a successful resolution.
#[derive(Clone, Copy, Debug)]
pub struct Decision<'a> {
    /// The workspace's runtime.
    pub runtime: &'a Runtime,
    /// The resolved mode.
    pub mode: BillingMode,
    /// The resolved provider.
    pub provider: Option<&'a Provider>,
    /// The effective model.
    pub model: Option<&'a str>,
    /// The names of the credentials the plan kept (or injected) that hold a value.
    pub credentials: &'a [&'a str],
    /// Whether the workspace set the runtime's `base_url_env` itself (kept in the plan).
    pub workspace_routing: bool,
    /// The server's public URL.
    pub public_url: &'a PublicUrl,
}

/// Codex's configuration for a resolved workspace, or `None` when its runtime is not
/// configured the Codex way or the mode routes nothing (`disabled`).
///
/// Platform-managed: the proxy's `/openai/v1`, with [`WORKSPACE_TOKEN_ENV`] (which every plan
/// sets to the workspace token). BYOK with a provider accepting [`CODEX_AUTH_JSON`]: the
/// built-in provider with that ChatGPT login. Other BYOK: the provider's `base_url` (else
/// [`OPENAI_PUBLIC_BASE_URL`], or the workspace's own routing name when it set one) with the
/// first of the provider's `auth_env` the plan kept with a value.
pub fn decide(d: &Decision<'_>) -> Option<CodexConfig> {
    if d.runtime.config() != Some(crate::registry::RuntimeConfig::Codex) {
        return None;
    }
    let model = d.model.map(str::to_owned);
    let provider = match (d.mode, d.provider) {
        (BillingMode::PlatformManaged, _) => CodexProvider::Endpoint {
            base_url: BaseUrl::Url(d.public_url.proxy_url(Protocol::Openai)),
            env_key: EnvName::from_static(WORKSPACE_TOKEN_ENV),
            wire_api: WireApi::Responses,
        },
        (BillingMode::Byok, Some(p))
            if p.accepts_credential(CODEX_AUTH_JSON) && d.credentials.contains(&CODEX_AUTH_JSON) =>
        {
            CodexProvider::ChatgptLogin { auth_json_env: EnvName::from_static(CODEX_AUTH_JSON) }
        }
        (BillingMode::Byok, Some(p)) => {
            let env_key = p.auth_env().iter().find(|n| d.credentials.contains(&n.as_str()))?.clone();
            let base_url = if d.workspace_routing {
                BaseUrl::Env(d.runtime.base_url_env().clone())
            } else {
                BaseUrl::Url(p.base_url().unwrap_or(OPENAI_PUBLIC_BASE_URL).to_owned())
            };
            CodexProvider::Endpoint { base_url, env_key, wire_api: WireApi::Responses }
        }
        (BillingMode::Byok, None) | (BillingMode::Disabled, _) => return None,
    };
    Some(CodexConfig { provider, model })
}

/// Checks that `value` is a ChatGPT login of the shape Codex 0.169 reads from `auth.json`:
/// a JSON object whose `tokens` holds non-empty `id_token` (a JWT whose payload is a JSON
/// object), `access_token` and `refresh_token` strings; `OPENAI_API_KEY`, `account_id` and
/// `last_refresh`, where present, are strings (or null). Codex accepts `{}` too, but as a login
/// that can only ever answer 401 (seed 000): refused here, before the agent starts.
///
/// The message names fields only, never a value.
pub fn check_auth_json(value: &str) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_str(value).map_err(|e| {
        format!("is not JSON (line {}, column {}): it must be the contents of a Codex auth.json", e.line(), e.column())
    })?;
    let obj = json.as_object().ok_or("is not a JSON object: it must be the contents of a Codex auth.json")?;
    let optional_string = |o: &serde_json::Map<String, serde_json::Value>, key: &str, at: &str| match o.get(key) {
        None | Some(serde_json::Value::Null | serde_json::Value::String(_)) => Ok(()),
        Some(_) => Err(format!("has `{at}{key}` that is not a string")),
    };
    optional_string(obj, "OPENAI_API_KEY", "")?;
    optional_string(obj, "last_refresh", "")?;
    if let Some(mode) = obj.get("auth_mode").and_then(serde_json::Value::as_str)
        && mode != "chatgpt"
    {
        return Err(format!(
            "has auth_mode `{}`, not `chatgpt`: it is not a ChatGPT login",
            crate::text::truncate(mode, 40)
        ));
    }
    let tokens = obj
        .get("tokens")
        .and_then(serde_json::Value::as_object)
        .ok_or("has no `tokens` object: it is not a ChatGPT login (run `codex login` and use its auth.json)")?;
    for key in ["id_token", "access_token", "refresh_token"] {
        match tokens.get(key).and_then(serde_json::Value::as_str) {
            Some(s) if !s.trim().is_empty() => {}
            _ => return Err(format!("has no non-empty string `tokens.{key}`")),
        }
    }
    optional_string(tokens, "account_id", "tokens.")?;
    let id_token = tokens.get("id_token").and_then(serde_json::Value::as_str).unwrap_or_default();
    if !is_jwt_with_object_payload(id_token) {
        return Err(
            "has a `tokens.id_token` that is not a JWT (header.payload.signature, payload a JSON object)".to_owned()
        );
    }
    Ok(())
}

/// Whether `s` is three dot-separated parts whose middle one is base64url of a JSON object
/// (what Codex decodes to learn the account's email and plan).
fn is_jwt_with_object_payload(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let [header, payload, _signature] = parts.as_slice() else { return false };
    if header.is_empty() {
        return false;
    }
    base64url_decode(payload)
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.is_object())
}

/// Decodes unpadded (or padded) base64url; `None` on any other character.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
