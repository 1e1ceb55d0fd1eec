//! `tollgate-bench-audit`: how long `GET /admin/audit` takes over 100,000 workspaces on SQLite
//! (DESIGN.md section 16 asks for under 5 s on this machine).
//!
//! Seeds a fresh SQLite database in a temporary directory: `--orgs` orgs (default 1,000) of
//! `--per-org` workspaces each (default 100), a mix of the states the audit reports
//! (platform-managed, BYOK MiniMax with its key, the Claude subscription through an org-scope
//! OAuth token that the MiniMax workspaces drop, the fallback mode, a BYOK workspace with no
//! key), every org with an org-scope OAuth token and a non-LLM secret, 70% of the workspaces
//! provisioned (one in ten of those with a plan that has since drifted), and 24 hours of ledger
//! rows. Rows are written with SQL in one transaction (the API would take minutes); secrets
//! go through the store, so they are encrypted as in production. Then it serves the API in
//! process (with a platform key for the Anthropic upstream only) and times `--runs` audits of
//! everything over HTTP, JSON included. Build it in release: `cargo run --release -p
//! tollgate-bench --bin tollgate-bench-audit`.
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark: progress on stderr, the figure on stdout")]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use tollgate_policy::audit::PlanFingerprint;
use tollgate_policy::resolve::{Context, OrgSpec, PublicUrl, WorkspaceKind, WorkspaceSpec, resolve};
use tollgate_policy::secret::{MergedSecrets, Scope, SecretState, SecretValue};
use tollgate_policy::{OrgId, Registry, SecretName, WorkspaceId};
use tollgate_store::{MasterKey, Owner, SqliteStore, Store, TokenHash};

/// The admin token of the run.
const ADMIN_TOKEN: &str = "tg_admin_audit_bench";

/// The audit benchmark.
#[derive(Debug, Parser)]
#[command(name = "tollgate-bench-audit", version)]
struct Args {
    /// Orgs to create.
    #[arg(long, default_value_t = 1_000)]
    orgs: u32,
    /// Workspaces per org.
    #[arg(long, default_value_t = 100)]
    per_org: u32,
    /// Audits to time (the report gives each, and the best and the median).
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

/// The workspace states of the mix, one in ten each unless repeated.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `platform/sonnet` on claude-code.
    Platform,
    /// Platform on codex (its upstream has no key in the run: `PLATFORM_KEY_MISSING`).
    CodexPlatform,
    /// BYOK MiniMax with a workspace key (drops the org's OAuth token).
    Minimax,
    /// The Claude subscription through the org's OAuth token.
    Subscription,
    /// No model, no mode: `FALLBACK_MODE`.
    Fallback,
    /// MiniMax without a key: `RESOLUTION_ERROR`.
    MinimaxNoKey,
}

const MIX: [Kind; 10] = [
    Kind::Platform,
    Kind::Platform,
    Kind::Platform,
    Kind::CodexPlatform,
    Kind::Minimax,
    Kind::Minimax,
    Kind::Subscription,
    Kind::Subscription,
    Kind::Fallback,
    Kind::MinimaxNoKey,
];

impl Kind {
    fn runtime(self) -> &'static str {
        match self {
            Self::CodexPlatform => "codex",
            _ => "claude-code",
        }
    }

    fn model(self) -> Option<&'static str> {
        match self {
            Self::Platform => Some("platform/sonnet"),
            Self::CodexPlatform => Some("platform/gpt"),
            Self::Minimax | Self::MinimaxNoKey => Some("MiniMax-M2"),
            Self::Subscription => Some("opus"),
            Self::Fallback => None,
        }
    }

    fn has_workspace_key(self) -> bool {
        matches!(self, Self::Minimax)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; the figure that counts is a release build's");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate-bench-audit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-bench-audit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn secret(name: &str, value: &str) -> anyhow::Result<(SecretName, SecretValue)> {
    Ok((SecretName::parse(name)?, SecretValue::parse(value)?))
}

/// The fingerprint a workspace of `kind` is provisioned with, from the one resolver.
fn fingerprint(registry: &Registry, url: &PublicUrl, kind: Kind) -> anyhow::Result<Option<String>> {
    let mut merged = MergedSecrets::default();
    let v = SecretValue::parse("v")?;
    let value = || SecretState::Value(v.clone());
    merged.extend(Scope::Org, [(SecretName::parse("CLAUDE_CODE_OAUTH_TOKEN")?, value())]);
    if kind.has_workspace_key() {
        merged.extend(Scope::Workspace, [(SecretName::parse("MINIMAX_API_KEY")?, value())]);
    }
    let ws = WorkspaceSpec {
        id: "ws".into(),
        runtime: kind.runtime().into(),
        kind: WorkspaceKind::Agent,
        model: kind.model().map(str::to_owned),
        billing_mode: None,
    };
    let resolved = resolve(&Context { registry, public_url: url }, &ws, &OrgSpec::default(), &merged, None);
    Ok(resolved.plan().and_then(|plan| PlanFingerprint::of(registry, resolved.resolution(), plan)).map(|f| f.encode()))
}

async fn seed(
    args: &Args,
    store: &SqliteStore,
    db_url: &str,
    registry: &Registry,
    url: &PublicUrl,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let now = tollgate_store::Timestamp::now().0;
    let prints: BTreeMap<&str, Option<String>> =
        MIX.iter().map(|k| Ok((kind_name(*k), fingerprint(registry, url, *k)?))).collect::<anyhow::Result<_>>()?;
    let stale = fingerprint(registry, url, Kind::Subscription)?;
    let pool = sqlx::SqlitePool::connect(db_url).await?;
    let mut tx = pool.begin().await?;
    let mut ws_keys = Vec::new();
    for o in 0..args.orgs {
        let org = format!("org-{o:05}");
        sqlx::query("INSERT INTO orgs (id, name, credit_micros, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(&org)
            .bind(format!("org {o}"))
            // One org in ten is nearly out of credit.
            .bind(if o % 10 == 0 { 1_000_i64 } else { 100_000_000 })
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for h in 0..24_i64 {
            sqlx::query(
                "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, \
                 cost_micros, created_at) VALUES ($1, $2, $3, 'platform/sonnet', 'settled', 200, 0, 20000, $4)",
            )
            .bind(format!("req-{o}-{h}"))
            .bind(&org)
            .bind(format!("ws-{o:05}-00000"))
            .bind(now - h * 3_600_000)
            .execute(&mut *tx)
            .await?;
        }
        for w in 0..args.per_org {
            let id = format!("ws-{o:05}-{w:05}");
            let kind = MIX[(w % 10) as usize];
            sqlx::query(
                "INSERT INTO workspaces (id, org_id, name, runtime, model, kind, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'agent', $6, $6)",
            )
            .bind(&id)
            .bind(&org)
            .bind(format!("w{w}"))
            .bind(kind.runtime())
            .bind(kind.model())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if kind.has_workspace_key() {
                ws_keys.push(id.clone());
            }
            // 70% provisioned; one in ten of those since drifted.
            if w % 10 < 7 {
                let print = if w % 100 < 10 { stale.clone() } else { prints[kind_name(kind)].clone() };
                sqlx::query(
                    "INSERT INTO provisions (id, workspace_id, resolution, created_at, fingerprint) VALUES ($1, $1, '{}', $2, $3)",
                )
                .bind(&id)
                .bind(now)
                .bind(print)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO workspace_tokens (token_hash, workspace_id, created_at) VALUES ($1, $2, $3)")
                    .bind(TokenHash::of(&id).as_bytes().to_vec())
                    .bind(&id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    pool.close().await;
    for o in 0..args.orgs {
        let org = Owner::Org(OrgId::parse(&format!("org-{o:05}"))?);
        for (name, value) in [("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-bench"), ("GITHUB_TOKEN", "ghp_bench")] {
            let (n, v) = secret(name, value)?;
            store.put_secret(&org, &n, &v).await?;
        }
    }
    let (n, v) = secret("MINIMAX_API_KEY", "sk-minimax-bench")?;
    for id in &ws_keys {
        store.put_secret(&Owner::Workspace(WorkspaceId::parse(id)?), &n, &v).await?;
    }
    eprintln!(
        "seeded {} orgs, {} workspaces, {} secrets in {:.1} s",
        args.orgs,
        u64::from(args.orgs) * u64::from(args.per_org),
        u64::from(args.orgs) * 2 + ws_keys.len() as u64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Platform => "platform",
        Kind::CodexPlatform => "codex-platform",
        Kind::Minimax => "minimax",
        Kind::Subscription => "subscription",
        Kind::Fallback => "fallback",
        Kind::MinimaxNoKey => "minimax-no-key",
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db_url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
    let key = MasterKey::generate().context("master key")?;
    let store = SqliteStore::connect(&db_url, key).await?;
    let registry = Arc::new(Registry::embedded()?);
    let url = PublicUrl::parse("http://127.0.0.1:8080").map_err(|_| anyhow::anyhow!("public URL"))?;
    seed(args, &store, &db_url, &registry, &url).await?;
    let store: Arc<dyn Store> = Arc::new(store);
    tollgate_server::bootstrap_admin_token(&*store, Some(ADMIN_TOKEN)).await?;
    let config = tollgate_proxy::ProxyConfig::from_env(&registry, |name| {
        (name == "TOLLGATE_UPSTREAM_ANTHROPIC_KEY").then(|| "sk-platform-bench".to_owned())
    });
    let proxy = tollgate_proxy::Proxy::new(store.clone(), registry.clone(), url.clone(), config)?;
    let state = tollgate_server::AppState::new(store, registry, url).with_proxy(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tollgate_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build()?;
    let mut times = Vec::new();
    for i in 0..args.runs {
        let t = Instant::now();
        let resp = client.get(format!("http://{addr}/admin/audit")).bearer_auth(ADMIN_TOKEN).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        let elapsed = t.elapsed();
        if !status.is_success() {
            bail!("GET /admin/audit: {status}: {body}");
        }
        let report: serde_json::Value = serde_json::from_str(&body)?;
        eprintln!(
            "run {}: {:.2} s, {} workspaces checked, {} findings, {:.1} MB of JSON, summary {}",
            i + 1,
            elapsed.as_secs_f64(),
            report["workspaces_checked"],
            report["findings"].as_array().map_or(0, Vec::len),
            body.len() as f64 / 1e6,
            report["summary"]
        );
        times.push(elapsed);
    }
    let _ = stop.send(());
    server.await??;
    times.sort();
    let best = times.first().copied().unwrap_or_default();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!(
        "audit of {} workspaces ({} orgs) on SQLite over HTTP: best {:.2} s, median {:.2} s of {} runs",
        u64::from(args.orgs) * u64::from(args.per_org),
        args.orgs,
        best.as_secs_f64(),
        median.as_secs_f64(),
        times.len()
    );
    Ok(())
}
