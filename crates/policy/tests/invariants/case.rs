//! A concrete case built from a generated input, and how to resolve it.

use super::*;

/// One concrete state: everything `resolve` takes, plus what the test needs to explain it.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) registry: Registry,
    /// The generated registry's YAML; `None` for the embedded one.
    pub(crate) yaml: Option<String>,
    pub(crate) public: PublicUrl,
    pub(crate) org: OrgSpec,
    pub(crate) ws: WorkspaceSpec,
    /// Stored secrets as (name, value), `None` for an unreadable one.
    pub(crate) org_secrets: Vec<(String, Option<String>)>,
    pub(crate) ws_secrets: Vec<(String, Option<String>)>,
    /// Names `SecretName::parse` refused (never stored).
    pub(crate) rejected: Vec<String>,
    pub(crate) merged: MergedSecrets,
    pub(crate) request: Option<String>,
}

pub(crate) fn embedded() -> Result<&'static Registry, TestCaseError> {
    static EMBEDDED: OnceLock<Result<Registry, String>> = OnceLock::new();
    EMBEDDED
        .get_or_init(|| Registry::embedded().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TestCaseError::fail(format!("the embedded registry does not load: {e}")))
}

pub(crate) fn model_ids(reg: &Registry) -> Vec<String> {
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

pub(crate) fn prefixes(reg: &Registry) -> Vec<String> {
    let set: BTreeSet<String> = reg.providers().iter().flat_map(|p| p.model_prefixes().iter().cloned()).collect();
    set.into_iter().collect()
}

pub(crate) fn pick<T: Clone>(i: &Index, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| i.get(items).clone())
}

pub(crate) fn served(reg: &Registry, runtime: &str) -> Vec<String> {
    let mut names = Vec::new();
    for p in reg.providers().iter().filter(|p| p.supports(runtime)) {
        names.extend(p.models().iter().map(|m| m.id().to_owned()));
        names.extend(p.model_prefixes().iter().map(|x| format!("{x}1")));
    }
    names
}

pub(crate) fn model_string(reg: &Registry, runtime: &str, g: &ModelGen) -> String {
    match g {
        ModelGen::Served(i) => pick(i, &served(reg, runtime)).unwrap_or_else(|| "opus".to_owned()),
        ModelGen::Known(i) => pick(i, &model_ids(reg)).unwrap_or_else(|| "opus".to_owned()),
        ModelGen::Prefixed(i, suffix) => {
            format!("{}{suffix}", pick(i, &prefixes(reg)).unwrap_or_default())
        }
        ModelGen::Junk(s) => s.clone(),
    }
}

pub(crate) fn opt_model_string(reg: &Registry, runtime: &str, m: &OptModel) -> Option<String> {
    match m {
        OptModel::None => None,
        OptModel::Empty => Some(String::new()),
        OptModel::Some(g) => Some(model_string(reg, runtime, g)),
    }
}

pub(crate) fn random_case(s: &str, mask: u64) -> String {
    s.chars().enumerate().map(|(i, c)| if mask & (1 << (i % 64)) != 0 { c.to_ascii_uppercase() } else { c }).collect()
}

/// Routing values: the proxy (several spellings, one in upper case: scheme and host are
/// case-insensitive), a look-alike that is not the proxy, and real provider URLs.
pub(crate) fn url_value(public: &str, i: &Index) -> String {
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

pub(crate) fn secret_value(reg: &Registry, runtime: &str, public: &str, name: &str, v: &ValueGen) -> Option<String> {
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

pub(crate) fn i_get<'a>(i: &Index, items: &'a [String]) -> &'a str {
    if items.is_empty() { "" } else { i.get(items).as_str() }
}

impl Case {
    pub(crate) fn build(input: &Input) -> Result<Self, TestCaseError> {
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
    pub(crate) fn explicit(
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

    pub(crate) fn ctx(&self) -> Context<'_> {
        Context { registry: &self.registry, public_url: &self.public }
    }

    pub(crate) fn resolve(&self, ws: &WorkspaceSpec, request_model: Option<&str>) -> Resolved {
        resolve(&self.ctx(), ws, &self.org, &self.merged, request_model)
    }

    /// The provision of this state: the request model applies.
    pub(crate) fn provision(&self) -> Resolved {
        self.resolve(&self.ws, self.request.as_deref())
    }

    /// A readable description of the state, for failure messages.
    pub(crate) fn describe(&self) -> String {
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
