//! `tollgate exec [--pull] [--secrets-dir DIR] [--check] -- COMMAND [ARGS...]`: runtime
//! normalisation (DESIGN.md section 7), run inside the workspace just before the agent.
//!
//! IO only: read the inherited environment, pull the plan, write files, print, `exec`. Every
//! decision is the policy crate's [`overlay`] and [`normalise`]; this module labels their
//! outcome for `--check` and carries it out.
//!
//! The registry `normalise` reads credential and routing names from is the embedded default,
//! or `--registry FILE` / `TOLLGATE_REGISTRY`; give it the file `serve --providers` uses when
//! the server runs a custom registry.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tollgate_policy::normalise::{CLAUDE_CODE_OAUTH_TOKEN, Env, Normalised, normalise, overlay};
use tollgate_policy::registry::{LLM_BILLING_MODE, LLM_PROVIDER};
use tollgate_policy::{BillingMode, Registry};

use crate::exit::{self, CliError};

mod codex;
mod pull;
mod secrets_dir;

/// Arguments of `tollgate exec`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Pull the workspace's plan from TOLLGATE_URL with TOLLGATE_WORKSPACE_ID and
    /// TOLLGATE_WORKSPACE_TOKEN, and overlay it on the inherited environment.
    #[arg(long)]
    pull: bool,
    /// How long --pull keeps retrying an unreachable server: `30s`, `500ms`, `1m 30s` (humantime) or seconds.
    #[arg(
        long,
        env = "TOLLGATE_PULL_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pull_timeout: Duration,
    /// Also write each variable of the pulled plan to DIR/NAME (mode 0600; DIR created 0700).
    #[arg(long, value_name = "DIR", requires = "pull")]
    secrets_dir: Option<PathBuf>,
    /// Print the decision (names, origins and reasons; never values) and exit 0, or 78 when the
    /// preflight fails, without running the command or writing files.
    #[arg(long)]
    check: bool,
    /// The provider registry normalisation reads names from (default: the embedded one).
    #[arg(long, env = "TOLLGATE_REGISTRY", value_name = "FILE")]
    registry: Option<PathBuf>,
    /// The agent to run, and its arguments.
    #[arg(last = true, value_name = "COMMAND", required_unless_present = "check")]
    command: Vec<OsString>,
}

/// Parses a duration: humantime's spellings (`500ms`, `1.5s`, `2m`, `1m 30s`, `1h`) or a bare
/// number of seconds (`30`, `0.5`), which humantime refuses.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let invalid = || format!("`{s}` is not a duration such as 30s, 500ms, 2m or 1m 30s");
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // A bare number is seconds, fractions included, as before humantime was used.
        let n: f64 = s.parse().map_err(|_| invalid())?;
        return Duration::try_from_secs_f64(n).map_err(|e| format!("`{s}`: {e}"));
    }
    humantime::parse_duration(s).map_err(|_| invalid())
}

/// Runs `tollgate exec`. On success it does not return: the process becomes the command.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let registry = crate::registry::load(args.registry.as_deref())?;
    let (inherited_env, inherited) = Inherited::read();
    let (env, pulled) = if args.pull {
        let source = pull::Source::from_env(&inherited_env)?;
        let plan = pull::fetch(&source, args.pull_timeout)?;
        let dropped: Vec<String> = plan.resolution.dropped.iter().map(|d| d.name.clone()).collect();
        let names = plan.env.keys().cloned().collect();
        let (env, removed) = overlay(inherited_env, plan.env, &dropped, &registry);
        let pulled =
            Pulled { url: source.display_url(), resolution: plan.resolution, names, removed, codex: plan.codex };
        (env, Some(pulled))
    } else {
        (inherited_env, None)
    };
    let mut normalised = normalise(env, &registry);

    if args.check {
        let report =
            Report { inherited: &inherited, pulled: pulled.as_ref(), normalised: &normalised, registry: &registry };
        crate::print(&report.render(args.registry.as_deref()));
        if let Err(e) = &normalised.preflight {
            return Err(CliError::config(format!("preflight failed: {}", e.message)));
        }
        // The Codex files exec would write, merged in memory only: a config.toml it could not
        // merge fails here as it would in the real run.
        if let Some(config) = pulled.as_ref().and_then(|p| p.codex.as_ref()) {
            codex::dry_run(config, &normalised.env)?;
        }
        return Ok(ExitCode::from(exit::OK));
    }
    for w in &normalised.warnings {
        exit::warn(w);
    }
    if let Err(e) = &normalised.preflight {
        return Err(CliError::config(format!("preflight failed: {}; the command was not started", e.message)));
    }
    if let Some(config) = pulled.as_ref().and_then(|p| p.codex.as_ref()) {
        write_codex(config, &mut normalised.env)?;
    }
    if let (Some(dir), Some(p)) = (&args.secrets_dir, &pulled) {
        // The plan's names that survived normalisation, with their final values; files of
        // names that are gone are removed.
        let files = normalised.env.iter().filter(|(k, _)| p.names.contains(*k)).map(|(k, v)| (k.as_str(), v));
        let mut stale: BTreeSet<&str> = normalised.removed.iter().map(|r| r.name.as_str()).collect();
        stale.extend(p.resolution.dropped.iter().map(|d| d.name.as_str()));
        stale.retain(|name| !normalised.env.contains_key(*name));
        secrets_dir::write(dir, files, stale)?;
    }
    let names = pulled.map(|p| p.names).unwrap_or_default();
    Err(exec(&args.command, inherited.final_env(normalised.env, &names)))
}

/// Writes the plan's Codex configuration under Codex's home (`CODEX_HOME`, else `~/.codex`),
/// and sets `CODEX_HOME` for the command, so that every Codex it starts reads those files.
fn write_codex(config: &tollgate_policy::codex::CodexConfig, env: &mut Env) -> Result<(), CliError> {
    let home = codex::require_home(env)?;
    let written = codex::write(&home, config, env)?;
    let files: Vec<String> = written.files.iter().map(|f| f.display().to_string()).collect();
    tracing::info!(files = %files.join(", "), codex = %config.describe(), "wrote Codex's configuration");
    env.insert(codex::CODEX_HOME.to_owned(), SecretString::from(home.display().to_string()));
    Ok(())
}

/// What the pull brought: where from, the resolution, and the names of the plan.
#[derive(Debug)]
struct Pulled {
    url: String,
    resolution: tollgate_policy::Resolution,
    names: BTreeSet<String>,
    /// What the overlay removed from the inherited environment.
    removed: Vec<tollgate_policy::normalise::Removal>,
    /// Codex's configuration, for a Codex workspace.
    codex: Option<tollgate_policy::codex::CodexConfig>,
}

/// Replaces this process with `command` (found through the final environment's `PATH`).
/// Only returns on failure: 127 when the command does not exist, 126 when it cannot be run.
fn exec(command: &[OsString], env: Vec<(OsString, OsString)>) -> CliError {
    let Some((program, rest)) = command.split_first() else {
        return CliError::with_code(exit::USAGE, "no command given: tollgate exec [OPTIONS] -- COMMAND [ARGS...]");
    };
    // Nothing buffered may be lost when the process image is replaced.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let err = std::process::Command::new(program).args(rest).env_clear().envs(env).exec();
    let shown = program.to_string_lossy();
    match err.kind() {
        std::io::ErrorKind::NotFound => CliError::with_code(
            exit::NOT_FOUND,
            format!("command not found: {shown} (looked up in the PATH of the normalised environment)"),
        ),
        _ => CliError::with_code(exit::CANNOT_EXECUTE, format!("cannot execute {shown}: {err}")),
    }
}

/// The environment `tollgate exec` was started with, apart from the [`Env`] handed to the
/// policy crate. No `Debug`: it holds values.
struct Inherited {
    /// Every variable with a UTF-8 name.
    names: BTreeSet<String>,
    /// The exact bytes of values that are not UTF-8 (the `Env` has them lossily, for the
    /// decisions).
    raw: BTreeMap<String, OsString>,
    /// Variables whose name is not UTF-8: never an LLM credential or routing name (those are
    /// `[A-Z_][A-Z0-9_]*`), so passed through untouched.
    opaque: Vec<(OsString, OsString)>,
}

impl Inherited {
    fn read() -> (Env, Self) {
        let mut env = Env::new();
        let mut this = Self { names: BTreeSet::new(), raw: BTreeMap::new(), opaque: Vec::new() };
        for (name, value) in std::env::vars_os() {
            match name.into_string() {
                Err(name) => this.opaque.push((name, value)),
                Ok(name) => {
                    let lossy = SecretString::from(value.to_string_lossy().into_owned());
                    if value.to_str().is_none() {
                        this.raw.insert(name.clone(), value);
                    }
                    this.names.insert(name.clone());
                    env.insert(name, lossy);
                }
            }
        }
        (env, this)
    }

    /// The command's environment: `normalised`, with the exact bytes of inherited values the
    /// plan did not replace.
    fn final_env(&self, normalised: Env, pulled: &BTreeSet<String>) -> Vec<(OsString, OsString)> {
        let mut out: Vec<(OsString, OsString)> = normalised
            .into_iter()
            .map(|(name, value)| {
                let exact = self.raw.get(&name).filter(|_| !pulled.contains(&name)).cloned();
                let value = exact.unwrap_or_else(|| OsString::from(value.expose_secret()));
                (OsString::from(name), value)
            })
            .collect();
        out.extend(self.opaque.iter().cloned());
        out
    }
}

/// What `--check` prints: the decision for each name, never a value.
struct Report<'a> {
    inherited: &'a Inherited,
    pulled: Option<&'a Pulled>,
    normalised: &'a Normalised,
    registry: &'a Registry,
}

/// One row of the `--check` table.
struct Row {
    name: String,
    decision: &'static str,
    origin: String,
    reason: String,
}

impl Report<'_> {
    /// A label for every name of the inherited environment and the plan, from what `overlay`
    /// and `normalise` did (this decides nothing).
    fn rows(&self) -> (Vec<Row>, usize) {
        let n = self.normalised;
        let plan = self.pulled;
        let inherited = &self.inherited.names;
        let removals: BTreeMap<&str, &str> = n.removed.iter().map(|r| (r.name.as_str(), r.reason.as_str())).collect();
        let overlaid: BTreeMap<&str, &str> =
            plan.iter().flat_map(|p| p.removed.iter().map(|r| (r.name.as_str(), r.reason.as_str()))).collect();
        let dropped: BTreeMap<&str, _> =
            plan.iter().flat_map(|p| p.resolution.dropped.iter().map(|d| (d.name.as_str(), d))).collect();
        let origins: BTreeMap<&str, &str> = plan
            .iter()
            .flat_map(|p| p.resolution.credentials.iter().map(|c| (c.name.as_str(), c.origin.as_str())))
            .collect();
        let pulled = |name: &str| plan.is_some_and(|p| p.names.contains(name));
        let names: BTreeSet<&str> =
            inherited.iter().chain(plan.iter().flat_map(|p| p.names.iter())).map(String::as_str).collect();
        let mut rows = Vec::new();
        let mut passed_through = 0;
        for name in names {
            let from_plan = pulled(name);
            let plan_origin = || origins.get(name).map_or("plan", |o| o).to_owned();
            let inherited_too = inherited.contains(name);
            let (decision, origin, reason) = if let Some(reason) = removals.get(name) {
                let origin = if from_plan { plan_origin() } else { "inherited".to_owned() };
                ("removed", origin, (*reason).to_owned())
            } else if let Some(d) = dropped.get(name).filter(|_| !from_plan) {
                let reason = format!("the plan dropped it ({} secret): {}", d.origin, d.reason);
                ("removed", "inherited".to_owned(), reason)
            } else if let Some(reason) = overlaid.get(name).filter(|_| !from_plan) {
                ("removed", "inherited".to_owned(), (*reason).to_owned())
            } else if from_plan {
                let reason =
                    if inherited_too { "from the plan, replacing the inherited value" } else { "from the plan" };
                ("injected", plan_origin(), reason.to_owned())
            } else if self.is_relevant(name) {
                ("kept", "inherited".to_owned(), "allowed by normalisation".to_owned())
            } else {
                passed_through += 1;
                continue;
            };
            rows.push(Row { name: name.to_owned(), decision, origin, reason });
        }
        (rows, passed_through + self.inherited.opaque.len())
    }

    /// Names worth a row even when merely inherited and kept: everything LLM-related.
    fn is_relevant(&self, name: &str) -> bool {
        let r = self.registry;
        r.is_llm_credential(name)
            || r.is_routing(name)
            || r.runtimes()
                .any(|rt| rt.token_env().as_str() == name || rt.model_env().is_some_and(|m| m.as_str() == name))
            || [CLAUDE_CODE_OAUTH_TOKEN, LLM_PROVIDER, LLM_BILLING_MODE].contains(&name)
            || name.starts_with("TOLLGATE_")
    }

    fn render(&self, registry_file: Option<&std::path::Path>) -> String {
        let n = self.normalised;
        let mut out = String::from("tollgate exec --check: the command is not run\n\n");
        match self.pulled {
            Some(p) => {
                let (r, url) = (&p.resolution, &p.url);
                let _ = writeln!(
                    out,
                    "plan       pulled from {url} for workspace {}: {} (source {}), provider {}",
                    r.workspace_id,
                    r.resolved_mode.map_or("-", BillingMode::as_str),
                    r.source.map_or("-", |s| s.as_str()),
                    r.provider.as_deref().unwrap_or("-"),
                );
            }
            None => out.push_str("plan       not pulled (the inherited environment only)\n"),
        }
        let _ = writeln!(
            out,
            "registry   {}",
            registry_file.map_or_else(|| "embedded default".to_owned(), |p| p.display().to_string())
        );
        let _ = writeln!(out, "provider   {}", n.provider.as_deref().unwrap_or("- (LLM_PROVIDER not set)"));
        let mode = n.env.get(LLM_BILLING_MODE).and_then(|v| BillingMode::parse(v.expose_secret()));
        let _ = writeln!(out, "mode       {}", mode.map_or("-", BillingMode::as_str));
        let routing = if n.routed_to_proxy { "through the Tollgate proxy" } else { "not through the Tollgate proxy" };
        let _ = writeln!(out, "routing    {routing}");
        if let Some(config) = self.pulled.and_then(|p| p.codex.as_ref()) {
            let _ = writeln!(out, "codex      {}", codex::describe(config, codex::home(&n.env).as_deref()));
        }
        out.push('\n');
        let (rows, others) = self.rows();
        let mut table = vec![["NAME", "DECISION", "ORIGIN", "REASON"].map(str::to_owned).to_vec()];
        table.extend(rows.into_iter().map(|r| vec![r.name, r.decision.to_owned(), r.origin, r.reason]));
        out.push_str(&crate::render::table(&table));
        let _ = writeln!(out, "(and {others} other inherited variables, passed through unchanged)");
        if !n.warnings.is_empty() {
            out.push_str("\nwarnings\n");
            for w in &n.warnings {
                let _ = writeln!(out, "  - {w}");
            }
        }
        match &n.preflight {
            Ok(()) => out.push_str("\npreflight  ok\n"),
            Err(e) => {
                let _ = writeln!(out, "\npreflight  FAILED: {}", e.message);
                let _ = writeln!(out, "missing    {}", e.missing.join(", "));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        // humantime's spellings: compound values and hours are accepted now.
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 45s "), Ok(Duration::from_secs(45)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(parse_duration("1.5m 30s"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.2.3").is_err());
        assert!(parse_duration("").is_err());
    }
}
