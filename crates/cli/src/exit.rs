//! Exit codes and the one place errors are printed.

use std::fmt;

/// Success.
pub(crate) const OK: u8 = 0;
/// The command ran and the answer is "no" (e.g. expectations not met).
pub(crate) const FAILURE: u8 = 1;
/// The command line is wrong (clap exits with it on its own errors).
pub(crate) const USAGE: u8 = 2;
/// A configuration file is missing or invalid (`EX_CONFIG` of sysexits.h).
pub(crate) const CONFIG: u8 = 78;
/// `exec`: the command was found but could not be executed (as in POSIX shells).
pub(crate) const CANNOT_EXECUTE: u8 = 126;
/// `exec`: the command was not found (as in POSIX shells).
pub(crate) const NOT_FOUND: u8 = 127;

/// An error that ends the command with a specific exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The process exit code.
    pub code: u8,
    message: String,
}

impl CliError {
    /// A configuration error (exit 78).
    pub(crate) fn config(message: impl fmt::Display) -> Self {
        Self { code: CONFIG, message: message.to_string() }
    }

    /// A failure (exit 1): the command ran and the answer is no.
    pub(crate) fn failure(message: impl fmt::Display) -> Self {
        Self { code: FAILURE, message: message.to_string() }
    }

    /// An error with a specific exit code.
    pub(crate) fn with_code(code: u8, message: impl fmt::Display) -> Self {
        Self { code, message: message.to_string() }
    }

    /// Prints the error to standard error.
    #[expect(clippy::print_stderr, reason = "the CLI's single error reporter")]
    pub(crate) fn report(&self) {
        eprintln!("tollgate: {}", self.message);
    }
}

/// Prints a warning to standard error: something a person should know that does not stop
/// the command. Like errors, warnings name variables, never their values.
#[expect(clippy::print_stderr, reason = "the CLI's single warning reporter")]
pub(crate) fn warn(message: impl fmt::Display) {
    eprintln!("tollgate: warning: {message}");
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
