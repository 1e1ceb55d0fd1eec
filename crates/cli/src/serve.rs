//! `tollgate serve`: the control plane (and, with `--demo`, a seeded example org).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tollgate_policy::resolve::PublicUrl;
use tollgate_server::tls::CertReloader;
use tollgate_store::MasterKeys;

use crate::exit::{self, CliError};

/// Arguments of `tollgate serve` (DESIGN.md section 11).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// `postgres://...` for Postgres; default: an SQLite file under the data dir.
    #[arg(long, env = "TOLLGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// Where the SQLite database and the generated master key live.
    #[arg(long, env = "TOLLGATE_DATA_DIR", default_value = "./tollgate-data")]
    data_dir: PathBuf,
    /// A providers.yaml replacing the embedded registry.
    #[arg(long, env = "TOLLGATE_PROVIDERS")]
    providers: Option<PathBuf>,
    /// The URL workspaces use to reach this server (default: http://LISTEN_ADDRESS, the --listen address).
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// PEM certificate chain: serve HTTPS (needs --tls-key too). Reloaded on SIGHUP and when
    /// the file changes.
    #[arg(long, env = "TOLLGATE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert's first certificate.
    #[arg(long, env = "TOLLGATE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// How often to check whether the TLS files changed (reload without SIGHUP); 0s: never.
    #[arg(long, env = "TOLLGATE_TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    tls_reload_interval: std::time::Duration,
    /// Where notifications of alarms and budgets go (DESIGN.md section 15), besides each org's
    /// own `alert_webhook_url`; e.g. a Slack incoming webhook. Its bodies are signed with
    /// TOLLGATE_ALERT_WEBHOOK_SECRET (environment only) when set.
    #[arg(long, env = "TOLLGATE_ALERT_WEBHOOK_URL", hide_env_values = true)]
    alert_webhook_url: Option<CredentialUrl>,
    /// How often the drain alarms and budget notices are evaluated (every instance evaluates;
    /// each crossing is recorded once).
    #[arg(long, env = "TOLLGATE_ALARM_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    alarm_interval: std::time::Duration,
    /// Seed an example org with one workspace per interesting case and print their resolutions.
    #[arg(long)]
    demo: bool,
}

/// Runs `tollgate serve` until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Tokio reads TOKIO_WORKER_THREADS itself when no count is set here.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(default_workers(std::thread::available_parallelism().map_or(1, usize::from)));
    }
    let runtime =
        builder.enable_all().build().map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let traces = crate::logging::init(runtime.handle());
    let outcome = runtime.block_on(serve(args));
    // The last spans go out while the runtime (which runs the exporter's requests) still runs.
    if let Some(t) = traces {
        t.shutdown();
    }
    outcome
}

/// The async workers for `cores` CPUs: one fewer than the cores (at least one). The core
/// left over runs what is not async: the SQLite writer threads (the ledger's inserts are about a
/// quarter of the CPU a proxied request costs) and the blocking pool. On two cores, one worker
/// instead of two cut the latency the proxy adds at one connection from about 72 to 44 µs at p50
/// (a request no longer wakes a second worker), with the same throughput at 16 connections
/// (README, "Benchmark"). TOKIO_WORKER_THREADS sets another count.
fn default_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

async fn serve(args: &Args) -> Result<ExitCode, CliError> {
    raise_open_file_limit();
    let registry = Arc::new(crate::registry::load(args.providers.as_deref())?);
    // An explicit public URL is checked now (a configuration error, before anything starts);
    // the default is derived from the bound address, which `--listen ...:0` only knows later.
    let explicit_url = match &args.public_url {
        Some(u) => Some(PublicUrl::parse(u).map_err(|e| CliError::config(format!("--public-url `{u}`: {e}")))?),
        None => None,
    };
    let tls = load_tls(args)?;
    let notify_config = notify_config(args)?;
    create_private_dir(&args.data_dir)?;
    let keys_env = std::env::var("TOLLGATE_MASTER_KEYS").ok().filter(|k| !k.trim().is_empty());
    let key_env = std::env::var("TOLLGATE_MASTER_KEY").ok();
    let key = MasterKeys::load(keys_env.as_deref(), key_env.as_deref(), &args.data_dir).map_err(CliError::config)?;
    tracing::info!(newest = %key.current(), keys = key.ids().len(), "master keys loaded");
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", args.data_dir.join("tollgate.db").display()),
    };
    let store = tollgate_store::connect(&url, key).await.map_err(|e| match e {
        tollgate_store::StoreError::Config(m) => CliError::config(format!("--database-url: {m}")),
        e => CliError::failure(format!("cannot open the database: {e}")),
    })?;
    let admin_env = std::env::var("TOLLGATE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    let generated = tollgate_server::bootstrap_admin_token(store.as_ref(), admin_env.as_deref())
        .await
        .map_err(|e| CliError::failure(format!("cannot store the admin token: {e}")))?;
    let shutdown = shutdown_signal()?;
    // Before "listening" is printed, as the shutdown handlers: SIGHUP's default action is to
    // terminate, so a reload asked for right after start must find the handler in place.
    if let Some(reloader) = &tls {
        spawn_tls_reloads(reloader.clone(), args.tls_reload_interval)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = match explicit_url {
        Some(u) => u,
        None => {
            let mut addr = bound;
            if addr.ip().is_unspecified() {
                tracing::warn!(
                    "listening on {addr} without --public-url: workspaces are told {scheme}://127.0.0.1:{}",
                    addr.port()
                );
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            PublicUrl::parse(&format!("{scheme}://{addr}")).map_err(CliError::config)?
        }
    };
    let mut out = String::new();
    if let Some(token) = &generated {
        out.push_str(&format!(
            "Generated the admin token (shown once; only its hash is stored):\n\n    {}\n\n",
            token.expose_secret()
        ));
    }
    if args.demo {
        out.push_str(&crate::demo::seed(store.as_ref(), &registry, &public_url).await?);
    }
    out.push_str(&format!(
        "Tollgate listening on {scheme}://{bound} ({} backend, public URL {})\n",
        store.backend(),
        public_url.as_str()
    ));
    crate::print(&out);
    let mut config = tollgate_proxy::ProxyConfig::from_env(&registry, |name| std::env::var(name).ok());
    config.credit =
        tollgate_proxy::CreditConfig::from_env(|name| std::env::var(name).ok()).map_err(CliError::config)?;
    for (name, target) in config.upstreams() {
        if target.key.is_none() {
            tracing::warn!(upstream = %name, key_env = %target.key_env, "no platform key: the proxy answers 502 for this upstream's models");
        }
    }
    let clock = config.clock.clone();
    let proxy = tollgate_proxy::Proxy::new(store.clone(), registry.clone(), public_url.clone(), config)
        .map_err(CliError::failure)?;
    let follower = proxy.clone();
    tokio::spawn(async move { follower.follow_invalidations().await });
    let notifier = tollgate_server::notify::Notifier::new(store.clone(), notify_config).map_err(CliError::failure)?;
    let state = tollgate_server::AppState::new(store, registry, public_url)
        .with_proxy(proxy.clone())
        .with_notifier(notifier.clone());
    // Stopped after the server: an evaluation under way finishes (its notifications queued,
    // a suspension's invalidation sent) rather than being cut between its commit and them.
    let (stop_alarms, alarms_stopped) = tokio::sync::oneshot::channel::<()>();
    let alarms = tokio::spawn(tollgate_server::alarms::run_alarms(
        state.clone(),
        args.alarm_interval,
        move || clock.now_ms(),
        async move {
            let _ = alarms_stopped.await;
        },
    ));
    let served = match tls {
        Some(reloader) => {
            let config = reloader.server_config().map_err(CliError::config)?;
            tollgate_server::serve_tls(listener, state, config, shutdown).await
        }
        None => tollgate_server::serve(listener, state, shutdown).await,
    };
    let _ = stop_alarms.send(());
    if let Err(e) = alarms.await {
        tracing::warn!(error = %e, "the alarm evaluator ended abnormally");
    }
    // Nothing notifies any more: let the deliveries under way finish (bounded).
    notifier.drain(NOTIFY_DRAIN).await;
    served.map_err(|e| CliError::failure(format!("server error: {e}")))?;
    // In-flight requests have ended: write their ledger rows and give leased credit back.
    proxy.shutdown().await.map_err(|e| CliError::failure(format!("could not write the last ledger rows: {e}")))?;
    Ok(ExitCode::from(exit::OK))
}

/// A URL given on the command line that is itself a credential (a Slack incoming webhook's
/// path is its key): `Args`' `Debug` shows only that one is set, never the URL.
#[derive(Clone)]
struct CredentialUrl(String);

impl std::str::FromStr for CredentialUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for CredentialUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialUrl(<redacted>)")
    }
}

/// How long a stopping `serve` waits for webhook deliveries under way (a receiver that hangs
/// must not hold a deploy).
const NOTIFY_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The webhook notifier's settings: `--alert-webhook-url` and `TOLLGATE_ALERT_WEBHOOK_SECRET`.
/// The notifier runs without a global URL too, for the orgs' own. The URL is never printed (a
/// credential): its host is.
fn notify_config(args: &Args) -> Result<tollgate_server::notify::NotifierConfig, CliError> {
    let url = args.alert_webhook_url.as_ref().map(|u| u.0.clone());
    let config = tollgate_server::notify::NotifierConfig::from_env(|name| match name {
        "TOLLGATE_ALERT_WEBHOOK_URL" => url.clone(),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| CliError::config(e.replace("TOLLGATE_ALERT_WEBHOOK_URL", "--alert-webhook-url")))?;
    match (&config.global_url, config.secret.is_some()) {
        (Some(u), true) => tracing::info!(destination = u.origin(), "alert webhook configured, signed"),
        (Some(u), false) => tracing::warn!(
            destination = u.origin(),
            "alert webhook configured without TOLLGATE_ALERT_WEBHOOK_SECRET: notifications are not signed"
        ),
        (None, _) => tracing::info!("no global alert webhook: only orgs' alert_webhook_url are notified"),
    }
    Ok(config)
}

/// Raises the soft limit on open files to the hard limit: every proxied stream holds two sockets
/// (the client's and the upstream's), and the common soft default of 1,024 would refuse
/// connections at about 500 concurrent streams. A limit that cannot be raised is logged and
/// kept.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        tracing::debug!(limit = ?limit.current, "open-file limit");
        return;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum }) {
        Ok(()) => tracing::debug!(from = ?limit.current, to = ?limit.maximum, "raised the open-file limit"),
        Err(e) => tracing::warn!(limit = ?limit.current, error = %e, "cannot raise the open-file limit"),
    }
}

/// The certificate pair of `--tls-cert` and `--tls-key`: both or neither.
fn load_tls(args: &Args) -> Result<Option<Arc<CertReloader>>, CliError> {
    let given = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
    match (given(&args.tls_cert), given(&args.tls_key)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => CertReloader::load(&cert, &key).map(Some).map_err(CliError::config),
        (Some(_), None) => Err(CliError::config(
            "--tls-cert (TOLLGATE_TLS_CERT) is set but --tls-key (TOLLGATE_TLS_KEY) is not: HTTPS needs both",
        )),
        (None, Some(_)) => Err(CliError::config(
            "--tls-key (TOLLGATE_TLS_KEY) is set but --tls-cert (TOLLGATE_TLS_CERT) is not: HTTPS needs both",
        )),
    }
}

/// Reloads the certificate pair on SIGHUP and, every `every` (unless zero), when its files
/// changed. A bad new pair keeps the one in force; the log says why.
fn spawn_tls_reloads(reloader: Arc<CertReloader>, every: std::time::Duration) -> Result<(), CliError> {
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| CliError::failure(format!("cannot handle SIGHUP: {e}")))?;
        let on_signal = reloader.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let outcome = on_signal.reload().map(|()| true);
                on_signal.reload_logged(outcome, "SIGHUP");
            }
        });
    }
    if !every.is_zero() {
        tokio::spawn(reloader.watch(every));
    }
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), CliError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| CliError::config(format!("cannot create the data dir {}: {e}", dir.display())))
}

/// Installs the SIGTERM and Ctrl-C handlers now (before the server says it is listening, so
/// a signal sent right after that is never missed) and returns a future that resolves on
/// either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, CliError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::failure(format!("cannot handle SIGTERM: {e}")))?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CliError::failure(format!("cannot handle SIGINT: {e}")))?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: draining in-flight requests");
    })
}

#[cfg(test)]
mod tests {
    use super::{CredentialUrl, default_workers};

    #[test]
    fn one_core_is_left_to_the_sqlite_writers_but_one_worker_always_runs() {
        assert_eq!([0, 1, 2, 3, 8].map(default_workers), [1, 1, 1, 2, 7]);
    }

    #[test]
    fn a_webhook_url_never_shows_in_debug() {
        let url: CredentialUrl = "https://hooks.slack.com/services/T0001/B0001/pathsecret".parse().unwrap();
        let shown = format!("{:?}", Some(url));
        assert!(!shown.contains("pathsecret") && !shown.contains("hooks.slack.com"), "{shown}");
    }
}
