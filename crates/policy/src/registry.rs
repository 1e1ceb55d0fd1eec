//! The provider registry (`providers.yaml`): runtimes, providers, platform models and prices.
//!
//! [`Registry::parse`] is the only constructor. It validates everything it can at load and
//! reports every problem with the source name, line, column and field, so a bad registry is
//! refused at start rather than discovered by a workspace at 3 a.m.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use crate::money::{PicoPerToken, Price};
use crate::names::EnvName;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions API.
    Openai,
}

impl Protocol {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "anthropic" => Some(Self::Anthropic),
            "openai" => Some(Self::Openai),
            _ => None,
        }
    }

    /// The protocol's lower-case name, which is also its proxy path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Anthropic => "anthropic",
            Protocol::Openai => "openai",
        }
    }

    /// The path under the public URL where the proxy serves this protocol.
    pub fn proxy_path(self) -> &'static str {
        match self {
            Protocol::Anthropic => "/anthropic",
            Protocol::Openai => "/openai/v1",
        }
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
}

/// Where the proxy forwards a platform model and what it charges.
#[derive(Clone, Debug)]
pub struct PlatformModel {
    upstream: String,
    upstream_model: String,
    price: Price,
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
    /// The model's prices.
    pub fn price(&self) -> &Price {
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

// ---- raw, span-carrying schema -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    runtimes: Spanned<BTreeMap<String, Spanned<RawRuntime>>>,
    #[serde(default)]
    llm_env: Vec<Spanned<String>>,
    providers: Spanned<Vec<Spanned<RawProvider>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    protocol: Spanned<String>,
    base_url_env: Spanned<String>,
    token_env: Spanned<String>,
    model_env: Option<Spanned<String>>,
    context_window_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: Spanned<String>,
    #[serde(default)]
    platform: bool,
    #[serde(default)]
    runtimes: Vec<Spanned<String>>,
    #[serde(default)]
    auth_env: Vec<Spanned<String>>,
    #[serde(default)]
    models: Vec<Spanned<RawModel>>,
    #[serde(default)]
    model_prefixes: Vec<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    upstreams: BTreeMap<String, Spanned<RawUpstream>>,
}

/// A model entry: a bare name, or a mapping with upstream and price.
enum RawModel {
    Name(String),
    Full(RawPlatformModel),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatformModel {
    id: String,
    upstream: Option<String>,
    upstream_model: Option<String>,
    price: Option<RawPrice>,
    context_window: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: f64,
    output: f64,
    cache_write: Option<f64>,
    cache_read: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Spanned<String>,
    key_env: Spanned<String>,
    protocol: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawModel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model name or {id, upstream, upstream_model, price}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawModel, E> {
                Ok(RawModel::Name(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawModel, A::Error> {
                RawPlatformModel::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawModel::Full)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- validation ----------------------------------------------------------------------------

struct Errors<'a> {
    source: &'a str,
    list: Vec<RegistryError>,
}

impl Errors<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(RegistryError {
            file: self.source.to_owned(),
            line: u32::try_from(spanned.referenced.line()).unwrap_or(0),
            column: u32::try_from(spanned.referenced.column()).unwrap_or(0),
            field: field.into(),
            message: message.into(),
        });
    }

    fn env_name(&mut self, raw: &Spanned<String>, field: &str) -> Option<EnvName> {
        match EnvName::parse(&raw.value) {
            Ok(n) => Some(n),
            Err(e) => {
                self.at(raw, field, format!("not a valid env name: {e}"));
                None
            }
        }
    }
}

fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.')
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

fn price(raw: &RawPrice) -> Result<Price, String> {
    let conv = |field: &str, v: f64| PicoPerToken::from_usd_per_mtok(v).map_err(|e| format!("price.{field}: {e}"));
    let input = conv("input", raw.input)?;
    Ok(Price {
        input,
        output: conv("output", raw.output)?,
        // Without a listed cache price, cache tokens cost as much as input: never under-charge.
        cache_write: raw.cache_write.map(|v| conv("cache_write", v)).transpose()?.unwrap_or(input),
        cache_read: raw.cache_read.map(|v| conv("cache_read", v)).transpose()?.unwrap_or(input),
    })
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
        let registry = Self::validate(raw, &mut errors);
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

    #[expect(clippy::too_many_lines, reason = "one linear pass over the schema reads best as one function")]
    fn validate(raw: RawRegistry, errors: &mut Errors<'_>) -> Self {
        let mut runtimes = BTreeMap::new();
        let mut routing = BTreeSet::new();
        let mut model_envs = BTreeSet::new();
        let mut role_of: BTreeMap<String, (&str, String)> = BTreeMap::new();
        if raw.runtimes.value.is_empty() {
            errors.at(&raw.runtimes, "runtimes", "at least one runtime is needed");
        }
        for (id, rt) in &raw.runtimes.value {
            let field = format!("runtimes.{id}");
            if !is_valid_id(id) {
                errors.at(rt, &field, "a runtime id is lower-case letters, digits, `-`, `_` or `.`");
            }
            let protocol = Protocol::parse(&rt.value.protocol.value);
            if protocol.is_none() {
                errors.at(
                    &rt.value.protocol,
                    format!("{field}.protocol"),
                    format!("unknown protocol `{}`: use `anthropic` or `openai`", rt.value.protocol.value),
                );
            }
            let base = errors.env_name(&rt.value.base_url_env, &format!("{field}.base_url_env"));
            let token = errors.env_name(&rt.value.token_env, &format!("{field}.token_env"));
            let model = rt.value.model_env.as_ref().and_then(|m| errors.env_name(m, &format!("{field}.model_env")));
            let window = rt
                .value
                .context_window_env
                .as_ref()
                .and_then(|m| errors.env_name(m, &format!("{field}.context_window_env")));
            let roles = [
                (base.as_ref(), Some(&rt.value.base_url_env), "base_url_env"),
                (token.as_ref(), Some(&rt.value.token_env), "token_env"),
                (model.as_ref(), rt.value.model_env.as_ref(), "model_env"),
                (window.as_ref(), rt.value.context_window_env.as_ref(), "context_window_env"),
            ];
            for (name, raw_name, sub) in roles {
                let (Some(name), Some(raw_name)) = (name, raw_name) else { continue };
                if name.is_reserved() || name.as_str() == LLM_PROVIDER || name.as_str() == LLM_BILLING_MODE {
                    errors.at(raw_name, format!("{field}.{sub}"), "this name is one Tollgate injects itself");
                    continue;
                }
                // One name, one role: a model_env that is also a token_env would overwrite the
                // workspace token with a model name, a token_env that is also a base_url_env
                // would send the token as a URL.
                match role_of.get(name.as_str()) {
                    Some((other_sub, other_rt)) if *other_sub != sub => errors.at(
                        raw_name,
                        format!("{field}.{sub}"),
                        format!("`{name}` is already the {other_sub} of runtime {other_rt}; a name has one role across runtimes"),
                    ),
                    Some(_) => {}
                    None => {
                        role_of.insert(name.as_str().to_owned(), (sub, id.clone()));
                    }
                }
            }
            if let (Some(b), Some(t)) = (&base, &token)
                && b == t
            {
                errors.at(&rt.value.token_env, format!("{field}.token_env"), "token_env and base_url_env must differ");
            }
            if let (Some(protocol), Some(base_url_env), Some(token_env)) = (protocol, base, token) {
                routing.insert(base_url_env.as_str().to_owned());
                for m in model.iter().chain(window.iter()) {
                    model_envs.insert(m.as_str().to_owned());
                }
                runtimes.insert(
                    id.clone(),
                    Runtime {
                        id: id.clone(),
                        protocol,
                        base_url_env,
                        token_env,
                        model_env: model,
                        context_window_env: window,
                    },
                );
            }
        }

        let mut llm_credentials = BTreeSet::new();
        let check_credential = |errors: &mut Errors<'_>, raw: &Spanned<String>, field: &str| -> Option<EnvName> {
            let name = errors.env_name(raw, field)?;
            if name.is_reserved()
                || name.as_str() == LLM_PROVIDER
                || name.as_str() == LLM_BILLING_MODE
                || name.as_str() == MODEL
            {
                errors.at(raw, field, format!("`{name}` cannot be a credential: Tollgate injects or reads it itself"));
                return None;
            }
            if routing.contains(name.as_str()) {
                errors.at(
                    raw,
                    field,
                    format!("`{name}` is a runtime's base_url_env (a routing name), not a credential"),
                );
                return None;
            }
            if model_envs.contains(name.as_str()) {
                errors.at(
                    raw,
                    field,
                    format!("`{name}` is a runtime's model_env or context_window_env, not a credential"),
                );
                return None;
            }
            Some(name)
        };
        for (i, n) in raw.llm_env.iter().enumerate() {
            if let Some(name) = check_credential(errors, n, &format!("llm_env[{i}]"))
                && !llm_credentials.insert(name.as_str().to_owned())
            {
                errors.at(n, format!("llm_env[{i}]"), format!("`{name}` is listed twice"));
            }
        }

        let mut providers = Vec::new();
        let mut seen_ids: BTreeMap<String, u32> = BTreeMap::new();
        let mut platform: Option<(usize, String, u32)> = None;
        if raw.providers.value.is_empty() {
            errors.at(&raw.providers, "providers", "at least one provider is needed");
        }
        for (i, p) in raw.providers.value.iter().enumerate() {
            let field = format!("providers[{i}]");
            let rp = &p.value;
            let id = rp.id.value.clone();
            let line = u32::try_from(rp.id.referenced.line()).unwrap_or(0);
            if !is_valid_id(&id) {
                errors.at(
                    &rp.id,
                    format!("{field}.id"),
                    format!("`{id}` is not a valid provider id: use lower-case letters, digits, `-`, `_` or `.`"),
                );
            }
            if let Some(first) = seen_ids.insert(id.to_ascii_lowercase(), line) {
                errors.at(&rp.id, format!("{field}.id"), format!("duplicate provider id `{id}` (first defined on line {first}; ids are compared case-insensitively)"));
            }
            if rp.platform {
                if let Some((_, other, other_line)) = &platform {
                    errors.at(&rp.id, format!("{field}.platform"), format!("two providers are `platform: true`: `{other}` (line {other_line}) and `{id}`; there is one platform provider"));
                } else {
                    platform = Some((providers.len(), id.clone(), line));
                }
            }
            if rp.runtimes.is_empty() {
                errors.at(&rp.id, format!("{field}.runtimes"), format!("provider `{id}` lists no runtimes"));
            }
            let mut rts = Vec::new();
            for (j, r) in rp.runtimes.iter().enumerate() {
                if runtimes.contains_key(&r.value) {
                    rts.push(r.value.clone());
                } else if !raw.runtimes.value.contains_key(&r.value) {
                    let known: Vec<&str> = raw.runtimes.value.keys().map(String::as_str).collect();
                    errors.at(
                        r,
                        format!("{field}.runtimes[{j}]"),
                        format!("unknown runtime `{}` (known: {})", r.value, known.join(", ")),
                    );
                }
            }
            let mut auth_env = Vec::new();
            for (j, a) in rp.auth_env.iter().enumerate() {
                if let Some(name) = check_credential(errors, a, &format!("{field}.auth_env[{j}]")) {
                    if auth_env.contains(&name) {
                        errors.at(a, format!("{field}.auth_env[{j}]"), format!("`{name}` is listed twice"));
                    } else {
                        llm_credentials.insert(name.as_str().to_owned());
                        auth_env.push(name);
                    }
                }
            }
            if rp.platform && !rp.auth_env.is_empty() {
                errors.at(
                    &rp.id,
                    format!("{field}.auth_env"),
                    "the platform provider authenticates with the workspace token; it has no auth_env",
                );
            }
            if !rp.platform && rp.auth_env.is_empty() {
                errors.at(&rp.id, format!("{field}.auth_env"), format!("provider `{id}` needs at least one auth_env name: a BYOK workspace must know whose credential to keep"));
            }

            let mut upstreams = Vec::new();
            if !rp.platform && !rp.upstreams.is_empty() {
                errors.at(&rp.id, format!("{field}.upstreams"), "only the platform provider has upstreams");
            }
            for (name, u) in &rp.upstreams {
                let uf = format!("{field}.upstreams.{name}");
                if !is_valid_id(name) {
                    errors.at(u, &uf, "an upstream name is lower-case letters, digits, `-`, `_` or `.`");
                }
                if !is_http_url(&u.value.url.value) {
                    errors.at(&u.value.url, format!("{uf}.url"), "must be an http:// or https:// URL");
                }
                let key_env = errors.env_name(&u.value.key_env, &format!("{uf}.key_env"));
                if key_env.as_ref().is_some_and(|k| !k.as_str().starts_with(UPSTREAM_KEY_PREFIX)) {
                    errors.at(&u.value.key_env, format!("{uf}.key_env"), format!("a platform key lives in the server's environment under a `{UPSTREAM_KEY_PREFIX}` name (e.g. TOLLGATE_UPSTREAM_ANTHROPIC_KEY), which no secret and no plan can use"));
                }
                let protocol = match &u.value.protocol {
                    Some(p) => {
                        let parsed = Protocol::parse(&p.value);
                        if parsed.is_none() {
                            errors.at(
                                p,
                                format!("{uf}.protocol"),
                                format!("unknown protocol `{}`: use `anthropic` or `openai`", p.value),
                            );
                        }
                        parsed
                    }
                    None => {
                        let parsed = Protocol::parse(name);
                        if parsed.is_none() {
                            errors.at(
                                u,
                                format!("{uf}.protocol"),
                                format!("upstream `{name}` needs `protocol: anthropic` or `protocol: openai`"),
                            );
                        }
                        parsed
                    }
                };
                if let (Some(key_env), Some(protocol)) = (key_env, protocol) {
                    upstreams.push(Upstream {
                        name: name.clone(),
                        protocol,
                        url: u.value.url.value.trim_end_matches('/').to_owned(),
                        key_env,
                    });
                }
            }

            let mut models = Vec::new();
            for (j, m) in rp.models.iter().enumerate() {
                let mf = format!("{field}.models[{j}]");
                let (mid, serving) = match &m.value {
                    RawModel::Name(n) => {
                        if rp.platform {
                            errors.at(m, &mf, format!("platform model `{n}` needs an upstream, an upstream_model and a price: write it as {{id, upstream, upstream_model, price}}"));
                        }
                        (n.clone(), None)
                    }
                    RawModel::Full(full) => {
                        if !rp.platform {
                            errors.at(m, &mf, "only the platform provider's models carry an upstream and a price; list this model by name");
                            (full.id.clone(), None)
                        } else {
                            (
                                full.id.clone(),
                                Self::build_platform_model(full, &upstreams, &rp.upstreams, errors, m, &mf),
                            )
                        }
                    }
                };
                if mid.is_empty() || mid.contains(char::is_whitespace) {
                    errors.at(m, format!("{mf}.id"), "a model id is non-empty and has no whitespace");
                } else if models.iter().any(|x: &Model| x.id == mid) {
                    errors.at(m, format!("{mf}.id"), format!("model `{mid}` is listed twice"));
                } else {
                    models.push(Model { id: mid, serving });
                }
            }
            if rp.platform && rp.models.is_empty() {
                errors.at(
                    &rp.id,
                    format!("{field}.models"),
                    "the platform provider serves no model: list at least one",
                );
            }
            let mut prefixes = Vec::new();
            for (j, pre) in rp.model_prefixes.iter().enumerate() {
                if pre.value.is_empty() {
                    errors.at(pre, format!("{field}.model_prefixes[{j}]"), "an empty prefix would match every model");
                } else {
                    prefixes.push(pre.value.clone());
                }
            }
            let base_url = rp.base_url.as_ref().map(|b| {
                if rp.platform {
                    errors.at(
                        b,
                        format!("{field}.base_url"),
                        "the platform provider is reached through the Tollgate proxy; it has no base_url",
                    );
                } else if !is_http_url(&b.value) {
                    errors.at(b, format!("{field}.base_url"), "must be an http:// or https:// URL");
                }
                b.value.clone()
            });
            providers.push(Provider {
                id,
                platform: rp.platform,
                runtimes: rts,
                auth_env,
                models,
                model_prefixes: prefixes,
                base_url,
                upstreams,
            });
        }

        Registry { runtimes, providers, platform: platform.map(|(i, _, _)| i), llm_credentials, routing }
    }

    fn build_platform_model(
        full: &RawPlatformModel,
        upstreams: &[Upstream],
        raw_upstreams: &BTreeMap<String, Spanned<RawUpstream>>,
        errors: &mut Errors<'_>,
        at: &Spanned<RawModel>,
        mf: &str,
    ) -> Option<PlatformModel> {
        let Some(upstream) = &full.upstream else {
            errors.at(at, format!("{mf}.upstream"), format!("platform model `{}` has no upstream", full.id));
            return None;
        };
        if !raw_upstreams.contains_key(upstream) {
            let known: Vec<&str> = raw_upstreams.keys().map(String::as_str).collect();
            errors.at(
                at,
                format!("{mf}.upstream"),
                format!(
                    "unknown upstream `{upstream}` (this provider's upstreams: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            );
        }
        let Some(upstream_model) = full.upstream_model.as_ref().filter(|m| !m.is_empty()) else {
            errors.at(
                at,
                format!("{mf}.upstream_model"),
                format!("platform model `{}` has no upstream_model", full.id),
            );
            return None;
        };
        let Some(raw_price) = &full.price else {
            errors.at(at, format!("{mf}.price"), format!("platform model `{}` has no price", full.id));
            return None;
        };
        let price = match price(raw_price) {
            Ok(p) => p,
            Err(e) => {
                errors.at(at, format!("{mf}.price"), e);
                return None;
            }
        };
        if full.context_window == Some(0) {
            errors.at(at, format!("{mf}.context_window"), "a context window is a positive number of tokens");
            return None;
        }
        upstreams.iter().any(|u| &u.name == upstream).then(|| PlatformModel {
            upstream: upstream.clone(),
            upstream_model: upstream_model.clone(),
            price,
            context_window: full.context_window,
        })
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
