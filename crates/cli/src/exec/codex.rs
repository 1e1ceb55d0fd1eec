//! `tollgate exec` for a Codex workspace: writes the plan's Codex configuration where Codex
//! reads it (DESIGN.md section 12). The decision is the policy crate's [`CodexConfig`]; this
//! module only writes it.
//!
//! Why `config.toml` and not `-c` overrides: the command exec runs need not be `codex` itself
//! (a shell, a wrapper script, an agent harness that starts Codex later); only a file under
//! `CODEX_HOME` reaches every Codex process of the workspace. The file is merged with
//! `toml_edit`, so the user's comments, layout and keys stay: Tollgate sets the top-level
//! `model_provider` and `model`, the keys of its own `[model_providers.tollgate]` table, and
//! the same two keys of the active profile where that profile sets them (a profile would
//! otherwise win over the top level and send the token elsewhere). Nothing else is touched.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use tollgate_policy::codex::{BaseUrl, CodexConfig, CodexProvider, MODEL_PROVIDER_ID};
use tollgate_policy::normalise::Env;
use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use super::secrets_dir::atomic_write;
use crate::exit::CliError;

/// The variable that says where Codex keeps its configuration.
pub(super) const CODEX_HOME: &str = "CODEX_HOME";

/// Codex's configuration directory: `CODEX_HOME`, else `$HOME/.codex` (Codex's default).
/// `None` when neither variable is set.
pub(super) fn home(env: &Env) -> Option<PathBuf> {
    let get = |n: &str| env.get(n).map(|v| v.expose_secret().to_owned()).filter(|v| !v.is_empty());
    get(CODEX_HOME).map(PathBuf::from).or_else(|| get("HOME").map(|h| Path::new(&h).join(".codex")))
}

/// What [`write()`] wrote, for people: paths and names, never values.
#[derive(Debug)]
pub(super) struct Written {
    /// The files written.
    pub(super) files: Vec<PathBuf>,
}

/// Writes `config` under `home`: `config.toml` merged (mode 0600, atomically), and for a
/// ChatGPT login `auth.json` from its variable in `env` (mode 0600, atomically). `home` is
/// created with mode 0700 when missing. A `config.toml` that is not valid TOML, or whose
/// `model_providers.tollgate` is not a table, is left alone: exit 78 naming the file.
pub(super) fn write(home: &Path, config: &CodexConfig, env: &Env) -> Result<Written, CliError> {
    if !home.is_dir() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(home).map_err(|e| {
            CliError::failure(format!("cannot create the Codex home {} ({CODEX_HOME}): {e}", home.display()))
        })?;
    }
    // The config is read and merged first: a config.toml that cannot be merged leaves both
    // files as they were.
    let (path, merged) = read_and_merge(home, config, env)?;
    let mut files = Vec::new();
    if let CodexProvider::ChatgptLogin { auth_json_env } = &config.provider {
        let login = env.get(auth_json_env.as_str()).ok_or_else(|| {
            CliError::config(format!("the plan's Codex login is in {auth_json_env}, which is not set"))
        })?;
        let path = home.join("auth.json");
        atomic_write(&path, login.expose_secret().as_bytes())
            .map_err(|e| CliError::failure(format!("cannot write {} (from {auth_json_env}): {e}", path.display())))?;
        files.push(path);
    }
    atomic_write(&path, merged.as_bytes())
        .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    files.push(path);
    Ok(Written { files })
}

/// [`home`], or a configuration error (exit 78) naming the variable to set.
pub(super) fn require_home(env: &Env) -> Result<PathBuf, CliError> {
    home(env).ok_or_else(|| {
        CliError::config(format!(
            "a Codex workspace, but neither {CODEX_HOME} nor HOME is set: set {CODEX_HOME} to where Codex keeps its configuration"
        ))
    })
}

/// What [`write()`] would do, without writing: Codex's home is known and its `config.toml` (if
/// any) can be read and merged. Same errors as [`write()`].
pub(super) fn dry_run(config: &CodexConfig, env: &Env) -> Result<(), CliError> {
    read_and_merge(&require_home(env)?, config, env).map(drop)
}

/// `home/config.toml` and its contents with Tollgate's settings merged in (a missing file is
/// an empty one).
fn read_and_merge(home: &Path, config: &CodexConfig, env: &Env) -> Result<(PathBuf, String), CliError> {
    let path = home.join("config.toml");
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CliError::failure(format!("cannot read {}: {e}", path.display()))),
    };
    let merged = merge(&existing, config, env).map_err(|why| {
        CliError::config(format!(
            "cannot merge Tollgate's Codex settings into {}: {why}; fix or move it",
            path.display()
        ))
    })?;
    Ok((path, merged))
}

/// `existing` (a `config.toml`, possibly empty) with Tollgate's settings merged in. Errors say
/// what is wrong with the file, never a value.
pub(super) fn merge(existing: &str, config: &CodexConfig, env: &Env) -> Result<String, String> {
    let mut doc: DocumentMut = existing.parse().map_err(|e: toml_edit::TomlError| {
        let at = e.span().map(|s| line_of(existing, s.start)).unwrap_or(0);
        format!("it is not valid TOML (line {at})")
    })?;
    let provider = config.model_provider();
    set(doc.as_table_mut(), "model_provider", provider);
    if let Some(model) = &config.model {
        set(doc.as_table_mut(), "model", model);
    }
    override_active_profile(&mut doc, provider, config.model.as_deref());
    if let CodexProvider::Endpoint { base_url, env_key, wire_api } = &config.provider {
        let url = match base_url {
            BaseUrl::Url(u) => u.clone(),
            BaseUrl::Env(name) => env
                .get(name.as_str())
                .map(|v| v.expose_secret().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("Codex's endpoint is the value of {name}, which is not set"))?,
        };
        let table = provider_table(&mut doc)?;
        set(table, "name", "Tollgate");
        set(table, "base_url", &url);
        set(table, "env_key", env_key.as_str());
        set(table, "wire_api", wire_api.as_str());
    }
    Ok(doc.to_string())
}

/// `[model_providers.tollgate]`, created (as a standard table, or inline inside an inline
/// `model_providers`) when missing.
fn provider_table(doc: &mut DocumentMut) -> Result<&mut dyn TableLike, String> {
    let providers = doc.entry("model_providers").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let ours = match providers {
        Item::Table(t) => t.entry(MODEL_PROVIDER_ID).or_insert_with(|| Item::Table(Table::new())),
        Item::Value(Value::InlineTable(t)) => {
            let v = t.entry(MODEL_PROVIDER_ID).or_insert_with(|| Value::InlineTable(InlineTable::new()));
            return v.as_inline_table_mut().map(|t| t as &mut dyn TableLike).ok_or_else(not_a_table);
        }
        _ => return Err("`model_providers` is not a table".to_owned()),
    };
    ours.as_table_like_mut().ok_or_else(not_a_table)
}

fn not_a_table() -> String {
    format!("`model_providers.{MODEL_PROVIDER_ID}` is not a table")
}

/// A profile selected by the top-level `profile` wins over the top level in Codex: where the
/// active profile sets `model_provider` or `model`, those are set to Tollgate's too.
fn override_active_profile(doc: &mut DocumentMut, provider: &str, model: Option<&str>) {
    let Some(active) = doc.get("profile").and_then(Item::as_str).map(str::to_owned) else { return };
    let Some(profile) = doc
        .get_mut("profiles")
        .and_then(Item::as_table_like_mut)
        .and_then(|p| p.get_mut(&active))
        .and_then(Item::as_table_like_mut)
    else {
        return;
    };
    if profile.contains_key("model_provider") {
        set(profile, "model_provider", provider);
    }
    if let (true, Some(m)) = (profile.contains_key("model"), model) {
        set(profile, "model", m);
    }
}

/// Sets `key` to the string `new`, keeping the key where it is and the old value's comments
/// and spacing (a trailing `# why` stays on its line).
fn set(table: &mut dyn TableLike, key: &str, new: &str) {
    // In place: `insert` would replace the key too, and with it the comment lines above it.
    if let Some(old) = table.get_mut(key).and_then(Item::as_value_mut) {
        let decor = old.decor().clone();
        *old = Value::from(new);
        *old.decor_mut() = decor;
        return;
    }
    table.insert(key, Item::Value(Value::from(new)));
}

fn line_of(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |t| t.matches('\n').count() + 1)
}

/// The line `--check` prints: where Codex's settings go and what they are (names and URLs).
pub(super) fn describe(config: &CodexConfig, home: Option<&Path>) -> String {
    let at = home.map_or_else(|| "- (neither CODEX_HOME nor HOME is set)".to_owned(), |h| h.display().to_string());
    let auth = match &config.provider {
        CodexProvider::ChatgptLogin { auth_json_env } => format!(" and auth.json from {auth_json_env}"),
        CodexProvider::Endpoint { .. } => String::new(),
    };
    format!("writes {at}/config.toml{auth}: {}", config.describe())
}

#[cfg(test)]
mod tests;
