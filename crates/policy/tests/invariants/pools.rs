//! The pools generated inputs draw from; they overlap on purpose.

pub(crate) const RUNTIME_IDS: &[&str] = &["claude-code", "codex", "openai-compatible", "gemini-cli"];
/// A runtime id no registry knows (`UNKNOWN_RUNTIME`).
pub(crate) const UNKNOWN_RUNTIME: &str = "cursor-cli";
/// Routing names: disjoint from every credential pool, as the registry requires.
pub(crate) const ROUTING_POOL: &[&str] = &["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "LLM_BASE_URL"];
/// Token names: overlap with the credential pool (`ANTHROPIC_AUTH_TOKEN`, ...), and one that no
/// provider authenticates with (`LLM_TOKEN`).
pub(crate) const TOKEN_POOL: &[&str] = &["ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LLM_TOKEN"];
pub(crate) const MODEL_ENV_POOL: &[&str] = &["ANTHROPIC_MODEL", "OPENAI_MODEL"];
/// `model_env` names a sound registry would refuse: a platform key name, a name Tollgate
/// injects, another runtime's routing name. Generated rarely; a case whose registry the loader
/// refuses is rejected, so the properties cover exactly the registries that load.
pub(crate) const ODD_MODEL_ENV_POOL: &[&str] =
    &["TOLLGATE_UPSTREAM_ANTHROPIC_KEY", "LLM_PROVIDER", "LLM_BASE_URL", "MODEL"];
/// `key_env` names in the reserved namespace that Tollgate also injects into every plan.
pub(crate) const ODD_KEY_ENV_POOL: &[&str] = &["TOLLGATE_URL", "TOLLGATE_WORKSPACE_ID", "TOLLGATE_WORKSPACE_TOKEN"];
pub(crate) const AUTH_POOL: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "MINIMAX_API_KEY",
    "KIMI_API_KEY",
    "GEMINI_API_KEY",
];
pub(crate) const LLM_ENV_POOL: &[&str] =
    &["GEMINI_API_KEY", "OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "CODEX_AUTH_JSON"];
pub(crate) const PROVIDER_IDS: &[&str] =
    &["anthropic-oauth", "anthropic-api", "minimax", "kimi-coding", "openai", "openrouter", "acme"];
pub(crate) const PLATFORM_IDS: &[&str] = &["platform", "tollgate-platform"];
/// An `LLM_PROVIDER` value no registry knows (`UNKNOWN_PROVIDER`).
pub(crate) const UNKNOWN_PROVIDER: &str = "nonesuch-ai";
/// BYOK models; `platform/opus` collides with the platform's own list on purpose.
pub(crate) const MODEL_POOL: &[&str] = &["opus", "sonnet", "haiku", "gpt-5", "kimi-k2", "MiniMax-M2", "platform/opus"];
/// Platform models; `opus` and `gpt-5` collide with BYOK providers' lists on purpose.
pub(crate) const PLATFORM_MODEL_POOL: &[&str] =
    &["platform/opus", "platform/sonnet", "platform/gpt", "platform/gpt-mini", "opus", "gpt-5"];
/// Prefixes; `gpt-` and `gpt-5` make the longest match matter.
pub(crate) const PREFIX_POOL: &[&str] = &["claude-", "gpt-", "gpt-5", "o3", "kimi-", "MiniMax-", "platform/"];
pub(crate) const PLATFORM_PREFIX_POOL: &[&str] = &["platform/", "gpt-"];
pub(crate) const BASE_URL_POOL: &[&str] =
    &["https://api.minimax.io/anthropic", "https://api.kimi.com/coding/", "https://openrouter.ai/api/v1"];
pub(crate) const PUBLIC_URLS: &[&str] =
    &["http://tollgate.example", "https://tg.example:8443/base", "http://127.0.0.1:8080"];
/// Secret names: credentials, routing, token and model names, the names resolution reads
/// (`MODEL`, `LLM_PROVIDER`), one it injects, ordinary names, and two reserved names that
/// `SecretName::parse` must refuse (the API never stores them).
pub(crate) const SECRET_NAMES: &[&str] = &[
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
