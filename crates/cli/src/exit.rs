//! Exit codes and the one place errors are printed.

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// The command ran and the answer is "no" (e.g. expectations not met).
pub const FAILURE: u8 = 1;
/// A configuration file is missing or invalid (`EX_CONFIG` of sysexits.h).
pub const CONFIG: u8 = 78;

/// An error that ends the command with a specific exit code.
#[derive(Debug)]
pub struct CliError {
    /// The process exit code.
    pub code: u8,
    message: String,
}

impl CliError {
    /// A configuration error (exit 78).
    pub fn config(message: impl fmt::Display) -> Self {
        Self { code: CONFIG, message: message.to_string() }
    }

    /// A failure (exit 1): the command ran and the answer is no.
    pub fn failure(message: impl fmt::Display) -> Self {
        Self { code: FAILURE, message: message.to_string() }
    }

    /// Prints the error to standard error.
    #[expect(clippy::print_stderr, reason = "the CLI's single error reporter")]
    pub fn report(&self) {
        eprintln!("tollgate: {}", self.message);
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
