//! `tollgate audit [--org ID] [--format table|json] [--fail-on error|warning|never]`: the
//! report of `GET /admin/audit` (DESIGN.md section 16), through the admin API like
//! `tollgate admin`.
//!
//! Exit codes: 0 when no finding is at or above `--fail-on` (default `error`); 1 when one is
//! (the report is printed either way), or when the audit could not run (the server is
//! unreachable or answers an error); 2 for a usage error; 78 for a missing or refused admin
//! token or a malformed `--url`. A deploy gate or a cron job can act on the exit code alone.

use std::fmt::Write as _;
use std::process::ExitCode;

use tollgate_policy::OrgId;
use tollgate_policy::audit::Severity;
use tollgate_server::api::audit::AuditReport;

use crate::admin::Client;
use crate::exit::{self, CliError};

/// Arguments of `tollgate audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The Tollgate server.
    #[arg(long, env = "TOLLGATE_ADMIN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin token.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Only this org and its workspaces.
    #[arg(long, value_name = "ID")]
    org: Option<OrgId>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Exit 1 when a finding is at or above this severity (`never`: always exit 0 once the
    /// audit ran).
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Never,
}

impl FailOn {
    /// Whether a finding of `severity` fails the audit.
    fn fails(self, severity: Severity) -> bool {
        match self {
            Self::Error => severity >= Severity::Error,
            Self::Warning => severity >= Severity::Warning,
            Self::Never => false,
        }
    }
}

/// Runs `tollgate audit`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let client = Client::new(&args.url, args.token.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let query: Vec<(&str, &str)> = args.org.as_ref().map(|o| ("org_id", o.as_str())).into_iter().collect();
    let report: AuditReport = runtime.block_on(client.get(&["admin", "audit"], &query))?;
    let out = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)
            .map(|s| format!("{s}\n"))
            .map_err(|e| CliError::failure(format!("cannot print the report: {e}")))?,
        Format::Table => table(&report),
    };
    crate::print(&out);
    let failed = report.findings.iter().any(|f| args.fail_on.fails(f.severity));
    Ok(ExitCode::from(if failed { exit::FAILURE } else { exit::OK }))
}

/// The findings as a table, then a one-line count by severity.
fn table(report: &AuditReport) -> String {
    let mut out = String::new();
    if !report.findings.is_empty() {
        let mut rows = vec![["SEVERITY", "CODE", "ORG", "WORKSPACE", "MESSAGE"].map(str::to_owned).to_vec()];
        rows.extend(report.findings.iter().map(|f| {
            vec![
                f.severity.as_str().to_owned(),
                f.code.as_str().to_owned(),
                f.org_id.clone(),
                f.workspace_id.clone().unwrap_or_else(|| "-".to_owned()),
                f.message.clone(),
            ]
        }));
        out.push_str(&crate::render::table(&rows));
        out.push('\n');
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "{} workspaces checked at {}: {} errors, {} warnings, {} info",
        report.workspaces_checked,
        report.generated_at,
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_is_a_threshold() {
        use Severity::{Error, Info, Warning};
        let fails = |f: FailOn| [Error, Warning, Info].map(|s| f.fails(s));
        assert_eq!(fails(FailOn::Error), [true, false, false]);
        assert_eq!(fails(FailOn::Warning), [true, true, false]);
        assert_eq!(fails(FailOn::Never), [false, false, false]);
    }
}
