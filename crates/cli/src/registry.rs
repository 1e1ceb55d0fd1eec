//! Loading the provider registry for the commands that need one (`explain`, `serve`).

use std::path::Path;

use tollgate_policy::Registry;
use tollgate_policy::registry::DEFAULT_REGISTRY_NAME;

use crate::exit::CliError;

/// Loads a registry file, or the embedded one.
pub(crate) fn load(path: Option<&Path>) -> Result<Registry, CliError> {
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
