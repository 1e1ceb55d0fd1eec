//! `tollgate serve --demo`: an example org with one workspace per interesting case.

use tollgate_policy::resolve::{BillingMode, Context, PublicUrl, WorkspaceKind};
use tollgate_policy::secret::SecretValue;
use tollgate_policy::{Micros, Registry, SecretName};
use tollgate_store::{NewOrg, NewWorkspace, Owner, ResolutionInputs, Store, StoreError};

use crate::exit::CliError;

/// The demo org's name.
pub(crate) const DEMO_ORG: &str = "demo";

struct DemoWorkspace {
    name: &'static str,
    runtime: &'static str,
    kind: WorkspaceKind,
    model: Option<&'static str>,
    billing_mode: Option<BillingMode>,
    secrets: &'static [(&'static str, &'static str)],
}

const WORKSPACES: &[DemoWorkspace] = &[
    DemoWorkspace {
        name: "platform-managed",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("platform/sonnet"),
        billing_mode: None,
        secrets: &[],
    },
    DemoWorkspace {
        name: "byok-anthropic-oauth",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("opus"),
        billing_mode: None,
        secrets: &[("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-demo-customer-own")],
    },
    DemoWorkspace {
        name: "byok-minimax-stray-oauth",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("MiniMax-M2.7"),
        billing_mode: None,
        secrets: &[("MINIMAX_API_KEY", "demo-minimax-key")],
    },
    DemoWorkspace {
        name: "concierge",
        runtime: "claude-code",
        kind: WorkspaceKind::Concierge,
        model: None,
        billing_mode: None,
        secrets: &[],
    },
    DemoWorkspace {
        name: "disabled",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: None,
        billing_mode: Some(BillingMode::Disabled),
        secrets: &[],
    },
    DemoWorkspace {
        name: "byok-missing-credential",
        runtime: "claude-code",
        kind: WorkspaceKind::Agent,
        model: Some("MiniMax-M2.7"),
        billing_mode: Some(BillingMode::Byok),
        secrets: &[],
    },
    // Codex: the plan carries its config.toml settings (`tollgate exec --pull` writes them).
    DemoWorkspace {
        name: "codex-platform-managed",
        runtime: "codex",
        kind: WorkspaceKind::Agent,
        model: Some("platform/gpt"),
        billing_mode: None,
        secrets: &[],
    },
    DemoWorkspace {
        name: "codex-byok-openai",
        runtime: "codex",
        kind: WorkspaceKind::Agent,
        model: Some("gpt-5"),
        billing_mode: None,
        secrets: &[("OPENAI_API_KEY", "sk-demo-customer-own-openai")],
    },
];

fn fail(e: StoreError) -> CliError {
    CliError::failure(format!("cannot seed the demo: {e}"))
}

fn secret(name: &str, value: &str) -> Result<(SecretName, SecretValue), CliError> {
    let n = SecretName::parse(name).map_err(|e| CliError::failure(e.to_string()))?;
    let v = SecretValue::parse(value).map_err(|e| CliError::failure(e.to_string()))?;
    Ok((n, v))
}

/// Seeds the demo org (idempotently: an existing one is reused) and returns a table of the
/// resolutions of its workspaces.
pub(crate) async fn seed(store: &dyn Store, registry: &Registry, public_url: &PublicUrl) -> Result<String, CliError> {
    let org = match store.list_orgs().await.map_err(fail)?.into_iter().find(|o| o.name == DEMO_ORG) {
        Some(org) => org,
        None => {
            let org = store
                .create_org(&NewOrg {
                    name: DEMO_ORG.to_owned(),
                    default_billing_mode: None,
                    credit_micros: Micros::new(25_000_000),
                    ..NewOrg::default()
                })
                .await
                .map_err(fail)?;
            // The tenant-wide OAuth token that caused the drain of seed 000.
            let (n, v) = secret("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-demo-tenant-wide")?;
            store.put_secret(&Owner::Org(org.id.clone()), &n, &v).await.map_err(fail)?;
            let (n, v) = secret("GITHUB_TOKEN", "ghp-demo-shared")?;
            store.put_secret(&Owner::Org(org.id.clone()), &n, &v).await.map_err(fail)?;
            org
        }
    };
    let existing = store.list_workspaces(Some(&org.id)).await.map_err(fail)?;
    let ctx = Context { registry, public_url };
    let mut rows =
        vec![["WORKSPACE", "ID", "MODE", "SOURCE", "PROVIDER", "KEPT", "DROPPED", "ERROR"].map(str::to_owned)];
    for demo in WORKSPACES {
        let ws = match existing.iter().find(|w| w.name == demo.name) {
            Some(ws) => ws.clone(),
            None => {
                let ws = store
                    .create_workspace(&NewWorkspace {
                        org_id: org.id.clone(),
                        name: demo.name.to_owned(),
                        runtime: demo.runtime.to_owned(),
                        model: demo.model.map(str::to_owned),
                        billing_mode: demo.billing_mode,
                        kind: demo.kind,
                        limits: tollgate_policy::Limits::default(),
                        alarms: None,
                    })
                    .await
                    .map_err(fail)?;
                for (name, value) in demo.secrets {
                    let (n, v) = secret(name, value)?;
                    store.put_secret(&Owner::Workspace(ws.id.clone()), &n, &v).await.map_err(fail)?;
                }
                ws
            }
        };
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
    let mut out = format!("Demo org `{DEMO_ORG}` ({}), credit {}:\n\n", org.id, org.credit_micros);
    out.push_str(&crate::render::table(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>()));
    out.push('\n');
    Ok(out)
}
