//! Property tests for the invariants I1 to I6 of DESIGN.md section 6.
//!
//! Every property runs over generated inputs: a registry (the embedded default, or a generated
//! description rendered to YAML and loaded through `Registry::parse`, so that the validation is
//! part of what is exercised), an org, a workspace, org and workspace secrets, and the provision
//! request's model. The pools the generators draw from overlap on purpose (credential names
//! shared by several providers, models and prefixes listed by several providers, the platform
//! included) so that ties, conflicts and every error code happen.
//!
//! `coverage_*` runs the same generators with a fixed seed and asserts that every mode, every
//! source and the error codes actually occur, so that no property can pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use secrecy::ExposeSecret;
use tollgate_policy::{
    BillingMode, Context, EnvName, EnvPlan, ErrorCode, MergedSecrets, ModeSource, OrgSpec, Origin, PlanValue, Protocol,
    PublicUrl, Registry, Resolution, Resolved, SecretName, SecretState, SecretValue, WorkspaceKind, WorkspaceSpec,
    WorkspaceToken, resolve,
};

/// Cases per property. Six properties of 512 cases run in a few seconds in debug.
const CASES: u32 = 512;

/// The value of every platform upstream key, as the server's environment would hold it. The
/// planner is never given it; generated registries carry it only next to their `key_env` (in
/// the upstream URL and a comment), which is platform-side data no plan may leak.
const PLATFORM_KEY_VALUE: &str = "sk-platform-upstream-key-0c9f3e7a1b";

// ---- pools ---------------------------------------------------------------------------------

const RUNTIME_IDS: &[&str] = &["claude-code", "codex", "openai-compatible", "gemini-cli"];
/// A runtime id no registry knows (`UNKNOWN_RUNTIME`).
const UNKNOWN_RUNTIME: &str = "cursor-cli";
/// Routing names: disjoint from every credential pool, as the registry requires.
const ROUTING_POOL: &[&str] = &["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "LLM_BASE_URL"];
/// Token names: overlap with the credential pool (`ANTHROPIC_AUTH_TOKEN`, ...), and one that no
/// provider authenticates with (`LLM_TOKEN`).
const TOKEN_POOL: &[&str] = &["ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LLM_TOKEN"];
const MODEL_ENV_POOL: &[&str] = &["ANTHROPIC_MODEL", "OPENAI_MODEL"];
/// `model_env` names a sound registry would refuse: a platform key name, a name Tollgate
/// injects, another runtime's routing name. Generated rarely; a case whose registry the loader
/// refuses is rejected, so the properties cover exactly the registries that load.
const ODD_MODEL_ENV_POOL: &[&str] = &["TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "LLM_PROVIDER", "LLM_BASE_URL", "MODEL"];
/// `key_env` names in the reserved namespace that Tollgate also injects into every plan.
const ODD_KEY_ENV_POOL: &[&str] = &["TOLLGATE_URL", "TOLLGATE_WORKSPACE_ID", "TOLLGATE_WORKSPACE_TOKEN"];
const AUTH_POOL: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "MINIMAX_API_KEY",
    "KIMI_API_KEY",
    "GEMINI_API_KEY",
];
const LLM_ENV_POOL: &[&str] = &["GEMINI_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "CODEX_AUTH_JSON"];
const PROVIDER_IDS: &[&str] =
    &["anthropic-oauth", "anthropic-api", "minimax", "kimi-coding", "openai", "openrouter", "acme"];
const PLATFORM_IDS: &[&str] = &["platform", "tollgate-platform"];
/// An `LLM_PROVIDER` value no registry knows (`UNKNOWN_PROVIDER`).
const UNKNOWN_PROVIDER: &str = "nonesuch-ai";
/// BYOK models; `platform/opus` collides with the platform's own list on purpose.
const MODEL_POOL: &[&str] = &["opus", "sonnet", "haiku", "gpt-5", "kimi-k2", "MiniMax-M2", "platform/opus"];
/// Platform models; `opus` and `gpt-5` collide with BYOK providers' lists on purpose.
const PLATFORM_MODEL_POOL: &[&str] =
    &["platform/opus", "platform/sonnet", "platform/gpt", "platform/gpt-mini", "opus", "gpt-5"];
/// Prefixes; `gpt-` and `gpt-5` make the longest match matter.
const PREFIX_POOL: &[&str] = &["claude-", "gpt-", "gpt-5", "o3", "kimi-", "MiniMax-", "platform/"];
const PLATFORM_PREFIX_POOL: &[&str] = &["platform/", "gpt-"];
const BASE_URL_POOL: &[&str] =
    &["https://api.minimax.io/anthropic", "https://api.kimi.com/coding/", "https://openrouter.ai/api/v1"];
const PUBLIC_URLS: &[&str] = &["http://tollgate.example", "https://tg.example:8443/base", "http://127.0.0.1:8080"];
/// Secret names: credentials, routing, token and model names, the names resolution reads
/// (`MODEL`, `LLM_PROVIDER`), one it injects, ordinary names, and two reserved names that
/// `SecretName::parse` must refuse (the API never stores them).
const SECRET_NAMES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "MINIMAX_API_KEY",
    "KIMI_API_KEY",
    "GEMINI_API_KEY",
    "OPENROUTER_API_KEY",
    "DEEPSEEK_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "LLM_BASE_URL",
    "LLM_TOKEN",
    "ANTHROPIC_MODEL",
    "MODEL",
    "MODEL",
    "LLM_PROVIDER",
    "LLM_PROVIDER",
    "LLM_BILLING_MODE",
    "GITHUB_TOKEN",
    "DATABASE_URL",
    "TOLLGATE_UPSTREAM_ANTHROPIC_KEY",
    "TOLLGATE_URL",
];

// ---- generated descriptions ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct RuntimeDesc {
    id: &'static str,
    anthropic: bool,
    base_url_env: &'static str,
    token_env: &'static str,
    model_env: Option<ModelEnvDesc>,
}

/// A runtime's `model_env`: usually an ordinary name, rarely one that collides.
#[derive(Clone, Debug)]
enum ModelEnvDesc {
    Name(&'static str),
    /// One of [`ODD_MODEL_ENV_POOL`].
    Odd(&'static str),
    /// The runtime's own `token_env`.
    OwnToken,
    /// The runtime's own `base_url_env`.
    OwnBaseUrl,
}

#[derive(Clone, Debug)]
struct ProviderDesc {
    id: &'static str,
    /// Bit i selects the i-th runtime; an empty selection falls back to one runtime.
    runtimes: u8,
    auth_env: Vec<&'static str>,
    models: Vec<&'static str>,
    prefixes: Vec<&'static str>,
    base_url: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct UpstreamDesc {
    name: &'static str,
    /// Rarely, a reserved name Tollgate injects instead of `TOLLGATE_UPSTREAM_<NAME>_KEY`.
    odd_key_env: Option<&'static str>,
    /// The explicit protocol of the `custom` upstream (`anthropic` and `openai` are implied).
    custom_anthropic: bool,
}

#[derive(Clone, Debug)]
struct PlatformDesc {
    id: &'static str,
    position: Index,
    runtimes: u8,
    upstreams: Vec<UpstreamDesc>,
    models: Vec<(&'static str, Index)>,
    prefixes: Vec<&'static str>,
}

#[derive(Clone, Debug)]
struct RegistryDesc {
    runtimes: Vec<RuntimeDesc>,
    llm_env: Vec<&'static str>,
    providers: Vec<ProviderDesc>,
    platform: Option<PlatformDesc>,
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn select_runtimes(mask: u8, runtimes: &[RuntimeDesc]) -> Vec<&'static str> {
    let chosen: Vec<&'static str> =
        runtimes.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, r)| r.id).collect();
    if chosen.is_empty() {
        runtimes.get(usize::from(mask) % runtimes.len().max(1)).map(|r| r.id).into_iter().collect()
    } else {
        chosen
    }
}

impl RegistryDesc {
    /// Whether the description uses a name a sound loader should refuse.
    fn is_odd(&self) -> bool {
        self.runtimes.iter().any(|r| !matches!(r.model_env, None | Some(ModelEnvDesc::Name(_))))
            || self.platform.as_ref().is_some_and(|p| p.upstreams.iter().any(|u| u.odd_key_env.is_some()))
    }

    /// The registry as a `providers.yaml` file.
    fn to_yaml(&self) -> String {
        let mut y = String::from("runtimes:\n");
        for r in &self.runtimes {
            let _ = write!(
                y,
                "  {}: {{protocol: {}, base_url_env: {}, token_env: {}",
                r.id,
                if r.anthropic { "anthropic" } else { "openai" },
                r.base_url_env,
                r.token_env
            );
            match &r.model_env {
                None => {}
                Some(ModelEnvDesc::Name(m) | ModelEnvDesc::Odd(m)) => {
                    let _ = write!(y, ", model_env: {m}");
                }
                Some(ModelEnvDesc::OwnToken) => {
                    let _ = write!(y, ", model_env: {}", r.token_env);
                }
                Some(ModelEnvDesc::OwnBaseUrl) => {
                    let _ = write!(y, ", model_env: {}", r.base_url_env);
                }
            }
            y.push_str("}\n");
        }
        let _ = writeln!(y, "llm_env: {}", list(&self.llm_env));
        y.push_str("providers:\n");
        let mut blocks: Vec<String> = self.providers.iter().map(|p| self.provider_yaml(p)).collect();
        if let Some(p) = &self.platform {
            let at = p.position.index(blocks.len() + 1);
            blocks.insert(at, self.platform_yaml(p));
        }
        for b in blocks {
            y.push_str(&b);
        }
        y
    }

    fn provider_yaml(&self, p: &ProviderDesc) -> String {
        let mut y = format!("  - id: {}\n", p.id);
        let _ = writeln!(y, "    runtimes: {}", list(&select_runtimes(p.runtimes, &self.runtimes)));
        let _ = writeln!(y, "    auth_env: {}", list(&p.auth_env));
        let _ = writeln!(y, "    models: {}", list(&p.models));
        let _ = writeln!(y, "    model_prefixes: {}", list(&p.prefixes));
        if let Some(b) = p.base_url {
            let _ = writeln!(y, "    base_url: {}", q(b));
        }
        y
    }

    fn platform_yaml(&self, p: &PlatformDesc) -> String {
        let mut y = format!("  - id: {}\n    platform: true\n", p.id);
        let _ = writeln!(y, "    runtimes: {}", list(&select_runtimes(p.runtimes, &self.runtimes)));
        let _ = writeln!(y, "    model_prefixes: {}", list(&p.prefixes));
        y.push_str("    models:\n");
        for (id, up) in &p.models {
            let upstream = up.get(&p.upstreams).name;
            let _ = writeln!(
                y,
                "      - {{id: {}, upstream: {upstream}, upstream_model: \"up-{}\", price: {{input: 3, output: 15, cache_read: 0.3}}}}",
                q(id),
                id.replace('/', "-")
            );
        }
        y.push_str("    upstreams:\n");
        for u in &p.upstreams {
            let protocol = match (u.name, u.custom_anthropic) {
                ("custom", true) => ", protocol: anthropic",
                ("custom", false) => ", protocol: openai",
                _ => "",
            };
            let _ = writeln!(
                y,
                "      {}: {{url: \"https://{}.upstream.example/{PLATFORM_KEY_VALUE}\", key_env: {}{protocol}}}  # key: {PLATFORM_KEY_VALUE}",
                u.name,
                u.name,
                u.odd_key_env.map_or_else(|| upstream_key_env(u.name), str::to_owned)
            );
        }
        y
    }
}

fn upstream_key_env(name: &str) -> String {
    format!("TOLLGATE_UPSTREAM_{}_KEY", name.to_ascii_uppercase())
}

fn runtime_desc() -> impl Strategy<Value = (bool, &'static str, &'static str, Option<ModelEnvDesc>)> {
    let model_env = prop_oneof![
        30 => Just(None),
        60 => select(MODEL_ENV_POOL).prop_map(|m| Some(ModelEnvDesc::Name(m))),
        2 => select(ODD_MODEL_ENV_POOL).prop_map(|m| Some(ModelEnvDesc::Odd(m))),
        1 => Just(Some(ModelEnvDesc::OwnToken)),
        1 => Just(Some(ModelEnvDesc::OwnBaseUrl)),
    ];
    (any::<bool>(), select(ROUTING_POOL), select(TOKEN_POOL), model_env)
}

type ProviderAttrs = (u8, Vec<&'static str>, Vec<&'static str>, Vec<&'static str>, Option<&'static str>);

fn provider_attrs() -> impl Strategy<Value = ProviderAttrs> {
    (
        any::<u8>(),
        subsequence(AUTH_POOL, 1..=3).prop_shuffle(),
        subsequence(MODEL_POOL, 0..=3),
        subsequence(PREFIX_POOL, 0..=2),
        proptest::option::weighted(0.4, select(BASE_URL_POOL)),
    )
}

fn platform_desc() -> impl Strategy<Value = PlatformDesc> {
    (
        select(PLATFORM_IDS),
        any::<Index>(),
        any::<u8>(),
        subsequence(&["anthropic", "openai", "custom"][..], 1..=3),
        any::<bool>(),
        proptest::option::weighted(0.03, select(ODD_KEY_ENV_POOL)),
        subsequence(PLATFORM_MODEL_POOL, 1..=4),
        proptest::collection::vec(any::<Index>(), 4),
        subsequence(PLATFORM_PREFIX_POOL, 0..=2),
    )
        .prop_map(|(id, position, runtimes, ups, custom_anthropic, odd_key_env, models, model_ups, prefixes)| {
            PlatformDesc {
                id,
                position,
                runtimes,
                upstreams: ups
                    .into_iter()
                    .enumerate()
                    .map(|(i, name)| UpstreamDesc {
                        name,
                        custom_anthropic,
                        odd_key_env: odd_key_env.filter(|_| i == 0),
                    })
                    .collect(),
                models: models.into_iter().zip(model_ups).collect(),
                prefixes,
            }
        })
}

fn registry_desc() -> impl Strategy<Value = RegistryDesc> {
    (
        subsequence(RUNTIME_IDS, 1..=4),
        proptest::collection::vec(runtime_desc(), 4),
        subsequence(LLM_ENV_POOL, 0..=3),
        subsequence(PROVIDER_IDS, 1..=6).prop_shuffle(),
        proptest::collection::vec(provider_attrs(), 6),
        proptest::option::weighted(0.8, platform_desc()),
    )
        .prop_map(|(rt_ids, rt_attrs, llm_env, p_ids, p_attrs, platform)| RegistryDesc {
            runtimes: rt_ids
                .into_iter()
                .zip(rt_attrs)
                .map(|(id, (anthropic, base_url_env, token_env, model_env))| RuntimeDesc {
                    id,
                    anthropic,
                    base_url_env,
                    token_env,
                    model_env,
                })
                .collect(),
            llm_env,
            providers: p_ids
                .into_iter()
                .zip(p_attrs)
                .map(|(id, (runtimes, auth_env, models, prefixes, base_url))| ProviderDesc {
                    id,
                    runtimes,
                    auth_env,
                    models,
                    prefixes,
                    base_url,
                })
                .collect(),
            platform,
        })
}

/// A model name, resolved against the registry in force when the case is built.
#[derive(Clone, Debug)]
enum ModelGen {
    /// A model id, or a prefix plus `1`, of a provider serving the workspace's runtime.
    Served(Index),
    /// One of the registry's exact model ids.
    Known(Index),
    /// One of the registry's prefixes, plus a suffix (possibly empty).
    Prefixed(Index, String),
    /// Anything.
    Junk(String),
}

fn model_gen() -> impl Strategy<Value = ModelGen> {
    prop_oneof![
        5 => any::<Index>().prop_map(ModelGen::Served),
        2 => any::<Index>().prop_map(ModelGen::Known),
        2 => (any::<Index>(), "[a-z0-9.]{0,5}").prop_map(|(i, s)| ModelGen::Prefixed(i, s)),
        1 => "[a-zA-Z0-9/_.-]{1,10}".prop_map(ModelGen::Junk),
    ]
}

/// An optional model: absent, empty, or a name.
#[derive(Clone, Debug)]
enum OptModel {
    None,
    Empty,
    Some(ModelGen),
}

fn opt_model(none: u32, empty: u32, some: u32) -> impl Strategy<Value = OptModel> {
    prop_oneof![
        none => Just(OptModel::None),
        empty => Just(OptModel::Empty),
        some => model_gen().prop_map(OptModel::Some),
    ]
}

fn mode() -> impl Strategy<Value = Option<BillingMode>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(BillingMode::PlatformManaged)),
        1 => Just(Some(BillingMode::Byok)),
        1 => Just(Some(BillingMode::Disabled)),
    ]
}

/// A secret's value; which part is used depends on the secret's name.
#[derive(Clone, Debug)]
struct ValueGen {
    /// 0: unreadable; 1 to 9: empty; else a value fitting the name.
    roll: u8,
    text: String,
    pick: Index,
    case_mask: u64,
    model: ModelGen,
}

fn value_gen() -> impl Strategy<Value = ValueGen> {
    (0u8..100, "[A-Za-z0-9_-]{1,16}", any::<Index>(), any::<u64>(), model_gen())
        .prop_map(|(roll, text, pick, case_mask, model)| ValueGen { roll, text, pick, case_mask, model })
}

#[derive(Clone, Debug)]
struct WorkspaceGen {
    /// `None`: a runtime the registry does not know.
    runtime: Option<Index>,
    concierge: bool,
    model: OptModel,
    billing_mode: Option<BillingMode>,
}

#[derive(Clone, Debug)]
struct Input {
    /// `None`: the embedded registry.
    registry: Option<RegistryDesc>,
    public_url: &'static str,
    org_default: Option<BillingMode>,
    workspace: WorkspaceGen,
    org_secrets: BTreeMap<&'static str, ValueGen>,
    ws_secrets: BTreeMap<&'static str, ValueGen>,
    request: OptModel,
}

fn input() -> impl Strategy<Value = Input> {
    let workspace = (
        prop_oneof![12 => any::<Index>().prop_map(Some), 1 => Just(None)],
        proptest::bool::weighted(0.3),
        opt_model(3, 1, 6),
        mode(),
    )
        .prop_map(|(runtime, concierge, model, billing_mode)| WorkspaceGen {
            runtime,
            concierge,
            model,
            billing_mode,
        });
    let secrets = || proptest::collection::btree_map(select(SECRET_NAMES), value_gen(), 0..6);
    (
        prop_oneof![1 => Just(None), 3 => registry_desc().prop_map(Some)],
        select(PUBLIC_URLS),
        mode(),
        workspace,
        secrets(),
        secrets(),
        opt_model(4, 1, 3),
    )
        .prop_map(|(registry, public_url, org_default, workspace, org_secrets, ws_secrets, request)| Input {
            registry,
            public_url,
            org_default,
            workspace,
            org_secrets,
            ws_secrets,
            request,
        })
}

// ---- concrete cases ------------------------------------------------------------------------

/// One concrete state: everything `resolve` takes, plus what the test needs to explain it.
#[derive(Debug)]
struct Case {
    registry: Registry,
    /// The generated registry's YAML; `None` for the embedded one.
    yaml: Option<String>,
    public: PublicUrl,
    org: OrgSpec,
    ws: WorkspaceSpec,
    /// Stored secrets as (name, value), `None` for an unreadable one.
    org_secrets: Vec<(String, Option<String>)>,
    ws_secrets: Vec<(String, Option<String>)>,
    /// Names `SecretName::parse` refused (never stored).
    rejected: Vec<String>,
    merged: MergedSecrets,
    request: Option<String>,
}

fn embedded() -> Result<&'static Registry, TestCaseError> {
    static EMBEDDED: OnceLock<Result<Registry, String>> = OnceLock::new();
    EMBEDDED
        .get_or_init(|| Registry::embedded().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TestCaseError::fail(format!("the embedded registry does not load: {e}")))
}

fn model_ids(reg: &Registry) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for p in reg.providers() {
        for m in p.models() {
            if !ids.iter().any(|x| x == m.id()) {
                ids.push(m.id().to_owned());
            }
        }
    }
    ids
}

fn prefixes(reg: &Registry) -> Vec<String> {
    let set: BTreeSet<String> = reg.providers().iter().flat_map(|p| p.model_prefixes().iter().cloned()).collect();
    set.into_iter().collect()
}

fn pick<T: Clone>(i: &Index, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| i.get(items).clone())
}

fn served(reg: &Registry, runtime: &str) -> Vec<String> {
    let mut names = Vec::new();
    for p in reg.providers().iter().filter(|p| p.supports(runtime)) {
        names.extend(p.models().iter().map(|m| m.id().to_owned()));
        names.extend(p.model_prefixes().iter().map(|x| format!("{x}1")));
    }
    names
}

fn model_string(reg: &Registry, runtime: &str, g: &ModelGen) -> String {
    match g {
        ModelGen::Served(i) => pick(i, &served(reg, runtime)).unwrap_or_else(|| "opus".to_owned()),
        ModelGen::Known(i) => pick(i, &model_ids(reg)).unwrap_or_else(|| "opus".to_owned()),
        ModelGen::Prefixed(i, suffix) => {
            format!("{}{suffix}", pick(i, &prefixes(reg)).unwrap_or_default())
        }
        ModelGen::Junk(s) => s.clone(),
    }
}

fn opt_model_string(reg: &Registry, runtime: &str, m: &OptModel) -> Option<String> {
    match m {
        OptModel::None => None,
        OptModel::Empty => Some(String::new()),
        OptModel::Some(g) => Some(model_string(reg, runtime, g)),
    }
}

fn random_case(s: &str, mask: u64) -> String {
    s.chars().enumerate().map(|(i, c)| if mask & (1 << (i % 64)) != 0 { c.to_ascii_uppercase() } else { c }).collect()
}

/// Routing values: the proxy (several spellings, one in upper case: scheme and host are
/// case-insensitive), a look-alike that is not the proxy, and real provider URLs.
fn url_value(public: &str, i: &Index) -> String {
    let options = [
        format!("{public}/anthropic"),
        format!("{public}/openai/v1"),
        public.to_owned(),
        format!("{public}/"),
        format!("{}/anthropic", public.to_ascii_uppercase()),
        format!("{public}.evil.example/v1"),
        "https://api.minimax.io/anthropic".to_owned(),
        "https://openrouter.ai/api/v1".to_owned(),
    ];
    i.get(&options).clone()
}

fn secret_value(reg: &Registry, runtime: &str, public: &str, name: &str, v: &ValueGen) -> Option<String> {
    if v.roll == 0 {
        return None;
    }
    if v.roll < 10 {
        return Some(String::new());
    }
    Some(match name {
        "LLM_PROVIDER" if v.roll < 85 => {
            let mut ids: Vec<String> = reg.providers().iter().map(|p| p.id().to_owned()).collect();
            ids.push(UNKNOWN_PROVIDER.to_owned());
            random_case(i_get(&v.pick, &ids), v.case_mask)
        }
        "MODEL" => model_string(reg, runtime, &v.model),
        n if reg.is_routing(n) => url_value(public, &v.pick),
        _ => v.text.clone(),
    })
}

fn i_get<'a>(i: &Index, items: &'a [String]) -> &'a str {
    if items.is_empty() { "" } else { i.get(items).as_str() }
}

impl Case {
    fn build(input: &Input) -> Result<Self, TestCaseError> {
        let (registry, yaml) = match &input.registry {
            None => (embedded()?.clone(), None),
            Some(desc) => {
                let yaml = desc.to_yaml();
                let reg = match Registry::parse("generated.yaml", &yaml) {
                    Ok(reg) => reg,
                    // A registry the loader refuses never reaches resolution.
                    Err(e) if desc.is_odd() => return Err(TestCaseError::reject(e.to_string())),
                    Err(e) => return Err(TestCaseError::fail(format!("generated registry refused: {e}\n{yaml}"))),
                };
                (reg, Some(yaml))
            }
        };
        let public = PublicUrl::parse(input.public_url)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", input.public_url)))?;
        let runtimes: Vec<String> = registry.runtimes().map(|r| r.id().to_owned()).collect();
        let runtime = match &input.workspace.runtime {
            Some(i) => pick(i, &runtimes).unwrap_or_else(|| UNKNOWN_RUNTIME.to_owned()),
            None => UNKNOWN_RUNTIME.to_owned(),
        };
        let ws = WorkspaceSpec {
            id: "ws_prop".to_owned(),
            runtime: runtime.clone(),
            kind: if input.workspace.concierge { WorkspaceKind::Concierge } else { WorkspaceKind::Agent },
            model: opt_model_string(&registry, &runtime, &input.workspace.model),
            billing_mode: input.workspace.billing_mode,
        };
        let mut rejected = Vec::new();
        let mut scope = |secrets: &BTreeMap<&'static str, ValueGen>| {
            let mut plain = Vec::new();
            let mut states = Vec::new();
            for (name, v) in secrets {
                let value = secret_value(&registry, &runtime, input.public_url, name, v);
                match SecretName::parse(name) {
                    Ok(n) => {
                        let state = match &value {
                            None => SecretState::Unreadable,
                            Some(s) => SecretState::Value(
                                SecretValue::parse(s.as_str())
                                    .map_err(|e| TestCaseError::fail(format!("value of {name}: {e}")))?,
                            ),
                        };
                        states.push((n, state));
                        plain.push(((*name).to_owned(), value));
                    }
                    Err(_) => rejected.push((*name).to_owned()),
                }
            }
            Ok::<_, TestCaseError>((plain, states))
        };
        let (org_secrets, org_states) = scope(&input.org_secrets)?;
        let (ws_secrets, ws_states) = scope(&input.ws_secrets)?;
        let merged = MergedSecrets::merge(org_states, ws_states);
        let request = opt_model_string(&registry, &runtime, &input.request);
        Ok(Case {
            registry,
            yaml,
            public,
            org: OrgSpec { default_billing_mode: input.org_default },
            ws,
            org_secrets,
            ws_secrets,
            rejected,
            merged,
            request,
        })
    }

    /// A hand-written state; `Ok(None)` when the loader refuses `yaml` (`None`: embedded).
    fn explicit(
        yaml: Option<&str>,
        ws: WorkspaceSpec,
        org_secrets: &[(&str, &str)],
        ws_secrets: &[(&str, &str)],
        request: Option<&str>,
    ) -> Result<Option<Self>, TestCaseError> {
        let registry = match yaml {
            None => embedded()?.clone(),
            Some(y) => match Registry::parse("regression.yaml", y) {
                Ok(reg) => reg,
                Err(_) => return Ok(None),
            },
        };
        let states = |secrets: &[(&str, &str)]| {
            secrets
                .iter()
                .map(|(n, v)| {
                    let name = SecretName::parse(n).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let value = SecretValue::parse(*v).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    Ok((name, SecretState::Value(value)))
                })
                .collect::<Result<Vec<_>, TestCaseError>>()
        };
        let plain = |secrets: &[(&str, &str)]| -> Vec<(String, Option<String>)> {
            secrets.iter().map(|(n, v)| ((*n).to_owned(), Some((*v).to_owned()))).collect()
        };
        Ok(Some(Case {
            registry,
            yaml: yaml.map(str::to_owned),
            public: PublicUrl::parse(PUBLIC_URLS[0]).map_err(|e| TestCaseError::fail(e.to_string()))?,
            org: OrgSpec::default(),
            ws,
            org_secrets: plain(org_secrets),
            ws_secrets: plain(ws_secrets),
            rejected: Vec::new(),
            merged: MergedSecrets::merge(states(org_secrets)?, states(ws_secrets)?),
            request: request.map(str::to_owned),
        }))
    }

    fn ctx(&self) -> Context<'_> {
        Context { registry: &self.registry, public_url: &self.public }
    }

    fn resolve(&self, ws: &WorkspaceSpec, request_model: Option<&str>) -> Resolved {
        resolve(&self.ctx(), ws, &self.org, &self.merged, request_model)
    }

    /// The provision of this state: the request model applies.
    fn provision(&self) -> Resolved {
        self.resolve(&self.ws, self.request.as_deref())
    }

    /// A readable description of the state, for failure messages.
    fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "registry: {}", self.yaml.as_deref().map_or("<embedded>", |_| "generated (below)"));
        let _ = writeln!(s, "public_url: {}", self.public.as_str());
        let _ = writeln!(s, "org: {:?}", self.org);
        let _ = writeln!(s, "workspace: {:?}", self.ws);
        let _ = writeln!(s, "org secrets: {:?}", self.org_secrets);
        let _ = writeln!(s, "workspace secrets: {:?}", self.ws_secrets);
        let _ = writeln!(s, "rejected secret names: {:?}", self.rejected);
        let _ = writeln!(s, "request model: {:?}", self.request);
        if let Some(y) = &self.yaml {
            let _ = writeln!(s, "--- generated registry ---\n{y}");
        }
        s
    }
}

// ---- helpers for the properties ------------------------------------------------------------

fn ensure(cond: bool, case: &Case, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(format!("{}\n--- case ---\n{}", what(), case.describe()))) }
}

fn token() -> WorkspaceToken {
    WorkspaceToken::mint(|buf| buf.fill(42))
}

fn rendered(plan: &EnvPlan) -> BTreeMap<String, String> {
    plan.render(&token()).into_iter().map(|(k, v)| (k, v.expose_secret().to_owned())).collect()
}

fn value_text(v: &PlanValue) -> Option<&str> {
    match v {
        PlanValue::Secret(s) => Some(s.expose()),
        PlanValue::Public(p) => Some(p.as_str()),
        PlanValue::WorkspaceToken => None,
    }
}

/// Whether `value` points at this Tollgate: its public URL (scheme and host compared without
/// regard to case), then nothing or a path. `http://tollgate.example.evil.example` does not.
fn points_at_proxy(public: &PublicUrl, value: &str) -> bool {
    let p = public.as_str().to_ascii_lowercase();
    let v = value.to_ascii_lowercase();
    v.strip_prefix(p.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

fn summary(r: &Resolution) -> String {
    format!(
        "mode {:?}, source {:?}, provider {:?}, model {:?} ({:?}), error {:?}\ncredentials {:?}\ndropped {:?}\ntrace {:#?}",
        r.resolved_mode,
        r.source,
        r.provider,
        r.effective_model,
        r.model_source,
        r.error,
        r.credentials,
        r.dropped,
        r.trace
    )
}

// ---- the properties ------------------------------------------------------------------------

fn check_i1(case: &Case, reserved_suffix: &str) -> Result<(), TestCaseError> {
    let reserved = format!("TOLLGATE_{reserved_suffix}");
    ensure(EnvName::parse(&reserved).is_ok() && SecretName::parse(&reserved).is_err(), case, || {
        format!("SecretName::parse accepted the reserved name {reserved}")
    })?;
    for r in &case.rejected {
        ensure(r.starts_with("TOLLGATE_"), case, || format!("SecretName::parse refused an ordinary name {r}"))?;
    }
    let key_envs: BTreeSet<String> = case
        .registry
        .platform()
        .map(|p| p.upstreams().iter().map(|u| u.key_env().as_str().to_owned()).collect())
        .unwrap_or_default();
    for k in &key_envs {
        ensure(SecretName::parse(k).is_err(), case, || format!("upstream key_env {k} is a valid secret name"))?;
    }
    let forbidden = |name: &str| key_envs.contains(name) || name.starts_with("TOLLGATE_UPSTREAM_");
    let ws_after = case.ws.after_provision(case.request.as_deref());
    for r in [case.provision(), case.resolve(&case.ws, None), case.resolve(&ws_after, None)] {
        let json = serde_json::to_string(r.resolution()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        ensure(!json.contains(PLATFORM_KEY_VALUE), case, || format!("the resolution leaks the platform key: {json}"))?;
        for name in
            r.resolution().credentials.iter().map(|c| &c.name).chain(r.resolution().dropped.iter().map(|d| &d.name))
        {
            ensure(!forbidden(name), case, || format!("the resolution names the platform key {name}"))?;
        }
        let Some(plan) = r.plan() else { continue };
        for (name, entry) in plan.iter() {
            ensure(!forbidden(name.as_str()), case, || format!("the plan holds the platform key name {name}"))?;
            ensure(value_text(&entry.value).is_none_or(|v| !v.contains(PLATFORM_KEY_VALUE)), case, || {
                format!("the plan's {name} holds the platform key value")
            })?;
        }
        for (name, value) in rendered(plan).iter().chain(plan.redacted().iter()) {
            ensure(!forbidden(name) && !value.contains(PLATFORM_KEY_VALUE), case, || {
                format!("the rendered env leaks the platform key in {name}")
            })?;
        }
    }
    Ok(())
}

fn same_outcome(a: &Resolution, b: &Resolution) -> bool {
    a.resolved_mode == b.resolved_mode
        && a.source == b.source
        && a.provider == b.provider
        && a.effective_model == b.effective_model
        && a.error.as_ref().map(|e| e.code) == b.error.as_ref().map(|e| e.code)
        && a.credentials == b.credentials
        && a.dropped == b.dropped
}

fn check_i2(case: &Case) -> Result<(), TestCaseError> {
    let prov = case.provision();
    if let Some(error) = &prov.resolution().error {
        ensure(ErrorCode::parse(error.code.as_str()) == Some(error.code), case, || {
            format!("error code {:?} is not a named code", error.code)
        })?;
        // Nothing is stored after a failed provision: the read sees the state as it was.
        let read = case.resolve(&case.ws, None);
        let again = case.resolve(&case.ws, None);
        ensure(read.resolution() == again.resolution(), case, || {
            format!(
                "the read is not deterministic:\n{}\n---\n{}",
                summary(read.resolution()),
                summary(again.resolution())
            )
        })?;
        if case.request.as_deref().is_none_or(str::is_empty) {
            ensure(read.resolution() == prov.resolution(), case, || {
                format!(
                    "with no request model, provision and read differ:\nprovision {}\nread {}",
                    summary(prov.resolution()),
                    summary(read.resolution())
                )
            })?;
        }
        return Ok(());
    }
    let stored = case.ws.after_provision(case.request.as_deref());
    let read = case.resolve(&stored, None);
    let pull = case.resolve(&stored, None);
    for (what, other) in [("read", &read), ("pull", &pull)] {
        ensure(same_outcome(prov.resolution(), other.resolution()), case, || {
            format!(
                "provision and {what} disagree:\nprovision {}\n{what} {}",
                summary(prov.resolution()),
                summary(other.resolution())
            )
        })?;
    }
    let (Some(prov_plan), Some(pull_plan)) = (prov.plan(), pull.plan()) else {
        return Err(TestCaseError::fail(format!("a successful resolution has no plan\n{}", case.describe())));
    };
    let prov_env = rendered(prov_plan);
    let pull_env = rendered(pull_plan);
    ensure(prov_env.keys().eq(pull_env.keys()), case, || {
        format!("env names differ:\nprovision {:?}\npull {:?}", prov_env.keys(), pull_env.keys())
    })?;
    ensure(prov_env == pull_env, case, || "env values differ between provision and pull".to_owned())?;
    Ok(())
}

fn check_i3(case: &Case) -> Result<(), TestCaseError> {
    for r in [case.provision(), case.resolve(&case.ws, None)] {
        let res = r.resolution();
        let (Some(BillingMode::PlatformManaged), Some(plan)) = (res.resolved_mode, r.plan()) else { continue };
        let runtime = case
            .registry
            .runtime(&case.ws.runtime)
            .ok_or_else(|| TestCaseError::fail(format!("resolved an unknown runtime\n{}", case.describe())))?;
        let token_env = runtime.token_env().as_str();
        let base_env = runtime.base_url_env().as_str();
        let ctx = || format!("{}\nplan {:?}", summary(res), plan.redacted());
        ensure(
            res.provider.as_deref() == case.registry.platform().map(|p| p.id())
                && case.registry.platform().is_some_and(|p| p.supports(&case.ws.runtime)),
            case,
            || format!("platform_managed without the platform provider serving the runtime\n{}", ctx()),
        )?;
        ensure(
            plan.get(token_env)
                .is_some_and(|e| matches!(e.value, PlanValue::WorkspaceToken) && e.origin == Origin::Tollgate),
            case,
            || format!("{token_env} is not the workspace token\n{}", ctx()),
        )?;
        for (name, entry) in plan.iter() {
            let n = name.as_str();
            ensure(!case.registry.is_llm_credential(n) || n == token_env, case, || {
                format!("platform_managed plan holds the LLM credential {n}\n{}", ctx())
            })?;
            ensure(!case.registry.is_routing(n) || n == base_env, case, || {
                format!("platform_managed plan holds the routing name {n}\n{}", ctx())
            })?;
            if matches!(entry.value, PlanValue::WorkspaceToken) {
                ensure(n == token_env || n == "TOLLGATE_WORKSPACE_TOKEN", case, || {
                    format!("the workspace token is also in {n}\n{}", ctx())
                })?;
            }
        }
        let path = match runtime.protocol() {
            Protocol::Anthropic => "/anthropic",
            Protocol::Openai => "/openai/v1",
        };
        let proxy = format!("{}{path}", case.public.as_str());
        ensure(
            plan.get(base_env).is_some_and(|e| matches!(&e.value, PlanValue::Public(u) if *u == proxy)),
            case,
            || format!("{base_env} does not route to the proxy {proxy}\n{}", ctx()),
        )?;
        ensure(
            res.credentials.len() == 1
                && res.credentials.iter().all(|c| c.origin == Origin::Tollgate && c.name == token_env),
            case,
            || format!("platform_managed credentials are not exactly the workspace token\n{}", ctx()),
        )?;
    }
    Ok(())
}

fn check_i4(case: &Case) -> Result<(), TestCaseError> {
    for r in [case.provision(), case.resolve(&case.ws, None)] {
        let res = r.resolution();
        let (Some(BillingMode::Byok), Some(plan)) = (res.resolved_mode, r.plan()) else { continue };
        let ctx = || format!("{}\nplan {:?}", summary(res), plan.redacted());
        let provider =
            res.provider.as_deref().and_then(|id| case.registry.provider(id)).filter(|p| !p.is_platform()).ok_or_else(
                || TestCaseError::fail(format!("byok without a BYOK provider\n{}\n{}", ctx(), case.describe())),
            )?;
        let held = plan.iter().any(|(name, e)| {
            provider.accepts_credential(name.as_str()) && matches!(&e.value, PlanValue::Secret(v) if !v.is_empty())
        });
        ensure(held, case, || format!("byok plan holds no credential of {}'s auth_env\n{}", provider.id(), ctx()))?;
        for (name, entry) in plan.iter() {
            let n = name.as_str();
            if entry.origin == Origin::Org && case.registry.is_llm_credential(n) {
                ensure(provider.accepts_credential(n), case, || {
                    format!("byok plan holds the org credential {n}, outside {}'s auth_env\n{}", provider.id(), ctx())
                })?;
            }
            if case.registry.is_routing(n) {
                ensure(value_text(&entry.value).is_some_and(|v| !points_at_proxy(&case.public, v)), case, || {
                    format!("byok plan routes {n} to the proxy\n{}", ctx())
                })?;
            }
            if matches!(entry.value, PlanValue::WorkspaceToken) {
                ensure(n == "TOLLGATE_WORKSPACE_TOKEN", case, || {
                    format!("byok plan sends the token as {n}\n{}", ctx())
                })?;
            }
        }
        for c in &res.credentials {
            ensure(c.origin != Origin::Org || provider.accepts_credential(&c.name), case, || {
                format!("byok credentials list the org credential {} outside auth_env\n{}", c.name, ctx())
            })?;
        }
    }
    Ok(())
}

fn check_i5(case: &Case) -> Result<(), TestCaseError> {
    // From the stored workspace secrets, not the merged view: the merge is part of the path.
    let ws_credentials: Vec<(&str, &str)> = case
        .ws_secrets
        .iter()
        .filter(|(n, _)| case.registry.is_llm_credential(n))
        .filter_map(|(n, v)| v.as_deref().map(|v| (n.as_str(), v)))
        .collect();
    if ws_credentials.is_empty() {
        return Ok(());
    }
    for r in [case.provision(), case.resolve(&case.ws, None)] {
        let res = r.resolution();
        let keeping = matches!(res.resolved_mode, Some(BillingMode::Byok | BillingMode::Disabled))
            || res.error.as_ref().is_some_and(|e| e.code == ErrorCode::MissingByokCredential);
        if !keeping {
            continue;
        }
        let ctx = || summary(res);
        for (name, value) in &ws_credentials {
            ensure(!res.dropped.iter().any(|d| d.name == *name), case, || {
                format!("the workspace credential {name} was dropped\n{}", ctx())
            })?;
            if let Some(plan) = r.plan() {
                ensure(
                    plan.get(name).is_some_and(|e| {
                        e.origin == Origin::Workspace
                            && matches!(&e.value, PlanValue::Secret(v) if v.expose() == *value)
                    }),
                    case,
                    || format!("the workspace credential {name} is not in the plan unchanged\n{}", ctx()),
                )?;
                ensure(res.credentials.iter().any(|c| c.name == *name && c.origin == Origin::Workspace), case, || {
                    format!("the workspace credential {name} is not listed in credentials\n{}", ctx())
                })?;
            }
        }
    }
    Ok(())
}

fn check_i6(case: &Case) -> Result<(), TestCaseError> {
    for (req, what) in [(case.request.as_deref(), "provision"), (None, "read")] {
        let first = catch_unwind(AssertUnwindSafe(|| case.resolve(&case.ws, req)));
        let second = catch_unwind(AssertUnwindSafe(|| case.resolve(&case.ws, req)));
        let (Ok(a), Ok(b)) = (first, second) else {
            return Err(TestCaseError::fail(format!("resolve panicked ({what})\n{}", case.describe())));
        };
        let res = a.resolution();
        ensure(a.resolution() == b.resolution(), case, || {
            format!("{what}: two resolutions differ:\n{}\n---\n{}", summary(a.resolution()), summary(b.resolution()))
        })?;
        ensure(res.resolved_mode.is_some() != res.error.is_some(), case, || {
            format!("{what}: not exactly one of mode and error\n{}", summary(res))
        })?;
        ensure(res.source.is_some() == res.resolved_mode.is_some(), case, || {
            format!("{what}: source and mode disagree\n{}", summary(res))
        })?;
        ensure(a.plan().is_some() == res.error.is_none(), case, || {
            format!("{what}: plan present {} with error {:?}", a.plan().is_some(), res.error)
        })?;
        if let Some(e) = &res.error {
            ensure(ErrorCode::parse(e.code.as_str()) == Some(e.code) && !e.message.is_empty(), case, || {
                format!("{what}: error {e:?} is not a named error with a message")
            })?;
        }
        let unknown_runtime = case.registry.runtime(&case.ws.runtime).is_none();
        // Totality never means guessing: an unreadable secret is an error, never "absent".
        let unreadable = case.merged.iter().any(|(_, s)| matches!(s.state, SecretState::Unreadable));
        ensure(
            !unreadable
                || matches!(
                    res.error.as_ref().map(|e| e.code),
                    Some(ErrorCode::SecretUnreadable | ErrorCode::UnknownRuntime)
                ),
            case,
            || format!("{what}: an unreadable secret did not fail resolution\n{}", summary(res)),
        )?;
        ensure(
            unknown_runtime == (res.error.as_ref().map(|e| e.code) == Some(ErrorCode::UnknownRuntime)),
            case,
            || format!("{what}: UNKNOWN_RUNTIME does not match the registry\n{}", summary(res)),
        )?;
        match (a.plan(), b.plan()) {
            (Some(pa), Some(pb)) => {
                ensure(pa.redacted() == pb.redacted(), case, || format!("{what}: redacted plans differ"))?;
                ensure(rendered(pa) == rendered(pb), case, || format!("{what}: rendered plans differ"))?;
            }
            (None, None) => {}
            _ => return Err(TestCaseError::fail(format!("{what}: one plan of two\n{}", case.describe()))),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// I1 "a platform upstream key never appears in any plan": no plan (provision, read or
    /// pull) holds an upstream `key_env` name or any `TOLLGATE_UPSTREAM_` name, no rendered or
    /// redacted env and no resolution holds the platform key's value (which generated
    /// registries carry next to their `key_env`), and `SecretName::parse` refuses every
    /// `TOLLGATE_` name.
    #[test]
    fn i1_platform_upstream_key_never_in_a_plan(input in input(), suffix in "[A-Z0-9_]{0,40}") {
        check_i1(&Case::build(&input)?, &suffix)?;
    }

    /// I2 "the read endpoint, the provision response and the secrets pull report the same
    /// mode, source and provider for the same state": after a successful provision with
    /// request model m, the stored workspace (`after_provision(m)`) reads and pulls with the
    /// same mode, source, provider, model, credentials and dropped list, and the pulled env is
    /// the provisioned env. After a failed provision the read is deterministic and the error a
    /// named code.
    #[test]
    fn i2_read_provision_and_pull_agree(input in input()) {
        check_i2(&Case::build(&input)?)?;
    }

    /// I3 "`platform_managed` plans hold exactly one credential (the workspace token) and
    /// route to the proxy": the only LLM credential name in the plan is the runtime's
    /// `token_env`, holding the workspace token; the runtime's `base_url_env` is the proxy
    /// URL of its protocol; the resolution lists exactly one credential, of origin `tollgate`.
    #[test]
    fn i3_platform_managed_holds_only_the_workspace_token(input in input()) {
        check_i3(&Case::build(&input)?)?;
    }

    /// I4 "a successful `byok` plan holds a credential from the provider's `auth_env`, holds
    /// no org-origin credential outside it, and never routes to the proxy".
    #[test]
    fn i4_byok_holds_a_provider_credential_and_never_routes_to_the_proxy(input in input()) {
        check_i4(&Case::build(&input)?)?;
    }

    /// I5 "a workspace-origin credential is never dropped in `byok` or `disabled`": it is not
    /// in `dropped`, and on success it is in the plan with its value unchanged.
    #[test]
    fn i5_workspace_credentials_are_never_dropped_in_byok_or_disabled(input in input()) {
        check_i5(&Case::build(&input)?)?;
    }

    /// I6 "resolution is deterministic and total: every input gives a resolution or a named
    /// error": resolving twice gives equal resolutions and plans, exactly one of a mode and an
    /// error, a plan exactly when there is no error, and no panic.
    #[test]
    fn i6_resolution_is_deterministic_and_total(input in input()) {
        check_i6(&Case::build(&input)?)?;
    }
}

// ---- coverage ------------------------------------------------------------------------------

/// How often each outcome occurs over a fixed-seed run of the generators.
#[derive(Debug, Default)]
struct Counts {
    cases: usize,
    /// Generated registries with a colliding name that the loader refused.
    refused_registries: usize,
    /// Generated registries with a colliding name that the loader accepted.
    odd_registries: usize,
    embedded: usize,
    modes: BTreeMap<&'static str, usize>,
    sources: BTreeMap<&'static str, usize>,
    errors: BTreeMap<&'static str, usize>,
    ties: usize,
    byok_with_ws_credential: usize,
    disabled_with_ws_credential: usize,
    byok_with_dropped_org_credential: usize,
    byok_base_url_injected: usize,
    byok_proxy_routing_dropped: usize,
    request_model_provisions: usize,
    concierge_pins: usize,
}

fn count_outcomes(n: usize) -> Result<Counts, TestCaseError> {
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
fn coverage_generators_reach_every_outcome() -> Result<(), TestCaseError> {
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
fn embedded_registry_has_reserved_upstream_keys() -> Result<(), TestCaseError> {
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

// ---- regressions: counterexamples the properties found, minimised --------------------------
//
// Each holds when the loader refuses the registry or when the property holds for it, so each
// passes whichever way the implementation is fixed.

fn workspace(runtime: &str, model: Option<&str>) -> WorkspaceSpec {
    WorkspaceSpec {
        id: "ws_regression".to_owned(),
        runtime: runtime.to_owned(),
        kind: WorkspaceKind::Agent,
        model: model.map(str::to_owned),
        billing_mode: None,
    }
}

fn holds(result: Result<(), TestCaseError>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A registry with one claude-code runtime whose `model_env` is `model_env`, a platform
/// provider whose upstream key is `key_env`, and one BYOK provider.
fn registry_yaml(model_env: &str, key_env: &str) -> String {
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
fn regression_i4_proxy_url_in_other_case_is_not_kept_in_byok() -> Result<(), TestCaseError> {
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
fn regression_i1_key_env_is_not_a_name_tollgate_injects() -> Result<(), TestCaseError> {
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
fn regression_i1_model_env_is_not_a_platform_key_name() -> Result<(), TestCaseError> {
    let yaml = registry_yaml("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "TOLLGATE_UPSTREAM_ANTHROPIC_KEY");
    if let Some(case) = Case::explicit(Some(&yaml), workspace("claude-code", Some("platform/opus")), &[], &[], None)? {
        holds(check_i1(&case, "X"));
    }
    Ok(())
}

/// I3: a runtime `model_env` equal to its own `token_env` or `base_url_env` overwrites the
/// workspace token or the proxy URL with the model name.
#[test]
fn regression_i3_model_env_does_not_replace_the_token_or_the_proxy_url() -> Result<(), TestCaseError> {
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
