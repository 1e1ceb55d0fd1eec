//! `tollgate`: the command-line entry point. Thin glue over the library crates.
//!
//! Exit codes: 0 success, 1 failure (e.g. a scenario's expectations do not hold, a server that
//! stays unreachable), 2 usage error, 78 configuration error (unreadable or invalid registry or
//! scenario, a refused token, a failed `exec` preflight); `exec` also exits 126 when the command
//! cannot be executed and 127 when it is not found, as POSIX shells do. `audit` exits 1 when a
//! finding is at or above `--fail-on` (see `audit.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod audit;
mod demo;
mod exec;
mod exit;
mod explain;
mod logging;
mod otel;
mod registry;
mod render;
mod serve;
mod tls;

use exit::CliError;

/// jemalloc, not the system's malloc: the proxy allocates and frees per request (buffers,
/// JSON values, headers) from its worker threads, where glibc's malloc cost about a tenth of
/// the throughput at 16 connections and a third of the added latency at one, and kept more
/// memory after a load (ARCHITECTURE.md, "Allocator"). Built without the `jemalloc` feature,
/// the system's malloc (what heap profilers such as heaptrack see).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Tollgate decides who pays for each AI-agent workspace's LLM calls and which credentials
/// it may hold, and enforces it.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve a workspace described in a scenario file, with no server and no database.
    Explain(explain::Args),
    /// Run the control plane: admin API, provisioning and the secrets pull.
    Serve(serve::Args),
    /// Call the admin API: orgs, workspaces, secrets, provisioning.
    Admin(admin::Args),
    /// Inside a workspace: pull its plan, normalise the environment, preflight, and exec the agent.
    Exec(exec::Args),
    /// Resolve every workspace now and report what needs attention; exit 1 on a finding at or
    /// above --fail-on (default error).
    Audit(audit::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(code) => code,
        Err(e) => {
            e.report();
            ExitCode::from(e.code)
        }
    }
}

/// Writes `text` to standard output; a closed pipe (e.g. `| head`) is not an error.
fn print(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn try_main(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Explain(args) => explain::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Admin(args) => admin::run(&args),
        Command::Exec(args) => exec::run(&args),
        Command::Audit(args) => audit::run(&args),
    }
}
