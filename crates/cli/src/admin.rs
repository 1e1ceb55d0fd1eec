//! `tollgate admin ...`: the admin HTTP API from the command line.
//!
//! Secret values are read from standard input or a file, never from the command line (argv
//! is visible to every user of the machine through `ps`).

mod events;
mod reencrypt;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_policy::{OrgId, Resolution, WorkspaceId};
use tollgate_server::api::doc::ErrorResponse;
use tollgate_server::api::{
    CreateOrg, CreateWorkspace, Credit, CreditAdjustment, Org, PatchOrg, PatchWorkspace, ProvisionRequest, Provisioned,
    PutSecret, SecretMeta, Suspend, Suspended, Usage, Workspace,
};

use crate::exit::{self, CliError};

mod alarms;
mod limits;

/// Arguments of `tollgate admin`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The Tollgate server.
    #[arg(long, env = "TOLLGATE_ADMIN_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// The admin token.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Orgs (tenants), their credit and their secrets.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Workspaces and their secrets.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Provision a workspace: resolve, mint its token, return its env plan.
    Provision {
        /// Workspace id.
        workspace: WorkspaceId,
        /// The model to provision with (becomes the workspace's model).
        #[arg(long)]
        model: Option<String>,
        /// Also print the env values and the token (they are secrets).
        #[arg(long)]
        show_secrets: bool,
    },
    /// Show how a workspace resolves now (the read endpoint).
    BillingMode {
        /// Workspace id.
        workspace: WorkspaceId,
    },
    /// Move every stored secret to the newest master key (after adding a key to
    /// TOLLGATE_MASTER_KEYS), in batches, with a progress bar.
    Reencrypt {
        /// Secrets per request, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        batch_size: u32,
    },
    /// The event log: admin changes and system actions, newest first.
    Events(events::Filters),
    /// Usage of the metering proxy: requests, tokens and cost by day, model, workspace or
    /// agent session.
    Usage(UsageArgs),
}

/// Arguments of `tollgate admin usage`.
#[derive(Debug, clap::Args)]
struct UsageArgs {
    /// Only this org's requests.
    #[arg(long)]
    org: Option<OrgId>,
    /// Only this workspace's requests.
    #[arg(long)]
    workspace: Option<WorkspaceId>,
    /// From this time on (RFC 3339 or YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    since: Option<String>,
    /// Up to this time (RFC 3339 or YYYY-MM-DD, UTC), exclusive.
    #[arg(long)]
    until: Option<String>,
    /// How rows are grouped.
    #[arg(long, value_enum, default_value_t = GroupBy::Day)]
    group_by: GroupBy,
}

/// The groupings of `GET /admin/usage`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum GroupBy {
    /// One row per UTC day.
    Day,
    /// One row per model.
    Model,
    /// One row per workspace.
    Workspace,
    /// One row per agent session (Claude Code's or Codex's session id).
    Session,
}

impl GroupBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Workspace => "workspace",
            Self::Session => "session",
        }
    }
}

/// `tollgate admin usage`: the API's rows as a table (cost in USD), or its JSON.
async fn usage_cmd(c: &Client, a: &UsageArgs, json_out: bool) -> Result<String, CliError> {
    let mut url = c.url(&["admin", "usage"]);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("group_by", a.group_by.as_str());
        let pairs = [
            ("org_id", a.org.as_ref().map(OrgId::as_str)),
            ("workspace_id", a.workspace.as_ref().map(WorkspaceId::as_str)),
            ("since", a.since.as_deref()),
            ("until", a.until.as_deref()),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    let usage: Usage = c.call(Method::GET, url, NO_BODY).await?;
    let columns = [a.group_by.as_str(), "requests", "errors", "input", "output", "cache_write", "cache_read", "cost"];
    let rows = usage.rows.iter().map(|r| {
        vec![
            if r.key.is_empty() { "-".to_owned() } else { r.key.clone() },
            r.requests.to_string(),
            r.errors.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.cache_read_tokens.to_string(),
            tollgate_policy::Micros::new(r.cost_micros).to_string(),
        ]
    });
    render(&usage, json_out, &columns, rows)
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an org.
    Create {
        /// Unique name.
        name: String,
        /// platform_managed, byok or disabled.
        #[arg(long)]
        default_billing_mode: Option<String>,
        /// Initial credit in micro-USD.
        #[arg(long)]
        credit_micros: Option<i64>,
    },
    /// List orgs.
    List,
    /// Show one org.
    Get {
        /// Org id.
        org: OrgId,
    },
    /// Change an org.
    Update {
        /// Org id.
        org: OrgId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New default mode, or `none` to clear it.
        #[arg(long)]
        default_billing_mode: Option<String>,
        /// New price plan: percent over the provider's price, greater than -100 (a discount)
        /// and at most 1000.
        #[arg(long, allow_negative_numbers = true)]
        markup_percent: Option<i64>,
        /// Where to notify the org's alarms and budgets (an http(s) URL, e.g. a Slack incoming
        /// webhook): `-` reads it from standard input (keep a credential off the command
        /// line), `none` removes it. The server shows only its scheme and host.
        #[arg(long)]
        alert_webhook_url: Option<String>,
    },
    /// Add (or, negative, remove) credit.
    Credit {
        /// Org id.
        org: OrgId,
        /// Micro-USD to add; negative to remove.
        #[arg(long, allow_hyphen_values = true)]
        delta_micros: i64,
        /// Why (kept in the credit history).
        #[arg(long)]
        reason: String,
        /// Let a debit take the balance below zero (else it is refused, 409).
        #[arg(long)]
        allow_negative: bool,
    },
    /// Suspend an org: every request of its workspaces is refused, naming the reason.
    Suspend {
        /// Org id.
        org: OrgId,
        /// Why (shown to the agents refused).
        #[arg(long)]
        reason: String,
    },
    /// Lift an org's suspension.
    Resume {
        /// Org id.
        org: OrgId,
    },
    /// Org-scope secrets, inherited by every workspace of the org.
    #[command(subcommand)]
    Secret(SecretCommand<OrgId>),
    /// Show or change the org's limits (budgets, rate limits, allowed models), which apply
    /// to all of its workspaces together.
    Limits {
        /// Org id.
        org: OrgId,
        #[command(flatten)]
        limits: limits::LimitArgs,
    },
    /// Show or change the org's drain alarm rules (an org with none has the default rule).
    Alarms {
        /// Org id.
        org: OrgId,
        #[command(flatten)]
        alarms: alarms::AlarmArgs,
    },
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Owning org id.
        #[arg(long)]
        org: OrgId,
        /// Name, unique in the org.
        #[arg(long)]
        name: String,
        /// claude-code, codex or openai-compatible.
        #[arg(long)]
        runtime: String,
        /// Model.
        #[arg(long)]
        model: Option<String>,
        /// Explicit billing mode.
        #[arg(long)]
        billing_mode: Option<String>,
        /// agent or concierge.
        #[arg(long)]
        kind: Option<String>,
    },
    /// List workspaces.
    List {
        /// Only this org's.
        #[arg(long)]
        org: Option<OrgId>,
    },
    /// Show one workspace.
    Get {
        /// Workspace id.
        workspace: WorkspaceId,
    },
    /// Change a workspace (`none` clears model or billing mode).
    Update {
        /// Workspace id.
        workspace: WorkspaceId,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New runtime.
        #[arg(long)]
        runtime: Option<String>,
        /// New model, or `none`.
        #[arg(long)]
        model: Option<String>,
        /// New billing mode, or `none`.
        #[arg(long)]
        billing_mode: Option<String>,
        /// New kind.
        #[arg(long)]
        kind: Option<String>,
    },
    /// Delete a workspace with its secrets and token.
    Delete {
        /// Workspace id.
        workspace: WorkspaceId,
    },
    /// Suspend a workspace: its requests, pull and provision are refused, naming the reason.
    Suspend {
        /// Workspace id.
        workspace: WorkspaceId,
        /// Why (shown to the agent refused).
        #[arg(long)]
        reason: String,
    },
    /// Lift a workspace's own suspension (its org's still applies).
    Resume {
        /// Workspace id.
        workspace: WorkspaceId,
    },
    /// Workspace-scope secrets.
    #[command(subcommand)]
    Secret(SecretCommand<WorkspaceId>),
    /// Show or change the workspace's limits (budgets, rate limits, allowed models).
    Limits {
        /// Workspace id.
        workspace: WorkspaceId,
        #[command(flatten)]
        limits: limits::LimitArgs,
    },
    /// Show or change the workspace's drain alarm rules.
    Alarms {
        /// Workspace id.
        workspace: WorkspaceId,
        #[command(flatten)]
        alarms: alarms::AlarmArgs,
    },
}

/// The secret commands of an org (`Id` = [`OrgId`]) or a workspace ([`WorkspaceId`]).
#[derive(Debug, Subcommand)]
enum SecretCommand<Id: OwnerId> {
    /// Set a secret; the value is read from standard input (one trailing newline removed) or --from-file.
    Set {
        /// Owner id (org or workspace).
        owner: Id,
        /// Secret name (upper case).
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Delete a secret.
    Delete {
        /// Owner id.
        owner: Id,
        /// Secret name.
        name: String,
    },
    /// List secret names (never values).
    List {
        /// Owner id.
        owner: Id,
    },
}

/// What a secret owner's id needs to be parsed by clap and used in a URL: [`OrgId`] or
/// [`WorkspaceId`].
trait OwnerId: Clone + Send + Sync + AsRef<str> + std::str::FromStr<Err = tollgate_policy::IdError> + 'static {}
impl<T> OwnerId for T where
    T: Clone + Send + Sync + AsRef<str> + std::str::FromStr<Err = tollgate_policy::IdError> + 'static
{
}

/// Runs `tollgate admin`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let client = Client::new(&args.url, args.token.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let out = runtime.block_on(dispatch(&client, &args.command, args.json))?;
    crate::print(&out);
    Ok(ExitCode::from(exit::OK))
}

/// The admin API's client, shared by `tollgate admin` and `tollgate audit`.
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

/// No request body.
const NO_BODY: Option<&()> = None;

impl Client {
    /// A client of the server at `url` with the admin `token`; a missing token or a URL that
    /// is not http(s) is a configuration error (exit 78).
    pub(crate) fn new(url: &str, token: Option<&str>) -> Result<Self, CliError> {
        let token = token.filter(|t| !t.is_empty()).map(str::to_owned).ok_or_else(|| {
            CliError::config(
                "no admin token: set TOLLGATE_ADMIN_TOKEN or pass --token (serve prints one at first start)",
            )
        })?;
        let base = Url::parse(url).ok().filter(|u| !u.cannot_be_a_base()).ok_or_else(|| {
            CliError::config(format!("--url `{url}` is not an http(s) URL: fix TOLLGATE_ADMIN_URL or --url"))
        })?;
        let http = crate::tls::client_builder()?
            .build()
            .map_err(|e| CliError::failure(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, base, token })
    }

    /// `GET` of the path `segments` with `query` pairs, read as `R`.
    pub(crate) async fn get<R: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<R, CliError> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.call(Method::GET, url, NO_BODY).await
    }

    /// The base URL with `segments` appended, each escaped as one path segment (an id or a
    /// name can never add a segment, a query or a fragment).
    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        u.set_query(None);
        u.set_fragment(None);
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        u
    }

    /// Sends the request; the response body's text on success, the API's error otherwise.
    async fn send(&self, method: Method, url: Url, body: Option<&impl Serialize>) -> Result<String, CliError> {
        let path = url.path().to_owned();
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let base = &self.base;
        let resp = req.send().await.map_err(|e| match crate::tls::untrusted(&e) {
            Some(why) => CliError::failure(format!("cannot reach {base}: {why}")),
            None => CliError::failure(format!("cannot reach {base}: {e}")),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CliError::failure(format!("reading the response: {e}")))?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = match serde_json::from_str::<ErrorResponse>(&text) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => ("HTTP_ERROR".to_owned(), String::new()),
        };
        let msg = format!("{path} {status}: {code}: {message}");
        if status == reqwest::StatusCode::UNAUTHORIZED {
            Err(CliError::config(msg))
        } else {
            Err(CliError::failure(msg))
        }
    }

    /// Sends the request and reads the response as `R`.
    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl Serialize>,
    ) -> Result<R, CliError> {
        let text = self.send(method, url, body).await?;
        serde_json::from_str(&text).map_err(|e| CliError::failure(format!("unexpected response from the server: {e}")))
    }
}

/// `none` clears a field (`Some(None)`, sent as `null`); absent leaves it as it is.
fn opt_clearable(v: Option<&String>) -> Option<Option<String>> {
    v.map(|s| if s == "none" { None } else { Some(s.clone()) })
}

/// `--alert-webhook-url`: `none` clears it, `-` reads it from standard input.
fn webhook_arg(v: Option<&String>) -> Result<Option<Option<String>>, CliError> {
    match v.map(String::as_str) {
        Some("-") => Ok(Some(Some(read_value(None)?))),
        _ => Ok(opt_clearable(v)),
    }
}

fn read_value(from_file: Option<&PathBuf>) -> Result<String, CliError> {
    let mut text = match from_file {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| CliError::failure(format!("cannot read {}: {e}", p.display())))?
        }
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CliError::failure(format!("cannot read standard input: {e}")))?;
            s
        }
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(CliError::failure("the secret value is empty: pipe it on standard input or use --from-file"));
    }
    Ok(text)
}

async fn secret_cmd<Id: OwnerId>(
    c: &Client,
    scope: &str,
    cmd: &SecretCommand<Id>,
    json_out: bool,
) -> Result<String, CliError> {
    match cmd {
        SecretCommand::Set { owner, name, from_file } => {
            let value = read_value(from_file.as_ref())?;
            let url = c.url(&["admin", scope, owner.as_ref(), "secrets", name]);
            c.send(Method::PUT, url, Some(&PutSecret { value })).await?;
            Ok(format!("set {name}\n"))
        }
        SecretCommand::Delete { owner, name } => {
            c.send(Method::DELETE, c.url(&["admin", scope, owner.as_ref(), "secrets", name]), NO_BODY).await?;
            Ok(format!("deleted {name}\n"))
        }
        SecretCommand::List { owner } => {
            let list: Vec<SecretMeta> =
                c.call(Method::GET, c.url(&["admin", scope, owner.as_ref(), "secrets"]), NO_BODY).await?;
            let rows = list.iter().map(|m| vec![m.name.clone(), m.updated_at.clone()]);
            render(&list, json_out, &["name", "updated_at"], rows)
        }
    }
}

const ORG: &[&str] =
    &["id", "name", "default_billing_mode", "credit_micros", "markup_percent", "updated_at", "suspended"];
const LIMITS: &[&str] = &["limit", "value"];
const WS: &[&str] = &["id", "name", "org_id", "runtime", "model", "billing_mode", "kind", "suspended"];

/// The table cell of a suspension: its reason, or `-`.
fn suspended_cell(s: Option<&Suspended>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.reason.clone())
}

fn org_row(o: &Org) -> Vec<String> {
    let mode = o.default_billing_mode.map_or("-", |m| m.as_str());
    vec![
        o.id.clone(),
        o.name.clone(),
        mode.to_owned(),
        o.credit_micros.to_string(),
        o.markup_percent.to_string(),
        o.updated_at.clone(),
        suspended_cell(o.suspended.as_ref()),
    ]
}

fn ws_row(w: &Workspace) -> Vec<String> {
    vec![
        w.id.clone(),
        w.name.clone(),
        w.org_id.clone(),
        w.runtime.clone(),
        w.model.clone().unwrap_or_else(|| "-".to_owned()),
        w.billing_mode.map_or("-", |m| m.as_str()).to_owned(),
        w.kind.as_str().to_owned(),
        suspended_cell(w.suspended.as_ref()),
    ]
}

async fn org_cmd(c: &Client, cmd: &OrgCommand, json_out: bool) -> Result<String, CliError> {
    let org = match cmd {
        OrgCommand::Create { name, default_billing_mode, credit_micros } => {
            let body = CreateOrg {
                name: name.clone(),
                default_billing_mode: default_billing_mode.clone(),
                credit_micros: *credit_micros,
                limits: None,
                alert_webhook_url: None,
                alarms: None,
            };
            c.call::<Org>(Method::POST, c.url(&["admin", "orgs"]), Some(&body)).await?
        }
        OrgCommand::List => {
            let list: Vec<Org> = c.call(Method::GET, c.url(&["admin", "orgs"]), NO_BODY).await?;
            let rows = list.iter().map(org_row);
            return render(&list, json_out, ORG, rows);
        }
        OrgCommand::Get { org } => c.call(Method::GET, c.url(&["admin", "orgs", org.as_str()]), NO_BODY).await?,
        OrgCommand::Update { org, name, default_billing_mode, markup_percent, alert_webhook_url } => {
            let body = PatchOrg {
                name: name.clone(),
                default_billing_mode: opt_clearable(default_billing_mode.as_ref()),
                markup_percent: markup_percent.map(serde_json::Number::from),
                alert_webhook_url: webhook_arg(alert_webhook_url.as_ref())?,
                ..PatchOrg::default()
            };
            c.call(Method::PATCH, c.url(&["admin", "orgs", org.as_str()]), Some(&body)).await?
        }
        OrgCommand::Credit { org, delta_micros, reason, allow_negative } => {
            let body = CreditAdjustment {
                delta_micros: *delta_micros,
                reason: reason.clone(),
                allow_negative: *allow_negative,
            };
            let credit: Credit =
                c.call(Method::POST, c.url(&["admin", "orgs", org.as_str(), "credit"]), Some(&body)).await?;
            let row = vec![credit.credit_micros.to_string()];
            return render(&credit, json_out, &["credit_micros"], [row].into_iter());
        }
        OrgCommand::Suspend { org, reason } => {
            let body = Suspend { reason: reason.clone() };
            c.call(Method::POST, c.url(&["admin", "orgs", org.as_str(), "suspend"]), Some(&body)).await?
        }
        OrgCommand::Resume { org } => {
            c.call(Method::POST, c.url(&["admin", "orgs", org.as_str(), "resume"]), NO_BODY).await?
        }
        OrgCommand::Secret(s) => return secret_cmd(c, "orgs", s, json_out).await,
        OrgCommand::Limits { org, limits } => {
            let url = c.url(&["admin", "orgs", org.as_str()]);
            let org: Org = match limits.patch() {
                Some(l) => {
                    let body = PatchOrg { limits: Some(l), ..PatchOrg::default() };
                    c.call(Method::PATCH, url, Some(&body)).await?
                }
                None => c.call(Method::GET, url, NO_BODY).await?,
            };
            return render(&org.limits, json_out, LIMITS, limits::rows(&org.limits).into_iter());
        }
        OrgCommand::Alarms { org, alarms } => {
            let url = c.url(&["admin", "orgs", org.as_str()]);
            let org: Org = match alarms.patch()? {
                Some(a) => {
                    let body = PatchOrg { alarms: Some(a), ..PatchOrg::default() };
                    c.call(Method::PATCH, url, Some(&body)).await?
                }
                None => c.call(Method::GET, url, NO_BODY).await?,
            };
            let rows = alarms::rows(org.alarms.as_deref());
            return render(&org.alarms, json_out, alarms::COLUMNS, rows.into_iter());
        }
    };
    let row = org_row(&org);
    render(&org, json_out, ORG, [row].into_iter())
}

async fn workspace_cmd(c: &Client, cmd: &WorkspaceCommand, json_out: bool) -> Result<String, CliError> {
    let ws = match cmd {
        WorkspaceCommand::Create { org, name, runtime, model, billing_mode, kind } => {
            let body = CreateWorkspace {
                org_id: org.to_string(),
                name: name.clone(),
                runtime: runtime.clone(),
                model: model.clone(),
                billing_mode: billing_mode.clone(),
                kind: kind.clone(),
                limits: None,
                alarms: None,
            };
            c.call::<Workspace>(Method::POST, c.url(&["admin", "workspaces"]), Some(&body)).await?
        }
        WorkspaceCommand::List { org } => {
            let mut url = c.url(&["admin", "workspaces"]);
            if let Some(o) = org {
                url.query_pairs_mut().append_pair("org_id", o.as_str());
            }
            let list: Vec<Workspace> = c.call(Method::GET, url, NO_BODY).await?;
            let rows = list.iter().map(ws_row);
            return render(&list, json_out, WS, rows);
        }
        WorkspaceCommand::Get { workspace } => {
            c.call(Method::GET, c.url(&["admin", "workspaces", workspace.as_str()]), NO_BODY).await?
        }
        WorkspaceCommand::Update { workspace, name, runtime, model, billing_mode, kind } => {
            let body = PatchWorkspace {
                name: name.clone(),
                runtime: runtime.clone(),
                model: opt_clearable(model.as_ref()),
                billing_mode: opt_clearable(billing_mode.as_ref()),
                kind: kind.clone(),
                ..PatchWorkspace::default()
            };
            c.call(Method::PATCH, c.url(&["admin", "workspaces", workspace.as_str()]), Some(&body)).await?
        }
        WorkspaceCommand::Delete { workspace } => {
            c.send(Method::DELETE, c.url(&["admin", "workspaces", workspace.as_str()]), NO_BODY).await?;
            return Ok(format!("deleted {workspace}\n"));
        }
        WorkspaceCommand::Suspend { workspace, reason } => {
            let body = Suspend { reason: reason.clone() };
            c.call(Method::POST, c.url(&["admin", "workspaces", workspace.as_str(), "suspend"]), Some(&body)).await?
        }
        WorkspaceCommand::Resume { workspace } => {
            c.call(Method::POST, c.url(&["admin", "workspaces", workspace.as_str(), "resume"]), NO_BODY).await?
        }
        WorkspaceCommand::Secret(s) => return secret_cmd(c, "workspaces", s, json_out).await,
        WorkspaceCommand::Limits { workspace, limits } => {
            let url = c.url(&["admin", "workspaces", workspace.as_str()]);
            let ws: Workspace = match limits.patch() {
                Some(l) => {
                    let body = PatchWorkspace { limits: Some(l), ..PatchWorkspace::default() };
                    c.call(Method::PATCH, url, Some(&body)).await?
                }
                None => c.call(Method::GET, url, NO_BODY).await?,
            };
            return render(&ws.limits, json_out, LIMITS, limits::rows(&ws.limits).into_iter());
        }
        WorkspaceCommand::Alarms { workspace, alarms } => {
            let url = c.url(&["admin", "workspaces", workspace.as_str()]);
            let ws: Workspace = match alarms.patch()? {
                Some(a) => {
                    let body = PatchWorkspace { alarms: Some(a), ..PatchWorkspace::default() };
                    c.call(Method::PATCH, url, Some(&body)).await?
                }
                None => c.call(Method::GET, url, NO_BODY).await?,
            };
            let rows = alarms::rows(ws.alarms.as_deref());
            return render(&ws.alarms, json_out, alarms::COLUMNS, rows.into_iter());
        }
    };
    let row = ws_row(&ws);
    render(&ws, json_out, WS, [row].into_iter())
}

async fn dispatch(c: &Client, cmd: &Command, json_out: bool) -> Result<String, CliError> {
    match cmd {
        Command::Org(o) => org_cmd(c, o, json_out).await,
        Command::Workspace(w) => workspace_cmd(c, w, json_out).await,
        Command::Provision { workspace, model, show_secrets } => {
            let url = c.url(&["admin", "workspaces", workspace.as_str(), "provision"]);
            let body = ProvisionRequest { model: model.clone() };
            let p: Provisioned = c.call(Method::POST, url, Some(&body)).await?;
            if json_out {
                return pretty(&p);
            }
            let mut out = crate::render::resolution(&p.resolution, None);
            out.push_str("\nenv plan\n");
            for (k, val) in &p.env.0 {
                let shown = if *show_secrets { secrecy::ExposeSecret::expose_secret(val) } else { "<redacted>" };
                out.push_str(&format!("  {k}={shown}\n"));
            }
            let token =
                if *show_secrets { p.token.expose() } else { "<redacted> (--show-secrets or --json to see it)" };
            out.push_str(&format!("\nworkspace token: {token}\n"));
            Ok(out)
        }
        Command::Usage(a) => usage_cmd(c, a, json_out).await,
        Command::BillingMode { workspace } => {
            let url = c.url(&["admin", "workspaces", workspace.as_str(), "llm-billing-mode"]);
            let r: Resolution = c.call(Method::GET, url, NO_BODY).await?;
            if json_out {
                return pretty(&r);
            }
            Ok(crate::render::resolution(&r, None))
        }
        Command::Reencrypt { batch_size } => reencrypt::run(c, *batch_size, json_out).await,
        Command::Events(filters) => events::run(c, filters, json_out).await,
    }
}

/// The API's JSON, pretty-printed.
fn pretty(v: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(v)
        .map(|s| format!("{s}\n"))
        .map_err(|e| CliError::failure(format!("cannot print the response: {e}")))
}

/// `v` as pretty JSON, or its `rows` as a table under `columns` (`-` for an absent value).
fn render(
    v: &impl Serialize,
    json_out: bool,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<String, CliError> {
    if json_out {
        return pretty(v);
    }
    let mut table = vec![columns.iter().map(|c| c.to_ascii_uppercase()).collect::<Vec<_>>()];
    table.extend(rows);
    Ok(crate::render::table(&table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<Client, String> {
        let base = Url::parse(base).map_err(|e| e.to_string())?;
        Ok(Client { http: reqwest::Client::new(), base, token: String::new() })
    }

    #[test]
    fn ids_and_names_are_one_path_segment_each() -> Result<(), String> {
        let c = client("http://tg.example:8080/base/?q=1#f")?;
        let u = c.url(&["admin", "workspaces", "../orgs/x?y=1#z", "secrets", "A B"]);
        assert_eq!(u.as_str(), "http://tg.example:8080/base/admin/workspaces/..%2Forgs%2Fx%3Fy=1%23z/secrets/A%20B");
        let c = client("http://127.0.0.1:8080")?;
        assert_eq!(c.url(&["admin", "orgs"]).as_str(), "http://127.0.0.1:8080/admin/orgs");
        Ok(())
    }

    #[test]
    fn none_clears_and_absent_leaves_a_field() -> Result<(), String> {
        let patch = PatchWorkspace {
            model: opt_clearable(Some(&"none".to_owned())),
            billing_mode: opt_clearable(Some(&"byok".to_owned())),
            ..PatchWorkspace::default()
        };
        let json = serde_json::to_string(&patch).map_err(|e| e.to_string())?;
        assert_eq!(json, r#"{"model":null,"billing_mode":"byok"}"#);
        Ok(())
    }
}
