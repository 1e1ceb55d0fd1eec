//! `tollgate explain --scenario FILE [--format json|text]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tollgate_policy::resolve;
use tollgate_policy::resolve::{Context, PublicUrl};
use tollgate_policy::scenario::{RegistryRef, Scenario};

use crate::exit::{self, CliError};

/// Arguments of `tollgate explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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

/// Runs `explain`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let path = &args.scenario;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::config(format!("cannot read scenario {}: {e}", path.display())))?;
    let stem = path.file_stem().map_or_else(|| "scenario".to_owned(), |s| s.to_string_lossy().into_owned());
    let scenario = Scenario::parse(&path.display().to_string(), &text, &stem).map_err(CliError::config)?;
    let registry = match &scenario.registry {
        RegistryRef::Default => crate::registry::load(None)?,
        RegistryRef::Path(rel) => {
            let base = path.parent().unwrap_or_else(|| Path::new("."));
            crate::registry::load(Some(&base.join(rel)))
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
            let env = resolved.plan().map(tollgate_policy::EnvPlan::redacted).unwrap_or_default();
            let mut doc = serde_json::json!({ "resolution": resolved.resolution(), "env": env });
            // Codex's configuration, for a runtime configured the Codex way: names and URLs.
            if let Some(codex) = resolved.plan().and_then(tollgate_policy::EnvPlan::codex) {
                doc["codex"] = serde_json::to_value(codex).map_err(|e| CliError::config(e.to_string()))?;
            }
            out.push_str(&serde_json::to_string_pretty(&doc).map_err(|e| CliError::config(e.to_string()))?);
            out.push('\n');
        }
        Format::Text => {
            let ws = &scenario.workspace;
            out.push_str(&format!("workspace  {} ({}, {})\n", ws.id, ws.runtime, ws.kind.as_str()));
            out.push_str(&crate::render::resolution(
                resolved.resolution(),
                resolved.plan().map(tollgate_policy::EnvPlan::redacted),
            ));
            if let Some(codex) = resolved.plan().and_then(tollgate_policy::EnvPlan::codex) {
                out.push_str(&format!("codex      {}\n", codex.describe()));
            }
        }
    }
    crate::print(&out);
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
                crate::print("expect: ok\n");
            }
            Ok(ExitCode::from(exit::OK))
        }
        None => Ok(ExitCode::from(exit::OK)),
    }
}
