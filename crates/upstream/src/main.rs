//! `tollgate-upstream`: the stand-in upstream as a process, for the proxy's benchmark.
//!
//! ```text
//! tollgate-upstream [--listen ADDR] [--no-record]
//! ```
//!
//! Binds `ADDR` (default `127.0.0.1:0`), prints `listening on http://ADDR` with the bound address
//! on stdout, and serves until killed. `--no-record` keeps no request log (the binary has no way
//! to read it anyway, so the benchmark should pass it).

use std::process::ExitCode;

use tokio::net::TcpListener;
use tollgate_upstream::{UpstreamState, serve};

const USAGE: &str = "usage: tollgate-upstream [--listen ADDR] [--no-record]";

struct Options {
    listen: String,
    record: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options { listen: "127.0.0.1:0".to_owned(), record: true };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                options.listen = args.next().ok_or("--listen needs an address")?;
            }
            "--no-record" => options.record = false,
            "-h" | "--help" => return Ok(None),
            other => match other.strip_prefix("--listen=") {
                Some(addr) => options.listen = addr.to_owned(),
                None => return Err(format!("unexpected argument {arg:?}")),
            },
        }
    }
    Ok(Some(options))
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the binary's interface is its stdout line and its error messages"
)]
fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tollgate-upstream: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tollgate-upstream: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(&options.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("tollgate-upstream: cannot listen on {}: {error}", options.listen);
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("listening on http://{addr}"),
            Err(error) => {
                eprintln!("tollgate-upstream: {error}");
                return ExitCode::FAILURE;
            }
        }
        let state = UpstreamState::new(options.record);
        match serve(listener, state, std::future::pending()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tollgate-upstream: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
