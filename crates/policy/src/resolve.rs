//! `resolve`: the single source of truth for billing mode, provider and credentials.
//!
//! The admin read endpoint, provisioning, the secrets pull and `explain` all call
//! [`resolve`] and nothing else. It is a pure function of its inputs: same inputs, same
//! [`Resolved`], and every input gives either a mode or a named error (invariant I6).

mod plan;
mod public_url;
mod types;

pub use plan::{EnvPlan, PlanEntry, PlanValue, REDACTED};
pub use public_url::{PublicUrl, PublicUrlError};
pub use types::{
    BillingMode, Context, CredentialRef, Dropped, ErrorCode, ModeSource, ModelSource, OrgSpec, Resolution,
    ResolutionError, Resolved, WorkspaceKind, WorkspaceSpec,
};

use crate::registry::{LLM_PROVIDER, MODEL, Model, Provider, Runtime};
use crate::secret::{MergedSecret, MergedSecrets, Origin, SecretState, SecretValue};

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
        Ok(plan) => Resolved::Planned { resolution: r.out, plan },
        Err(error) => {
            r.out.trace.push(format!("error {}: {}", error.code, error.message));
            r.out.resolved_mode = None;
            r.out.source = None;
            r.out.error = Some(error);
            Resolved::Failed { resolution: r.out }
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
        let served: Vec<&str> = self.ctx.registry.platform_models_for(runtime.protocol()).map(Model::id).collect();
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
}

/// Bounds user-supplied text quoted in messages.
fn truncate(s: &str) -> String {
    crate::text::truncate(s, 80)
}

#[cfg(test)]
mod tests;
