//! Pricing fidelity end to end (DESIGN.md section 20): 1-hour cache writes, input-size tiers,
//! OpenAI's service tier and the org's markup, as the stand-in reports them and the ledger and
//! the credit record them.

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_policy::{Markup, Registry};
use tollgate_proxy::rewrite::estimate_input_tokens;
use tollgate_store::{Invalidation, OrgPatch};

use crate::App;

/// Round prices: base 1/2/3/5/0.5 micro-USD per token (input, output, 5-minute write, 1-hour
/// write, cache read), ten times that above 300 input tokens; OpenAI's priority tier 4/8/2.
const REGISTRY: &str = r#"
runtimes:
  claude-code: {protocol: anthropic, base_url_env: ANTHROPIC_BASE_URL, token_env: ANTHROPIC_AUTH_TOKEN, model_env: ANTHROPIC_MODEL}
  codex: {protocol: openai, base_url_env: OPENAI_BASE_URL, token_env: OPENAI_API_KEY}
providers:
  - id: platform
    platform: true
    runtimes: [claude-code, codex]
    model_prefixes: ["platform/"]
    models:
      - id: platform/priced
        upstream: anthropic
        upstream_model: stub-sonnet
        price:
          input: 1
          output: 2
          cache_write: 3
          cache_write_1h: 5
          cache_read: 0.5
          tiers:
            - {above_input_tokens: 300, input: 10, output: 20, cache_write: 30, cache_write_1h: 50, cache_read: 5}
      - id: platform/gpt
        upstream: openai
        upstream_model: stub-gpt
        price: {input: 1, output: 2, cache_read: 0.5, service_tiers: {priority: {input: 4, output: 8, cache_read: 2}}}
    upstreams:
      anthropic: {url: "https://api.anthropic.invalid", key_env: TOLLGATE_UPSTREAM_ANTHROPIC_KEY}
      openai: {url: "https://api.openai.invalid", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}
"#;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::parse("pricing.yaml", REGISTRY).unwrap())
}

/// 10 uncached input tokens, 20 written for 5 minutes, 30 for an hour (the stand-in counts 4
/// bytes a token); 10 output tokens.
fn cached_turn(stream: bool) -> Value {
    json!({
        "model": "platform/priced",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "u".repeat(40)},
            {"type": "text", "text": "v".repeat(80), "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "w".repeat(120), "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ]}]
    })
}

/// 10 x 1 + 10 x 2 + 20 x 3 + 30 x 5 micro-USD.
const CACHED_TURN_COST: i64 = 10 + 20 + 60 + 150;

async fn set_markup(app: &App, percent: i64) {
    let patch = OrgPatch { markup_percent: Some(Markup::try_from(percent).unwrap()), ..OrgPatch::default() };
    app.store.update_org(&app.org, &patch).await.unwrap();
    app.store.publish_invalidation(&Invalidation::Org(app.org.clone())).await.unwrap();
}

#[tokio::test]
async fn one_hour_cache_writes_are_charged_at_their_rate_streaming_or_not() {
    let app = App::with_registry(1_000_000, registry()).await;
    let (_, token) = app.workspace("claude-code", "platform/priced").await;
    for (n, stream) in [(1, false), (2, true)] {
        let r = app.post("/anthropic/v1/messages", &token, cached_turn(stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
        let u = app.settled(n).await;
        assert_eq!((u.cache_write_tokens, u.cache_write_1h_tokens), (50 * n, 30 * n), "stream: {stream}");
        assert_eq!((u.cost_micros, u.provider_cost_micros), (CACHED_TURN_COST * n, CACHED_TURN_COST * n));
    }
    assert_eq!(app.credit().await, 1_000_000 - 2 * CACHED_TURN_COST);
}

#[tokio::test]
async fn a_long_prompt_is_priced_whole_at_its_tier() {
    let app = App::with_registry(1_000_000, registry()).await;
    let (_, token) = app.workspace("claude-code", "platform/priced").await;
    // 400 input tokens: above the 300 threshold.
    let body = json!({"model": "platform/priced", "max_tokens": 50, "messages": [{"role": "user", "content": "x".repeat(1600)}]});
    let r = app.post("/anthropic/v1/messages", &token, body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let usage: Value = r.json::<Value>().await.unwrap()["usage"].clone();
    assert_eq!((usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64()), (Some(400), Some(10)));
    assert_eq!(app.settled(1).await.cost_micros, 400 * 10 + 10 * 20);
}

#[tokio::test]
async fn openai_priority_is_charged_at_its_service_tier() {
    let app = App::with_registry(1_000_000, registry()).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    let mut spent = 0;
    for (n, tier, stream, rates) in
        [(1, "priority", false, (4, 8)), (2, "priority", true, (4, 8)), (3, "auto", false, (1, 2))]
    {
        let mut body = crate::chat("platform/gpt", stream, None);
        body["service_tier"] = json!(tier);
        let r = app.post("/openai/v1/chat/completions", &token, body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
        let seen = &app.upstream.requests()[n - 1];
        // The stand-in's counts: 4 bytes of message a token, the reply's 8 words.
        let prompt = i64::try_from(seen.body["messages"][0]["content"].as_str().unwrap().len() / 4).unwrap();
        spent += prompt * rates.0 + 8 * rates.1;
        assert_eq!(app.settled(i64::try_from(n).unwrap()).await.cost_micros, spent, "{tier}, stream: {stream}");
    }
}

#[tokio::test]
async fn the_org_is_charged_its_markup_and_the_ledger_keeps_the_providers_price() {
    let app = App::with_registry(1_000_000, registry()).await;
    let (_, token) = app.workspace("claude-code", "platform/priced").await;
    set_markup(&app, 25).await;
    let r = app.post("/anthropic/v1/messages", &token, cached_turn(true)).send().await.unwrap();
    let _ = r.bytes().await.unwrap();
    let u = app.settled(1).await;
    assert_eq!((u.provider_cost_micros, u.cost_micros), (CACHED_TURN_COST, 300), "240 x 1.25");
    assert_eq!(app.credit().await, 1_000_000 - 300, "credit counts what the org is charged");
    set_markup(&app, -50).await;
    // A token not yet seen, so that no cached authorisation predates the change (the
    // invalidation reaches the proxy's cache asynchronously).
    let (_, token) = app.workspace("claude-code", "platform/priced").await;
    let r = app.post("/anthropic/v1/messages", &token, cached_turn(false)).send().await.unwrap();
    let _ = r.bytes().await.unwrap();
    let u = app.settled(2).await;
    assert_eq!((u.provider_cost_micros, u.cost_micros), (2 * CACHED_TURN_COST, 300 + 120));
    assert_eq!(app.credit().await, 1_000_000 - 420);
}

/// The reservation is the policy's worst case with the org's markup, over the tiers the
/// request's input could reach: one micro-USD less credit is a 402 that never reaches the
/// upstream.
#[tokio::test]
async fn the_reservation_covers_the_dearest_reachable_rates_and_the_markup() {
    let body = cached_turn(false);
    let input = estimate_input_tokens(serde_json::to_vec(&body).unwrap().len());
    assert!(input > 300, "the estimate reaches the long-context tier");
    let markup = Markup::try_from(100).unwrap();
    let pricing = registry().platform_model("platform/priced").unwrap().0.price().clone();
    let worst = pricing.worst_case(input, 50, markup).get();
    // The dearest input-side rate of the tier (the 1-hour write, 50) and its output rate (20),
    // doubled.
    assert_eq!(worst, 2 * (i64::try_from(input).unwrap() * 50 + 50 * 20));
    for (credit, admitted) in [(worst - 1, false), (worst, true)] {
        let app = App::with_registry(credit, registry()).await;
        let (_, token) = app.workspace("claude-code", "platform/priced").await;
        set_markup(&app, 100).await;
        let r = app.post("/anthropic/v1/messages", &token, body.clone()).send().await.unwrap();
        assert_eq!(r.status() == 200, admitted, "credit {credit}: {}", r.status());
        assert_eq!(app.upstream.requests().len(), usize::from(admitted));
        let _ = r.bytes().await.unwrap();
        let u = app.settled(1).await;
        if admitted {
            assert_eq!(u.cost_micros, 2 * CACHED_TURN_COST);
        }
    }
}

#[tokio::test]
async fn a_responses_call_served_at_priority_is_charged_at_its_service_tier() {
    let app = App::with_registry(1_000_000, registry()).await;
    let (_, token) = app.workspace("codex", "platform/gpt").await;
    for (n, stream) in [(1, false), (2, true)] {
        let body = json!({"model": "platform/gpt", "input": "hello", "stream": stream, "service_tier": "priority"});
        let r = app.post("/openai/v1/responses", &token, body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await.unwrap();
        // The stand-in: 1 input token ("hello" is 5 bytes), its 10-word reply; at 4 and 8.
        assert_eq!(app.settled(n).await.cost_micros, n * (4 + 10 * 8), "stream: {stream}");
    }
}
