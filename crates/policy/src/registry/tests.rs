//! Registry parsing and validation: every error names the file, the line and the field.

use super::*;

const RUNTIMES: &str = "runtimes:\n  claude-code: {protocol: anthropic, base_url_env: ANTHROPIC_BASE_URL, token_env: ANTHROPIC_AUTH_TOKEN, model_env: ANTHROPIC_MODEL}\n  codex: {protocol: openai, base_url_env: OPENAI_BASE_URL, token_env: OPENAI_API_KEY}\n";

fn errors(yaml: &str) -> Vec<RegistryError> {
    match Registry::parse("providers.yaml", yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.0,
    }
}

/// Asserts that parsing `providers` (after the standard runtimes) fails with an error on
/// `line` (1-based, of the whole document) for `field`, whose message contains `needle`.
fn assert_error(providers: &str, line: u32, field: &str, needle: &str) {
    let yaml = format!("{RUNTIMES}{providers}");
    let errs = errors(&yaml);
    assert!(
        errs.iter()
            .any(|e| e.line == line && e.field == field && e.message.contains(needle) && e.file == "providers.yaml"),
        "no error at line {line} for {field} containing `{needle}` in:\n{}",
        RegistryErrors(errs.clone())
    );
}

#[test]
fn embedded_registry_is_valid_and_complete() {
    let r = Registry::embedded().unwrap();
    let ids: Vec<&str> = r.providers().iter().map(Provider::id).collect();
    assert_eq!(
        ids,
        ["platform", "anthropic-oauth", "anthropic-api", "minimax", "kimi-coding", "openai", "openai-chatgpt"]
    );
    assert!(r.is_llm_credential("CODEX_AUTH_JSON"));
    assert_eq!(r.platform().map(Provider::id), Some("platform"));
    assert!(r.is_llm_credential("CLAUDE_CODE_OAUTH_TOKEN"));
    assert!(r.is_llm_credential("GEMINI_API_KEY"));
    assert!(r.is_llm_credential("ANTHROPIC_AUTH_TOKEN"));
    assert!(!r.is_llm_credential("GITHUB_TOKEN"));
    assert!(r.is_routing("ANTHROPIC_BASE_URL") && r.is_routing("OPENAI_BASE_URL"));
    assert!(!r.is_routing("ANTHROPIC_AUTH_TOKEN"));
    let (model, upstream) = r.platform_model("platform/sonnet").unwrap();
    assert_eq!(model.upstream_model(), "claude-sonnet-4-5");
    assert_eq!(model.upstream(), "anthropic");
    assert_eq!(model.price().base().input.get(), 3_000_000);
    assert_eq!(model.price().base().cache_read.get(), 300_000);
    assert_eq!(upstream.url(), "https://api.anthropic.com");
    assert_eq!(upstream.key_env().as_str(), "TOLLGATE_UPSTREAM_ANTHROPIC_KEY");
    assert_eq!(upstream.protocol(), Protocol::Anthropic);
    assert_eq!(upstream.name(), "anthropic");
    assert!(r.platform_model("opus").is_none());
    let cc = r.runtime("claude-code").unwrap();
    assert_eq!((cc.id(), cc.protocol()), ("claude-code", Protocol::Anthropic));
    assert_eq!(cc.model_env().map(EnvName::as_str), Some("ANTHROPIC_MODEL"));
    assert_eq!(r.runtime("codex").and_then(Runtime::model_env), None);
    assert_eq!(r.provider("MINIMAX").map(Provider::id), Some("minimax"), "ids match case-insensitively");
    let mm = r.provider("minimax").unwrap();
    assert_eq!(mm.base_url(), Some("https://api.minimax.io/anthropic"));
    assert!(mm.accepts_credential("MINIMAX_API_KEY") && !mm.accepts_credential("CLAUDE_CODE_OAUTH_TOKEN"));
    assert!(mm.supports("claude-code") && !mm.supports("codex"));
    assert_eq!(mm.runtimes(), ["claude-code"]);
    assert_eq!(mm.longest_prefix_match("MiniMax-M2.7"), Some(8));
    assert_eq!(mm.longest_prefix_match("minimax-m2"), None, "prefixes are case-sensitive");
    assert!(mm.upstreams().is_empty());
    assert_eq!(r.llm_credentials().count(), 11);
    assert_eq!(r.runtimes().count(), 3);
    assert_eq!(Protocol::Openai.proxy_path(), "/openai/v1");
    assert_eq!((Protocol::Anthropic.as_str(), Protocol::Openai.as_str()), ("anthropic", "openai"));
    assert_eq!(Protocol::Anthropic.proxy_path(), "/anthropic");
}

#[test]
fn yaml_syntax_and_unknown_fields_are_located() {
    let errs = errors("runtimes: [\n");
    assert_eq!(errs[0].file, "providers.yaml");
    assert!(errs[0].line >= 1);
    let errs = errors(&format!(
        "{RUNTIMES}providers:\n  - id: a\n    runtimes: [codex]\n    auth_env: [K]\n    colour: blue\n"
    ));
    assert_eq!(errs[0].line, 8, "{}", errs[0]);
    assert!(errs[0].message.contains("colour"), "{}", errs[0]);
    assert!(errs[0].to_string().starts_with("providers.yaml:8:"), "{}", errs[0]);
}

#[test]
fn unknown_runtime_in_a_provider() {
    assert_error(
        "providers:\n  - {id: a, runtimes: [cursor], auth_env: [K]}\n",
        5,
        "providers[0].runtimes[0]",
        "unknown runtime `cursor`",
    );
}

#[test]
fn duplicate_provider_id() {
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K]}\n  - {id: A, runtimes: [codex], auth_env: [K]}\n",
        6,
        "providers[1].id",
        "duplicate provider id `A` (first defined on line 5",
    );
}

#[test]
fn platform_model_without_upstream_or_price() {
    let head = "providers:\n  - id: platform\n    platform: true\n    runtimes: [codex]\n    upstreams: {openai: {url: \"https://api.openai.com\", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}}\n    models:\n";
    assert_error(
        &format!("{head}      - {{id: platform/x, upstream_model: gpt-5, price: {{input: 1, output: 2}}}}\n"),
        10,
        "providers[0].models[0].upstream",
        "has no upstream",
    );
    assert_error(
        &format!("{head}      - {{id: platform/x, upstream: openai, upstream_model: gpt-5}}\n"),
        10,
        "providers[0].models[0].price",
        "has no price",
    );
    assert_error(
        &format!("{head}      - {{id: platform/x, upstream: openai, price: {{input: 1, output: 2}}}}\n"),
        10,
        "providers[0].models[0].upstream_model",
        "no upstream_model",
    );
    assert_error(
        &format!(
            "{head}      - {{id: platform/x, upstream: nope, upstream_model: m, price: {{input: 1, output: 2}}}}\n"
        ),
        10,
        "providers[0].models[0].upstream",
        "unknown upstream `nope`",
    );
    assert_error(&format!("{head}      - platform/x\n"), 10, "providers[0].models[0]", "needs an upstream");
    assert_error(
        &format!(
            "{head}      - {{id: platform/x, upstream: openai, upstream_model: m, price: {{input: -1, output: 2}}}}\n"
        ),
        10,
        "providers[0].models[0].price.input",
        "at least 0",
    );
    assert_error(
        &format!(
            "{head}      - {{id: platform/x, upstream: openai, upstream_model: m, price: {{input: 1, output: 0.0000001}}}}\n"
        ),
        10,
        "providers[0].models[0].price.output",
        "6 decimal places",
    );
    assert_error(
        &format!(
            "{head}      - {{id: platform/x, upstream: openai, upstream_model: m, price: {{input: 1, output: 2}}, context_window: 0}}\n"
        ),
        10,
        "providers[0].models[0].context_window",
        "positive",
    );
    // Cache prices default to the input price: never under-charge.
    let ok = Registry::parse("p.yaml", &format!("{RUNTIMES}{head}      - {{id: platform/x, upstream: openai, upstream_model: m, price: {{input: 2, output: 3}}}}\n")).unwrap();
    let price = *ok.platform_model("platform/x").unwrap().0.price().base();
    assert_eq!((price.cache_write.get(), price.cache_read.get()), (2_000_000, 2_000_000));
    assert_eq!(price.cache_write_1h.get(), 2_000_000, "a 1-hour write costs at least a 5-minute one");
}

/// Tiers and service tiers parse, and each of their problems names its field and line.
#[test]
fn price_tiers_and_service_tiers() {
    let head = "providers:\n  - id: platform\n    platform: true\n    runtimes: [codex]\n    upstreams: {openai: {url: \"https://x\", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}}\n    models:\n";
    let model = |price: &str| {
        format!("{head}      - id: m\n        upstream: openai\n        upstream_model: m\n        price:\n{price}")
    };
    let ok = Registry::parse(
        "p.yaml",
        &format!(
            "{RUNTIMES}{}",
            model("          input: 3\n          output: 15\n          cache_write_1h: 6\n          tiers:\n            - {above_input_tokens: 200000, input: 6, output: 22.5}\n          service_tiers: {priority: {input: 5, output: 30}}\n")
        ),
    )
    .unwrap();
    let pricing = ok.platform_model("m").unwrap().0.price().clone();
    assert_eq!(pricing.base().cache_write_1h.get(), 6_000_000);
    assert_eq!(pricing.base().cache_write.get(), 3_000_000);
    assert_eq!(pricing.tiers()[0].above_input_tokens, 200_000);
    assert_eq!(pricing.tiers()[0].price.output.get(), 22_500_000);
    let priority = pricing.service_tiers()[&crate::money::ServiceTier::Priority];
    assert_eq!((priority.input.get(), priority.cache_read.get()), (5_000_000, 5_000_000));

    // Line 18 is the second tier's own line.
    assert_error(
        &model(
            "          input: 3\n          output: 15\n          tiers:\n            - {above_input_tokens: 200000, input: 6, output: 22.5}\n            - {above_input_tokens: 100000, input: 6, output: 22.5}\n",
        ),
        18,
        "providers[0].models[0].price.tiers[1].above_input_tokens",
        "increasing",
    );
    assert_error(
        &model(
            "          input: 3\n          output: 15\n          tiers:\n            - {above_input_tokens: 0, input: 6, output: 22.5}\n",
        ),
        17,
        "providers[0].models[0].price.tiers[0].above_input_tokens",
        "positive",
    );
    assert_error(
        &model(
            "          input: 3\n          output: 15\n          tiers:\n            - {above_input_tokens: 10, input: 6, output: 22.5, cache_write_1h: -2}\n",
        ),
        17,
        "providers[0].models[0].price.tiers[0].cache_write_1h",
        "at least 0",
    );
    assert_error(
        &model(
            "          input: 3\n          output: 15\n          service_tiers:\n            scale: {input: 1, output: 1}\n",
        ),
        17,
        "providers[0].models[0].price.service_tiers.scale",
        "unknown service tier `scale`: use one of priority, flex",
    );
    assert_error(
        &model(
            "          input: 3\n          output: 15\n          service_tiers:\n            priority: {input: 1, output: 0.00000001}\n",
        ),
        17,
        "providers[0].models[0].price.service_tiers.priority.output",
        "6 decimal places",
    );
}

/// The shipped registry prices 1-hour writes on every Anthropic model, Sonnet's long context
/// and OpenAI's service tiers.
#[test]
fn shipped_prices_carry_one_hour_writes_and_tiers() {
    let r = Registry::embedded().unwrap();
    for id in ["platform/opus", "platform/sonnet", "platform/haiku"] {
        let base = *r.platform_model(id).unwrap().0.price().base();
        assert_eq!(base.cache_write_1h.get(), 2 * base.input.get(), "{id}: 1-hour writes are 2x input");
        assert_eq!(base.cache_write.get() * 4, base.input.get() * 5, "{id}: 5-minute writes are 1.25x input");
    }
    let sonnet = r.platform_model("platform/sonnet").unwrap().0.price().clone();
    assert_eq!(sonnet.tiers().len(), 1);
    assert_eq!(sonnet.tiers()[0].price.input.get(), 2 * sonnet.base().input.get());
    for id in ["platform/gpt", "platform/gpt-mini"] {
        let p = r.platform_model(id).unwrap().0.price().clone();
        let priority = p.service_tiers()[&crate::money::ServiceTier::Priority];
        assert!(priority.output > p.base().output, "{id}: priority is dearer");
    }
}

#[test]
fn invalid_auth_env_name() {
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [minimax_key]}\n",
        5,
        "providers[0].auth_env[0]",
        "lower-case",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [1KEY]}\n",
        5,
        "providers[0].auth_env[0]",
        "not a valid env name",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [OPENAI_BASE_URL]}\n",
        5,
        "providers[0].auth_env[0]",
        "routing name",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [ANTHROPIC_MODEL]}\n",
        5,
        "providers[0].auth_env[0]",
        "model_env",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [TOLLGATE_KEY]}\n",
        5,
        "providers[0].auth_env[0]",
        "cannot be a credential",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [LLM_PROVIDER]}\n",
        5,
        "providers[0].auth_env[0]",
        "cannot be a credential",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K, K]}\n",
        5,
        "providers[0].auth_env[1]",
        "listed twice",
    );
    assert_error("providers:\n  - {id: a, runtimes: [codex]}\n", 5, "providers[0].auth_env", "at least one auth_env");
}

#[test]
fn two_platform_providers() {
    let p = |id: &str| {
        format!(
            "  - id: {id}\n    platform: true\n    runtimes: [codex]\n    upstreams: {{openai: {{url: \"https://x\", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}}}}\n    models: [{{id: m-{id}, upstream: openai, upstream_model: m, price: {{input: 1, output: 1}}}}]\n"
        )
    };
    assert_error(
        &format!("providers:\n{}{}", p("one"), p("two")),
        10,
        "providers[1].platform",
        "two providers are `platform: true`: `one` (line 5) and `two`",
    );
}

#[test]
fn platform_provider_rules() {
    let up = "    upstreams: {openai: {url: \"https://x\", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}}\n";
    assert_error(
        &format!("providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n{up}"),
        5,
        "providers[0].models",
        "serves no model",
    );
    assert_error(
        &format!(
            "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    auth_env: [K]\n{up}    models: [{{id: m, upstream: openai, upstream_model: m, price: {{input: 1, output: 1}}}}]\n"
        ),
        5,
        "providers[0].auth_env",
        "no auth_env",
    );
    assert_error(
        &format!(
            "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    base_url: \"https://x\"\n{up}    models: [{{id: m, upstream: openai, upstream_model: m, price: {{input: 1, output: 1}}}}]\n"
        ),
        8,
        "providers[0].base_url",
        "no base_url",
    );
    assert_error(
        "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {openai: {url: \"https://x\", key_env: OPENAI_KEY}}\n    models: [{id: m, upstream: openai, upstream_model: m, price: {input: 1, output: 1}}]\n",
        8,
        "providers[0].upstreams.openai.key_env",
        "TOLLGATE_",
    );
    assert_error(
        "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {openai: {url: \"ftp://x\", key_env: TOLLGATE_UPSTREAM_K}}\n    models: [{id: m, upstream: openai, upstream_model: m, price: {input: 1, output: 1}}]\n",
        8,
        "providers[0].upstreams.openai.url",
        "http",
    );
    assert_error(
        "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {gw: {url: \"https://x\", key_env: TOLLGATE_UPSTREAM_K}}\n    models: [{id: m, upstream: gw, upstream_model: m, price: {input: 1, output: 1}}]\n",
        8,
        "providers[0].upstreams.gw.protocol",
        "needs `protocol",
    );
    assert_error(
        "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {gw: {url: \"https://x\", key_env: TOLLGATE_UPSTREAM_K, protocol: grpc}}\n    models: [{id: m, upstream: gw, upstream_model: m, price: {input: 1, output: 1}}]\n",
        8,
        "providers[0].upstreams.gw.protocol",
        "unknown protocol",
    );
    // An upstream with an explicit protocol and a trailing slash is fine.
    let ok = Registry::parse("p.yaml", &format!("{RUNTIMES}providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {{gw: {{url: \"https://x/\", key_env: TOLLGATE_UPSTREAM_K, protocol: openai}}}}\n    models: [{{id: m, upstream: gw, upstream_model: m, price: {{input: 1, output: 1}}}}]\n")).unwrap();
    let (_, upstream) = ok.platform_model("m").unwrap();
    assert_eq!((upstream.url(), upstream.protocol()), ("https://x", Protocol::Openai));
}

#[test]
fn byok_provider_rules() {
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K], models: [{id: m, upstream: x, upstream_model: m, price: {input: 1, output: 1}}]}\n",
        5,
        "providers[0].models[0]",
        "only the platform provider",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K], upstreams: {openai: {url: \"https://x\", key_env: TOLLGATE_UPSTREAM_K}}}\n",
        5,
        "providers[0].upstreams",
        "only the platform provider",
    );
    for bad in ["api.example.com", "https://", "https:///path", "https://api.example.com/a b"] {
        assert_error(
            &format!("providers:\n  - {{id: a, runtimes: [codex], auth_env: [K], base_url: \"{bad}\"}}\n"),
            5,
            "providers[0].base_url",
            "http",
        );
    }
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K], models: [m, m]}\n",
        5,
        "providers[0].models[1].id",
        "listed twice",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K], models: [\"\"]}\n",
        5,
        "providers[0].models[0].id",
        "non-empty",
    );
    assert_error(
        "providers:\n  - {id: a, runtimes: [codex], auth_env: [K], model_prefixes: [\"\"]}\n",
        5,
        "providers[0].model_prefixes[0]",
        "every model",
    );
    assert_error(
        "providers:\n  - {id: Bad Id, runtimes: [codex], auth_env: [K]}\n",
        5,
        "providers[0].id",
        "not a valid provider id",
    );
    assert_error(
        "providers:\n  - {id: -lead, runtimes: [codex], auth_env: [K]}\n",
        5,
        "providers[0].id",
        "not a valid provider id",
    );
    let long = format!("providers:\n  - {{id: {}, runtimes: [codex], auth_env: [K]}}\n", "a".repeat(65));
    assert_error(&long, 5, "providers[0].id", "not a valid provider id");
    let max = format!("{RUNTIMES}providers:\n  - {{id: {}, runtimes: [codex], auth_env: [K]}}\n", "a".repeat(64));
    assert!(Registry::parse("ok.yaml", &max).is_ok());
    let odd = format!("{RUNTIMES}providers:\n  - {{id: 9a.b_c-d, runtimes: [codex], auth_env: [K]}}\n");
    assert!(Registry::parse("ok.yaml", &odd).is_ok());
    assert_error("providers:\n  - {id: a, auth_env: [K]}\n", 5, "providers[0].runtimes", "lists no runtimes");
    assert_error("providers: []\n", 4, "providers", "at least one provider");
}

#[test]
fn runtime_rules() {
    let errs = errors("runtimes: {}\nproviders: [{id: a, runtimes: [x], auth_env: [K]}]\n");
    assert!(
        errs.iter().any(|e| e.field == "runtimes" && e.message.contains("at least one runtime")),
        "{}",
        RegistryErrors(errs.clone())
    );
    let errs = errors(
        "runtimes:\n  rt: {protocol: grpc, base_url_env: B, token_env: T}\nproviders: [{id: a, runtimes: [rt], auth_env: [K]}]\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.line == 2 && e.field == "runtimes.rt.protocol" && e.message.contains("unknown protocol `grpc`"))
    );
    assert!(
        !errs.iter().any(|e| e.message.contains("unknown runtime")),
        "a runtime with a bad protocol is still known by name"
    );
    let errs = errors(
        "runtimes:\n  rt: {protocol: openai, base_url_env: b, token_env: T}\nproviders: [{id: a, runtimes: [rt], auth_env: [K]}]\n",
    );
    assert!(errs.iter().any(|e| e.field == "runtimes.rt.base_url_env" && e.message.contains("lower-case")));
    let errs = errors(
        "runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: B}\nproviders: [{id: a, runtimes: [rt], auth_env: [K]}]\n",
    );
    assert!(errs.iter().any(|e| e.field == "runtimes.rt.token_env" && e.message.contains("must differ")));
    let errs = errors(
        "runtimes:\n  rt: {protocol: openai, base_url_env: TOLLGATE_URL, token_env: T}\nproviders: [{id: a, runtimes: [rt], auth_env: [K]}]\n",
    );
    assert!(errs.iter().any(|e| e.field == "runtimes.rt.base_url_env" && e.message.contains("injects")));
    let errs = errors(
        "runtimes:\n  Rt: {protocol: openai, base_url_env: B, token_env: T}\nproviders: [{id: a, runtimes: [Rt], auth_env: [K]}]\n",
    );
    assert!(errs.iter().any(|e| e.field == "runtimes.Rt" && e.message.contains("runtime id")));
    let errs = errors(
        "runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T}\nllm_env: [X, X, b]\nproviders: [{id: a, runtimes: [rt], auth_env: [K]}]\n",
    );
    assert!(errs.iter().any(|e| e.field == "llm_env[1]" && e.message.contains("listed twice")));
    assert!(errs.iter().any(|e| e.field == "llm_env[2]"));
}

/// Found by the I1/I3 properties: a runtime name in two roles, or an injected name as
/// `model_env` or `key_env`, would let the plan overwrite the token or carry a key's name.
#[test]
fn names_have_one_role_and_never_an_injected_one() {
    let one = |runtimes: &str| errors(&format!("{runtimes}providers: [{{id: a, runtimes: [rt], auth_env: [K]}}]\n"));
    let errs = one("runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T, model_env: T}\n");
    assert!(
        errs.iter()
            .any(|e| e.field == "runtimes.rt.model_env" && e.message.contains("already the token_env of runtime rt")),
        "{}",
        RegistryErrors(errs.clone())
    );
    let errs = one(
        "runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T}\n  rt2: {protocol: openai, base_url_env: T, token_env: U}\n",
    );
    assert!(
        errs.iter().any(|e| e.field == "runtimes.rt2.base_url_env" && e.message.contains("already the token_env")),
        "{}",
        RegistryErrors(errs.clone())
    );
    let errs =
        one("runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T, model_env: TOLLGATE_UPSTREAM_X_KEY}\n");
    assert!(errs.iter().any(|e| e.field == "runtimes.rt.model_env" && e.message.contains("injects")));
    let errs = one("runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T, model_env: LLM_PROVIDER}\n");
    assert!(errs.iter().any(|e| e.field == "runtimes.rt.model_env"));
    let errs = one("runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T, context_window_env: T}\n");
    assert!(
        errs.iter().any(|e| e.field == "runtimes.rt.context_window_env" && e.message.contains("already the token_env")),
        "{}",
        RegistryErrors(errs.clone())
    );
    let errs = errors(
        "runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T, context_window_env: W}\nproviders: [{id: a, runtimes: [rt], auth_env: [W]}]\n",
    );
    assert!(
        errs.iter().any(|e| e.field == "providers[0].auth_env[0]" && e.message.contains("context_window_env")),
        "{}",
        RegistryErrors(errs.clone())
    );
    // Sharing a name in the same role across runtimes is fine (codex and openai-compatible do).
    assert!(Registry::parse("ok.yaml", "runtimes:\n  rt: {protocol: openai, base_url_env: B, token_env: T}\n  rt2: {protocol: openai, base_url_env: B, token_env: T}\nproviders: [{id: a, runtimes: [rt, rt2], auth_env: [K]}]\n").is_ok());
    for key_env in ["TOLLGATE_URL", "TOLLGATE_WORKSPACE_TOKEN", "TOLLGATE_KEY"] {
        assert_error(
            &format!(
                "providers:\n  - id: p\n    platform: true\n    runtimes: [codex]\n    upstreams: {{openai: {{url: \"https://x\", key_env: {key_env}}}}}\n    models: [{{id: m, upstream: openai, upstream_model: m, price: {{input: 1, output: 1}}}}]\n"
            ),
            8,
            "providers[0].upstreams.openai.key_env",
            "TOLLGATE_UPSTREAM_",
        );
    }
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let errs = errors(&format!(
        "{RUNTIMES}providers:\n  - {{id: a, runtimes: [nope], auth_env: [k]}}\n  - {{id: a, runtimes: [codex], auth_env: [K]}}\n"
    ));
    assert!(errs.len() >= 3, "{}", RegistryErrors(errs.clone()));
    assert!(errs.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
    let text = RegistryErrors(errs).to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
}

/// Names Tollgate injects or reads itself are never credentials, each of them.
#[test]
fn injected_names_are_never_credentials() {
    for name in ["TOLLGATE_URL", "LLM_PROVIDER", "LLM_BILLING_MODE", "MODEL"] {
        assert_error(
            &format!("providers:\n  - {{id: a, runtimes: [codex], auth_env: [{name}]}}\n"),
            5,
            "providers[0].auth_env[0]",
            "cannot be a credential",
        );
    }
}

/// A model that is neither a name nor a map says what was expected.
#[test]
fn a_model_of_the_wrong_shape_says_what_is_expected() {
    let errs =
        errors(&format!("{RUNTIMES}providers:\n  - {{id: a, runtimes: [codex], auth_env: [K], models: [[x]]}}\n"));
    assert!(
        errs.iter().any(|e| e.message.contains("a model name or {id, upstream, upstream_model, price}")),
        "{}",
        RegistryErrors(errs.clone())
    );
}
