//! `tollgate serve --demo`: seeds the example org (`tollgate_server::demo`: one workspace per
//! interesting case, and on a new org a week of usage written through the ledger path) and
//! prints a table of its workspaces' resolutions.

use tollgate_policy::Registry;
use tollgate_policy::resolve::{BillingMode, Context, PublicUrl};
use tollgate_server::demo::{self, DEMO_ORG};
use tollgate_store::{ResolutionInputs, Store, Timestamp};

use crate::exit::CliError;

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::failure(format!("cannot seed the demo: {e}"))
}

/// Seeds the demo org (idempotently: an existing one is reused, its history not written
/// again) and returns a table of the resolutions of its workspaces.
pub(crate) async fn seed(store: &dyn Store, registry: &Registry, public_url: &PublicUrl) -> Result<String, CliError> {
    let seeded = demo::seed(store, registry, Timestamp::now()).await.map_err(fail)?;
    let ctx = Context { registry, public_url };
    let mut rows =
        vec![["WORKSPACE", "ID", "MODE", "SOURCE", "PROVIDER", "KEPT", "DROPPED", "ERROR"].map(str::to_owned)];
    for ws in &seeded.workspaces {
        let inputs = ResolutionInputs::load(store, &ws.id).await.map_err(fail)?;
        let r = inputs.resolve(&ctx, None).into_resolution();
        let names = |v: Vec<String>| if v.is_empty() { "-".to_owned() } else { v.join(",") };
        rows.push([
            ws.name.clone(),
            ws.id.to_string(),
            r.resolved_mode.map_or("-", BillingMode::as_str).to_owned(),
            r.source.map_or("-", |s| s.as_str()).to_owned(),
            r.provider.clone().unwrap_or_else(|| "-".to_owned()),
            names(r.credentials.iter().map(|c| format!("{}({})", c.name, c.origin)).collect()),
            names(r.dropped.iter().map(|d| format!("{}({})", d.name, d.origin)).collect()),
            r.error.as_ref().map_or("-", |e| e.code.as_str()).to_owned(),
        ]);
    }
    let org = &seeded.org;
    let mut out = format!("Demo org `{DEMO_ORG}` ({}), credit {}:\n\n", org.id, org.credit_micros);
    out.push_str(&crate::render::table(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()));
    if let Some(h) = seeded.history {
        out.push_str(&format!(
            "\nWrote a week of usage history: {} requests, {} (a drain in the last minutes of `{}`).\n",
            h.requests,
            h.cost,
            demo::DRAIN_WORKSPACE
        ));
    }
    out.push('\n');
    Ok(out)
}
