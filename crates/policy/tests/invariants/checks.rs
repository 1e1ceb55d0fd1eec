//! The checks of the invariants I1 to I6, and their helpers.

use super::*;

pub(crate) fn ensure(cond: bool, case: &Case, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(format!("{}\n--- case ---\n{}", what(), case.describe()))) }
}

pub(crate) fn token() -> WorkspaceToken {
    WorkspaceToken::mint(|buf| buf.fill(42))
}

pub(crate) fn rendered(plan: &EnvPlan) -> BTreeMap<String, String> {
    plan.render(&token()).into_iter().map(|(k, v)| (k, v.expose_secret().to_owned())).collect()
}

pub(crate) fn value_text(v: &PlanValue) -> Option<&str> {
    match v {
        PlanValue::Secret(s) => Some(s.expose()),
        PlanValue::Public(p) => Some(p.as_str()),
        PlanValue::WorkspaceToken => None,
    }
}

/// Whether `value` points at this Tollgate: its public URL (scheme and host compared without
/// regard to case), then nothing or a path. `http://tollgate.example.evil.example` does not.
pub(crate) fn points_at_proxy(public: &PublicUrl, value: &str) -> bool {
    let p = public.as_str().to_ascii_lowercase();
    let v = value.to_ascii_lowercase();
    v.strip_prefix(p.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

pub(crate) fn summary(r: &Resolution) -> String {
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

pub(crate) fn check_i1(case: &Case, reserved_suffix: &str) -> Result<(), TestCaseError> {
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

pub(crate) fn same_outcome(a: &Resolution, b: &Resolution) -> bool {
    a.resolved_mode == b.resolved_mode
        && a.source == b.source
        && a.provider == b.provider
        && a.effective_model == b.effective_model
        && a.error.as_ref().map(|e| e.code) == b.error.as_ref().map(|e| e.code)
        && a.credentials == b.credentials
        && a.dropped == b.dropped
}

pub(crate) fn check_i2(case: &Case) -> Result<(), TestCaseError> {
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

pub(crate) fn check_i3(case: &Case) -> Result<(), TestCaseError> {
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
        // Codex ignores the routing name: its own configuration must say the same.
        let want_codex = (runtime.config() == Some(RuntimeConfig::Codex)).then(|| CodexProvider::Endpoint {
            base_url: BaseUrl::Url(proxy.clone()),
            env_key: EnvName::parse(WORKSPACE_TOKEN_ENV).unwrap_or_else(|e| panic!("{e}")),
            wire_api: WireApi::Responses,
        });
        ensure(plan.codex().map(|c| &c.provider) == want_codex.as_ref(), case, || {
            format!(
                "platform_managed Codex config {:?} is not the proxy with {WORKSPACE_TOKEN_ENV}\n{}",
                plan.codex(),
                ctx()
            )
        })?;
    }
    Ok(())
}

pub(crate) fn check_i4(case: &Case) -> Result<(), TestCaseError> {
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
        check_i4_codex(case, plan, provider, &ctx)?;
        for c in &res.credentials {
            ensure(c.origin != Origin::Org || provider.accepts_credential(&c.name), case, || {
                format!("byok credentials list the org credential {} outside auth_env\n{}", c.name, ctx())
            })?;
        }
    }
    Ok(())
}

/// I4 for Codex's own configuration: it never points at the proxy, and the variable it
/// authenticates with is one of the provider's `auth_env` that the plan holds.
fn check_i4_codex(
    case: &Case,
    plan: &EnvPlan,
    provider: &tollgate_policy::Provider,
    ctx: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    let is_codex = case.registry.runtime(&case.ws.runtime).and_then(|r| r.config()) == Some(RuntimeConfig::Codex);
    ensure(plan.codex().is_some() == is_codex, case, || {
        format!("byok Codex config present iff runtime codex\n{}", ctx())
    })?;
    let Some(codex) = plan.codex() else { return Ok(()) };
    let held = |name: &str| {
        provider.accepts_credential(name)
            && plan.get(name).is_some_and(|e| matches!(&e.value, PlanValue::Secret(v) if !v.is_empty()))
    };
    match &codex.provider {
        CodexProvider::Endpoint { base_url, env_key, .. } => {
            let url_ok = match base_url {
                BaseUrl::Url(u) => !points_at_proxy(&case.public, u),
                BaseUrl::Env(name) => plan.contains(name.as_str()),
            };
            ensure(url_ok && held(env_key.as_str()), case, || format!("byok Codex config {codex:?}\n{}", ctx()))
        }
        CodexProvider::ChatgptLogin { auth_json_env } => {
            ensure(held(auth_json_env.as_str()), case, || format!("byok Codex login {codex:?}\n{}", ctx()))
        }
    }
}

pub(crate) fn check_i5(case: &Case) -> Result<(), TestCaseError> {
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

pub(crate) fn check_i6(case: &Case) -> Result<(), TestCaseError> {
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
