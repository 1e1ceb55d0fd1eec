//! `resolve` + env plan for a workspace with 30 secrets against the default registry.
//!
//! Run: `cargo bench -p tollgate-policy --bench resolve`. Target: under 5 µs per workspace.
#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_policy::resolve::{Context, OrgSpec, PublicUrl, WorkspaceKind, WorkspaceSpec, resolve};
use tollgate_policy::secret::{MergedSecrets, SecretState, SecretValue};
use tollgate_policy::{Registry, SecretName, WorkspaceToken};

fn secrets(llm: &[(&str, bool)]) -> MergedSecrets {
    let value = |v: &str| SecretState::Value(SecretValue::parse(v).unwrap());
    let mut org = Vec::new();
    let mut ws = Vec::new();
    // 30 secrets in all: the LLM credentials given, the rest ordinary names, half org, half workspace.
    for (name, is_org) in llm {
        let entry = (SecretName::parse(name).unwrap(), value("credential-value-0123456789abcdef"));
        if *is_org { org.push(entry) } else { ws.push(entry) }
    }
    for i in 0..(30 - llm.len()) {
        let entry =
            (SecretName::parse(&format!("APP_SETTING_{i:02}")).unwrap(), value("some-ordinary-configuration-value"));
        if i % 2 == 0 { org.push(entry) } else { ws.push(entry) }
    }
    MergedSecrets::merge(org, ws)
}

fn bench(c: &mut Criterion) {
    let registry = Registry::embedded().unwrap();
    let url = PublicUrl::parse("https://tollgate.example.com").unwrap();
    let ctx = Context { registry: &registry, public_url: &url };
    let org = OrgSpec::default();
    let token = WorkspaceToken::mint(|b| b.fill(9));
    let ws = |model: &str| WorkspaceSpec {
        id: "0f8e2c1a-7d4b-4c55-9a0e-3b2f6d1e8c77".into(),
        runtime: "claude-code".into(),
        kind: WorkspaceKind::Agent,
        model: Some(model.into()),
        billing_mode: None,
    };
    let cases = [
        (
            "byok_minimax_stray_oauth",
            ws("MiniMax-M2.7"),
            secrets(&[("CLAUDE_CODE_OAUTH_TOKEN", true), ("MINIMAX_API_KEY", false), ("GEMINI_API_KEY", true)]),
        ),
        (
            "platform_managed",
            ws("platform/sonnet"),
            secrets(&[("CLAUDE_CODE_OAUTH_TOKEN", true), ("ANTHROPIC_API_KEY", true), ("ANTHROPIC_BASE_URL", false)]),
        ),
        (
            "byok_prefix_tie",
            ws("claude-sonnet-4-5"),
            secrets(&[("ANTHROPIC_API_KEY", false), ("OPENAI_API_KEY", true)]),
        ),
    ];
    let mut group = c.benchmark_group("resolve_30_secrets");
    for (name, workspace, merged) in &cases {
        group.bench_function(format!("{name}/resolve+plan"), |b| {
            b.iter(|| black_box(resolve(&ctx, black_box(workspace), &org, black_box(merged), None)));
        });
        group.bench_function(format!("{name}/resolve+plan+render"), |b| {
            b.iter(|| {
                let r = resolve(&ctx, black_box(workspace), &org, black_box(merged), None);
                black_box(r.plan().map(|p| p.render(&token)))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
