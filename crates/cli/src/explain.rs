//! `tollgate explain --scenario FILE [--format json|text]`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tollgate_policy::registry::DEFAULT_REGISTRY_NAME;
use tollgate_policy::resolve::{Context, PublicUrl, Resolved};
use tollgate_policy::scenario::{RegistryRef, Scenario};
use tollgate_policy::{Registry, resolve};

use crate::exit::{self, CliError};

/// Arguments of `tollgate explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file (YAML; see DESIGN.md section 10).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The public URL to plan with, unless the scenario sets `public_url`.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    public_url: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Text,
}

/// Loads a registry file, or the embedded one.
pub fn load_registry(path: Option<&Path>) -> Result<Registry, CliError> {
    match path {
        None => Registry::embedded().map_err(|e| CliError::config(format!("{DEFAULT_REGISTRY_NAME} is invalid:\n{e}"))),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::config(format!("cannot read registry {}: {e}", p.display())))?;
            Registry::parse(&p.display().to_string(), &text)
                .map_err(|e| CliError::config(format!("invalid registry:\n{e}")))
        }
    }
}

/// Runs `explain`.
pub fn run(args: &Args) -> Result<ExitCode, CliError> {
    let path = &args.scenario;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config(format!("cannot read scenario {}: {e}", path.display())))?;
    let stem = path.file_stem().map_or_else(|| "scenario".to_owned(), |s| s.to_string_lossy().into_owned());
    let scenario = Scenario::parse(&path.display().to_string(), &text, &stem).map_err(CliError::config)?;
    let registry = match &scenario.registry {
        RegistryRef::Default => load_registry(None)?,
        RegistryRef::Path(rel) => {
            let base = path.parent().unwrap_or_else(|| Path::new("."));
            load_registry(Some(&base.join(rel)))
                .map_err(|e| CliError::config(format!("{}: registry `{rel}`: {e}", path.display())))?
        }
    };
    let url_text = scenario.public_url.as_deref().unwrap_or(&args.public_url);
    let public_url =
        PublicUrl::parse(url_text).map_err(|e| CliError::config(format!("public URL `{url_text}`: {e}")))?;
    let ctx = Context { registry: &registry, public_url: &public_url };
    let resolved =
        resolve(&ctx, &scenario.workspace, &scenario.org, &scenario.secrets, scenario.request_model.as_deref());

    let mismatches = scenario.expect.as_ref().map(|e| e.check(&resolved));
    let mut out = String::new();
    match args.format {
        Format::Json => {
            let env = resolved.plan.as_ref().map(tollgate_policy::EnvPlan::redacted).unwrap_or_default();
            let doc = serde_json::json!({ "resolution": resolved.resolution, "env": env });
            out.push_str(&serde_json::to_string_pretty(&doc).map_err(|e| CliError::config(e.to_string()))?);
            out.push('\n');
        }
        Format::Text => render_text(&mut out, &scenario, &resolved),
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth reporting.
    let _ = stdout.write_all(out.as_bytes());
    match mismatches {
        Some(m) if !m.is_empty() => {
            let mut msg = format!("{}: expectations do not hold:", path.display());
            for line in &m {
                msg.push_str("\n  - ");
                msg.push_str(line);
            }
            Err(CliError::failure(msg))
        }
        Some(_) => {
            if matches!(args.format, Format::Text) {
                let _ = writeln!(stdout, "expect: ok");
            }
            Ok(ExitCode::from(exit::OK))
        }
        None => Ok(ExitCode::from(exit::OK)),
    }
}

fn render_text(out: &mut String, scenario: &Scenario, resolved: &Resolved) {
    use std::fmt::Write as _;
    let r = &resolved.resolution;
    let ws = &scenario.workspace;
    let _ = writeln!(out, "workspace  {} ({}, {})", r.workspace_id, ws.runtime, ws.kind.as_str());
    match (&r.error, r.resolved_mode, r.source) {
        (Some(e), _, _) => {
            let _ = writeln!(out, "error      {}: {}", e.code, e.message);
        }
        (None, Some(mode), Some(source)) => {
            let _ = writeln!(out, "mode       {mode} (source {})", source.as_str());
        }
        _ => {}
    }
    let _ = writeln!(out, "provider   {}", r.provider.as_deref().unwrap_or("-"));
    match (&r.effective_model, r.model_source) {
        (Some(m), Some(s)) => {
            let _ = writeln!(out, "model      {m} (from {})", s.as_str());
        }
        _ => {
            let _ = writeln!(out, "model      -");
        }
    }
    let mut rows: Vec<[String; 4]> = vec![["CREDENTIAL".into(), "ORIGIN".into(), "DECISION".into(), "REASON".into()]];
    rows.extend(r.credentials.iter().map(|c| [c.name.clone(), c.origin.to_string(), "kept".into(), c.reason.clone()]));
    rows.extend(r.dropped.iter().map(|d| [d.name.clone(), d.origin.to_string(), "dropped".into(), d.reason.clone()]));
    let _ = writeln!(out);
    if rows.len() == 1 {
        let _ = writeln!(out, "no LLM credential or routing name kept or dropped");
    } else {
        let widths: Vec<usize> = (0..3).map(|i| rows.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
        for row in &rows {
            let _ = writeln!(
                out,
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
    }
    if let Some(plan) = &resolved.plan {
        let _ = writeln!(out, "\nenv plan (secret values redacted)");
        for (name, value) in plan.redacted() {
            let _ = writeln!(out, "  {name}={value}");
        }
    }
    let _ = writeln!(out, "\ntrace");
    for (i, line) in r.trace.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {line}", i + 1);
    }
}
