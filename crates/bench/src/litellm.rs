//! LiteLLM's proxy as the reference peer, run as its CLI runs it by default.
//!
//! `litellm[proxy]` at [`VERSION`] comes from PyPI, installed once into
//! `target/bench-peers/litellm-venv` (reused while it holds that version; the install log is
//! `target/bench-peers/litellm-install.log`, the last run's server log `litellm-last-run.log`).
//!
//! It runs under uvicorn (uvloop) with ONE worker process (`--num_workers 1`, its default): one
//! Python process with one event loop, where `tollgate serve` is one multi-threaded Rust process.
//! Its generated config routes the alias `platform/sonnet` to `anthropic/claude-sonnet-4-5` at
//! the stand-in upstream with the platform key, and the load goes to its Anthropic-compatible
//! `/v1/messages`, streaming and not, so the request body is byte for byte the one sent to
//! Tollgate. It checks the master key only (no database: no virtual keys, spend logs or budgets,
//! so no write per request, unlike Tollgate's reservation and settlement), prices each answer
//! from its bundled cost map, and has no callbacks. Its telemetry flag is a no-op in this
//! version, and `LITELLM_LOCAL_*` makes it read the cost map and its other remote lists from the
//! package, so it connects to nothing but the upstream. Before the load it must answer one
//! request of each kind with the upstream's reply, and the upstream must have counted them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::children::Child;
use crate::{Upstream, free_port, last_line, progress, request_body};

/// The pinned version: the newest that installs here (every later one offered, 1.107.* not
/// included, needs certifi>=2026.10.19).
pub(crate) const VERSION: &str = "1.106.2";

/// The master key the load presents.
pub(crate) const MASTER_KEY: &str = "sk-litellm-bench";

/// How long `pip install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Where the peer's files live: `target/bench-peers` in the workspace.
#[derive(Debug, Clone)]
pub(crate) struct PeerDir(pub(crate) PathBuf);

impl PeerDir {
    fn venv(&self) -> PathBuf {
        self.0.join("litellm-venv")
    }

    fn install_log(&self) -> PathBuf {
        self.0.join("litellm-install.log")
    }

    fn last_run_log(&self) -> PathBuf {
        self.0.join("litellm-last-run.log")
    }

    fn litellm(&self) -> PathBuf {
        self.venv().join("bin/litellm")
    }
}

/// Installs `litellm[proxy]==VERSION` into the venv unless it is there already, without stdin.
/// `Err` holds why LiteLLM cannot be in this run.
pub(crate) async fn install(peers: &PeerDir) -> Result<(), String> {
    let venv = peers.venv();
    let marker = venv.join(".bench-installed");
    if std::fs::read_to_string(&marker).is_ok_and(|v| v.trim() == VERSION) && peers.litellm().is_file() {
        return Ok(());
    }
    let supported = Command::new("python3")
        .args(["-c", "import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 15))"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !supported {
        let found = Command::new("python3").arg("--version").output().map_or_else(
            |e| e.to_string(),
            |out| {
                String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).trim().to_owned()
            },
        );
        return Err(format!("litellm {VERSION} needs Python 3.10 to 3.14, python3 is {found}"));
    }
    progress(&format!("LiteLLM: installing litellm[proxy]=={VERSION} from PyPI into {}", venv.display()));
    let log_path = peers.install_log();
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("cannot remove the old {}: {e}", venv.display()))?;
    }
    std::fs::create_dir_all(&peers.0).map_err(|e| format!("cannot create {}: {e}", peers.0.display()))?;
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut venv_cmd = Command::new("python3");
    venv_cmd.arg("-m").arg("venv").arg(&venv);
    if !run_logged("python3 -m venv", venv_cmd, &log).await {
        return Err(format!("python3 -m venv failed: {}", last_line(&log_path)));
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.env("PIP_NO_INPUT", "1")
        .args(["install", "--disable-pip-version-check", "-q"])
        .arg(format!("litellm[proxy]=={VERSION}"));
    if !run_logged("pip install", pip, &log).await {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let line = text.lines().find(|l| l.starts_with("ERROR")).map_or_else(|| last_line(&log_path), str::to_owned);
        let line = line.split(" (from versions:").next().unwrap_or_default();
        let line: String = line.chars().take(200).collect();
        return Err(format!("pip install failed: {line}; see {}", log_path.display()));
    }
    std::fs::write(&marker, VERSION).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    Ok(())
}

/// Runs `command` with stdin closed and its output appended to `log`; whether it succeeded within
/// the install timeout.
async fn run_logged(name: &str, mut command: Command, log: &std::fs::File) -> bool {
    let (Ok(out), Ok(err)) = (log.try_clone(), log.try_clone()) else { return false };
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let Ok(mut child) = Child::spawn(name, command) else { return false };
    child.wait(INSTALL_TIMEOUT).await.is_some_and(|status| status.success())
}

/// A running LiteLLM proxy. Dropping it stops it and keeps its log as `litellm-last-run.log`.
#[derive(Debug)]
pub(crate) struct Litellm {
    /// The server process (and whatever it forks, in its group).
    pub(crate) process: Child,
    /// Its base URL.
    pub(crate) url: String,
    log: PathBuf,
    last_run_log: PathBuf,
}

impl Drop for Litellm {
    fn drop(&mut self) {
        self.process.stop();
        // The log is only for reading after the run: nothing to do if it cannot be kept.
        let _ = std::fs::copy(&self.log, &self.last_run_log);
    }
}

/// LiteLLM's config: the alias `platform/sonnet` to Anthropic's model at the upstream.
fn config(upstream: SocketAddr) -> String {
    format!(
        "model_list:
  - model_name: platform/sonnet
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_base: http://{upstream}
      api_key: {key}
litellm_settings:
  callbacks: []
  success_callback: []
  failure_callback: []
  turn_off_message_logging: true
  num_retries: 0
  request_timeout: 30
general_settings:
  master_key: {MASTER_KEY}
  disable_spend_logs: true
  disable_error_logs: true
  store_model_in_db: false
  background_health_checks: false
",
        key = crate::PLATFORM_KEY
    )
}

/// Starts LiteLLM in front of `upstream`, waits until it is live, and checks that it answers one
/// request of each kind with the upstream's reply and that the upstream counted them. `Err`
/// holds why it cannot be in this run (it is stopped then).
pub(crate) async fn start(peers: &PeerDir, work: &Path, upstream: &Upstream) -> Result<Litellm, String> {
    let addr = free_port().map_err(|e| format!("no free port: {e}"))?;
    let conf = work.join("litellm.yaml");
    std::fs::write(&conf, config(upstream.addr)).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let log = work.join("litellm.log");
    let out = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(peers.litellm());
    // No database or cache even if the caller's shell names one; no .env (PRODUCTION mode); no
    // access log (LITELLM_LOG=ERROR also sets uvicorn's level), as Tollgate runs at RUST_LOG=warn.
    for name in ["DATABASE_URL", "DIRECT_URL", "REDIS_URL", "REDIS_HOST"] {
        command.env_remove(name);
    }
    command
        .envs([
            ("LITELLM_MODE", "PRODUCTION"),
            ("LITELLM_LOG", "ERROR"),
            ("DISABLE_ADMIN_UI", "True"),
            ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
            ("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True"),
            ("LITELLM_LOCAL_POLICY_TEMPLATES", "True"),
            ("LITELLM_LOCAL_BLOG_POSTS", "True"),
            ("LITELLM_LOCAL_AUTOROUTER_PRESETS", "True"),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
        ])
        .arg("--config")
        .arg(&conf)
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string(), "--num_workers", "1"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let process = Child::spawn("litellm", command).map_err(|e| format!("{e:#}"))?;
    let litellm =
        Litellm { process, url: format!("http://{addr}"), log: log.clone(), last_run_log: peers.last_run_log() };
    wait_live(&litellm, &log).await?;
    check(&litellm, upstream).await?;
    Ok(litellm)
}

/// Waits up to 60 s for `/health/liveliness` to answer.
async fn wait_live(litellm: &Litellm, log: &Path) -> Result<(), String> {
    let client = crate::client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("{}/health/liveliness", litellm.url);
    loop {
        if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if litellm.process.has_exited() {
            return Err(format!("it exited at start: {}", last_line(log)));
        }
        if Instant::now() >= deadline {
            return Err("not live (/health/liveliness) within 60 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request of each kind must come back with the upstream's own reply, and reach it.
async fn check(litellm: &Litellm, upstream: &Upstream) -> Result<(), String> {
    let client = crate::client();
    let before = upstream.count().await.map_err(|e| format!("cannot count the upstream's requests: {e:#}"))?;
    for stream in [false, true] {
        let reply = client
            .post(format!("{}/v1/messages", litellm.url))
            .timeout(Duration::from_secs(30))
            .header("x-api-key", MASTER_KEY)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(request_body(stream, "platform/sonnet"))
            .send()
            .await;
        let text = match reply {
            Ok(response) => response.text().await.unwrap_or_else(|e| e.to_string()),
            Err(error) => error.to_string(),
        };
        if !text.contains("stand-in") {
            let text: String = text.chars().take(300).collect();
            return Err(format!("its stream={stream} answer is not the upstream's: {text}"));
        }
    }
    let after = upstream.count().await.map_err(|e| format!("cannot count the upstream's requests: {e:#}"))?;
    let counted = after.saturating_sub(before).saturating_sub(1);
    if counted != 2 {
        return Err(format!("the upstream counted {counted} requests for LiteLLM's 2 checks"));
    }
    Ok(())
}
