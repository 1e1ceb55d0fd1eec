//! `tollgate exec --secrets-dir DIR`: the plan's variables as files, for agents that read
//! secrets from files.
//!
//! Each file is written atomically: a temporary file in `DIR`, created with mode 0600 (so the
//! value is never readable by others, not even for a moment), written, synced, then renamed
//! over `DIR/NAME`. A reader sees the old value or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use tollgate_policy::EnvName;

use crate::exit::{self, CliError};

/// Writes each of `files` to `dir/NAME` (mode 0600) and removes `dir/NAME` for each name in
/// `stale`, so that a file an earlier run wrote for a credential the plan now drops does not
/// outlive it. `dir` is created with mode 0700 if missing (an existing one is left as it is,
/// with a warning when others may read it). Names must be valid env names, so none can escape
/// `dir`. Errors name the file, never its value (exit 1).
pub(super) fn write<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = (&'a str, &'a SecretString)>,
    stale: impl IntoIterator<Item = &'a str>,
) -> Result<(), CliError> {
    create_private_dir(dir)?;
    for (name, value) in files {
        let name = EnvName::parse(name)
            .map_err(|e| CliError::failure(format!("--secrets-dir: the plan holds an invalid name: {e}")))?;
        write_atomically(dir, name.as_str(), value).map_err(|e| {
            CliError::failure(format!("--secrets-dir: cannot write {}: {e}", dir.join(name.as_str()).display()))
        })?;
    }
    for name in stale.into_iter().filter(|n| EnvName::parse(n).is_ok()) {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CliError::failure(format!(
                    "--secrets-dir: cannot remove {} (its variable was removed): {e}",
                    dir.join(name).display()
                )));
            }
        }
    }
    // The renames are durable once the directory is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CliError::failure(format!("--secrets-dir: cannot sync {}: {e}", dir.display())))
}

fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    let fail = |e: io::Error| CliError::failure(format!("--secrets-dir: cannot create {}: {e}", dir.display()));
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                exit::warn(format!(
                    "--secrets-dir {} already exists with mode {:o}: other users may list it (a new directory is 0700)",
                    dir.display(),
                    m.permissions().mode() & 0o777
                ));
            }
            Ok(())
        }
        Ok(_) => Err(fail(io::Error::new(io::ErrorKind::AlreadyExists, "it exists and is not a directory"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
            // Exactly 0700, whatever the umask.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

fn write_atomically(dir: &Path, name: &str, value: &SecretString) -> io::Result<()> {
    atomic_write(&dir.join(name), value.expose_secret().as_bytes())
}

/// Writes `bytes` to `target` atomically: a temporary file next to it, created with mode 0600
/// (never readable by others, not even for a moment), written, synced, renamed over `target`.
pub(super) fn atomic_write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let name = target.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let open = || OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp);
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left by an earlier run of the same pid that died mid-write.
            fs::remove_file(&temp)?;
            open()?
        }
        other => other?,
    };
    let written = file
        .set_permissions(fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, target));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}
