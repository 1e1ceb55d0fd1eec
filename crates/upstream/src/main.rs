//! `tollgate-upstream`: the stand-in upstream as a process, for the proxy's benchmark.
//!
//! ```text
//! tollgate-upstream [--listen ADDR] [--no-record] [--trickle-every-ms MS] [--trickle-events N]
//! ```
//!
//! Binds `ADDR` (default `127.0.0.1:0`), prints `listening on http://ADDR` with the bound address
//! on stdout, and serves until killed. `--no-record` keeps no request log (the binary has no way
//! to read it anyway, so the benchmark should pass it). A `-trickle` model's stream sends `N`
//! content deltas (default 30), one every `MS` milliseconds (default 1000).

use std::process::ExitCode;

use std::time::Duration;
use tokio::net::TcpListener;

use tollgate_upstream::{Trickle, UpstreamState, serve};

const USAGE: &str =
    "usage: tollgate-upstream [--listen ADDR] [--no-record] [--trickle-every-ms MS] [--trickle-events N]";

struct Options {
    listen: String,
    record: bool,
    trickle: Trickle,
}

fn number(value: Option<String>, flag: &str) -> Result<u64, String> {
    value.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a whole number"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options { listen: "127.0.0.1:0".to_owned(), record: true, trickle: Trickle::default() };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                options.listen = args.next().ok_or("--listen needs an address")?;
            }
            "--no-record" => options.record = false,
            "--trickle-every-ms" => {
                options.trickle.every = Duration::from_millis(number(args.next(), "--trickle-every-ms")?);
            }
            "--trickle-events" => options.trickle.events = number(args.next(), "--trickle-events")?,
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
        let state = UpstreamState::with_trickle(options.record, options.trickle);
        match serve(listener, state, std::future::pending()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("tollgate-upstream: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
