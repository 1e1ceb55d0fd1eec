//! Validation of the raw registry: one validator per section (runtimes, `llm_env`, providers
//! and, within a provider, its runtimes, credentials, upstreams, models, prefixes and base
//! URL). Each reports every problem it finds and returns what is valid, so that one pass
//! reports all problems at once.

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;
use strum::VariantArray as _;

use super::raw::{RawModel, RawPlatformModel, RawPrice, RawProvider, RawRegistry, RawRuntime, RawUpstream};
use super::{
    LLM_BILLING_MODE, LLM_PROVIDER, MODEL, Model, PlatformModel, Protocol, Provider, Registry, RegistryError, Runtime,
    RuntimeConfig, UPSTREAM_KEY_PREFIX, Upstream,
};
use crate::money::{PicoPerToken, Price, ServiceTier};
use crate::names::EnvName;
use crate::pricing::{Pricing, PricingError, ServicePrice, Tier};

/// The problems found so far, each with its position in `source`.
pub(super) struct Errors<'a> {
    pub(super) source: &'a str,
    pub(super) list: Vec<RegistryError>,
}

impl Errors<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        self.at_location(&spanned.referenced, field, message);
    }

    fn at_location(&mut self, location: &serde_saphyr::Location, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(RegistryError {
            file: self.source.to_owned(),
            line: u32::try_from(location.line()).unwrap_or(0),
            column: u32::try_from(location.column()).unwrap_or(0),
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

/// A price's problem: the field under the model's `price` (e.g. `tiers[0].input`), and why.
type PriceProblem = (String, String);

/// One set of rates, `at` the field prefix (`` or `tiers[0].`) for errors.
fn rates(
    at: &str,
    [input, output]: [f64; 2],
    [cache_write, cache_write_1h, cache_read]: [Option<f64>; 3],
) -> Result<Price, PriceProblem> {
    let conv = |field: &str, v: f64| {
        PicoPerToken::from_usd_per_mtok(v).map_err(|e| (format!("{at}{field}"), format!("{at}{field}: {e}")))
    };
    let input = conv("input", input)?;
    // Without a listed cache price, cache tokens cost as much as input: never under-charge.
    let cache_write = cache_write.map(|v| conv("cache_write", v)).transpose()?.unwrap_or(input);
    Ok(Price {
        input,
        output: conv("output", output)?,
        cache_write,
        // Without a listed 1-hour price, a 1-hour write costs what any cache write does.
        cache_write_1h: cache_write_1h.map(|v| conv("cache_write_1h", v)).transpose()?.unwrap_or(cache_write),
        cache_read: cache_read.map(|v| conv("cache_read", v)).transpose()?.unwrap_or(input),
    })
}

/// A model's whole price: base rates, input-size tiers and service tiers (DESIGN.md section 20).
fn price(raw: &RawPrice) -> Result<Pricing, PriceProblem> {
    let base = rates("", [raw.input, raw.output], [raw.cache_write, raw.cache_write_1h, raw.cache_read])?;
    let mut tiers = Vec::new();
    for (k, t) in raw.tiers.iter().enumerate() {
        let t = &t.value;
        let at = format!("tiers[{k}].");
        if t.above_input_tokens == 0 {
            return Err((
                format!("{at}above_input_tokens"),
                "a tier's above_input_tokens is a positive number of tokens (the base price covers the rest)"
                    .to_owned(),
            ));
        }
        let price = rates(&at, [t.input, t.output], [t.cache_write, t.cache_write_1h, t.cache_read])?;
        tiers.push(Tier { above_input_tokens: t.above_input_tokens, price });
    }
    let mut service_tiers = BTreeMap::new();
    for (name, s) in &raw.service_tiers {
        let at = format!("service_tiers.{name}");
        let Ok(tier) = name.parse::<ServiceTier>() else {
            let known: Vec<&str> = ServiceTier::VARIANTS.iter().map(|t| t.as_str()).collect();
            return Err((at, format!("unknown service tier `{name}`: use one of {}", known.join(", "))));
        };
        let s = &s.value;
        let r = rates(&format!("{at}."), [s.input, s.output], [None, None, s.cache_read])?;
        service_tiers.insert(tier, ServicePrice { input: r.input, output: r.output, cache_read: r.cache_read });
    }
    Pricing::new(base, tiers, service_tiers).map_err(|e| match e {
        PricingError::TiersNotIncreasing { index } => (
            format!("tiers[{index}].above_input_tokens"),
            "tiers are listed by increasing above_input_tokens, each above the previous".to_owned(),
        ),
    })
}

/// Where a price problem is: the tier's own line when it has one, else the model's.
fn price_line<'a>(raw: &'a RawPrice, field: &str) -> Option<&'a serde_saphyr::Location> {
    if let Some(rest) = field.strip_prefix("service_tiers.") {
        let name = rest.split('.').next()?;
        return raw.service_tiers.get(name).map(|s| &s.referenced);
    }
    let index: usize = field.strip_prefix("tiers[")?.split(']').next()?.parse().ok()?;
    raw.tiers.get(index).map(|t| &t.referenced)
}

/// Validates the whole registry, section by section, in file order.
pub(super) fn registry(raw: &RawRegistry, errors: &mut Errors<'_>) -> Registry {
    let runtimes = runtimes(&raw.runtimes, errors);
    let mut llm_credentials = llm_env(&raw.llm_env, &runtimes, errors);
    let mut providers = Vec::new();
    let mut seen_ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut platform: Option<(usize, String, u32)> = None;
    if raw.providers.value.is_empty() {
        errors.at(&raw.providers, "providers", "at least one provider is needed");
    }
    for (i, p) in raw.providers.value.iter().enumerate() {
        let field = format!("providers[{i}]");
        let rp = &p.value;
        let id = &rp.id.value;
        let line = u32::try_from(rp.id.referenced.line()).unwrap_or(0);
        if !is_valid_id(id) {
            errors.at(
                &rp.id,
                format!("{field}.id"),
                format!("`{id}` is not a valid provider id: use lower-case letters, digits, `-`, `_` or `.`"),
            );
        }
        if let Some(first) = seen_ids.insert(id.to_ascii_lowercase(), line) {
            errors.at(
                &rp.id,
                format!("{field}.id"),
                format!(
                    "duplicate provider id `{id}` (first defined on line {first}; ids are compared case-insensitively)"
                ),
            );
        }
        if rp.platform {
            if let Some((_, other, other_line)) = &platform {
                errors.at(&rp.id, format!("{field}.platform"), format!("two providers are `platform: true`: `{other}` (line {other_line}) and `{id}`; there is one platform provider"));
            } else {
                platform = Some((providers.len(), id.clone(), line));
            }
        }
        let section =
            ProviderSection { field: &field, raw: rp, runtimes: &runtimes, raw_runtimes: &raw.runtimes.value };
        providers.push(section.validate(&mut llm_credentials, errors));
    }
    Registry {
        runtimes: runtimes.runtimes,
        providers,
        platform: platform.map(|(i, _, _)| i),
        llm_credentials,
        routing: runtimes.routing,
    }
}

/// The valid runtimes, and the names they claim (which no credential may reuse).
struct Runtimes {
    runtimes: BTreeMap<String, Runtime>,
    routing: BTreeSet<String>,
    model_envs: BTreeSet<String>,
}

/// The `runtimes` section.
fn runtimes(raw: &Spanned<BTreeMap<String, Spanned<RawRuntime>>>, errors: &mut Errors<'_>) -> Runtimes {
    let mut out = Runtimes { runtimes: BTreeMap::new(), routing: BTreeSet::new(), model_envs: BTreeSet::new() };
    let mut role_of: BTreeMap<String, (&str, String)> = BTreeMap::new();
    if raw.value.is_empty() {
        errors.at(raw, "runtimes", "at least one runtime is needed");
    }
    for (id, rt) in &raw.value {
        if let Some(runtime) = runtime(id, rt, &mut role_of, errors) {
            out.routing.insert(runtime.base_url_env.as_str().to_owned());
            for m in runtime.model_env.iter().chain(runtime.context_window_env.iter()) {
                out.model_envs.insert(m.as_str().to_owned());
            }
            out.runtimes.insert(id.clone(), runtime);
        }
    }
    out
}

/// One runtime; `role_of` maps each env name seen so far to its role and runtime.
fn runtime(
    id: &str,
    rt: &Spanned<RawRuntime>,
    role_of: &mut BTreeMap<String, (&'static str, String)>,
    errors: &mut Errors<'_>,
) -> Option<Runtime> {
    let field = format!("runtimes.{id}");
    if !is_valid_id(id) {
        errors.at(rt, &field, "a runtime id is lower-case letters, digits, `-`, `_` or `.`");
    }
    let r = &rt.value;
    let protocol = Protocol::parse(&r.protocol.value);
    if protocol.is_none() {
        errors.at(
            &r.protocol,
            format!("{field}.protocol"),
            format!("unknown protocol `{}`: use `anthropic` or `openai`", r.protocol.value),
        );
    }
    let base = errors.env_name(&r.base_url_env, &format!("{field}.base_url_env"));
    let token = errors.env_name(&r.token_env, &format!("{field}.token_env"));
    let model = r.model_env.as_ref().and_then(|m| errors.env_name(m, &format!("{field}.model_env")));
    let window = r.context_window_env.as_ref().and_then(|m| errors.env_name(m, &format!("{field}.context_window_env")));
    let roles = [
        (base.as_ref(), Some(&r.base_url_env), "base_url_env"),
        (token.as_ref(), Some(&r.token_env), "token_env"),
        (model.as_ref(), r.model_env.as_ref(), "model_env"),
        (window.as_ref(), r.context_window_env.as_ref(), "context_window_env"),
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
                format!(
                    "`{name}` is already the {other_sub} of runtime {other_rt}; a name has one role across runtimes"
                ),
            ),
            Some(_) => {}
            None => {
                role_of.insert(name.as_str().to_owned(), (sub, id.to_owned()));
            }
        }
    }
    if let (Some(b), Some(t)) = (&base, &token)
        && b == t
    {
        errors.at(&r.token_env, format!("{field}.token_env"), "token_env and base_url_env must differ");
    }
    let config = runtime_config(r, &field, protocol, errors);
    let (protocol, base_url_env, token_env) = (protocol?, base?, token?);
    Some(Runtime {
        id: id.to_owned(),
        protocol,
        base_url_env,
        token_env,
        model_env: model,
        context_window_env: window,
        config,
    })
}

/// A runtime's `config`: a known kind, and `codex` only for the `openai` protocol (Codex
/// speaks the Responses API).
fn runtime_config(
    r: &RawRuntime,
    field: &str,
    protocol: Option<Protocol>,
    errors: &mut Errors<'_>,
) -> Option<RuntimeConfig> {
    let raw = r.config.as_ref()?;
    let Ok(config) = raw.value.parse::<RuntimeConfig>() else {
        let known: Vec<&str> = RuntimeConfig::VARIANTS.iter().map(|c| c.as_str()).collect();
        errors.at(
            raw,
            format!("{field}.config"),
            format!("unknown config `{}`: use one of {}", raw.value, known.join(", ")),
        );
        return None;
    };
    if config == RuntimeConfig::Codex && protocol.is_some_and(|p| p != Protocol::Openai) {
        errors.at(
            raw,
            format!("{field}.config"),
            "config `codex` needs protocol `openai`: Codex speaks the Responses API",
        );
    }
    Some(config)
}

impl Runtimes {
    /// A credential name (in `llm_env` or an `auth_env`): valid, and none of the names
    /// Tollgate injects or a runtime uses for routing or the model.
    fn credential(&self, raw: &Spanned<String>, field: &str, errors: &mut Errors<'_>) -> Option<EnvName> {
        let name = errors.env_name(raw, field)?;
        if name.is_reserved() || [LLM_PROVIDER, LLM_BILLING_MODE, MODEL].contains(&name.as_str()) {
            errors.at(raw, field, format!("`{name}` cannot be a credential: Tollgate injects or reads it itself"));
            return None;
        }
        if self.routing.contains(name.as_str()) {
            errors.at(raw, field, format!("`{name}` is a runtime's base_url_env (a routing name), not a credential"));
            return None;
        }
        if self.model_envs.contains(name.as_str()) {
            errors.at(raw, field, format!("`{name}` is a runtime's model_env or context_window_env, not a credential"));
            return None;
        }
        Some(name)
    }
}

/// The `llm_env` section: the credential names no provider lists.
fn llm_env(raw: &[Spanned<String>], runtimes: &Runtimes, errors: &mut Errors<'_>) -> BTreeSet<String> {
    let mut llm_credentials = BTreeSet::new();
    for (i, n) in raw.iter().enumerate() {
        if let Some(name) = runtimes.credential(n, &format!("llm_env[{i}]"), errors)
            && !llm_credentials.insert(name.as_str().to_owned())
        {
            errors.at(n, format!("llm_env[{i}]"), format!("`{name}` is listed twice"));
        }
    }
    llm_credentials
}

/// One entry of the `providers` section, with what its validators need to know.
struct ProviderSection<'a> {
    field: &'a str,
    raw: &'a RawProvider,
    runtimes: &'a Runtimes,
    raw_runtimes: &'a BTreeMap<String, Spanned<RawRuntime>>,
}

impl ProviderSection<'_> {
    /// The provider, its invalid parts left out; adds its credentials to `llm_credentials`.
    fn validate(&self, llm_credentials: &mut BTreeSet<String>, errors: &mut Errors<'_>) -> Provider {
        let runtimes = self.runtimes(errors);
        let auth_env = self.auth_env(llm_credentials, errors);
        let upstreams = self.upstreams(errors);
        let models = self.models(&upstreams, errors);
        let model_prefixes = self.model_prefixes(errors);
        let base_url = self.base_url(errors);
        Provider {
            id: self.raw.id.value.clone(),
            platform: self.raw.platform,
            runtimes,
            auth_env,
            models,
            model_prefixes,
            base_url,
            upstreams,
        }
    }

    fn runtimes(&self, errors: &mut Errors<'_>) -> Vec<String> {
        let (rp, field) = (self.raw, self.field);
        if rp.runtimes.is_empty() {
            errors.at(&rp.id, format!("{field}.runtimes"), format!("provider `{}` lists no runtimes", rp.id.value));
        }
        let mut rts = Vec::new();
        for (j, r) in rp.runtimes.iter().enumerate() {
            if self.runtimes.runtimes.contains_key(&r.value) {
                rts.push(r.value.clone());
            } else if !self.raw_runtimes.contains_key(&r.value) {
                let known: Vec<&str> = self.raw_runtimes.keys().map(String::as_str).collect();
                errors.at(
                    r,
                    format!("{field}.runtimes[{j}]"),
                    format!("unknown runtime `{}` (known: {})", r.value, known.join(", ")),
                );
            }
        }
        rts
    }

    fn auth_env(&self, llm_credentials: &mut BTreeSet<String>, errors: &mut Errors<'_>) -> Vec<EnvName> {
        let (rp, field) = (self.raw, self.field);
        let mut auth_env = Vec::new();
        for (j, a) in rp.auth_env.iter().enumerate() {
            if let Some(name) = self.runtimes.credential(a, &format!("{field}.auth_env[{j}]"), errors) {
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
            errors.at(&rp.id, format!("{field}.auth_env"), format!("provider `{}` needs at least one auth_env name: a BYOK workspace must know whose credential to keep", rp.id.value));
        }
        auth_env
    }

    fn upstreams(&self, errors: &mut Errors<'_>) -> Vec<Upstream> {
        let (rp, field) = (self.raw, self.field);
        if !rp.platform && !rp.upstreams.is_empty() {
            errors.at(&rp.id, format!("{field}.upstreams"), "only the platform provider has upstreams");
        }
        rp.upstreams
            .iter()
            .filter_map(|(name, u)| upstream(&format!("{field}.upstreams.{name}"), name, u, errors))
            .collect()
    }

    fn models(&self, upstreams: &[Upstream], errors: &mut Errors<'_>) -> Vec<Model> {
        let (rp, field) = (self.raw, self.field);
        let mut models: Vec<Model> = Vec::new();
        for (j, m) in rp.models.iter().enumerate() {
            let mf = format!("{field}.models[{j}]");
            let (mid, serving) = match &m.value {
                RawModel::Name(n) => {
                    if rp.platform {
                        errors.at(m, &mf, format!("platform model `{n}` needs an upstream, an upstream_model and a price: write it as {{id, upstream, upstream_model, price}}"));
                    }
                    (n.clone(), None)
                }
                RawModel::Full(full) if !rp.platform => {
                    errors.at(
                        m,
                        &mf,
                        "only the platform provider's models carry an upstream and a price; list this model by name",
                    );
                    (full.id.clone(), None)
                }
                RawModel::Full(full) => {
                    let at = Site { spanned: m, field: &mf };
                    (full.id.clone(), platform_model(full, upstreams, &rp.upstreams, &at, errors))
                }
            };
            if mid.is_empty() || mid.contains(char::is_whitespace) {
                errors.at(m, format!("{mf}.id"), "a model id is non-empty and has no whitespace");
            } else if models.iter().any(|x| x.id == mid) {
                errors.at(m, format!("{mf}.id"), format!("model `{mid}` is listed twice"));
            } else {
                models.push(Model { id: mid, serving });
            }
        }
        if rp.platform && rp.models.is_empty() {
            errors.at(&rp.id, format!("{field}.models"), "the platform provider serves no model: list at least one");
        }
        models
    }

    fn model_prefixes(&self, errors: &mut Errors<'_>) -> Vec<String> {
        let mut prefixes = Vec::new();
        for (j, pre) in self.raw.model_prefixes.iter().enumerate() {
            if pre.value.is_empty() {
                errors.at(
                    pre,
                    format!("{}.model_prefixes[{j}]", self.field),
                    "an empty prefix would match every model",
                );
            } else {
                prefixes.push(pre.value.clone());
            }
        }
        prefixes
    }

    fn base_url(&self, errors: &mut Errors<'_>) -> Option<String> {
        let field = format!("{}.base_url", self.field);
        self.raw.base_url.as_ref().map(|b| {
            if self.raw.platform {
                errors.at(b, field, "the platform provider is reached through the Tollgate proxy; it has no base_url");
            } else if !is_http_url(&b.value) {
                errors.at(b, field, "must be an http:// or https:// URL");
            }
            b.value.clone()
        })
    }
}

/// One platform upstream called `name`, at field path `uf`.
fn upstream(uf: &str, name: &str, u: &Spanned<RawUpstream>, errors: &mut Errors<'_>) -> Option<Upstream> {
    if !is_valid_id(name) {
        errors.at(u, uf, "an upstream name is lower-case letters, digits, `-`, `_` or `.`");
    }
    if !is_http_url(&u.value.url.value) {
        errors.at(&u.value.url, format!("{uf}.url"), "must be an http:// or https:// URL");
    }
    let key_env = errors.env_name(&u.value.key_env, &format!("{uf}.key_env"));
    if key_env.as_ref().is_some_and(|k| !k.as_str().starts_with(UPSTREAM_KEY_PREFIX)) {
        errors.at(&u.value.key_env, format!("{uf}.key_env"), format!("a platform key lives in the server's environment under a `{UPSTREAM_KEY_PREFIX}` name (e.g. TOLLGATE_UPSTREAM_ANTHROPIC_KEY), which no secret and no plan can use"));
    }
    // Without an explicit protocol, the upstream's name says it (`anthropic`, `openai`).
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
    Some(Upstream {
        name: name.to_owned(),
        protocol: protocol?,
        url: u.value.url.value.trim_end_matches('/').to_owned(),
        key_env: key_env?,
    })
}

/// Where in the file a model entry is, for its errors.
struct Site<'a> {
    spanned: &'a Spanned<RawModel>,
    field: &'a str,
}

/// A platform model's upstream, upstream model and price.
fn platform_model(
    full: &RawPlatformModel,
    upstreams: &[Upstream],
    raw_upstreams: &BTreeMap<String, Spanned<RawUpstream>>,
    at: &Site<'_>,
    errors: &mut Errors<'_>,
) -> Option<PlatformModel> {
    let mf = at.field;
    let Some(upstream) = &full.upstream else {
        errors.at(at.spanned, format!("{mf}.upstream"), format!("platform model `{}` has no upstream", full.id));
        return None;
    };
    if !raw_upstreams.contains_key(upstream) {
        let known: Vec<&str> = raw_upstreams.keys().map(String::as_str).collect();
        errors.at(
            at.spanned,
            format!("{mf}.upstream"),
            format!(
                "unknown upstream `{upstream}` (this provider's upstreams: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        );
    }
    let Some(upstream_model) = full.upstream_model.as_ref().filter(|m| !m.is_empty()) else {
        errors.at(
            at.spanned,
            format!("{mf}.upstream_model"),
            format!("platform model `{}` has no upstream_model", full.id),
        );
        return None;
    };
    let Some(raw_price) = &full.price else {
        errors.at(at.spanned, format!("{mf}.price"), format!("platform model `{}` has no price", full.id));
        return None;
    };
    let price = match price(raw_price) {
        Ok(p) => p,
        Err((field, message)) => {
            match price_line(raw_price, &field) {
                Some(location) => errors.at_location(location, format!("{mf}.price.{field}"), message),
                None => errors.at(at.spanned, format!("{mf}.price.{field}"), message),
            }
            return None;
        }
    };
    if full.context_window == Some(0) {
        errors.at(at.spanned, format!("{mf}.context_window"), "a context window is a positive number of tokens");
        return None;
    }
    upstreams.iter().any(|u| &u.name == upstream).then(|| PlatformModel {
        upstream: upstream.clone(),
        upstream_model: upstream_model.clone(),
        price,
        context_window: full.context_window,
    })
}
