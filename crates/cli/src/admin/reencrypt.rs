//! `tollgate admin reencrypt`: moves every stored secret to the newest master key, calling
//! `POST /admin/secrets/reencrypt` one batch at a time (the server holds the keys) with a
//! progress bar on standard error.

use reqwest::Method;
use serde::Serialize;
use tollgate_server::api::{Reencrypt, Reencrypted};

use super::{Client, pretty};
use crate::exit::CliError;

/// What the whole walk did.
#[derive(Debug, Default, Serialize)]
struct Totals {
    key_id: String,
    moved: u64,
    changed: u64,
    unreadable: u64,
    batches: u64,
}

/// Runs the walk in batches of `batch_size`: the summary (JSON with `json_out`). Secrets no
/// configured key decrypts are a failure (exit 1): the key that encrypted them is still needed.
pub(super) async fn run(c: &Client, batch_size: u32, json_out: bool) -> Result<String, CliError> {
    let url = c.url(&["admin", "secrets", "reencrypt"]);
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} secrets ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("re-encrypting");
    let mut totals = Totals::default();
    let mut body = Reencrypt { after: None, limit: Some(i64::from(batch_size)) };
    loop {
        let batch: Reencrypted = c.call(Method::POST, url.clone(), Some(&body)).await?;
        totals.batches += 1;
        totals.moved += batch.moved;
        totals.changed += batch.changed;
        totals.unreadable += batch.unreadable;
        totals.key_id = batch.key_id;
        let done = totals.moved + totals.changed + totals.unreadable;
        bar.set_length(done + batch.pending);
        bar.set_position(done);
        match batch.next {
            Some(next) => body.after = Some(next),
            None => break,
        }
    }
    bar.finish_and_clear();
    if totals.unreadable > 0 {
        return Err(CliError::failure(format!(
            "moved {} secrets to master key {}, but {} decrypt with no configured key and were left as they are \
             (the server's log names them): keep the key that encrypted them configured, or set them again",
            totals.moved, totals.key_id, totals.unreadable
        )));
    }
    if json_out {
        return pretty(&totals);
    }
    Ok(format!(
        "Moved {} secrets to master key {} in {} batches ({} set meanwhile, already under it).\n",
        totals.moved, totals.key_id, totals.batches, totals.changed
    ))
}
