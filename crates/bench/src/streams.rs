//! `tollgate-bench streams`: many slow streams held open through `tollgate serve` at once, and
//! what they cost it (issue 14: 5,000 concurrent streams, RSS and CPU).
//!
//! The stand-in upstream's `-trickle` streams send one content event every `--every` for
//! `--hold`; the bench opens `--count` of them through Tollgate (half on the Anthropic route,
//! half on OpenAI's Chat Completions route; one in `--abandon-every` dropped by the client
//! half-way, which settles it as cut), reads them, and samples the serve process's resident
//! memory and CPU time from `/proc` while they are held and at the end. Then it checks the
//! accounting: one ledger row per stream with the status and charge its end calls for, and the
//! org's balance down by exactly the ledger's sum.

mod ledger;
mod procfs;

use std::fmt::Write as _;
use std::path::Path as FsPath;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use rustix::process::Pid;
use tokio::sync::{Semaphore, watch};

use crate::report::mib;
use crate::{PLATFORM_KEY, Tollgate, Upstream, progress};

use self::ledger::{End, Sent};
use self::procfs::Sample;

/// The credit the benchmark's org starts with, micro-USD.
const START_CREDIT: i64 = 1_000_000_000_000;

/// Options of `tollgate-bench streams`.
#[derive(Debug, clap::Args)]
pub(crate) struct StreamsArgs {
    /// Streams held open at once: half on the Anthropic route, half on OpenAI's.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    count: u64,
    /// How long the upstream keeps each stream open (it sends an event every --every), e.g.
    /// 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    hold: Duration,
    /// The pause between a stream's content events, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    every: Duration,
    /// How many streams may wait for their response head at once while they ramp up.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    ramp: u64,
    /// One stream in this many is dropped by the client half-way through (0: none).
    #[arg(long, default_value_t = 10)]
    abandon_every: u64,
    /// The workspaces' `limits` (DESIGN.md section 14) as JSON, e.g.
    /// '{"budget_micros_per_day":1000000000000}': to hold the streams under a budget.
    #[arg(long)]
    limits: Option<String>,
    /// An environment variable for `tollgate serve`, NAME=VALUE (repeatable), e.g.
    /// MALLOC_ARENA_MAX=2: to measure a setting.
    #[arg(long = "serve-env", value_parser = parse_env)]
    serve_env: Vec<(String, String)>,
}

/// `30s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30s or 500ms"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    if duration.is_zero() {
        return Err("a duration must be positive".to_owned());
    }
    Ok(duration)
}

/// `NAME=VALUE`, for `--serve-env`.
pub(crate) fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// The two platform models of the run's registry, served by the upstream's `-trickle` streams.
const REGISTRY: &str = r#"
runtimes:
  claude-code: {protocol: anthropic, base_url_env: ANTHROPIC_BASE_URL, token_env: ANTHROPIC_AUTH_TOKEN, model_env: ANTHROPIC_MODEL}
  openai-compatible: {protocol: openai, base_url_env: OPENAI_BASE_URL, token_env: OPENAI_API_KEY}
providers:
  - id: platform
    platform: true
    runtimes: [claude-code, openai-compatible]
    model_prefixes: ["platform/"]
    models:
      - {id: platform/sonnet, upstream: anthropic, upstream_model: claude-sonnet-4-5-trickle, price: {input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}
      - {id: platform/gpt, upstream: openai, upstream_model: gpt-5-trickle, price: {input: 1.25, output: 10, cache_read: 0.125}}
    upstreams:
      anthropic: {url: "https://api.anthropic.com", key_env: TOLLGATE_UPSTREAM_ANTHROPIC_KEY}
      openai: {url: "https://api.openai.com", key_env: TOLLGATE_UPSTREAM_OPENAI_KEY}
"#;

/// The run: returns the report.
pub(crate) async fn run(args: &StreamsArgs) -> anyhow::Result<String> {
    let fds = raise_fd_limit();
    let needed = args.count * 2 + 100;
    if fds < needed {
        progress(&format!(
            "warning: the open-file limit is {fds}, tollgate serve needs about {needed} for {} streams (ulimit -n)",
            args.count
        ));
    }
    let root = crate::workspace_root();
    progress("building tollgate and tollgate-upstream (release)");
    crate::build(&root)?;
    let bin = crate::release_dir()?;
    let work =
        tempfile::Builder::new().prefix("tollgate-bench-streams-").tempdir().context("cannot create a temp dir")?;
    let events = args.hold.as_millis().div_ceil(args.every.as_millis().max(1)).max(1);
    let events = u64::try_from(events).unwrap_or(u64::MAX);
    let every_ms = args.every.as_millis().to_string();
    let trickle = ["--trickle-every-ms".to_owned(), every_ms, "--trickle-events".to_owned(), events.to_string()];
    let upstream = Upstream::start_with(&bin, work.path(), &trickle).await?;
    let registry = work.path().join("providers.yaml");
    std::fs::write(&registry, REGISTRY).context("cannot write the run's registry")?;
    let tollgate = Tollgate::start_with(&bin, work.path(), upstream.addr, |command: &mut Command| {
        command
            .env("TOLLGATE_PROVIDERS", &registry)
            .env("TOLLGATE_UPSTREAM_OPENAI_URL", format!("http://{}", upstream.addr))
            .env("TOLLGATE_UPSTREAM_OPENAI_KEY", PLATFORM_KEY);
        for (name, value) in &args.serve_env {
            command.env(name, value);
        }
    })
    .await?;
    let pid = tollgate.process.pid().context("tollgate serve has no pid")?;
    let bench = provision(&tollgate, args.limits.as_deref()).await.context("cannot provision the workspaces")?;
    // The proxy parses OpenAI's tokenizer ranks at start, off the request path: let it finish so
    // that the baseline holds it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = procfs::sample(pid).context("cannot read tollgate serve's /proc entry")?;
    progress(&format!(
        "tollgate serve before the streams: RSS {}, {} threads; opening {} streams of {} s ({events} events)",
        mib(before.rss_kib),
        before.threads,
        args.count,
        args.hold.as_secs()
    ));
    let targets = bench.targets(&tollgate, events);
    let held = hold(args, &targets, pid).await;
    let after_streams = procfs::sample(pid).unwrap_or_default();
    let check = settle(&tollgate, &bench, work.path(), &held.sent).await?;
    let after = procfs::sample(pid).unwrap_or(after_streams);
    Ok(report(args, events, before, &held, after, &check))
}

/// Raises this process's soft open-file limit to its hard limit (the children inherit it);
/// returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum
        && setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum })
            .is_ok()
    {
        return limit.maximum.unwrap_or(u64::MAX);
    }
    limit.current.unwrap_or(u64::MAX)
}

/// The run's org and its two workspaces' tokens (credentials: never printed).
struct Bench {
    org: String,
    anthropic_token: String,
    openai_token: String,
}

/// An org with [`START_CREDIT`], a Claude Code workspace on `platform/sonnet` and an
/// OpenAI-compatible one on `platform/gpt`, both provisioned (with `limits` if given).
async fn provision(tollgate: &Tollgate, limits: Option<&str>) -> anyhow::Result<Bench> {
    let org = tollgate.admin("/admin/orgs", &format!(r#"{{"name":"streams","credit_micros":{START_CREDIT}}}"#)).await?;
    let org = org["id"].as_str().context("no org id")?.to_owned();
    let mut tokens = Vec::new();
    for (name, runtime, model) in
        [("anthropic", "claude-code", "platform/sonnet"), ("openai", "openai-compatible", "platform/gpt")]
    {
        let body = format!(r#"{{"org_id":"{org}","name":"{name}","runtime":"{runtime}","model":"{model}"}}"#);
        let ws = tollgate.admin("/admin/workspaces", &body).await?;
        let ws = ws["id"].as_str().context("no workspace id")?;
        if let Some(limits) = limits {
            let path = format!("/admin/workspaces/{ws}");
            tollgate.admin_call(reqwest::Method::PATCH, &path, &format!(r#"{{"limits":{limits}}}"#)).await?;
        }
        let provisioned = tollgate.admin(&format!("/admin/workspaces/{ws}/provision"), "{}").await?;
        tokens.push(provisioned["token"].as_str().context("no token in the provision response")?.to_owned());
    }
    let [anthropic_token, openai_token] = <[String; 2]>::try_from(tokens).map_err(|_| anyhow::anyhow!("two tokens"))?;
    Ok(Bench { org, anthropic_token, openai_token })
}

/// What one stream sends. No `Debug`: the headers carry a workspace token.
struct Target {
    url: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Bench {
    /// The Anthropic and the OpenAI request, each asking for `events` output tokens.
    fn targets(&self, tollgate: &Tollgate, events: u64) -> [Arc<Target>; 2] {
        let prompt = "Tell me a long story, slowly, please.";
        let anthropic = Target {
            url: format!("http://{}/anthropic/v1/messages", tollgate.addr),
            headers: vec![("x-api-key", self.anthropic_token.clone()), ("anthropic-version", "2023-06-01".to_owned())],
            body: format!(
                r#"{{"model":"platform/sonnet","max_tokens":{events},"stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
            ),
        };
        let openai = Target {
            url: format!("http://{}/openai/v1/chat/completions", tollgate.addr),
            headers: vec![("authorization", format!("Bearer {}", self.openai_token))],
            body: format!(
                r#"{{"model":"platform/gpt","max_completion_tokens":{events},"stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
            ),
        };
        [Arc::new(anthropic), Arc::new(openai)]
    }
}

/// The client's counters, shared by the stream tasks and the progress line.
#[derive(Debug, Default)]
struct Counts {
    /// Response heads received.
    opened: AtomicU64,
    /// Streams open now (head received, body not ended).
    held: AtomicU64,
    /// The most open at once.
    peak: AtomicU64,
    /// Streams ended (read to the end, abandoned or broken).
    ended: AtomicU64,
    /// Requests that failed or were not answered 200.
    failed: AtomicU64,
}

/// How one stream went.
enum Outcome {
    Streamed(Sent),
    Failed(String),
}

/// What holding the streams measured.
struct Held {
    /// The streams answered 200, with how they ended.
    sent: Vec<Sent>,
    /// The failures' messages (the first few are reported).
    failures: Vec<String>,
    /// The most streams open at once.
    peak_held: u64,
    /// Serve's sample with the most resident memory while streams were open, and how many were.
    peak: (Sample, u64),
    /// Serve's CPU ticks over the whole load (ramp, hold and the streams' ends).
    cpu_ticks: u64,
    /// How long the load took.
    elapsed: Duration,
}

/// Opens the streams (at most `--ramp` waiting for their head at once), reads them to their
/// end (or abandons them), sampling serve (`pid`) every 250 ms and printing progress each second.
async fn hold(args: &StreamsArgs, targets: &[Arc<Target>; 2], pid: Pid) -> Held {
    let client = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build().unwrap_or_default();
    let counts = Arc::new(Counts::default());
    let gate = Arc::new(Semaphore::new(usize::try_from(args.ramp).unwrap_or(usize::MAX)));
    let started = Instant::now();
    let cpu_start = procfs::sample(pid).map_or(0, |s| s.cpu_ticks);
    let (stop, stopped) = watch::channel(false);
    let sampler = tokio::spawn(sample_while(pid, counts.clone(), args.count, started, stopped));
    let mut tasks = Vec::new();
    for i in 0..args.count {
        let abandon =
            (args.abandon_every > 0 && i % args.abandon_every == args.abandon_every - 1).then_some(args.hold / 2);
        let target = targets[usize::from(i % 2 == 1)].clone();
        tasks.push(tokio::spawn(stream(client.clone(), target, abandon, gate.clone(), counts.clone())));
    }
    let mut sent = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Outcome::Streamed(s)) => sent.push(s),
            Ok(Outcome::Failed(why)) => failures.push(why),
            Err(e) => failures.push(format!("a stream task failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let peak = sampler.await.unwrap_or_default();
    let cpu_ticks = procfs::sample(pid).map_or(0, |s| s.cpu_ticks.saturating_sub(cpu_start));
    Held { sent, failures, peak_held: counts.peak.load(Ordering::Relaxed), peak, cpu_ticks, elapsed }
}

/// Samples serve every 250 ms until `stop`; prints a progress line each second. Returns the
/// sample with the most resident memory and the streams open when it was taken.
async fn sample_while(
    pid: Pid,
    counts: Arc<Counts>,
    total: u64,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> (Sample, u64) {
    let mut peak = (Sample::default(), 0);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let ticks = procfs::ticks_per_second();
    let first = procfs::sample(pid).map_or(0, |s| s.cpu_ticks);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return peak,
        }
        let Some(sample) = procfs::sample(pid) else { return peak };
        let held = counts.held.load(Ordering::Relaxed);
        if sample.rss_kib > peak.0.rss_kib {
            peak = (sample, held);
        }
        n += 1;
        if n.is_multiple_of(4) {
            progress(&format!(
                "[{:>4.0} s] opened {}/{total}, open {held}, ended {}, failed {}; serve RSS {}, CPU {:.1} s",
                started.elapsed().as_secs_f64(),
                counts.opened.load(Ordering::Relaxed),
                counts.ended.load(Ordering::Relaxed),
                counts.failed.load(Ordering::Relaxed),
                mib(sample.rss_kib),
                sample.cpu_ticks.saturating_sub(first) as f64 / ticks as f64,
            ));
        }
    }
}

/// One stream: waits for the ramp's gate, sends, reads the body to its end (or drops it at
/// `abandon` after its head), and says how it ended.
async fn stream(
    client: reqwest::Client,
    target: Arc<Target>,
    abandon: Option<Duration>,
    gate: Arc<Semaphore>,
    counts: Arc<Counts>,
) -> Outcome {
    let fail = |counts: &Counts, why: String| {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        Outcome::Failed(why)
    };
    let permit = gate.acquire_owned().await;
    let mut request = client.post(&target.url).header("content-type", "application/json").body(target.body.clone());
    for (name, value) in &target.headers {
        request = request.header(*name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return fail(&counts, format!("request failed: {e}")),
    };
    drop(permit);
    let status = response.status();
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if status != reqwest::StatusCode::OK {
        let body = response.bytes().await.unwrap_or_default();
        return fail(&counts, format!("{status}: {}", crate::load::snippet(&body)));
    }
    let Some(request_id) = request_id else {
        return fail(&counts, "a 200 without x-request-id".to_owned());
    };
    counts.opened.fetch_add(1, Ordering::Relaxed);
    let open = counts.held.fetch_add(1, Ordering::Relaxed) + 1;
    counts.peak.fetch_max(open, Ordering::Relaxed);
    let end = read(response, abandon).await;
    counts.held.fetch_sub(1, Ordering::Relaxed);
    counts.ended.fetch_add(1, Ordering::Relaxed);
    Outcome::Streamed(Sent { request_id, end })
}

/// Reads a stream's body to its end, or until `abandon` has passed (then drops it).
async fn read(response: reqwest::Response, abandon: Option<Duration>) -> End {
    let deadline = abandon.map(|after| tokio::time::Instant::now() + after);
    let mut body = response.bytes_stream();
    // The last bytes: whether the stream ended with its terminating event.
    let mut tail = Vec::with_capacity(64);
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(next) => next,
                Err(_) => return End::Abandoned,
            },
            None => body.next().await,
        };
        match next {
            Some(Ok(chunk)) => {
                tail.extend_from_slice(&chunk);
                let keep = tail.len().saturating_sub(64);
                tail.drain(..keep);
            }
            Some(Err(_)) => return End::Broken,
            None => return if terminated(&tail) { End::Completed } else { End::Broken },
        }
    }
}

/// Whether a stream's last bytes are its protocol's terminating event.
fn terminated(tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail);
    let text = text.trim_end();
    text.ends_with(r#"{"type":"message_stop"}"#) || text.ends_with("data: [DONE]")
}

/// Waits (up to 30 s) for every stream's ledger row, then checks them and the org's balance.
async fn settle(tollgate: &Tollgate, bench: &Bench, work: &FsPath, sent: &[Sent]) -> anyhow::Result<Settled> {
    let db = work.join("data/tollgate.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = ledger::read(&db).await?;
        if rows.len() >= sent.len() || Instant::now() >= deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let check = ledger::check(sent, &rows);
    let org = tollgate.admin_call(reqwest::Method::GET, &format!("/admin/orgs/{}", bench.org), "").await?;
    let balance = org["credit_micros"].as_i64().context("no credit_micros in the org")?;
    Ok(Settled { check, balance })
}

/// The accounting after the run.
struct Settled {
    check: ledger::Check,
    /// The org's balance as read after every row was written.
    balance: i64,
}

fn report(args: &StreamsArgs, events: u64, before: Sample, held: &Held, after: Sample, settled: &Settled) -> String {
    let ticks = procfs::ticks_per_second() as f64;
    let cpu = held.cpu_ticks as f64 / ticks;
    let (peak, open_at_peak) = held.peak;
    let grown = peak.rss_kib.saturating_sub(before.rss_kib);
    // Over the most streams open at once: memory freed by streams that ended is not handed back
    // to the system at once, so the peak belongs to the most streams held.
    let per_stream = if held.peak_held == 0 { 0.0 } else { grown as f64 / held.peak_held as f64 };
    let abandoned = held.sent.iter().filter(|s| s.end == End::Abandoned).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} streams through tollgate serve (release, SQLite), half on /anthropic/v1/messages, half on \
         /openai/v1/chat/completions; each {events} events, one every {} ms; {abandoned} abandoned by the client \
         half-way; load took {:.1} s",
        args.count,
        args.every.as_millis(),
        held.elapsed.as_secs_f64()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| streams held (peak) | RSS before | RSS at the peak | RSS per stream (peak minus before, over peak held) | VmHWM | RSS after | threads | CPU s | CPU s per 1,000 streams |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {} ({open_at_peak} at the RSS peak) | {} | {} | {:.1} KiB | {} | {} | {} | {cpu:.1} | {:.2} |",
        held.peak_held,
        mib(before.rss_kib),
        mib(peak.rss_kib),
        per_stream,
        mib(after.hwm_kib),
        mib(after.rss_kib),
        peak.threads,
        cpu * 1000.0 / args.count as f64,
    );
    let _ = writeln!(out);
    let failed = held.failures.len();
    if failed > 0 {
        let _ =
            writeln!(out, "FAILED: {failed} streams were not served: {}", held.failures[..failed.min(3)].join("; "));
    }
    let _ = writeln!(out, "{}", settled.check.summary());
    let expected = START_CREDIT - settled.check.charged_micros;
    if settled.balance == expected {
        let _ = writeln!(out, "credit: the org's balance is its start minus the ledger's sum, exactly");
    } else {
        let _ =
            writeln!(out, "credit: FAILED: the org's balance is {} micro-USD, expected {expected}", settled.balance);
    }
    out
}

/// Whether the report says the run kept every guarantee.
pub(crate) fn passed(report: &str) -> bool {
    !report.contains("FAILED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn the_runs_registry_parses_with_trickle_upstream_models() {
        let registry = tollgate_policy::Registry::parse("bench", REGISTRY).expect("a valid registry");
        for (alias, upstream) in [("platform/sonnet", "claude-sonnet-4-5-trickle"), ("platform/gpt", "gpt-5-trickle")] {
            let (model, _) = registry.platform_model(alias).expect("served");
            assert_eq!(model.upstream_model(), upstream);
        }
    }

    #[test]
    fn a_stream_is_complete_only_with_its_terminating_event() {
        assert!(terminated(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert!(terminated(b"data: [DONE]\n\n"));
        assert!(!terminated(b"event: content_block_delta\ndata: {}\n\n"));
        assert!(!terminated(b""));
    }
}
