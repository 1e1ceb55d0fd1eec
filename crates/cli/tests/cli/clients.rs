//! Real clients through a real `tollgate serve` to the stand-in upstream: the Anthropic and
//! OpenAI Python SDKs (Chat Completions and Responses), the Claude Code CLI and the Codex CLI,
//! installed under `target/test-clients` by
//! `scripts/install-test-clients` (pinned versions; `.ci/run` runs it). Missing clients fail
//! the tests, never skip them.
//!
//! Each test starts its own stack: the stand-in upstream in process (so that it can read what
//! the upstream received), `tollgate serve` as a process pointed at it with distinctive
//! platform keys, an org with credit, and platform-managed workspaces provisioned through
//! `tollgate admin --json`. After the client has run, every request the upstream saw must carry
//! the platform key and never the workspace token, name the registry's `upstream_model`, and the
//! org's ledger and credit must have moved by exactly what the stand-in's usage costs at the
//! registry's prices. That usage is recomputed here from the request bodies the upstream
//! received, with the formulas of the stand-in's crate docs, and must also be what the client
//! itself reported.
//!
//! What Claude Code 2.1.330 sends for `claude -p` (found with these tests): one streaming
//! `POST /v1/messages?beta=true` with the model of `ANTHROPIC_MODEL` and `max_tokens` 32000, an
//! `anthropic-beta` list starting with `claude-code-20250219`, no `count_tokens` call and no
//! small/fast (haiku) request, so no `ANTHROPIC_SMALL_FAST_MODEL` or
//! `ANTHROPIC_DEFAULT_HAIKU_MODEL` pin is needed. It authenticates with `Authorization: Bearer`
//! from `ANTHROPIC_AUTH_TOKEN` (the provisioned plan) or `x-api-key` from `ANTHROPIC_API_KEY`.
//! It warns on stderr that it does not know `platform/sonnet` and assumes a 1M-token context
//! window (`CLAUDE_CODE_MAX_CONTEXT_TOKENS` silences that). The Anthropic Python SDK 2.12 sends
//! its `api_key` as `Authorization: Bearer`, not `x-api-key`: the proxy's `x-api-key` path is
//! exercised by the second Claude Code run.
//!
//! Claude Code's other call to its base URL, seen in the server's request log when nonessential
//! traffic is not disabled: `HEAD /anthropic/api/hello` at start, a connectivity probe the
//! proxy answers 200. No `GET /v1/models`, not even for `/model` in an interactive session.
//!
//! What Codex 0.169.0 sends for `codex exec` (see docs/codex.md): one streaming
//! `POST {base_url}/responses` per turn, its system prompt as `developer` messages in `input`,
//! `store: false`, `reasoning: {"summary": "auto"}`, no `max_output_tokens`, the token of its
//! provider's `env_key` as `Authorization: Bearer`; it ignores `OPENAI_BASE_URL` and
//! `OPENAI_API_KEY` when its configuration names a provider.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_upstream::{REASONING_TOKENS, REPLY, REPLY_WORDS, Recorded};

pub(crate) use tollgate_testkit::cli_app::CREDIT;
pub(crate) use tollgate_testkit::cli_app::{ADMIN_TOKEN, Stack};
use tollgate_testkit::cli_app::{ANTHROPIC_KEY, OPENAI_KEY};

/// The longest one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

// ---- the installed clients -------------------------------------------------------------------

fn clients_root() -> PathBuf {
    crate::repo_root().join("target/test-clients")
}

fn installed(relative: &str) -> PathBuf {
    let path = clients_root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: the real-client tests need the clients installed; run scripts/install-test-clients \
         (it creates target/test-clients/venv with the anthropic and openai SDKs and installs Claude Code \
         and Codex under target/test-clients/node)",
        path.display()
    );
    path
}

pub(crate) fn python() -> PathBuf {
    installed("venv/bin/python")
}

pub(crate) fn claude() -> PathBuf {
    installed("node/node_modules/.bin/claude")
}

pub(crate) fn codex() -> PathBuf {
    installed("node/node_modules/.bin/codex")
}

pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name)
}

/// A fresh, empty directory for a client's `HOME`.
pub(crate) fn temp_home(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tollgate-clients-home-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A clean environment: `PATH` and `HOME` only, then `vars`.
pub(crate) fn clean_command(program: &Path, home: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("HOME", home);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    // Run in the empty home: Claude Code reads its working directory (git status, CLAUDE.md).
    cmd.current_dir(home).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to completion, killing it after [`CLIENT_TIMEOUT`].
pub(crate) fn run(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{what} did not finish within {CLIENT_TIMEOUT:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Runs the client `cmd` (set up by [`clean_command`] in `home`, removed afterwards) against
/// `stack`; it must exit 0, or the failure shows its output and what the upstream saw. Its
/// stdout, stderr, and every request the upstream has seen by then.
pub(crate) fn run_client(stack: &Stack, cmd: Command, home: &Path, what: &str) -> (String, String, Vec<Recorded>) {
    let out = run(cmd, what);
    let _ = std::fs::remove_dir_all(home);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let seen = stack.upstream.requests();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}\nupstream saw {:#?}",
        out.status,
        summary(&seen)
    );
    (stdout, stderr, seen)
}

/// Runs a client script with the venv's interpreter; its stdout is one JSON object.
fn run_python(name: &str, base_url: &str, token: &str, model: &str) -> Value {
    run_python_with(name, base_url, token, model, &[])
}

/// [`run_python`] with more variables in the client's environment (e.g. `SSL_CERT_FILE`).
pub(crate) fn run_python_with(name: &str, base_url: &str, token: &str, model: &str, vars: &[(&str, &str)]) -> Value {
    let home = temp_home(name);
    let mut all = vec![("CLIENT_BASE_URL", base_url), ("CLIENT_API_KEY", token), ("CLIENT_MODEL", model)];
    all.extend_from_slice(vars);
    let mut cmd = clean_command(&python(), &home, &all);
    cmd.arg(script(name));
    let out = run(cmd, name);
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{name} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

// ---- the stack's books: ledger, credit and metrics against what the upstream saw ---------------

/// The checks of a [`Stack`]'s books that need the stand-in's usage formulas.
pub(crate) trait Books {
    /// Checks every request the upstream saw (credentials, model) and that the ledger and the
    /// credit moved by exactly the cost of the stand-in's usage. Returns the total cost.
    fn check_upstream_and_ledger(&self, tokens: &[&str]) -> i64;
    /// Stops the server with SIGTERM and checks, in its database, that the graceful shutdown
    /// wrote every ledger row and gave every credit lease back: the balance alone is
    /// `CREDIT - total`.
    fn terminate_and_check_the_books(&mut self, total: i64);
}

impl Books for Stack {
    fn check_upstream_and_ledger(&self, tokens: &[&str]) -> i64 {
        let seen = self.upstream.requests();
        assert!(!seen.is_empty(), "the upstream saw no request");
        let mut expected: BTreeMap<String, Row> = BTreeMap::new();
        for r in &seen {
            check_credentials(r, tokens);
            let model = r.body["model"].as_str().unwrap_or_default().to_owned();
            let alias = alias_of(self, &model);
            let (upstream_model, price) = platform_model(self, &alias);
            assert_eq!(model, upstream_model);
            let usage = stand_in_usage(r);
            let row = expected.entry(alias).or_default();
            row.requests += 1;
            row.input_tokens += usage.input;
            row.output_tokens += usage.output;
            row.cache_write_tokens += usage.cache_write;
            row.cache_write_1h_tokens += usage.cache_write_1h;
            row.cache_read_tokens += usage.cache_read;
            row.cost_micros += usage.cost(price);
            // The org has no markup: it is charged the provider's price.
            row.provider_cost_micros += usage.cost(price);
        }
        let ledger = settled_usage(self, seen.len());
        assert_eq!(ledger, expected, "the ledger (left) against the stand-in's usage at the registry's prices (right)");
        let total: i64 = expected.values().map(|r| r.cost_micros).sum();
        assert_eq!(self.credit(), CREDIT - total, "the org's credit moved by exactly the cost");
        check_metrics(self, &expected, seen.len());
        total
    }

    fn terminate_and_check_the_books(&mut self, total: i64) {
        assert_eq!(self.terminate(), Some(0), "SIGTERM is a clean exit");
        let dir = self.data_dir();
        self.block_on(async {
            let key = tollgate_store::MasterKey::load(None, dir).unwrap();
            let url = format!("sqlite://{}", dir.join("tollgate.db").display());
            let store = tollgate_store::connect(&url, key).await.unwrap();
            assert_eq!(store.leased_credit(&self.org.parse().unwrap()).await.unwrap(), tollgate_policy::Micros::ZERO);
            assert_eq!(store.get_org(&self.org.parse().unwrap()).await.unwrap().credit_micros.get(), CREDIT - total);
        });
    }
}

/// The org's ledger by model, once `n` requests are in it and all of them are settled (an
/// unsettled row has no status yet and counts as an error until it is).
fn settled_usage(stack: &Stack, n: usize) -> BTreeMap<String, Row> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = stack.get(&format!("/admin/usage?org_id={}&group_by=model", stack.org));
        let rows: BTreeMap<String, Row> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), Row::from_json(r)))
            .collect();
        let requests: i64 = rows.values().map(|r| r.requests).sum();
        let errors: i64 = rows.values().map(|r| r.errors).sum();
        if requests == i64::try_from(n).unwrap() && errors == 0 {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the ledger did not settle to {n} requests without errors: {v}\nupstream saw: {:#?}",
            summary(&stack.upstream.requests())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The upstream model and base prices (input, output, 5-minute write, 1-hour write, cache
/// read) of a platform model of the default registry. The stand-in's small prompts reach no
/// input-size tier (checked in [`Tokens::cost`]), and no client here asks for a service tier.
fn platform_model(stack: &Stack, alias: &str) -> (String, Price) {
    let (m, _) = stack.registry().platform_model(alias).unwrap();
    let p = m.price().base();
    let first_tier = m.price().tiers().first().map_or(i64::MAX, |t| i64::try_from(t.above_input_tokens).unwrap());
    let rates = [p.input.get(), p.output.get(), p.cache_write.get(), p.cache_write_1h.get(), p.cache_read.get()];
    (m.upstream_model().to_owned(), Price { rates, first_tier })
}

/// A model's base rates in pico-USD per token, and the total input above which they no
/// longer apply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Price {
    rates: [u64; 5],
    first_tier: i64,
}

/// The platform alias whose `upstream_model` is `upstream_model`.
fn alias_of(stack: &Stack, upstream_model: &str) -> String {
    let registry = stack.registry();
    let platform = registry.platform().unwrap();
    let aliases: Vec<&str> = platform
        .models()
        .iter()
        .map(|m| m.id())
        .filter(|id| registry.platform_model(id).is_some_and(|(m, _)| m.upstream_model() == upstream_model))
        .collect();
    assert_eq!(
        aliases.len(),
        1,
        "the upstream saw `{upstream_model}`, which is not one platform model's upstream_model"
    );
    aliases[0].to_owned()
}

/// `/metrics` counts what the proxy did: every forwarded request in both latency
/// histograms (Prometheus histograms with buckets), and the tokens and cost the ledger has.
fn check_metrics(stack: &Stack, expected: &BTreeMap<String, Row>, forwarded: usize) {
    let text = stack.get_text("/metrics");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let n = f64::from(u32::try_from(forwarded).unwrap());
    for h in ["tollgate_proxy_added_latency_seconds", "tollgate_proxy_upstream_latency_seconds"] {
        assert_eq!(value(&format!("{h}_count")), n, "{h}: one observation per forwarded request");
        assert_eq!(value(&format!("{h}_bucket{{le=\"+Inf\"}}")), n, "{h} is a histogram with buckets");
        assert!(value(&format!("{h}_sum")) > 0.0);
    }
    let added_small = value("tollgate_proxy_added_latency_seconds_bucket{le=\"0.1\"}");
    assert!(added_small <= n);
    let sum = |f: fn(&Row) -> i64| -> f64 { f64::from(u32::try_from(expected.values().map(f).sum::<i64>()).unwrap()) };
    assert_eq!(value("tollgate_proxy_cost_micros_total"), sum(|r| r.cost_micros));
    assert_eq!(value("tollgate_proxy_tokens_total{kind=\"input\"}"), sum(|r| r.input_tokens));
    assert_eq!(value("tollgate_proxy_tokens_total{kind=\"output\"}"), sum(|r| r.output_tokens));
    assert_eq!(value("tollgate_proxy_tokens_total{kind=\"cache_read\"}"), sum(|r| r.cache_read_tokens));
    assert_eq!(value("tollgate_proxy_requests_total{status=\"200\"}"), n, "every forwarded request answered 200");
}

/// The platform key and only it; the workspace tokens nowhere, neither in a header nor in the
/// body.
fn check_credentials(r: &Recorded, tokens: &[&str]) {
    let anthropic = r.path.starts_with("/v1/messages");
    if anthropic {
        assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY), "{}", r.path);
        assert_eq!(r.header("authorization"), None, "{}", r.path);
        assert!(r.header("anthropic-version").is_some(), "anthropic-version is passed through");
    } else {
        assert!(["/v1/chat/completions", "/v1/responses"].contains(&r.path.as_str()), "{}", r.path);
        assert_eq!(r.header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
        assert_eq!(r.header("x-api-key"), None);
    }
    let body = r.body.to_string();
    for (name, value) in &r.headers {
        assert!(!value.contains("tg_ws_"), "header {name} carries a workspace token");
        for t in tokens {
            assert!(!value.contains(t), "header {name} carries the workspace token");
        }
    }
    assert!(!body.contains("tg_ws_"), "the body carries a workspace token");
}

// ---- the stand-in's usage, recomputed from what it received ----------------------------------

/// Token counts in the ledger's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    input: i64,
    output: i64,
    /// All cache writes, ...
    cache_write: i64,
    /// ... of which these with the 1-hour TTL.
    pub(crate) cache_write_1h: i64,
    pub(crate) cache_read: i64,
}

impl Tokens {
    /// `ceil(sum(tokens * pico-USD per token) / 1e6)` micro-USD, each cache write at its TTL's
    /// rate (DESIGN.md section 20).
    fn cost(&self, price: Price) -> i64 {
        assert!(self.input + self.cache_write + self.cache_read <= price.first_tier, "no tier is reached");
        let t = |n: i64| u128::try_from(n).unwrap();
        let [input, output, write_5m, write_1h, read] = price.rates.map(u128::from);
        let pico = t(self.input) * input
            + t(self.output) * output
            + t(self.cache_write - self.cache_write_1h) * write_5m
            + t(self.cache_write_1h) * write_1h
            + t(self.cache_read) * read;
        i64::try_from(pico.div_ceil(1_000_000)).unwrap()
    }
}

/// The text of a value per the stand-in's crate docs: (bytes, bytes under `cache_control`).
fn text(v: &Value) -> (i64, i64) {
    let (bytes, cached, _) = text_ttl(v);
    (bytes, cached)
}

/// [`text`], and the bytes under a `cache_control` with `"ttl": "1h"`.
fn text_ttl(v: &Value) -> (i64, i64, i64) {
    let add = |a: (i64, i64, i64), b: (i64, i64, i64)| (a.0 + b.0, a.1 + b.1, a.2 + b.2);
    match v {
        Value::String(s) => (i64::try_from(s.len()).unwrap(), 0, 0),
        Value::Array(items) => items.iter().map(text_ttl).fold((0, 0, 0), add),
        Value::Object(o) => {
            let (bytes, cached, hour) =
                ["text", "content"].iter().filter_map(|k| o.get(*k)).map(text_ttl).fold((0, 0, 0), add);
            let control = o.get("cache_control").filter(|c| !c.is_null());
            let one_hour = control.is_some_and(|c| c["ttl"] == "1h");
            (bytes, if control.is_some() { bytes } else { cached }, if one_hour { bytes } else { hour })
        }
        _ => (0, 0, 0),
    }
}

/// The usage the stand-in reports for the request `r` (its crate docs' "Token counts"); a
/// `count_tokens` call is free and meters nothing.
pub(crate) fn stand_in_usage(r: &Recorded) -> Tokens {
    let b = &r.body;
    let words = i64::try_from(REPLY_WORDS).unwrap();
    match r.path.as_str() {
        "/v1/messages" => {
            let (s, s_cached) = text(&b["system"]);
            let (m, m_cached, m_1h) = text_ttl(&b["messages"]);
            let m_1h = m_1h.min(m_cached);
            Tokens {
                input: ((s + m - s_cached - m_cached) / 4).max(1),
                output: b["max_tokens"].as_i64().unwrap().min(words),
                cache_write: (m_cached - m_1h) / 4 + m_1h / 4,
                cache_write_1h: m_1h / 4,
                cache_read: s_cached / 4,
            }
        }
        "/v1/messages/count_tokens" => Tokens::default(),
        "/v1/chat/completions" => {
            let limit = b["max_completion_tokens"].as_i64().or_else(|| b["max_tokens"].as_i64()).unwrap_or(words);
            Tokens { input: (text(&b["messages"]).0 / 4).max(1), output: limit.min(words), ..Tokens::default() }
        }
        "/v1/responses" => {
            let (instructions, input) = (text(&b["instructions"]).0, text(&b["input"]).0);
            let limit = b["max_output_tokens"].as_i64().unwrap_or(i64::MAX);
            let effort = b["reasoning"]["effort"].as_str();
            let reasons = effort.is_some_and(|e| e != "none" && e != "minimal");
            let reasoning = if reasons { i64::try_from(REASONING_TOKENS).unwrap().min(limit) } else { 0 };
            let total = ((instructions + input) / 4).max(1);
            let system_items = b["input"].as_array().map_or(0, |items| {
                let system = |i: &&Value| ["developer", "system"].contains(&i["role"].as_str().unwrap_or_default());
                items.iter().filter(system).map(|i| text(i).0).sum()
            });
            let cached = (instructions + system_items) / 4;
            let output = reasoning + words.min(limit - reasoning);
            Tokens { input: total - cached, output, cache_read: cached, ..Tokens::default() }
        }
        other => panic!("the upstream saw an unexpected path {other}"),
    }
}

/// What `count_tokens` answers for the request `r`.
fn stand_in_count(r: &Recorded) -> i64 {
    ((text(&r.body["system"]).0 + text(&r.body["messages"]).0) / 4).max(1)
}

/// One ledger row (the key aside).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Row {
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_write_tokens: i64,
    cache_write_1h_tokens: i64,
    cache_read_tokens: i64,
    provider_cost_micros: i64,
    cost_micros: i64,
}

impl Row {
    fn from_json(v: &Value) -> Row {
        let f = |k: &str| v[k].as_i64().unwrap();
        Row {
            requests: f("requests"),
            errors: f("errors"),
            input_tokens: f("input_tokens"),
            output_tokens: f("output_tokens"),
            cache_write_tokens: f("cache_write_tokens"),
            cache_write_1h_tokens: f("cache_write_1h_tokens"),
            cache_read_tokens: f("cache_read_tokens"),
            provider_cost_micros: f("provider_cost_micros"),
            cost_micros: f("cost_micros"),
        }
    }
}

/// Path, query, model and stream flag of each request, for failure messages.
pub(crate) fn summary(seen: &[Recorded]) -> Vec<String> {
    seen.iter()
        .map(|r| {
            format!(
                "{} {}?{} model={} stream={}",
                r.method,
                r.path,
                r.query.as_deref().unwrap_or(""),
                r.body["model"],
                r.body["stream"]
            )
        })
        .collect()
}

fn anthropic_usage(t: Tokens) -> Value {
    json!({
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cache_read,
    })
}

fn openai_usage(t: Tokens) -> Value {
    json!({
        "prompt_tokens": t.input,
        "completion_tokens": t.output,
        "total_tokens": t.input + t.output,
        "cached_tokens": 0,
    })
}

/// A variable of a provisioned plan.
///
/// The plan's base URLs are the server's public URL plus the proxy's path, but with
/// `--listen 127.0.0.1:0` and no `--public-url`, `serve` derives the public URL from the
/// configured address before it binds, so the plan says port 0. The tests check the path of
/// those URLs and give the clients the bound address.
fn plan<'a>(env: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    env.get(name).unwrap_or_else(|| panic!("the plan has no {name}: {env:?}"))
}

/// The first `n` words of the stand-in's reply.
fn reply_words(n: usize) -> String {
    REPLY.split(' ').take(n).collect::<Vec<_>>().join(" ")
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn anthropic_python_sdk_create_stream_and_count_tokens() {
    python();
    let stack = Stack::start(crate::bin(), "anthropic-sdk");
    let (token, _) = stack.workspace("sdk", "claude-code", "platform/sonnet");
    let out = run_python("anthropic_sdk.py", &format!("{}/anthropic", stack.url()), &token, "platform/sonnet");

    let seen = stack.upstream.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/messages", "/v1/messages", "/v1/messages/count_tokens"], "{:#?}", summary(&seen));
    assert_eq!(seen[1].body["stream"], true);
    let (upstream_model, _) = platform_model(&stack, "platform/sonnet");
    assert_eq!(upstream_model, "claude-sonnet-4-5");

    // Non-streaming: the full reply, every kind of token (the script caches its system prompt
    // and its newest turn), and what the SDK read is what the stand-in computed.
    let create = &out["create"];
    assert_eq!(create["text"], REPLY);
    assert_eq!(create["stop_reason"], "end_turn");
    let created = stand_in_usage(&seen[0]);
    assert!(created.input > 0 && created.cache_write > 0 && created.cache_read > 0, "{created:?}");
    assert_eq!(create["usage"], anthropic_usage(created));
    // Streaming through the `messages.stream` helper: max_tokens 4 cuts the reply.
    let stream = &out["stream"];
    assert_eq!(stream["text"], reply_words(4));
    assert_eq!(stream["text_stream"], reply_words(4));
    assert_eq!(stream["stop_reason"], "max_tokens");
    assert_eq!(stream["usage"], anthropic_usage(stand_in_usage(&seen[1])));
    // count_tokens answers and is free.
    assert_eq!(out["count_tokens"]["input_tokens"], stand_in_count(&seen[2]));
    // The model list: the platform's Anthropic models, answered by the proxy itself.
    let listed: Vec<&str> = out["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(listed.contains(&"platform/sonnet") && !listed.contains(&"platform/gpt"), "{listed:?}");
    assert!(out["models"].as_array().unwrap().iter().all(|m| m["type"] == "model"));

    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
}

#[test]
fn openai_python_sdk_create_and_streams_with_and_without_usage() {
    python();
    let stack = Stack::start(crate::bin(), "openai-sdk");
    let (token, env) = stack.workspace("codex", "codex", "platform/gpt");
    let base = format!("{}/openai/v1", stack.url());
    assert!(plan(&env, "OPENAI_BASE_URL").ends_with("/openai/v1"), "{env:?}");
    assert_eq!(plan(&env, "OPENAI_API_KEY"), token);
    let out = run_python("openai_sdk.py", &base, &token, "platform/gpt");

    let seen = stack.upstream.requests();
    assert_eq!(seen.len(), 3, "{:#?}", summary(&seen));
    assert!(seen.iter().all(|r| r.path == "/v1/chat/completions"));
    assert_eq!(platform_model(&stack, "platform/gpt").0, "gpt-5");

    let create = &out["create"];
    assert_eq!(create["text"], reply_words(7), "max_completion_tokens 7 cuts the reply");
    assert_eq!(create["finish_reason"], "length");
    assert_eq!(create["usage"], openai_usage(stand_in_usage(&seen[0])));

    // No stream_options: the proxy asked the upstream for usage (to meter it) and hid the
    // usage chunk from the client, which sees the stream it asked for.
    assert_eq!(seen[1].body["stream_options"]["include_usage"], true, "the proxy requested usage");
    let plain = &out["stream_plain"];
    assert_eq!(plain["text"], REPLY);
    assert_eq!(plain["finish_reasons"], json!(["stop"]));
    assert_eq!(plain["usage_chunks"], json!([]), "the client saw the usage chunk it did not ask for: {plain}");
    assert_eq!(plain["empty_choice_chunks"], 0, "{plain}");
    // include_usage: the client sees the usage chunk, with the stand-in's numbers.
    let with_usage = &out["stream_include_usage"];
    assert_eq!(with_usage["text"], REPLY);
    assert_eq!(with_usage["usage_chunks"], json!([openai_usage(stand_in_usage(&seen[2]))]), "{with_usage}");
    assert_eq!(with_usage["empty_choice_chunks"], 1);

    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
}

#[test]
fn openai_python_sdk_responses_create_and_stream() {
    python();
    let stack = Stack::start(crate::bin(), "openai-responses");
    let (token, _) = stack.workspace("codex", "codex", "platform/gpt");
    let out = run_python("openai_responses.py", &format!("{}/openai/v1", stack.url()), &token, "platform/gpt");

    let seen = stack.upstream.requests();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/responses", "/v1/responses"], "{:#?}", summary(&seen));
    assert_eq!(seen[1].body["stream"], true);
    assert_eq!(seen[1].body.get("stream_options"), None, "nothing added to a Responses request");
    // The SDK's view: Responses usage counts cached tokens inside the input and reasoning
    // tokens inside the output; the ledger splits the cached tokens off.
    let seen_usage = |t: Tokens, reasoning: i64| json!({"input_tokens": t.input + t.cache_read, "cached_tokens": t.cache_read, "output_tokens": t.output, "reasoning_tokens": reasoning});
    let create = &out["create"];
    let reasoning = i64::try_from(REASONING_TOKENS).unwrap();
    assert_eq!((&create["status"], &create["incomplete_reason"]), (&json!("incomplete"), &json!("max_output_tokens")));
    assert_eq!(create["text"], reply_words(9 - 5), "max_output_tokens 9: 5 reasoning tokens, then 4 words");
    let created = stand_in_usage(&seen[0]);
    assert!(created.cache_read > 0 && created.input > 0, "{created:?}");
    assert_eq!(create["usage"], seen_usage(created, reasoning));
    let stream = &out["stream"];
    assert_eq!(stream["text"], REPLY);
    assert_eq!(stream["status"], "completed");
    let types = stream["types"].as_array().unwrap();
    assert_eq!((types.first(), types.last()), (Some(&json!("response.created")), Some(&json!("response.completed"))));
    assert_eq!(stream["usage"], seen_usage(stand_in_usage(&seen[1]), 0));
    let listed: Vec<&str> = out["models"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(listed.contains(&"platform/gpt") && !listed.contains(&"platform/sonnet"), "{listed:?}");

    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
}

/// The real Codex CLI with a platform-managed Codex configuration written by hand, as `tollgate
/// exec` is to write it (issue 10): the proxy's `/openai/v1`, the workspace token's variable,
/// the Responses wire API. A stray `OPENAI_API_KEY` and `OPENAI_BASE_URL` must not matter.
#[test]
fn codex_cli_through_the_proxy_is_billed_exactly() {
    let codex = codex();
    let stack = Stack::start(crate::bin(), "codex");
    let (token, _) = stack.workspace("codex", "codex", "platform/gpt");
    let home = temp_home("codex");
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        "model_provider = \"tollgate\"\nmodel = \"platform/gpt\"\n\n[model_providers.tollgate]\nname = \"Tollgate\"\n\
         base_url = \"{}/openai/v1\"\nenv_key = \"TOLLGATE_WORKSPACE_TOKEN\"\nwire_api = \"responses\"\n",
        stack.url()
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = clean_command(
        &codex,
        &home,
        &[
            ("CODEX_HOME", codex_home.to_str().unwrap()),
            ("TOLLGATE_WORKSPACE_TOKEN", &token),
            ("OPENAI_API_KEY", "sk-stray-inherited-key"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ],
    );
    cmd.args(["exec", "--skip-git-repo-check", "say hi"]);
    let (stdout, stderr, seen) = run_client(&stack, cmd, &home, "codex exec");
    assert_eq!(stdout.trim(), REPLY, "stderr:\n{stderr}");
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/responses"), "{:#?}", summary(&seen));
        assert_eq!(r.body["stream"], true, "Codex streams");
        assert!(r.headers.iter().all(|(_, v)| !v.contains("sk-stray")), "the stray key never reaches the upstream");
    }
    let usage = stand_in_usage(&seen[0]);
    assert!(usage.cache_read > 0, "Codex's developer messages are cache reads at the stand-in: {usage:?}");
    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
}

#[test]
fn claude_code_cli_prints_the_reply_and_is_billed_exactly() {
    let claude = claude();
    let mut stack = Stack::start(crate::bin(), "claude-code");
    let (token, env) = stack.workspace("claude", "claude-code", "platform/sonnet");
    assert!(plan(&env, "ANTHROPIC_BASE_URL").ends_with("/anthropic"), "{env:?}");
    let base = format!("{}/anthropic", stack.url());
    assert_eq!(plan(&env, "ANTHROPIC_AUTH_TOKEN"), token);
    assert_eq!(plan(&env, "ANTHROPIC_MODEL"), "platform/sonnet");

    // 1. The Anthropic part of the provisioned plan (its base URL aside, see `plan`):
    // Authorization: Bearer <token>.
    let home = temp_home("claude-bearer");
    let mut cmd = clean_command(
        &claude,
        &home,
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_AUTH_TOKEN", plan(&env, "ANTHROPIC_AUTH_TOKEN")),
            ("ANTHROPIC_MODEL", plan(&env, "ANTHROPIC_MODEL")),
            ("CLAUDE_CODE_MAX_CONTEXT_TOKENS", plan(&env, "CLAUDE_CODE_MAX_CONTEXT_TOKENS")),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
    );
    cmd.args(["-p", "Say hello"]);
    let (stdout, stderr, seen) = run_client(&stack, cmd, &home, "claude -p");
    assert_eq!(stdout.trim(), REPLY, "stderr:\n{stderr}");
    // Told the platform model's window by the plan, Claude Code does not guess one.
    assert_eq!(plan(&env, "CLAUDE_CODE_MAX_CONTEXT_TOKENS"), "200000");
    assert!(!stderr.contains("assumes a context window"), "stderr:\n{stderr}");
    let first_run = seen.len();
    assert!(first_run >= 1, "{:#?}", summary(&seen));

    // 2. The token in ANTHROPIC_API_KEY instead (x-api-key), with the JSON result, whose usage
    // Claude Code read from the stream.
    let home = temp_home("claude-api-key");
    let mut cmd = clean_command(
        &claude,
        &home,
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", &token),
            ("ANTHROPIC_MODEL", plan(&env, "ANTHROPIC_MODEL")),
            ("CLAUDE_CODE_MAX_CONTEXT_TOKENS", plan(&env, "CLAUDE_CODE_MAX_CONTEXT_TOKENS")),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
    );
    cmd.args(["-p", "Say hello", "--output-format", "json"]);
    let (stdout, _, seen) = run_client(&stack, cmd, &home, "claude -p --output-format json");
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], REPLY);
    let second: Vec<Tokens> = seen[first_run..].iter().map(stand_in_usage).collect();
    assert!(!second.is_empty());
    let sum = |f: fn(&Tokens) -> i64| second.iter().map(f).sum::<i64>();
    assert_eq!(
        result["usage"]["input_tokens"].as_i64(),
        Some(sum(|t| t.input)),
        "Claude Code's own usage: {}",
        result["usage"]
    );
    assert_eq!(result["usage"]["output_tokens"].as_i64(), Some(sum(|t| t.output)));
    assert_eq!(result["usage"]["cache_creation_input_tokens"].as_i64(), Some(sum(|t| t.cache_write)));
    assert_eq!(result["usage"]["cache_read_input_tokens"].as_i64(), Some(sum(|t| t.cache_read)));
    // The stand-in splits the writes by the TTL Claude Code asked for; when Claude Code reports
    // the split too, it is the stand-in's.
    if let Some(one_hour) = result["usage"]["cache_creation"]["ephemeral_1h_input_tokens"].as_i64() {
        assert_eq!(one_hour, sum(|t| t.cache_write_1h), "{}", result["usage"]);
    }

    // 3. Claude Code asked to write its cache for an hour (ENABLE_PROMPT_CACHING_1H, what it
    // does by itself for subscribers): its cache_control blocks carry `"ttl": "1h"`, the
    // stand-in reports the split, and the ledger prices those writes at the 1-hour rate.
    let second_run = seen.len();
    let home = temp_home("claude-1h");
    let mut cmd = clean_command(
        &claude,
        &home,
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_AUTH_TOKEN", &token),
            ("ANTHROPIC_MODEL", plan(&env, "ANTHROPIC_MODEL")),
            ("CLAUDE_CODE_MAX_CONTEXT_TOKENS", plan(&env, "CLAUDE_CODE_MAX_CONTEXT_TOKENS")),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("ENABLE_PROMPT_CACHING_1H", "1"),
        ],
    );
    cmd.args(["-p", "Say hello", "--output-format", "json"]);
    let (stdout, _, seen) = run_client(&stack, cmd, &home, "claude -p with 1-hour caching");
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["result"], REPLY, "{result}");
    let third: Vec<Tokens> = seen[second_run..].iter().map(stand_in_usage).collect();
    let third_1h: i64 = third.iter().map(|t| t.cache_write_1h).sum();
    assert!(third_1h > 0, "Claude Code wrote nothing for an hour: {:#?}", summary(&seen[second_run..]));

    // What Claude Code sent, as the upstream got it: streaming Messages calls with `?beta=true`
    // and Claude Code's betas passed through.
    for r in &seen {
        assert_eq!(r.path, "/v1/messages", "{:#?}", summary(&seen));
        assert_eq!(r.query.as_deref(), Some("beta=true"), "Claude Code's query string is passed through");
        assert_eq!(r.body["stream"], true);
        assert!(
            r.header("anthropic-beta").is_some_and(|b| b.contains("claude-code-")),
            "anthropic-beta passed through"
        );
    }

    // The ledger prices each cache write at its TTL's rate (`check_upstream_and_ledger` prices
    // the stand-in's split independently): Claude Code's 1-hour writes, if it made any, cost
    // 2x input, not the 1.25x of a 5-minute write.
    let all: Vec<Tokens> = stack.upstream.requests().iter().map(stand_in_usage).collect();
    let one_hour: i64 = all.iter().map(|t| t.cache_write_1h).sum();
    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
    let (_, price) = platform_model(&stack, "platform/sonnet");
    let flat: i64 = all.iter().map(|t| Tokens { cache_write_1h: 0, ..*t }.cost(price)).sum();
    assert!(one_hour >= third_1h);
    assert!(total > flat, "1-hour writes ({one_hour} tokens) cost more than at the 5-minute rate");
    let writes: i64 = all.iter().map(|t| t.cache_write).sum();
    eprintln!(
        "claude code session: {} requests, {writes} cache-write tokens of which {one_hour} for an hour; \
         charged {total} µUSD (the provider's price, no markup), {flat} µUSD at the old flat rate",
        all.len()
    );
    stack.terminate_and_check_the_books(total);
}
