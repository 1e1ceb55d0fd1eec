//! `tollgate serve`: the control plane (and, with `--demo`, a seeded example org).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tollgate_policy::resolve::PublicUrl;
use tollgate_store::MasterKey;

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
    /// Seed an example org with one workspace per interesting case and print their resolutions.
    #[arg(long)]
    demo: bool,
}

/// Runs `tollgate serve` until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let traces = crate::logging::init(runtime.handle());
    let outcome = runtime.block_on(serve(args));
    // The last spans go out while the runtime (which runs the exporter's requests) still runs.
    if let Some(t) = traces {
        t.shutdown();
    }
    outcome
}

async fn serve(args: &Args) -> Result<ExitCode, CliError> {
    let registry = Arc::new(crate::registry::load(args.providers.as_deref())?);
    // An explicit public URL is checked now (a configuration error, before anything starts);
    // the default is derived from the bound address, which `--listen ...:0` only knows later.
    let explicit_url = match &args.public_url {
        Some(u) => Some(PublicUrl::parse(u).map_err(|e| CliError::config(format!("--public-url `{u}`: {e}")))?),
        None => None,
    };
    create_private_dir(&args.data_dir)?;
    let key_env = std::env::var("TOLLGATE_MASTER_KEY").ok();
    let key = MasterKey::load(key_env.as_deref(), &args.data_dir).map_err(CliError::config)?;
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::failure(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener.local_addr().map_err(|e| CliError::failure(e.to_string()))?;
    let public_url = match explicit_url {
        Some(u) => u,
        None => {
            let mut addr = bound;
            if addr.ip().is_unspecified() {
                tracing::warn!(
                    "listening on {addr} without --public-url: workspaces are told http://127.0.0.1:{}",
                    addr.port()
                );
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            PublicUrl::parse(&format!("http://{addr}")).map_err(CliError::config)?
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
        "Tollgate listening on http://{bound} ({} backend, public URL {})\n",
        store.backend(),
        public_url.as_str()
    ));
    crate::print(&out);
    let config = tollgate_proxy::ProxyConfig::from_env(&registry, |name| std::env::var(name).ok());
    for (name, target) in config.upstreams() {
        if target.key.is_none() {
            tracing::warn!(upstream = %name, key_env = %target.key_env, "no platform key: the proxy answers 502 for this upstream's models");
        }
    }
    let proxy = tollgate_proxy::Proxy::new(store.clone(), registry.clone(), public_url.clone(), config)
        .map_err(CliError::failure)?;
    let follower = proxy.clone();
    tokio::spawn(async move { follower.follow_invalidations().await });
    let state = tollgate_server::AppState::new(store, registry, public_url).with_proxy(proxy.clone());
    tollgate_server::serve(listener, state, shutdown)
        .await
        .map_err(|e| CliError::failure(format!("server error: {e}")))?;
    // In-flight requests have ended: write their ledger rows and give leased credit back.
    proxy.shutdown().await.map_err(|e| CliError::failure(format!("could not write the last ledger rows: {e}")))?;
    Ok(ExitCode::from(exit::OK))
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
