//! `tollgate-bench`: the proxy's added latency and throughput against the stand-in upstream on
//! loopback, in one run. The same requests go directly to the upstream, through nginx as a plain
//! reverse proxy (the floor any proxy faces), through `tollgate serve` (token auth, credit
//! reservation, metering and settlement all on; SQLite) and, as the reference peer, through
//! LiteLLM's proxy; 1 and 16 connections, streaming and not. Ratios matter, not absolute
//! figures: the machine is shared.
//!
//! Every server it starts is stopped when the run ends, fails or is interrupted (see
//! [`children`]), and its temporary directory is removed.

mod children;
mod litellm;
mod load;
mod nginx;
mod report;
mod streams;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use clap::builder::FalseyValueParser;

use crate::children::{Child, group_rss_kib};
use crate::litellm::{Litellm, PeerDir};
use crate::load::{Summary, Target};
use crate::nginx::Nginx;
use crate::report::{CASES, Case, Path, Results, added_latency, mib};

/// The platform's Anthropic key, as the upstream and the peers know it.
const PLATFORM_KEY: &str = "sk-platform-bench";
/// Tollgate's admin token in the run.
const ADMIN_TOKEN: &str = "tg_admin_bench";
/// The model the upstream serves and the direct and nginx paths ask for.
const UPSTREAM_MODEL: &str = "claude-sonnet-4-5";
/// The platform model Tollgate and LiteLLM map to it.
const PLATFORM_MODEL: &str = "platform/sonnet";

/// The proxy benchmark: direct, nginx, Tollgate and LiteLLM against the stand-in upstream.
///
/// Builds `tollgate` and `tollgate-upstream` (release), starts the upstream, `tollgate serve`
/// (SQLite, in a temporary directory), nginx as a plain reverse proxy and LiteLLM's proxy, then
/// loads each path with the same Anthropic Messages request, 1 and 16 connections, streaming and
/// not, and prints the table: each peer beside direct, its throughput as a ratio to direct and to
/// nginx, and the latency it adds at p50 and p99. Progress goes to stderr, the table to stdout.
///
/// nginx comes from the system (Debian: `apt-get install nginx`); when it is missing or cannot
/// start, its rows say "nginx: skipped (reason)". LiteLLM (`litellm[proxy]` pinned, from PyPI) is
/// installed once into target/bench-peers/litellm-venv; when it cannot be installed, started or
/// checked, its rows say "LiteLLM: skipped (reason)". The other rows are reported either way.
#[derive(Debug, Parser)]
#[command(name = "tollgate-bench", version)]
struct Args {
    /// Seconds of measured load per path and case (each after a warm-up of 20 requests).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Leave nginx out (also when BENCH_NO_NGINX is set to anything but 0, false, no, off or empty).
    #[arg(long, env = "BENCH_NO_NGINX", value_parser = FalseyValueParser::new())]
    no_nginx: bool,
    /// Leave LiteLLM out (also when BENCH_NO_LITELLM is set to anything but 0, false, no, off or
    /// empty).
    #[arg(long, env = "BENCH_NO_LITELLM", value_parser = FalseyValueParser::new())]
    no_litellm: bool,
    /// The benchmark workspace's `limits` (DESIGN.md section 14) as JSON, set before the load,
    /// e.g. '{"budget_micros_per_day":1000000000000,"requests_per_minute":1000000000}': to
    /// measure what enforcing them costs.
    #[arg(long)]
    limits: Option<String>,
    /// An environment variable for `tollgate serve`, NAME=VALUE (repeatable), e.g.
    /// MALLOC_ARENA_MAX=2 or an LD_PRELOAD allocator: to measure a setting.
    #[arg(long = "serve-env", value_parser = streams::parse_env)]
    serve_env: Vec<(String, String)>,
    /// Another benchmark instead of the proxy's.
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// The benchmarks besides the default one.
#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Many slow streams held open through `tollgate serve` at once: its RSS and CPU, and one
    /// ledger row per stream (`scripts/bench-streams`).
    Streams(streams::StreamsArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        progress("warning: this is a debug build; its load generator is slow (use cargo run --release)");
    }
    // One worker thread: the load generator takes one of the machine's cores, as it did as a
    // separate process; the orchestration between cases is light.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            progress(&format!("tollgate-bench: cannot start the runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` on an interrupt drops its guards: servers stopped, temp dir removed.
    let outcome = runtime.block_on(async {
        // Biased: the signal handlers are in place before the run starts anything.
        tokio::select! {
            biased;
            signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
            outcome = async {
                match &args.mode {
                    Some(Mode::Streams(streams)) => streams::run(streams).await,
                    None => run(&args).await,
                }
            } => outcome,
        }
    });
    match outcome {
        Ok(report) => {
            print_report(&report);
            // The streams benchmark also checks the accounting: a failed check fails the run.
            let checked = !matches!(args.mode, Some(Mode::Streams(_))) || streams::passed(&report);
            if checked { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            progress(&format!("tollgate-bench: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT, SIGTERM or SIGHUP, with the signal's name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        // Without handlers the default actions apply; the run goes on.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

#[expect(clippy::print_stdout, reason = "the report is the program's output")]
fn print_report(report: &str) {
    println!("{report}");
}

/// A progress line on stderr.
#[expect(clippy::print_stderr, reason = "progress and errors are the program's interface on stderr")]
pub(crate) fn progress(line: &str) {
    eprintln!("{line}");
}

/// The whole run; returns the report (table and footer).
async fn run(args: &Args) -> anyhow::Result<String> {
    let root = workspace_root();
    progress("building tollgate and tollgate-upstream (release)");
    build(&root)?;
    let bin = release_dir()?;
    let mut results = Results::default();
    let peers = PeerDir(root.join("target/bench-peers"));
    let litellm_installed = if args.no_litellm {
        Err("left out (--no-litellm or BENCH_NO_LITELLM)".to_owned())
    } else {
        litellm::install(&peers).await
    };
    if let Err(reason) = &litellm_installed {
        progress(&format!("LiteLLM: skipped ({reason})"));
    }
    // Declared first, removed last: the servers below keep their files in it.
    let work = tempfile::Builder::new().prefix("tollgate-bench-").tempdir().context("cannot create a temp dir")?;
    let upstream = Upstream::start(&bin, work.path()).await?;
    let tollgate = Tollgate::start_with(&bin, work.path(), upstream.addr, |command: &mut Command| {
        for (name, value) in &args.serve_env {
            command.env(name, value);
        }
    })
    .await?;
    let token =
        tollgate.provision(args.limits.as_deref()).await.context("cannot provision the benchmark's workspace")?;
    let nginx = if args.no_nginx {
        Err("left out (--no-nginx or BENCH_NO_NGINX)".to_owned())
    } else {
        progress("starting nginx");
        nginx::start(work.path(), upstream.addr).await
    };
    let nginx = nginx.map_err(|reason| results.skip(Path::Nginx, reason)).ok();
    let litellm = match litellm_installed {
        Ok(()) => {
            progress("starting LiteLLM");
            litellm::start(&peers, work.path(), &upstream).await
        }
        Err(reason) => Err(reason),
    };
    let litellm = litellm.map_err(|reason| results.skip(Path::Litellm, reason)).ok();
    for peer in [Path::Nginx, Path::Litellm] {
        if let Some(reason) = results.skipped(peer) {
            progress(&format!("{}: skipped ({reason})", peer.name()));
        }
    }
    let paths =
        Paths { upstream: &upstream, tollgate: &tollgate, token, nginx: nginx.as_ref(), litellm: litellm.as_ref() };
    let litellm_counts = measure(&paths, Duration::from_secs(args.seconds), &mut results).await?;
    let mut report = results.table();
    report.push('\n');
    report.push_str(&footer(&paths, litellm_counts).await);
    Ok(report)
}

/// The servers under test and how to reach them.
struct Paths<'a> {
    upstream: &'a Upstream,
    tollgate: &'a Tollgate,
    /// The workspace token (`tg_ws_...`): a credential, never printed.
    token: String,
    nginx: Option<&'a Nginx>,
    litellm: Option<&'a Litellm>,
}

impl Paths<'_> {
    /// What to send along `path` for `case`; `None` when the path is not in this run.
    fn target(&self, path: Path, case: Case) -> Option<Target> {
        let anthropic = |url: String, key: &str, model: &str| Target {
            url,
            headers: vec![("x-api-key", key.to_owned()), ("anthropic-version", "2023-06-01".to_owned())],
            body: request_body(case.stream, model),
        };
        match path {
            Path::Direct => {
                Some(anthropic(format!("http://{}/v1/messages", self.upstream.addr), PLATFORM_KEY, UPSTREAM_MODEL))
            }
            Path::Nginx => self
                .nginx
                .map(|nginx| anthropic(format!("http://{}/v1/messages", nginx.addr), PLATFORM_KEY, UPSTREAM_MODEL)),
            Path::Tollgate => Some(anthropic(
                format!("http://{}/anthropic/v1/messages", self.tollgate.addr),
                &self.token,
                PLATFORM_MODEL,
            )),
            Path::Litellm => {
                self.litellm.map(|l| anthropic(format!("{}/v1/messages", l.url), litellm::MASTER_KEY, PLATFORM_MODEL))
            }
        }
    }
}

/// LiteLLM's accounting over its rows: requests the upstream answered during them, and answers
/// the load generator got (warm-up included). They should match.
#[derive(Debug, Default, Clone, Copy)]
struct LitellmCounts {
    served: u64,
    sent: u64,
}

/// Loads every path in every case, in order (per case: direct, nginx, Tollgate, LiteLLM). A
/// failing peer is skipped from then on; a failing direct or Tollgate path ends the run.
async fn measure(paths: &Paths<'_>, duration: Duration, results: &mut Results) -> anyhow::Result<LitellmCounts> {
    let order = [Path::Direct, Path::Nginx, Path::Tollgate, Path::Litellm];
    let total = CASES.len() * order.iter().filter(|&&p| paths.target(p, CASES[0]).is_some()).count();
    let mut done = 0;
    let mut counts = LitellmCounts::default();
    for case in CASES {
        for path in order {
            if results.skipped(path).is_some() {
                continue;
            }
            let Some(target) = paths.target(path, case) else { continue };
            done += 1;
            let label = format!("{} {case}", path.label());
            progress(&format!("[{done:>2}/{total}] {label}: {} s", duration.as_secs()));
            let before = if path == Path::Litellm { Some(paths.upstream.count().await?) } else { None };
            let summary = match load::run(Arc::new(target), case.connections, duration).await {
                Ok(summary) => summary,
                Err(error) if matches!(path, Path::Nginx | Path::Litellm) => {
                    let reason = format!("the load generator failed on it at {case}: {error:#}");
                    progress(&format!("{}: skipped ({reason})", path.name()));
                    results.skip(path, reason);
                    continue;
                }
                Err(error) => return Err(error.context(format!("{label} failed"))),
            };
            if let Some(before) = before {
                let after = paths.upstream.count().await?;
                counts.served += after.saturating_sub(before).saturating_sub(1);
                counts.sent += summary.requests + load::warmup_requests(case.connections) as u64;
            }
            progress(&format!("        {}", line(&summary)));
            results.record(path, case, summary);
        }
    }
    Ok(counts)
}

/// One measurement as a progress line.
fn line(s: &Summary) -> String {
    format!(
        "rps={:.0} p50_us={:.0} p90_us={:.0} p99_us={:.0} ttfb_p50_us={:.0} requests={} errors={}",
        s.rps, s.p50_us, s.p90_us, s.p99_us, s.ttfb_p50_us, s.requests, s.errors
    )
}

/// The lines under the table: memory after the run, LiteLLM's accounting, Tollgate's own view.
async fn footer(paths: &Paths<'_>, litellm: LitellmCounts) -> String {
    let mut lines = Vec::new();
    if let Some(pid) = paths.tollgate.process.pid() {
        let (kib, _) = group_rss_kib(pid);
        lines.push(format!("tollgate serve RSS after the run: {} (one multi-threaded Rust process)", mib(kib)));
    }
    if let Some(pid) = paths.nginx.and_then(|n| n.process.pid()) {
        let (kib, procs) = group_rss_kib(pid);
        lines
            .push(format!("nginx RSS after the run: {} (summed over {procs} processes: master and workers)", mib(kib)));
    }
    if let Some(pid) = paths.litellm.and_then(|l| l.process.pid()) {
        let (kib, procs) = group_rss_kib(pid);
        let procs = if procs > 1 { format!("summed over {procs} processes") } else { "one Python process".to_owned() };
        lines.push(format!("litellm {} RSS after the run: {} ({procs}, 1 uvicorn worker)", litellm::VERSION, mib(kib)));
        lines.push(format!(
            "litellm rows: its /v1/messages, the body sent to Tollgate; stand-in upstream answered {} requests \
             during them, load generator got {} answers (warm-up included)",
            litellm.served, litellm.sent
        ));
    }
    let metrics = async {
        client().get(format!("http://{}/metrics", paths.tollgate.addr)).send().await?.error_for_status()?.text().await
    };
    match metrics.await {
        Ok(text) => lines.extend(added_latency(&text).map(|latency| latency.to_string())),
        Err(error) => lines.push(format!("tollgate's /metrics: {error}")),
    }
    lines.join("\n")
}

/// The Anthropic Messages request every path gets, for `model`, streaming or not.
pub(crate) fn request_body(stream: bool, model: &str) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":10,"stream":{stream},"messages":[{{"role":"user","content":"Say hello to the benchmark in a few short words, please."}}]}}"#
    )
}

/// An HTTP client for the run's own requests (not the load): loopback only, so no proxy.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap_or_default()
}

/// A loopback address with a port that was free a moment ago.
pub(crate) fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The last non-blank line of a log file, for a skip reason ("" when there is none).
pub(crate) fn last_line(path: &FsPath) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default().trim().to_owned()
}

/// The workspace's root directory (this crate is `crates/bench` in it).
fn workspace_root() -> PathBuf {
    let manifest = FsPath::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest).to_path_buf()
}

/// Builds the release binaries the run starts.
fn build(root: &FsPath) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` describes this package in the environment; build scripts that read those
    // variables (ring's reads CARGO_MANIFEST_DIR) would then rebuild at every switch between
    // `cargo run` and a plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_run_variable) {
            command.env_remove(name);
        }
    }
    let status = command
        .current_dir(root)
        .args(["build", "--release", "-q", "-p", "tollgate-cli", "-p", "tollgate-upstream", "--bins"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// Whether cargo sets `name` for the package it runs (so it describes this program, not the
/// build that it starts).
fn is_cargo_run_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        )
}

/// The release directory the binaries were built into: the cargo target directory, found from
/// this program's own path (`<target>/<profile>/tollgate-bench`).
fn release_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let target = exe.parent().and_then(FsPath::parent).context("this program is not in a cargo target directory")?;
    let release = target.join("release");
    if !release.join("tollgate").is_file() {
        bail!("{} has no tollgate binary", release.display());
    }
    Ok(release)
}

/// The stand-in upstream, a fixed-body Anthropic and OpenAI API.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// Held only to be stopped when this is dropped.
    _process: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

impl Upstream {
    /// Starts `tollgate-upstream` on a port of its choosing and reads that port from its stdout.
    async fn start(bin: &FsPath, work: &FsPath) -> anyhow::Result<Self> {
        Self::start_with(bin, work, &[]).await
    }

    /// [`Upstream::start`] with `extra` arguments.
    async fn start_with(bin: &FsPath, work: &FsPath, extra: &[String]) -> anyhow::Result<Self> {
        let log = std::fs::File::create(work.join("upstream.log"))?;
        let mut command = Command::new(bin.join("tollgate-upstream"));
        command
            .args(["--listen", "127.0.0.1:0", "--no-record"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut process = Child::spawn("tollgate-upstream", command)?;
        let stdout = process.take_stdout().context("no stdout pipe")?;
        // The line comes at once, or never if the process fails: then the pipe closes.
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .context("the reader panicked")?
        .context("cannot read tollgate-upstream's stdout")?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .with_context(|| format!("tollgate-upstream did not start: {:?}", line.trim()))?;
        Ok(Self { _process: process, addr })
    }

    /// How many Messages requests the upstream has answered before this one: it numbers the ids
    /// it hands out, two per answered request (the message's and the request-id header's).
    pub(crate) async fn count(&self) -> anyhow::Result<u64> {
        let reply = client()
            .post(format!("http://{}/v1/messages", self.addr))
            .header("x-api-key", PLATFORM_KEY)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(r#"{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":"count"}]}"#)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let reply: serde_json::Value = serde_json::from_slice(&reply)?;
        let id = reply["id"].as_str().context("no id in the upstream's reply")?;
        let hex = id.get(id.len().saturating_sub(8)..).context("a short id")?;
        Ok(u64::from_str_radix(hex, 16).with_context(|| format!("id {id:?} does not end in hex"))? / 2)
    }
}

/// `tollgate serve` on SQLite in the run's temp dir, pointed at the upstream.
#[derive(Debug)]
struct Tollgate {
    process: Child,
    addr: SocketAddr,
}

impl Tollgate {
    /// Starts it and waits (up to 10 s) for `/healthz`; `configure` adds to its command
    /// (environment, arguments).
    async fn start_with(
        bin: &FsPath,
        work: &FsPath,
        upstream: SocketAddr,
        configure: impl FnOnce(&mut Command),
    ) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let log_path = work.join("serve.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(bin.join("tollgate"));
        command
            .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TOLLGATE_UPSTREAM_ANTHROPIC_URL", format!("http://{upstream}"))
            .env("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", PLATFORM_KEY)
            .env("RUST_LOG", "warn")
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(work.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        configure(&mut command);
        let process = Child::spawn("tollgate serve", command)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let health = format!("http://{addr}/healthz");
        while !client().get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
            if process.has_exited() {
                bail!("tollgate serve exited at start: {}", last_line(&log_path));
            }
            if Instant::now() >= deadline {
                bail!("tollgate serve is not healthy within 10 s: {}", last_line(&log_path));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { process, addr })
    }

    /// Creates an org with ample credit and a workspace on the platform model, provisions it,
    /// sets its `limits` (JSON) if given, and returns the workspace token.
    async fn provision(&self, limits: Option<&str>) -> anyhow::Result<String> {
        let org = self.admin("/admin/orgs", r#"{"name":"bench","credit_micros":1000000000000}"#).await?;
        let org = org["id"].as_str().context("no org id")?;
        let workspace =
            format!(r#"{{"org_id":"{org}","name":"bench","runtime":"claude-code","model":"{PLATFORM_MODEL}"}}"#);
        let ws = self.admin("/admin/workspaces", &workspace).await?;
        let ws = ws["id"].as_str().context("no workspace id")?;
        if let Some(limits) = limits {
            let path = format!("/admin/workspaces/{ws}");
            self.admin_call(reqwest::Method::PATCH, &path, &format!(r#"{{"limits":{limits}}}"#)).await?;
        }
        let provisioned = self.admin(&format!("/admin/workspaces/{ws}/provision"), "{}").await?;
        Ok(provisioned["token"].as_str().context("no token in the provision response")?.to_owned())
    }

    /// POSTs `body` to the admin API at `path`; the JSON answer of a 2xx.
    async fn admin(&self, path: &str, body: &str) -> anyhow::Result<serde_json::Value> {
        self.admin_call(reqwest::Method::POST, path, body).await
    }

    /// Sends `body` to the admin API at `path` with `method`; the JSON answer of a 2xx.
    async fn admin_call(&self, method: reqwest::Method, path: &str, body: &str) -> anyhow::Result<serde_json::Value> {
        let response = client()
            .request(method.clone(), format!("http://{}{path}", self.addr))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {}", load::snippet(&bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body_is_the_scripts() {
        let body: serde_json::Value = serde_json::from_str(&request_body(true, "platform/sonnet")).expect("JSON");
        assert_eq!(body["model"], "platform/sonnet");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 10);
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(
            request_body(false, "m"),
            r#"{"model":"m","max_tokens":10,"stream":false,"messages":[{"role":"user","content":"Say hello to the benchmark in a few short words, please."}]}"#
        );
    }

    #[test]
    fn the_inner_build_drops_only_what_cargo_run_says_about_this_package() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_PRIMARY_PACKAGE"] {
            assert!(is_cargo_run_variable(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "RUSTFLAGS", "PATH"] {
            assert!(!is_cargo_run_variable(name), "{name}");
        }
    }

    #[test]
    fn the_arguments_parse() {
        let args = Args::try_parse_from(["tollgate-bench", "--seconds", "3", "--no-nginx"]).expect("valid");
        assert_eq!(args.seconds, 3);
        assert!(args.no_nginx);
        assert!(Args::try_parse_from(["tollgate-bench", "--seconds", "0"]).is_err());
        <Args as clap::CommandFactory>::command().debug_assert();
    }
}
