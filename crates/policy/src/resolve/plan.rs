//! The env plan: the environment a workspace receives (DESIGN.md section 6), and the rule
//! that decides which stored secrets it keeps.

use std::collections::BTreeMap;

use super::types::{BillingMode, CredentialRef, Dropped, ErrorCode, ResolutionError};
use super::{Resolver, err};
use crate::codex::{self, CodexConfig};
use crate::names::EnvName;
use crate::registry::{LLM_BILLING_MODE, LLM_PROVIDER, Provider, Runtime};
use crate::secret::{MergedSecret, Origin, SecretValue};
use crate::token::WorkspaceToken;

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
    codex: Option<CodexConfig>,
}

/// The text `explain` and the CLI print in place of a secret value.
pub const REDACTED: &str = "<redacted>";

impl EnvPlan {
    fn set(&mut self, name: EnvName, origin: Origin, value: PlanValue) {
        self.entries.insert(name, PlanEntry { origin, value });
    }

    /// Codex's configuration, for a runtime configured the Codex way (DESIGN.md section 12):
    /// what `tollgate exec` writes to `$CODEX_HOME`. Names and URLs, no value.
    pub fn codex(&self) -> Option<&CodexConfig> {
        self.codex.as_ref()
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

impl Resolver<'_> {
    /// The env plan of DESIGN.md section 6: the secrets kept, then what the mode injects.
    pub(super) fn plan(
        &mut self,
        runtime: &Runtime,
        mode: BillingMode,
        provider: Option<&Provider>,
    ) -> Result<EnvPlan, ResolutionError> {
        let mut plan = EnvPlan::default();
        let kept_routing = self.keep_secrets(&mut plan, runtime, mode, provider);
        match mode {
            BillingMode::PlatformManaged => self.route_to_proxy(&mut plan, runtime),
            BillingMode::Byok => {
                let p = provider.ok_or_else(|| err(ErrorCode::NoProvider, "byok without a provider".to_owned()))?;
                self.route_to_provider(&mut plan, runtime, p, kept_routing)?;
            }
            BillingMode::Disabled => self.trace("disabled: no routing injected".to_owned()),
        }
        self.inject_common(&mut plan, runtime, mode, provider);
        self.out.credentials.sort_by(|a, b| a.name.cmp(&b.name));
        // Only credentials with a value: Codex must not be pointed at a variable that is empty.
        let credentials: Vec<&str> = self
            .out
            .credentials
            .iter()
            .filter(|c| c.origin == Origin::Tollgate || self.secrets.get(&c.name).is_some_and(MergedSecret::is_present))
            .map(|c| c.name.as_str())
            .collect();
        plan.codex = codex::decide(&codex::Decision {
            runtime,
            mode,
            provider,
            model: self.out.effective_model.as_deref(),
            credentials: &credentials,
            workspace_routing: kept_routing,
            public_url: self.ctx.public_url,
        });
        if let Some(c) = &plan.codex {
            let line = format!("codex config: {}", c.describe());
            self.trace(line);
        }
        Ok(plan)
    }

    /// Puts every secret the keep-or-drop rule keeps into `plan` and records the rest as
    /// dropped. Returns whether the runtime's own routing name was kept.
    fn keep_secrets(
        &mut self,
        plan: &mut EnvPlan,
        runtime: &Runtime,
        mode: BillingMode,
        provider: Option<&Provider>,
    ) -> bool {
        let registry = self.ctx.registry;
        let mut kept_routing = false;
        for (name, secret) in self.secrets.iter() {
            let Some(value) = secret.value() else { continue };
            let origin = secret.origin;
            let n = name.as_str();
            let kind = if registry.is_llm_credential(n) {
                NameKind::Credential
            } else if registry.is_routing(n) {
                NameKind::Routing { ours: self.ctx.public_url.is_ours(value.expose()) }
            } else {
                NameKind::Other
            };
            match keep_or_drop(n, kind, mode, origin, provider) {
                Err(reason) => {
                    self.trace(format!("dropped {n} ({origin}): {reason}"));
                    self.out.dropped.push(Dropped { name: n.to_owned(), origin, reason });
                }
                Ok(()) => {
                    if kind == NameKind::Credential {
                        let reason = match (origin, provider) {
                            (Origin::Org, Some(p)) => format!("in auth_env of provider {}", p.id()),
                            _ => "the workspace's own credential".to_owned(),
                        };
                        self.trace(format!("kept {n} ({origin}): {reason}"));
                        self.out.credentials.push(CredentialRef { name: n.to_owned(), origin, reason });
                    }
                    if matches!(kind, NameKind::Routing { .. }) && n == runtime.base_url_env().as_str() {
                        kept_routing = true;
                    }
                    plan.set(name.as_env().clone(), origin, PlanValue::Secret(value.clone()));
                }
            }
        }
        kept_routing
    }

    /// Platform-managed: the runtime talks to the proxy with the workspace token.
    fn route_to_proxy(&mut self, plan: &mut EnvPlan, runtime: &Runtime) {
        let proxy = self.ctx.public_url.proxy_url(runtime.protocol());
        self.trace(format!(
            "routed to the proxy: {}={proxy}, {}=<workspace token>",
            runtime.base_url_env(),
            runtime.token_env()
        ));
        plan.set(runtime.base_url_env().clone(), Origin::Tollgate, PlanValue::Public(proxy));
        plan.set(runtime.token_env().clone(), Origin::Tollgate, PlanValue::WorkspaceToken);
        // The runtime cannot know a platform alias's window: tell it, so that it
        // compacts before the upstream refuses a prompt that is too long.
        let window = self
            .out
            .effective_model
            .as_deref()
            .and_then(|m| self.ctx.registry.platform_model(m))
            .and_then(|(m, _)| m.context_window());
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

    /// BYOK: the provider's base URL unless the workspace routes itself, and a credential of
    /// the provider's `auth_env` must have been kept.
    fn route_to_provider(
        &mut self,
        plan: &mut EnvPlan,
        runtime: &Runtime,
        p: &Provider,
        kept_routing: bool,
    ) -> Result<(), ResolutionError> {
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
        let satisfied =
            self.out.credentials.iter().any(|c| {
                p.accepts_credential(&c.name) && self.secrets.get(&c.name).is_some_and(MergedSecret::is_present)
            });
        if satisfied {
            return Ok(());
        }
        let names: Vec<&str> = p.auth_env().iter().map(EnvName::as_str).collect();
        Err(err(
            ErrorCode::MissingByokCredential,
            format!(
                "provider {} needs one of {} and the workspace has none (an org-scope credential counts only if it is in that list); set one as a workspace secret",
                p.id(),
                names.join(", ")
            ),
        ))
    }

    /// What every plan carries: the model, provider, mode, Tollgate URL, id and token.
    fn inject_common(&self, plan: &mut EnvPlan, runtime: &Runtime, mode: BillingMode, provider: Option<&Provider>) {
        let public = self.ctx.public_url;
        if mode != BillingMode::Disabled
            && let (Some(model_env), Some(m)) = (runtime.model_env(), &self.out.effective_model)
        {
            plan.set(model_env.clone(), Origin::Tollgate, PlanValue::Public(m.clone()));
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
    }
}

/// What a secret's name is to the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameKind {
    /// An LLM credential (some provider's `auth_env`, or `llm_env`).
    Credential,
    /// A runtime's `base_url_env`; `ours` when its value points at this Tollgate (I4).
    Routing { ours: bool },
    /// Anything else: always kept.
    Other,
}

/// The keep-or-drop rule of DESIGN.md section 6: `Ok` keeps the secret `name` of `origin`
/// in the plan, `Err` says why it is dropped.
fn keep_or_drop(
    name: &str,
    kind: NameKind,
    mode: BillingMode,
    origin: Origin,
    provider: Option<&Provider>,
) -> Result<(), String> {
    match (kind, mode, origin) {
        (NameKind::Other, _, _)
        | (NameKind::Credential, BillingMode::Byok | BillingMode::Disabled, Origin::Workspace | Origin::Tollgate)
        | (
            NameKind::Routing { ours: false },
            BillingMode::Byok | BillingMode::Disabled,
            Origin::Workspace | Origin::Tollgate,
        ) => Ok(()),
        (NameKind::Credential, BillingMode::PlatformManaged, _) => {
            Err("platform_managed: LLM calls go through the Tollgate proxy with the workspace token".to_owned())
        }
        (NameKind::Credential, BillingMode::Byok, Origin::Org) => match provider {
            Some(p) if p.accepts_credential(name) => Ok(()),
            Some(p) => Err(format!("not in auth_env of provider {}", p.id())),
            None => Err("no provider".to_owned()),
        },
        (NameKind::Credential, BillingMode::Disabled, Origin::Org) => {
            Err("disabled: org-scope LLM credentials are not inherited".to_owned())
        }
        (NameKind::Routing { .. }, BillingMode::PlatformManaged, _) => {
            Err("platform_managed: routing goes to the Tollgate proxy".to_owned())
        }
        (NameKind::Routing { .. }, _, Origin::Org) => Err(format!("{mode}: org-scope routing names are not inherited")),
        (NameKind::Routing { ours: true }, _, _) => {
            Err(format!("{mode}: points at the Tollgate proxy, which serves only platform-managed workspaces"))
        }
    }
}
