//! `resolve`: the single source of truth for billing mode, provider and credentials.
//!
//! The admin read endpoint, provisioning, the secrets pull and `explain` all call
//! [`resolve`] and nothing else. It is a pure function of its inputs: same inputs, same
//! [`Resolved`], and every input gives either a mode or a named error (invariant I6).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::EnvName;
use crate::registry::{LLM_BILLING_MODE, LLM_PROVIDER, MODEL, Provider, Registry, Runtime};
use crate::secret::{MergedSecret, MergedSecrets, Origin, SecretState, SecretValue};
use crate::token::WorkspaceToken;

/// Who pays for a workspace's LLM calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// Through the Tollgate proxy on the platform's key, charged to the org's credit.
    PlatformManaged,
    /// Directly to the provider with the customer's own key.
    Byok,
    /// No LLM calls at all.
    Disabled,
}

impl BillingMode {
    /// Parses `platform_managed`, `byok` or `disabled` (exactly; no case folding).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform_managed" => Some(Self::PlatformManaged),
            "byok" => Some(Self::Byok),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }

    /// The mode's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformManaged => "platform_managed",
            Self::Byok => "byok",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BillingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of workspace this is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceKind {
    /// An ordinary agent workspace.
    #[default]
    Agent,
    /// The platform's own concierge agent: pinned to the platform unless told otherwise.
    Concierge,
}

impl WorkspaceKind {
    /// Parses `agent` or `concierge`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "concierge" => Some(Self::Concierge),
            _ => None,
        }
    }

    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Concierge => "concierge",
        }
    }
}

/// Where the resolved mode came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSource {
    /// The workspace's own `billing_mode`.
    Explicit,
    /// A workspace secret `LLM_PROVIDER`.
    StoredProvider,
    /// A concierge pinned to the platform.
    ConciergePin,
    /// The provider derived from the effective model.
    DerivedProvider,
    /// The org's `default_billing_mode`.
    OrgDefault,
    /// Nothing decided: `platform_managed` by default.
    Fallback,
}

impl ModeSource {
    /// The source's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::StoredProvider => "stored_provider",
            Self::ConciergePin => "concierge_pin",
            Self::DerivedProvider => "derived_provider",
            Self::OrgDefault => "org_default",
            Self::Fallback => "fallback",
        }
    }
}

/// Where the effective model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// The provision request's `model`.
    Request,
    /// The workspace's `model`.
    Workspace,
    /// A `MODEL` secret (workspace, then org).
    Secret,
}

impl ModelSource {
    /// The source's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Workspace => "workspace",
            Self::Secret => "secret",
        }
    }
}

/// The stable error codes of a failed resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// `LLM_PROVIDER` names no provider of the registry for this runtime.
    UnknownProvider,
    /// No provider serves the effective model for this runtime.
    UnknownModel,
    /// The explicit billing mode contradicts the provider.
    ModeProviderConflict,
    /// BYOK (or platform-managed without a platform provider) with no provider to honour.
    NoProvider,
    /// BYOK with no credential of the provider's `auth_env` left.
    MissingByokCredential,
    /// A stored secret could not be decrypted.
    SecretUnreadable,
    /// The workspace's runtime is not in the registry (e.g. after `--providers` changed).
    UnknownRuntime,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `MISSING_BYOK_CREDENTIAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownProvider => "UNKNOWN_PROVIDER",
            Self::UnknownModel => "UNKNOWN_MODEL",
            Self::ModeProviderConflict => "MODE_PROVIDER_CONFLICT",
            Self::NoProvider => "NO_PROVIDER",
            Self::MissingByokCredential => "MISSING_BYOK_CREDENTIAL",
            Self::SecretUnreadable => "SECRET_UNREADABLE",
            Self::UnknownRuntime => "UNKNOWN_RUNTIME",
        }
    }

    /// Parses a wire code.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::UnknownProvider,
            Self::UnknownModel,
            Self::ModeProviderConflict,
            Self::NoProvider,
            Self::MissingByokCredential,
            Self::SecretUnreadable,
            Self::UnknownRuntime,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed resolution: a stable code and a message a person can act on (never a value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong and how to fix it.
    pub message: String,
}

/// A credential kept in (or injected into) the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRef {
    /// The env name.
    pub name: String,
    /// `org`, `workspace` or `tollgate`.
    pub origin: Origin,
    /// Why it was kept; for people (`explain --format text`), not part of the JSON shape.
    #[serde(skip)]
    pub reason: String,
}

/// A credential or routing name the plan dropped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The env name.
    pub name: String,
    /// `org` or `workspace`.
    pub origin: Origin,
    /// Why it was dropped.
    pub reason: String,
}

/// The resolution object of DESIGN.md section 9, field for field. Holds no secret value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The workspace resolved.
    pub workspace_id: String,
    /// The billing mode; `None` exactly when `error` is set.
    pub resolved_mode: Option<BillingMode>,
    /// Where the mode came from; `None` when `error` is set.
    pub source: Option<ModeSource>,
    /// The provider id, where one was determined (also on some errors, to explain them).
    pub provider: Option<String>,
    /// The effective model.
    pub effective_model: Option<String>,
    /// Where the effective model came from.
    pub model_source: Option<ModelSource>,
    /// The error, when resolution failed.
    pub error: Option<ResolutionError>,
    /// LLM credentials in the plan, with their origin.
    pub credentials: Vec<CredentialRef>,
    /// LLM credentials and routing names left out, with the reason.
    pub dropped: Vec<Dropped>,
    /// One line per decision, in order.
    pub trace: Vec<String>,
}

/// A value in the env plan.
#[derive(Clone, Debug)]
pub enum PlanValue {
    /// A secret's value (redacted everywhere but in the rendered env).
    Secret(SecretValue),
    /// A value Tollgate injects that is not secret: URLs, ids, mode, provider, model.
    Public(String),
    /// The workspace token, supplied at render time.
    WorkspaceToken,
}

/// One variable of the env plan.
#[derive(Clone, Debug)]
pub struct PlanEntry {
    /// Where the value came from.
    pub origin: Origin,
    /// The value.
    pub value: PlanValue,
}

/// The environment a workspace receives, before the workspace token is filled in.
#[derive(Clone, Debug, Default)]
pub struct EnvPlan {
    entries: BTreeMap<EnvName, PlanEntry>,
}

/// The text `explain` and the CLI print in place of a secret value.
pub const REDACTED: &str = "<redacted>";

impl EnvPlan {
    fn set(&mut self, name: EnvName, origin: Origin, value: PlanValue) {
        self.entries.insert(name, PlanEntry { origin, value });
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&PlanEntry> {
        self.entries.get(name)
    }

    /// Whether the plan sets `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// All entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&EnvName, &PlanEntry)> {
        self.entries.iter()
    }

    /// How many variables the plan sets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the plan is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The environment with real values, the workspace token filled in. Only the provision
    /// response and the secrets pull send this, and only to the workspace itself.
    pub fn render(&self, token: &WorkspaceToken) -> BTreeMap<String, secrecy::SecretString> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let v = match &e.value {
                    PlanValue::Secret(s) => s.as_secret().clone(),
                    PlanValue::Public(p) => secrecy::SecretString::from(p.as_str()),
                    PlanValue::WorkspaceToken => secrecy::SecretString::from(token.expose()),
                };
                (name.as_str().to_owned(), v)
            })
            .collect()
    }

    /// The environment with secrets and the token replaced by `<redacted>`; public
    /// injected values (proxy URL, provider, mode, ids, model) are shown.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let v = match &e.value {
                    PlanValue::Public(p) => p.clone(),
                    PlanValue::Secret(_) | PlanValue::WorkspaceToken => REDACTED.to_owned(),
                };
                (name.as_str().to_owned(), v)
            })
            .collect()
    }
}

/// The result of [`resolve`]: the resolution, and the env plan when it succeeded.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The resolution object.
    pub resolution: Resolution,
    /// The env plan; `Some` exactly when `resolution.error` is `None`.
    pub plan: Option<EnvPlan>,
}

/// The URL workspaces use to reach this Tollgate: `http(s)://host[:port][/path]`, no
/// trailing slash, no query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

/// Why a string is not a usable public URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the public URL must be http:// or https:// with a host and no query or fragment")]
pub struct PublicUrlError;

impl PublicUrl {
    /// Parses an absolute http(s) URL; strips trailing slashes.
    pub fn parse(s: &str) -> Result<Self, PublicUrlError> {
        let trimmed = s.trim_end_matches('/');
        let rest =
            trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("https://")).ok_or(PublicUrlError)?;
        if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ', '\t', '\n']) {
            return Err(PublicUrlError);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The URL as a string, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The proxy's base URL for a runtime speaking `protocol`.
    pub fn proxy_url(&self, protocol: crate::registry::Protocol) -> String {
        format!("{}{}", self.0, protocol.proxy_path())
    }

    /// Whether `url` points at this Tollgate: the same origin (default ports and a trailing
    /// dot on the host ignored) and a path at or under the public URL's path, all compared
    /// without regard to case.
    pub fn is_ours(&self, url: &str) -> bool {
        let (Some(ours), Some(theirs)) = (UrlParts::split(&self.0), UrlParts::split(url.trim())) else {
            return false;
        };
        if ours.scheme != theirs.scheme || ours.authority != theirs.authority {
            return false;
        }
        // Paths compare without regard to case too: a front proxy may route them so, and
        // treating a near-miss as ours fails closed (the BYOK routing value is dropped).
        let path = theirs.path.trim_end_matches('/').to_ascii_lowercase();
        let base = ours.path.trim_end_matches('/').to_ascii_lowercase();
        path.strip_prefix(base.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The parts of an absolute http(s) URL that decide where it points.
struct UrlParts<'a> {
    scheme: String,
    authority: String,
    path: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => ":80",
            "https" => ":443",
            _ => return None,
        };
        let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
        let authority = authority.trim_end_matches('.').to_owned();
        if authority.is_empty() {
            return None;
        }
        Some(Self { scheme, authority, path })
    }
}

/// The deployment-wide inputs of resolution: the registry and the public URL.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The provider registry in force.
    pub registry: &'a Registry,
    /// The URL workspaces use to reach this Tollgate.
    pub public_url: &'a PublicUrl,
}

/// The stored state of a workspace, as resolution needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceSpec {
    /// The workspace id.
    pub id: String,
    /// The runtime id (validated against the registry by `resolve`).
    pub runtime: String,
    /// Agent or concierge.
    pub kind: WorkspaceKind,
    /// The configured model, if any.
    pub model: Option<String>,
    /// The explicit billing mode, if any.
    pub billing_mode: Option<BillingMode>,
}

impl WorkspaceSpec {
    /// The workspace as stored after a successful provision with `request_model`: a
    /// non-empty request model becomes the workspace's model, so that the read endpoint and
    /// the pull resolve exactly as the provision did (invariant I2).
    #[must_use]
    pub fn after_provision(&self, request_model: Option<&str>) -> Self {
        let mut next = self.clone();
        if let Some(m) = non_empty(request_model) {
            next.model = Some(m.to_owned());
        }
        next
    }
}

/// The org-level input of resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrgSpec {
    /// The org's default billing mode.
    pub default_billing_mode: Option<BillingMode>,
}

/// Anthropic-OAuth-family provider ids (compared case-insensitively), whose runtime may keep
/// `CLAUDE_CODE_OAUTH_TOKEN`. Seed 000.
pub const ANTHROPIC_OAUTH_FAMILY: [&str; 4] = ["anthropic", "anthropic-oauth", "claude", "claude-code"];

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Resolves billing mode, provider and credentials for one workspace, and builds its plan.
///
/// `request_model` is the provision request's `model` (pass `None` for the read endpoint
/// and the pull, which see it through [`WorkspaceSpec::after_provision`]).
pub fn resolve(
    ctx: &Context<'_>,
    workspace: &WorkspaceSpec,
    org: &OrgSpec,
    secrets: &MergedSecrets,
    request_model: Option<&str>,
) -> Resolved {
    let mut r = Resolver {
        ctx,
        ws: workspace,
        secrets,
        out: Resolution {
            workspace_id: workspace.id.clone(),
            resolved_mode: None,
            source: None,
            provider: None,
            effective_model: None,
            model_source: None,
            error: None,
            credentials: Vec::new(),
            dropped: Vec::new(),
            trace: Vec::new(),
        },
    };
    match r.run(org, request_model) {
        Ok(plan) => Resolved { resolution: r.out, plan: Some(plan) },
        Err(error) => {
            r.out.trace.push(format!("error {}: {}", error.code, error.message));
            r.out.resolved_mode = None;
            r.out.source = None;
            r.out.error = Some(error);
            Resolved { resolution: r.out, plan: None }
        }
    }
}

struct Resolver<'a> {
    ctx: &'a Context<'a>,
    ws: &'a WorkspaceSpec,
    secrets: &'a MergedSecrets,
    out: Resolution,
}

fn err(code: ErrorCode, message: String) -> ResolutionError {
    ResolutionError { code, message }
}

impl<'a> Resolver<'a> {
    fn trace(&mut self, line: String) {
        self.out.trace.push(line);
    }

    fn run(&mut self, org: &OrgSpec, request_model: Option<&str>) -> Result<EnvPlan, ResolutionError> {
        let registry = self.ctx.registry;
        let Some(runtime) = registry.runtime(&self.ws.runtime) else {
            let known: Vec<&str> = registry.runtimes().map(Runtime::id).collect();
            return Err(err(
                ErrorCode::UnknownRuntime,
                format!(
                    "runtime `{}` is not in the provider registry (known: {}); fix the workspace's runtime or the registry",
                    self.ws.runtime,
                    known.join(", ")
                ),
            ));
        };
        self.check_readable()?;
        self.effective_model(request_model);
        let (provider, source) = self.provider(runtime)?;
        let (mode, provider, source) = self.mode(org, provider, source)?;
        self.out.resolved_mode = Some(mode);
        self.out.source = Some(source);
        self.out.provider = provider.map(|p| p.id().to_owned());
        self.trace(format!(
            "mode {mode} (source {}){}",
            source.as_str(),
            provider.map(|p| format!(", provider {}", p.id())).unwrap_or_default()
        ));
        self.plan(runtime, mode, provider)
    }

    /// SECRET_UNREADABLE: an undecryptable secret is never treated as absent.
    fn check_readable(&self) -> Result<(), ResolutionError> {
        let unreadable: Vec<String> = self
            .secrets
            .iter()
            .filter(|(_, s)| matches!(s.state, SecretState::Unreadable))
            .map(|(n, s)| format!("{n} ({})", s.origin))
            .collect();
        if unreadable.is_empty() {
            return Ok(());
        }
        Err(err(
            ErrorCode::SecretUnreadable,
            format!(
                "cannot decrypt secret {}: restore the master key it was written with, or set the secret again; Tollgate will not guess what it held",
                unreadable.join(", ")
            ),
        ))
    }

    /// Step 1: request, then workspace, then `MODEL` secret.
    fn effective_model(&mut self, request_model: Option<&str>) {
        let secret_model = self.secrets.get(MODEL).and_then(|s| s.value().map(|v| (v.expose(), s.origin)));
        let (model, source) = if let Some(m) = non_empty(request_model) {
            (Some(m.to_owned()), Some(ModelSource::Request))
        } else if let Some(m) = non_empty(self.ws.model.as_deref()) {
            (Some(m.to_owned()), Some(ModelSource::Workspace))
        } else if let Some((m, origin)) = secret_model.filter(|(m, _)| !m.is_empty()) {
            self.trace(format!("MODEL secret ({origin}) consulted"));
            (Some(m.to_owned()), Some(ModelSource::Secret))
        } else {
            (None, None)
        };
        match (&model, source) {
            (Some(m), Some(s)) => self.trace(format!("effective model {m} from {}", s.as_str())),
            _ => self.trace("no effective model: none in the request, the workspace or a MODEL secret".to_owned()),
        }
        self.out.effective_model = model;
        self.out.model_source = source;
    }

    /// Steps 2 to 4: stored provider, concierge pin, derived provider.
    fn provider(&mut self, runtime: &Runtime) -> Result<(Option<&'a Provider>, Option<ModeSource>), ResolutionError> {
        let registry = self.ctx.registry;
        // Step 2: only a workspace secret names the provider; a tenant-wide one must not.
        if let Some(s) = self.secrets.get(LLM_PROVIDER)
            && s.origin == Origin::Org
        {
            self.trace("org-scope LLM_PROVIDER ignored: only a workspace secret names the provider".to_owned());
        }
        let stored = self
            .secrets
            .get(LLM_PROVIDER)
            .filter(|s| s.origin == Origin::Workspace)
            .and_then(MergedSecret::value)
            .map(SecretValue::expose)
            .filter(|v| !v.is_empty());
        if let Some(id) = stored {
            let provider = registry.provider(id).filter(|p| p.supports(runtime.id()));
            let Some(provider) = provider else {
                let serving: Vec<&str> =
                    registry.providers().iter().filter(|p| p.supports(runtime.id())).map(Provider::id).collect();
                let why = if registry.provider(id).is_some() {
                    "does not serve"
                } else {
                    "is not a provider of the registry for"
                };
                return Err(err(
                    ErrorCode::UnknownProvider,
                    format!(
                        "workspace secret LLM_PROVIDER=`{}` {why} runtime {}; set it to one of: {}",
                        truncate(id),
                        runtime.id(),
                        serving.join(", ")
                    ),
                ));
            };
            self.trace(format!("stored provider {} from workspace secret LLM_PROVIDER", provider.id()));
            self.out.provider = Some(provider.id().to_owned());
            self.check_platform_model(runtime, provider)?;
            return Ok((Some(provider), Some(ModeSource::StoredProvider)));
        }

        let model = self.out.effective_model.clone();
        // Step 3: the concierge pin (seed 004): empty is never a BYOK signal.
        if self.ws.kind == WorkspaceKind::Concierge {
            match registry.platform().filter(|p| p.supports(runtime.id())) {
                Some(platform) => {
                    let platform_prefix = model
                        .as_deref()
                        .and_then(|m| platform.longest_prefix_match(m).or(platform.model(m).map(|_| 0)));
                    if model.is_none() || platform_prefix.is_some() {
                        self.trace(format!(
                            "concierge pinned to {}: {}",
                            platform.id(),
                            if model.is_none() {
                                "its effective model is empty"
                            } else {
                                "its model is a platform model"
                            }
                        ));
                        self.out.provider = Some(platform.id().to_owned());
                        self.check_platform_model(runtime, platform)?;
                        return Ok((Some(platform), Some(ModeSource::ConciergePin)));
                    }
                    self.trace("concierge not pinned: its model is an explicit non-platform model".to_owned());
                }
                None => self.trace(format!(
                    "concierge not pinned: the registry has no platform provider for runtime {}",
                    runtime.id()
                )),
            }
        }

        // Step 4: derive from the effective model.
        let Some(model) = model else {
            return Ok((None, None));
        };
        let provider = self.derive(runtime, &model)?;
        self.out.provider = Some(provider.id().to_owned());
        self.check_platform_model(runtime, provider)?;
        Ok((Some(provider), Some(ModeSource::DerivedProvider)))
    }

    fn derive(&mut self, runtime: &Runtime, model: &str) -> Result<&'a Provider, ResolutionError> {
        let registry = self.ctx.registry;
        let for_runtime = || registry.providers().iter().filter(|p| p.supports(runtime.id()));
        let exact: Vec<&Provider> = for_runtime().filter(|p| p.model(model).is_some()).collect();
        let (candidates, how) = if exact.is_empty() {
            let best = for_runtime().filter_map(|p| p.longest_prefix_match(model)).max();
            let by_prefix: Vec<&Provider> = match best {
                Some(len) => for_runtime().filter(|p| p.longest_prefix_match(model) == Some(len)).collect(),
                None => Vec::new(),
            };
            (by_prefix, "longest prefix match")
        } else {
            (exact, "exact model match")
        };
        match candidates.as_slice() {
            [] => {
                let known: Vec<String> = for_runtime()
                    .map(|p| {
                        let mut what: Vec<String> = p.models().iter().map(|m| m.id().to_owned()).collect();
                        what.extend(p.model_prefixes().iter().map(|x| format!("{x}*")));
                        format!("{} ({})", p.id(), what.join(", "))
                    })
                    .collect();
                Err(err(
                    ErrorCode::UnknownModel,
                    format!(
                        "no provider for runtime {} serves model `{}`; known: {}",
                        runtime.id(),
                        truncate(model),
                        known.join("; ")
                    ),
                ))
            }
            [one] => {
                self.trace(format!("derived provider {} by {how} on {model}", one.id()));
                Ok(one)
            }
            several => {
                let ids: Vec<&str> = several.iter().map(|p| p.id()).collect();
                let with_auth = several.iter().find(|p| {
                    p.auth_env().iter().any(|n| self.secrets.get(n.as_str()).is_some_and(MergedSecret::is_present))
                });
                let chosen = match with_auth {
                    Some(p) => {
                        self.trace(format!(
                            "{how} on {model} ties between {}; {} chosen: one of its auth_env is present",
                            ids.join(", "),
                            p.id()
                        ));
                        p
                    }
                    None => {
                        let first =
                            several.first().copied().ok_or_else(|| err(ErrorCode::UnknownModel, String::new()))?;
                        self.trace(format!("{how} on {model} ties between {}; none has its auth_env present, so the first in registry order, {}", ids.join(", "), first.id()));
                        first
                    }
                };
                Ok(chosen)
            }
        }
    }

    /// The platform serves only the models it lists, each to runtimes of its protocol.
    fn check_platform_model(&self, runtime: &Runtime, provider: &Provider) -> Result<(), ResolutionError> {
        let Some(model) = self.out.effective_model.as_deref() else {
            return Ok(());
        };
        if !provider.is_platform() {
            return Ok(());
        }
        let served: Vec<&str> = provider
            .models()
            .iter()
            .filter(|m| {
                m.serving()
                    .and_then(|s| provider.upstream(s.upstream()))
                    .is_some_and(|u| u.protocol() == runtime.protocol())
            })
            .map(|m| m.id())
            .collect();
        if served.contains(&model) {
            return Ok(());
        }
        Err(err(
            ErrorCode::UnknownModel,
            format!(
                "the platform does not serve `{}` to {} runtimes; platform models for runtime {}: {}",
                truncate(model),
                runtime.protocol().as_str(),
                runtime.id(),
                served.join(", ")
            ),
        ))
    }

    /// Step 5: the mode, and the provider a provider-less mode implies.
    fn mode(
        &mut self,
        org: &OrgSpec,
        provider: Option<&'a Provider>,
        provider_source: Option<ModeSource>,
    ) -> Result<(BillingMode, Option<&'a Provider>, ModeSource), ResolutionError> {
        let (mode, source) = if let Some(explicit) = self.ws.billing_mode {
            if let Some(p) = provider {
                let conflict = match explicit {
                    BillingMode::PlatformManaged => !p.is_platform(),
                    BillingMode::Byok => p.is_platform(),
                    BillingMode::Disabled => false,
                };
                if conflict {
                    let fix = if p.is_platform() {
                        "set billing_mode to platform_managed, or choose a model or LLM_PROVIDER of a BYOK provider"
                    } else {
                        "set billing_mode to byok, or choose a platform model (e.g. platform/sonnet)"
                    };
                    return Err(err(
                        ErrorCode::ModeProviderConflict,
                        format!(
                            "the workspace's billing_mode is {explicit} but its provider is {} ({}); {fix}",
                            p.id(),
                            if p.is_platform() { "platform-managed" } else { "BYOK" }
                        ),
                    ));
                }
            }
            (explicit, ModeSource::Explicit)
        } else if let (Some(p), Some(source)) = (provider, provider_source) {
            (if p.is_platform() { BillingMode::PlatformManaged } else { BillingMode::Byok }, source)
        } else if let Some(default) = org.default_billing_mode {
            self.trace(format!("no provider: the org's default_billing_mode {default} applies"));
            (default, ModeSource::OrgDefault)
        } else {
            self.trace("no provider and no org default: falling back to platform_managed".to_owned());
            (BillingMode::PlatformManaged, ModeSource::Fallback)
        };

        let provider = match (mode, provider) {
            (_, Some(p)) => Some(p),
            (BillingMode::Byok, None) => {
                return Err(err(
                    ErrorCode::NoProvider,
                    "billing mode is byok but no provider is known: set the workspace's model or a workspace secret LLM_PROVIDER so Tollgate knows whose credential to keep".to_owned(),
                ));
            }
            (BillingMode::PlatformManaged, None) => {
                let runtime = &self.ws.runtime;
                let platform = self.ctx.registry.platform().filter(|p| p.supports(runtime));
                if platform.is_none() {
                    return Err(err(
                        ErrorCode::NoProvider,
                        format!(
                            "billing mode is platform_managed but the registry has no platform provider serving runtime {runtime}"
                        ),
                    ));
                }
                platform
            }
            (BillingMode::Disabled, None) => None,
        };
        Ok((mode, provider, source))
    }

    /// The env plan of DESIGN.md section 6.
    fn plan(
        &mut self,
        runtime: &Runtime,
        mode: BillingMode,
        provider: Option<&Provider>,
    ) -> Result<EnvPlan, ResolutionError> {
        let registry = self.ctx.registry;
        let public = self.ctx.public_url;
        let mut plan = EnvPlan::default();
        let mut kept_routing = false;
        for (name, secret) in self.secrets.iter() {
            let Some(value) = secret.value() else { continue };
            let origin = secret.origin;
            let n = name.as_str();
            let drop_reason: Option<String> = if registry.is_llm_credential(n) {
                match (mode, origin) {
                    (BillingMode::PlatformManaged, _) => Some(
                        "platform_managed: LLM calls go through the Tollgate proxy with the workspace token".to_owned(),
                    ),
                    (BillingMode::Byok | BillingMode::Disabled, Origin::Workspace | Origin::Tollgate) => None,
                    (BillingMode::Byok, Origin::Org) => match provider {
                        Some(p) if p.accepts_credential(n) => None,
                        Some(p) => Some(format!("not in auth_env of provider {}", p.id())),
                        None => Some("no provider".to_owned()),
                    },
                    (BillingMode::Disabled, Origin::Org) => {
                        Some("disabled: org-scope LLM credentials are not inherited".to_owned())
                    }
                }
            } else if registry.is_routing(n) {
                match (mode, origin) {
                    (BillingMode::PlatformManaged, _) => {
                        Some("platform_managed: routing goes to the Tollgate proxy".to_owned())
                    }
                    (_, Origin::Org) => Some(format!("{mode}: org-scope routing names are not inherited")),
                    (_, _) if public.is_ours(value.expose()) => Some(format!(
                        "{mode}: points at the Tollgate proxy, which serves only platform-managed workspaces"
                    )),
                    (_, _) => None,
                }
            } else {
                None
            };
            match drop_reason {
                Some(reason) => {
                    self.trace(format!("dropped {n} ({origin}): {reason}"));
                    self.out.dropped.push(Dropped { name: n.to_owned(), origin, reason });
                }
                None => {
                    if registry.is_llm_credential(n) {
                        let reason = match (origin, provider) {
                            (Origin::Org, Some(p)) => format!("in auth_env of provider {}", p.id()),
                            _ => "the workspace's own credential".to_owned(),
                        };
                        self.trace(format!("kept {n} ({origin}): {reason}"));
                        self.out.credentials.push(CredentialRef { name: n.to_owned(), origin, reason });
                    }
                    if registry.is_routing(n) && n == runtime.base_url_env().as_str() {
                        kept_routing = true;
                    }
                    plan.set(name.as_env().clone(), origin, PlanValue::Secret(value.clone()));
                }
            }
        }

        let model = self.out.effective_model.clone();
        match mode {
            BillingMode::PlatformManaged => {
                let proxy = public.proxy_url(runtime.protocol());
                self.trace(format!(
                    "routed to the proxy: {}={proxy}, {}=<workspace token>",
                    runtime.base_url_env(),
                    runtime.token_env()
                ));
                plan.set(runtime.base_url_env().clone(), Origin::Tollgate, PlanValue::Public(proxy));
                plan.set(runtime.token_env().clone(), Origin::Tollgate, PlanValue::WorkspaceToken);
                // The runtime cannot know a platform alias's window: tell it, so that it
                // compacts before the upstream refuses a prompt that is too long.
                let window =
                    model.as_deref().and_then(|m| registry.platform_model(m)).and_then(|(m, _)| m.context_window());
                if let (Some(env), Some(window)) = (runtime.context_window_env(), window) {
                    self.trace(format!("injected {env}={window}: the platform model's context window"));
                    plan.set(env.clone(), Origin::Tollgate, PlanValue::Public(window.to_string()));
                }
                self.out.credentials.push(CredentialRef {
                    name: runtime.token_env().as_str().to_owned(),
                    origin: Origin::Tollgate,
                    reason: "the workspace token, for the Tollgate proxy".to_owned(),
                });
            }
            BillingMode::Byok => {
                let p = provider.ok_or_else(|| err(ErrorCode::NoProvider, "byok without a provider".to_owned()))?;
                if let Some(url) = p.base_url() {
                    if kept_routing {
                        self.trace(format!(
                            "{} set by the workspace itself; {}'s base_url not injected",
                            runtime.base_url_env(),
                            p.id()
                        ));
                    } else {
                        plan.set(runtime.base_url_env().clone(), Origin::Tollgate, PlanValue::Public(url.to_owned()));
                        self.trace(format!("injected {}={url} for provider {}", runtime.base_url_env(), p.id()));
                    }
                }
                let satisfied = self.out.credentials.iter().any(|c| {
                    p.accepts_credential(&c.name) && self.secrets.get(&c.name).is_some_and(MergedSecret::is_present)
                });
                if !satisfied {
                    let names: Vec<&str> = p.auth_env().iter().map(EnvName::as_str).collect();
                    return Err(err(
                        ErrorCode::MissingByokCredential,
                        format!(
                            "provider {} needs one of {} and the workspace has none (an org-scope credential counts only if it is in that list); set one as a workspace secret",
                            p.id(),
                            names.join(", ")
                        ),
                    ));
                }
            }
            BillingMode::Disabled => self.trace("disabled: no routing injected".to_owned()),
        }
        if mode != BillingMode::Disabled
            && let (Some(model_env), Some(m)) = (runtime.model_env(), model)
        {
            plan.set(model_env.clone(), Origin::Tollgate, PlanValue::Public(m));
        }
        let provider_id = provider.map(|p| p.id().to_owned()).unwrap_or_default();
        plan.set(EnvName::from_static(LLM_PROVIDER), Origin::Tollgate, PlanValue::Public(provider_id));
        plan.set(EnvName::from_static(LLM_BILLING_MODE), Origin::Tollgate, PlanValue::Public(mode.as_str().to_owned()));
        plan.set(EnvName::from_static("TOLLGATE_URL"), Origin::Tollgate, PlanValue::Public(public.as_str().to_owned()));
        plan.set(
            EnvName::from_static("TOLLGATE_WORKSPACE_ID"),
            Origin::Tollgate,
            PlanValue::Public(self.ws.id.clone()),
        );
        plan.set(EnvName::from_static("TOLLGATE_WORKSPACE_TOKEN"), Origin::Tollgate, PlanValue::WorkspaceToken);
        self.out.credentials.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plan)
    }
}

/// Bounds user-supplied text quoted in messages.
fn truncate(s: &str) -> String {
    const LIMIT: usize = 80;
    if s.len() <= LIMIT {
        return s.to_owned();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests;
