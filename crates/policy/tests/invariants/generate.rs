//! Generated descriptions of registries, orgs, workspaces and secrets, and their strategies.

use super::*;

#[derive(Clone, Debug)]
pub(crate) struct RuntimeDesc {
    pub(crate) id: &'static str,
    pub(crate) anthropic: bool,
    pub(crate) base_url_env: &'static str,
    pub(crate) token_env: &'static str,
    pub(crate) model_env: Option<ModelEnvDesc>,
}

/// A runtime's `model_env`: usually an ordinary name, rarely one that collides.
#[derive(Clone, Debug)]
pub(crate) enum ModelEnvDesc {
    Name(&'static str),
    /// One of [`ODD_MODEL_ENV_POOL`].
    Odd(&'static str),
    /// The runtime's own `token_env`.
    OwnToken,
    /// The runtime's own `base_url_env`.
    OwnBaseUrl,
}

#[derive(Clone, Debug)]
pub(crate) struct ProviderDesc {
    pub(crate) id: &'static str,
    /// Bit i selects the i-th runtime; an empty selection falls back to one runtime.
    pub(crate) runtimes: u8,
    pub(crate) auth_env: Vec<&'static str>,
    pub(crate) models: Vec<&'static str>,
    pub(crate) prefixes: Vec<&'static str>,
    pub(crate) base_url: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct UpstreamDesc {
    pub(crate) name: &'static str,
    /// Rarely, a reserved name Tollgate injects instead of `TOLLGATE_UPSTREAM_<NAME>_KEY`.
    pub(crate) odd_key_env: Option<&'static str>,
    /// The explicit protocol of the `custom` upstream (`anthropic` and `openai` are implied).
    pub(crate) custom_anthropic: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct PlatformDesc {
    pub(crate) id: &'static str,
    pub(crate) position: Index,
    pub(crate) runtimes: u8,
    pub(crate) upstreams: Vec<UpstreamDesc>,
    pub(crate) models: Vec<(&'static str, Index)>,
    pub(crate) prefixes: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub(crate) struct RegistryDesc {
    pub(crate) runtimes: Vec<RuntimeDesc>,
    pub(crate) llm_env: Vec<&'static str>,
    pub(crate) providers: Vec<ProviderDesc>,
    pub(crate) platform: Option<PlatformDesc>,
}

pub(crate) fn q(s: &str) -> String {
    format!("{s:?}")
}

pub(crate) fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

pub(crate) fn select_runtimes(mask: u8, runtimes: &[RuntimeDesc]) -> Vec<&'static str> {
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
    pub(crate) fn is_odd(&self) -> bool {
        self.runtimes.iter().any(|r| !matches!(r.model_env, None | Some(ModelEnvDesc::Name(_))))
            || self.platform.as_ref().is_some_and(|p| p.upstreams.iter().any(|u| u.odd_key_env.is_some()))
    }

    /// The registry as a `providers.yaml` file.
    pub(crate) fn to_yaml(&self) -> String {
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
            // A `codex` runtime of the openai protocol is configured the Codex way, so that the
            // plans' Codex configurations are checked too.
            if r.id == "codex" && !r.anthropic {
                y.push_str(", config: codex");
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

    pub(crate) fn provider_yaml(&self, p: &ProviderDesc) -> String {
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

    pub(crate) fn platform_yaml(&self, p: &PlatformDesc) -> String {
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

pub(crate) fn upstream_key_env(name: &str) -> String {
    format!("TOLLGATE_UPSTREAM_{}_KEY", name.to_ascii_uppercase())
}

pub(crate) fn runtime_desc() -> impl Strategy<Value = (bool, &'static str, &'static str, Option<ModelEnvDesc>)> {
    let model_env = prop_oneof![
        30 => Just(None),
        60 => select(MODEL_ENV_POOL).prop_map(|m| Some(ModelEnvDesc::Name(m))),
        2 => select(ODD_MODEL_ENV_POOL).prop_map(|m| Some(ModelEnvDesc::Odd(m))),
        1 => Just(Some(ModelEnvDesc::OwnToken)),
        1 => Just(Some(ModelEnvDesc::OwnBaseUrl)),
    ];
    (any::<bool>(), select(ROUTING_POOL), select(TOKEN_POOL), model_env)
}

pub(crate) type ProviderAttrs = (u8, Vec<&'static str>, Vec<&'static str>, Vec<&'static str>, Option<&'static str>);

pub(crate) fn provider_attrs() -> impl Strategy<Value = ProviderAttrs> {
    (
        any::<u8>(),
        subsequence(AUTH_POOL, 1..=3).prop_shuffle(),
        subsequence(MODEL_POOL, 0..=3),
        subsequence(PREFIX_POOL, 0..=2),
        proptest::option::weighted(0.4, select(BASE_URL_POOL)),
    )
}

pub(crate) fn platform_desc() -> impl Strategy<Value = PlatformDesc> {
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

pub(crate) fn registry_desc() -> impl Strategy<Value = RegistryDesc> {
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
pub(crate) enum ModelGen {
    /// A model id, or a prefix plus `1`, of a provider serving the workspace's runtime.
    Served(Index),
    /// One of the registry's exact model ids.
    Known(Index),
    /// One of the registry's prefixes, plus a suffix (possibly empty).
    Prefixed(Index, String),
    /// Anything.
    Junk(String),
}

pub(crate) fn model_gen() -> impl Strategy<Value = ModelGen> {
    prop_oneof![
        5 => any::<Index>().prop_map(ModelGen::Served),
        2 => any::<Index>().prop_map(ModelGen::Known),
        2 => (any::<Index>(), "[a-z0-9.]{0,5}").prop_map(|(i, s)| ModelGen::Prefixed(i, s)),
        1 => "[a-zA-Z0-9/_.-]{1,10}".prop_map(ModelGen::Junk),
    ]
}

/// An optional model: absent, empty, or a name.
#[derive(Clone, Debug)]
pub(crate) enum OptModel {
    None,
    Empty,
    Some(ModelGen),
}

pub(crate) fn opt_model(none: u32, empty: u32, some: u32) -> impl Strategy<Value = OptModel> {
    prop_oneof![
        none => Just(OptModel::None),
        empty => Just(OptModel::Empty),
        some => model_gen().prop_map(OptModel::Some),
    ]
}

pub(crate) fn mode() -> impl Strategy<Value = Option<BillingMode>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(BillingMode::PlatformManaged)),
        1 => Just(Some(BillingMode::Byok)),
        1 => Just(Some(BillingMode::Disabled)),
    ]
}

/// A secret's value; which part is used depends on the secret's name.
#[derive(Clone, Debug)]
pub(crate) struct ValueGen {
    /// 0: unreadable; 1 to 9: empty; else a value fitting the name.
    pub(crate) roll: u8,
    pub(crate) text: String,
    pub(crate) pick: Index,
    pub(crate) case_mask: u64,
    pub(crate) model: ModelGen,
}

pub(crate) fn value_gen() -> impl Strategy<Value = ValueGen> {
    (0u8..100, "[A-Za-z0-9_-]{1,16}", any::<Index>(), any::<u64>(), model_gen())
        .prop_map(|(roll, text, pick, case_mask, model)| ValueGen { roll, text, pick, case_mask, model })
}

#[derive(Clone, Debug)]
pub(crate) struct WorkspaceGen {
    /// `None`: a runtime the registry does not know.
    pub(crate) runtime: Option<Index>,
    pub(crate) concierge: bool,
    pub(crate) model: OptModel,
    pub(crate) billing_mode: Option<BillingMode>,
}

#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// `None`: the embedded registry.
    pub(crate) registry: Option<RegistryDesc>,
    pub(crate) public_url: &'static str,
    pub(crate) org_default: Option<BillingMode>,
    pub(crate) workspace: WorkspaceGen,
    pub(crate) org_secrets: BTreeMap<&'static str, ValueGen>,
    pub(crate) ws_secrets: BTreeMap<&'static str, ValueGen>,
    pub(crate) request: OptModel,
}

pub(crate) fn input() -> impl Strategy<Value = Input> {
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
