//! The provider registry (`providers.yaml`): runtimes, providers, platform models and prices.
//!
//! [`Registry::parse`] is the only constructor. It validates everything it can at load and
//! reports every problem with the source name, line, column and field, so a bad registry is
//! refused at start rather than discovered by a workspace at 3 a.m.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::names::EnvName;
use crate::pricing::Pricing;

mod raw;
mod validate;

use raw::RawRegistry;
use validate::Errors;

/// The registry embedded in the binary, with current public list prices.
pub const DEFAULT_REGISTRY_YAML: &str = include_str!("../providers.yaml");

/// The source name used in errors about the embedded registry.
pub const DEFAULT_REGISTRY_NAME: &str = "<embedded providers.yaml>";

/// The prefix every platform upstream `key_env` must have: inside the reserved `TOLLGATE_`
/// namespace, and disjoint from the names Tollgate injects into plans.
pub const UPSTREAM_KEY_PREFIX: &str = "TOLLGATE_UPSTREAM_";

/// Names Tollgate always injects into a plan; no registry may use them as credentials.
pub const LLM_PROVIDER: &str = "LLM_PROVIDER";
/// See [`LLM_PROVIDER`].
pub const LLM_BILLING_MODE: &str = "LLM_BILLING_MODE";
/// The secret consulted for the effective model after the request and the workspace.
pub const MODEL: &str = "MODEL";

/// The wire protocol a runtime speaks and an upstream serves.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions API.
    Openai,
}

impl Protocol {
    fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The protocol's lower-case name, which is also its proxy path segment.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The path under the public URL where the proxy serves this protocol.
    pub fn proxy_path(self) -> &'static str {
        match self {
            Protocol::Anthropic => "/anthropic",
            Protocol::Openai => "/openai/v1",
        }
    }
}

/// How a runtime is configured beyond its environment (a runtime's `config` in the registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum RuntimeConfig {
    /// The Codex CLI: it ignores `base_url_env`; its provider, model and ChatGPT login are set
    /// in `$CODEX_HOME/config.toml` and `auth.json` (see [`crate::codex`]).
    Codex,
}

impl RuntimeConfig {
    /// The registry's name for it.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An agent runtime (`claude-code`, `codex`, ...) and the env names it reads.
#[derive(Clone, Debug)]
pub struct Runtime {
    id: String,
    protocol: Protocol,
    base_url_env: EnvName,
    token_env: EnvName,
    model_env: Option<EnvName>,
    context_window_env: Option<EnvName>,
    config: Option<RuntimeConfig>,
}

impl Runtime {
    /// The runtime's id, e.g. `claude-code`.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The protocol the runtime speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// The variable that holds the runtime's API base URL.
    pub fn base_url_env(&self) -> &EnvName {
        &self.base_url_env
    }
    /// The variable the runtime sends as its bearer token.
    pub fn token_env(&self) -> &EnvName {
        &self.token_env
    }
    /// The variable that selects the model, where the runtime has one.
    pub fn model_env(&self) -> Option<&EnvName> {
        self.model_env.as_ref()
    }
    /// The variable that tells the runtime its model's context window, where it has one
    /// (Claude Code cannot know a `platform/...` alias's window and would assume the wrong one).
    pub fn context_window_env(&self) -> Option<&EnvName> {
        self.context_window_env.as_ref()
    }
    /// How the runtime is configured beyond its environment, where it is (`codex`).
    pub fn config(&self) -> Option<RuntimeConfig> {
        self.config
    }
}

/// Where the proxy forwards a platform model and what it charges.
#[derive(Clone, Debug)]
pub struct PlatformModel {
    upstream: String,
    upstream_model: String,
    price: Pricing,
    context_window: Option<u64>,
}

impl PlatformModel {
    /// The name of the upstream (a key of the platform provider's `upstreams`).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }
    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        &self.upstream_model
    }
    /// The model's prices: base rates, input-size tiers and service tiers.
    pub fn price(&self) -> &Pricing {
        &self.price
    }
    /// The upstream model's context window in tokens, when the registry states it.
    pub fn context_window(&self) -> Option<u64> {
        self.context_window
    }
}

/// A model a provider lists by name.
#[derive(Clone, Debug)]
pub struct Model {
    id: String,
    serving: Option<PlatformModel>,
}

impl Model {
    /// The model id agents use, e.g. `opus` or `platform/sonnet`.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Upstream and price: present exactly for the platform provider's models.
    pub fn serving(&self) -> Option<&PlatformModel> {
        self.serving.as_ref()
    }
}

/// A platform upstream: where the proxy sends traffic and which server env var holds its key.
#[derive(Clone, Debug)]
pub struct Upstream {
    name: String,
    protocol: Protocol,
    url: String,
    key_env: EnvName,
}

impl Upstream {
    /// The upstream's name, e.g. `anthropic`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The protocol it serves.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// Its base URL (overridable at run time by `TOLLGATE_UPSTREAM_<NAME>_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The server env var holding the platform key; always in the reserved `TOLLGATE_` space.
    pub fn key_env(&self) -> &EnvName {
        &self.key_env
    }
}

/// One provider of the registry.
#[derive(Clone, Debug)]
pub struct Provider {
    id: String,
    platform: bool,
    runtimes: Vec<String>,
    auth_env: Vec<EnvName>,
    models: Vec<Model>,
    model_prefixes: Vec<String>,
    base_url: Option<String>,
    upstreams: Vec<Upstream>,
}

impl Provider {
    /// The provider id, e.g. `minimax`.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Whether this is the platform provider, served by the Tollgate proxy.
    pub fn is_platform(&self) -> bool {
        self.platform
    }
    /// Whether the provider serves `runtime`.
    pub fn supports(&self, runtime: &str) -> bool {
        self.runtimes.iter().any(|r| r == runtime)
    }
    /// The runtimes it serves.
    pub fn runtimes(&self) -> &[String] {
        &self.runtimes
    }
    /// The credential names that authenticate to it (empty for the platform provider).
    pub fn auth_env(&self) -> &[EnvName] {
        &self.auth_env
    }
    /// Whether `name` is one of its credential names.
    pub fn accepts_credential(&self, name: &str) -> bool {
        self.auth_env.iter().any(|n| n.as_str() == name)
    }
    /// The models it lists exactly.
    pub fn models(&self) -> &[Model] {
        &self.models
    }
    /// The model listed exactly as `id`, if any.
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }
    /// Its model prefixes.
    pub fn model_prefixes(&self) -> &[String] {
        &self.model_prefixes
    }
    /// The length of its longest prefix of `model`, if any prefix matches.
    pub fn longest_prefix_match(&self, model: &str) -> Option<usize> {
        self.model_prefixes.iter().filter(|p| model.starts_with(p.as_str())).map(String::len).max()
    }
    /// The base URL injected for BYOK workspaces, where the provider has one.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }
    /// The platform provider's upstreams (empty for others).
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }
    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// A validated registry.
#[derive(Clone, Debug)]
pub struct Registry {
    runtimes: BTreeMap<String, Runtime>,
    providers: Vec<Provider>,
    platform: Option<usize>,
    llm_credentials: BTreeSet<String>,
    routing: BTreeSet<String>,
}

/// One problem in a registry file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    /// The file name (or `<embedded providers.yaml>`).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
    /// The field path, e.g. `providers[3].auth_env[0]`.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.field, self.message)
    }
}

/// Every problem found in a registry file, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RegistryErrors(pub Vec<RegistryError>);

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Registry {
    /// Parses and validates a registry. `source` names the file in error messages.
    ///
    /// Returns every problem found, each with line, column and field path.
    pub fn parse(source: &str, yaml: &str) -> Result<Self, RegistryErrors> {
        let raw: RawRegistry = serde_saphyr::from_str(yaml).map_err(|e| {
            let loc = e.location();
            RegistryErrors(vec![RegistryError {
                file: source.to_owned(),
                line: loc.map_or(0, |l| u32::try_from(l.line()).unwrap_or(0)),
                column: loc.map_or(0, |l| u32::try_from(l.column()).unwrap_or(0)),
                field: "(document)".to_owned(),
                message: e.without_snippet().to_string(),
            }])
        })?;
        let mut errors = Errors { source, list: Vec::new() };
        let registry = validate::registry(&raw, &mut errors);
        if errors.list.is_empty() {
            Ok(registry)
        } else {
            errors.list.sort_by_key(|e| (e.line, e.column));
            Err(RegistryErrors(errors.list))
        }
    }

    /// The registry embedded in the binary.
    pub fn embedded() -> Result<Self, RegistryErrors> {
        Self::parse(DEFAULT_REGISTRY_NAME, DEFAULT_REGISTRY_YAML)
    }

    /// The runtime called `id`.
    pub fn runtime(&self, id: &str) -> Option<&Runtime> {
        self.runtimes.get(id)
    }

    /// All runtimes, by id.
    pub fn runtimes(&self) -> impl Iterator<Item = &Runtime> {
        self.runtimes.values()
    }

    /// All providers, in registry order (the order matters for tie-breaks).
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider whose id equals `id` case-insensitively.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id.eq_ignore_ascii_case(id))
    }

    /// The platform provider, if the registry has one.
    pub fn platform(&self) -> Option<&Provider> {
        self.platform.and_then(|i| self.providers.get(i))
    }

    /// The platform model `id` with its upstream and price, if the platform serves it.
    pub fn platform_model(&self, id: &str) -> Option<(&PlatformModel, &Upstream)> {
        let platform = self.platform()?;
        let serving = platform.model(id)?.serving()?;
        Some((serving, platform.upstream(serving.upstream())?))
    }

    /// The platform models served to runtimes speaking `protocol`, in registry order: those
    /// whose upstream speaks it. Empty when the registry has no platform provider.
    pub fn platform_models_for(&self, protocol: Protocol) -> impl Iterator<Item = &Model> {
        self.platform().into_iter().flat_map(move |p| {
            p.models().iter().filter(move |m| {
                m.serving().and_then(|s| p.upstream(s.upstream())).is_some_and(|u| u.protocol() == protocol)
            })
        })
    }

    /// Whether `name` is an LLM credential: some provider's `auth_env`, or `llm_env`.
    pub fn is_llm_credential(&self, name: &str) -> bool {
        self.llm_credentials.contains(name)
    }

    /// Every LLM credential name, sorted.
    pub fn llm_credentials(&self) -> impl Iterator<Item = &str> {
        self.llm_credentials.iter().map(String::as_str)
    }

    /// Whether `name` is a routing name: some runtime's `base_url_env`.
    pub fn is_routing(&self, name: &str) -> bool {
        self.routing.contains(name)
    }
}

#[cfg(test)]
mod tests;
