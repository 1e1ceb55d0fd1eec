//! `tollgate admin ...`: the admin HTTP API from the command line.
//!
//! Secret values are read from standard input or a file, never from the command line (argv
//! is visible to every user of the machine through `ps`).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::exit::{self, CliError};

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
        workspace: String,
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
        workspace: String,
    },
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
        org: String,
    },
    /// Change an org.
    Update {
        /// Org id.
        org: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New default mode, or `none` to clear it.
        #[arg(long)]
        default_billing_mode: Option<String>,
    },
    /// Add (or, negative, remove) credit.
    Credit {
        /// Org id.
        org: String,
        /// Micro-USD to add; negative to remove.
        #[arg(long, allow_hyphen_values = true)]
        delta_micros: i64,
        /// Why (kept in the credit history).
        #[arg(long)]
        reason: String,
    },
    /// Org-scope secrets, inherited by every workspace of the org.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Owning org id.
        #[arg(long)]
        org: String,
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
        org: Option<String>,
    },
    /// Show one workspace.
    Get {
        /// Workspace id.
        workspace: String,
    },
    /// Change a workspace (`none` clears model or billing mode).
    Update {
        /// Workspace id.
        workspace: String,
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
        workspace: String,
    },
    /// Workspace-scope secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Set a secret; the value is read from standard input (one trailing newline removed) or --from-file.
    Set {
        /// Owner id (org or workspace).
        owner: String,
        /// Secret name (upper case).
        name: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Delete a secret.
    Delete {
        /// Owner id.
        owner: String,
        /// Secret name.
        name: String,
    },
    /// List secret names (never values).
    List {
        /// Owner id.
        owner: String,
    },
}

/// Runs `tollgate admin`.
pub(crate) fn run(args: &Args) -> Result<ExitCode, CliError> {
    let token = args.token.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
        CliError::config("no admin token: set TOLLGATE_ADMIN_TOKEN or pass --token (serve prints one at first start)")
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    let client = Client { http: reqwest::Client::new(), base: args.url.trim_end_matches('/').to_owned(), token };
    let out = runtime.block_on(dispatch(&client, &args.command, args.json))?;
    crate::print(&out);
    Ok(ExitCode::from(exit::OK))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, CliError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| CliError::failure(format!("cannot reach {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CliError::failure(format!("reading the response: {e}")))?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("HTTP_ERROR");
        let message = value["error"]["message"].as_str().unwrap_or("");
        let msg = format!("{} {status}: {code}: {message}", path);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            Err(CliError::config(msg))
        } else {
            Err(CliError::failure(msg))
        }
    }
}

fn opt_clearable(v: &Option<String>) -> Option<Value> {
    v.as_ref().map(|s| if s == "none" { Value::Null } else { Value::String(s.clone()) })
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

async fn secret_cmd(c: &Client, scope: &str, cmd: &SecretCommand, json_out: bool) -> Result<String, CliError> {
    use reqwest::Method;
    match cmd {
        SecretCommand::Set { owner, name, from_file } => {
            let value = read_value(from_file.as_ref())?;
            c.call(Method::PUT, &format!("/admin/{scope}/{owner}/secrets/{name}"), Some(json!({ "value": value })))
                .await?;
            Ok(format!("set {name}\n"))
        }
        SecretCommand::Delete { owner, name } => {
            c.call(Method::DELETE, &format!("/admin/{scope}/{owner}/secrets/{name}"), None).await?;
            Ok(format!("deleted {name}\n"))
        }
        SecretCommand::List { owner } => {
            let v = c.call(Method::GET, &format!("/admin/{scope}/{owner}/secrets"), None).await?;
            Ok(render(&v, json_out, &["name", "updated_at"]))
        }
    }
}

async fn dispatch(c: &Client, cmd: &Command, json_out: bool) -> Result<String, CliError> {
    use reqwest::Method;
    const ORG: &[&str] = &["id", "name", "default_billing_mode", "credit_micros", "updated_at"];
    const WS: &[&str] = &["id", "name", "org_id", "runtime", "model", "billing_mode", "kind"];
    match cmd {
        Command::Org(OrgCommand::Create { name, default_billing_mode, credit_micros }) => {
            let mut body = json!({ "name": name });
            if let Some(m) = default_billing_mode {
                body["default_billing_mode"] = json!(m);
            }
            if let Some(c) = credit_micros {
                body["credit_micros"] = json!(c);
            }
            Ok(render(&c.call(Method::POST, "/admin/orgs", Some(body)).await?, json_out, ORG))
        }
        Command::Org(OrgCommand::List) => Ok(render(&c.call(Method::GET, "/admin/orgs", None).await?, json_out, ORG)),
        Command::Org(OrgCommand::Get { org }) => {
            Ok(render(&c.call(Method::GET, &format!("/admin/orgs/{org}"), None).await?, json_out, ORG))
        }
        Command::Org(OrgCommand::Update { org, name, default_billing_mode }) => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(m) = opt_clearable(default_billing_mode) {
                body["default_billing_mode"] = m;
            }
            Ok(render(&c.call(Method::PATCH, &format!("/admin/orgs/{org}"), Some(body)).await?, json_out, ORG))
        }
        Command::Org(OrgCommand::Credit { org, delta_micros, reason }) => {
            let v = c
                .call(
                    Method::POST,
                    &format!("/admin/orgs/{org}/credit"),
                    Some(json!({ "delta_micros": delta_micros, "reason": reason })),
                )
                .await?;
            Ok(render(&v, json_out, &["credit_micros"]))
        }
        Command::Org(OrgCommand::Secret(s)) => secret_cmd(c, "orgs", s, json_out).await,
        Command::Workspace(WorkspaceCommand::Create { org, name, runtime, model, billing_mode, kind }) => {
            let mut body = json!({ "org_id": org, "name": name, "runtime": runtime });
            for (k, v) in [("model", model), ("billing_mode", billing_mode), ("kind", kind)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            Ok(render(&c.call(Method::POST, "/admin/workspaces", Some(body)).await?, json_out, WS))
        }
        Command::Workspace(WorkspaceCommand::List { org }) => {
            let path = org
                .as_ref()
                .map_or_else(|| "/admin/workspaces".to_owned(), |o| format!("/admin/workspaces?org_id={o}"));
            Ok(render(&c.call(Method::GET, &path, None).await?, json_out, WS))
        }
        Command::Workspace(WorkspaceCommand::Get { workspace }) => {
            Ok(render(&c.call(Method::GET, &format!("/admin/workspaces/{workspace}"), None).await?, json_out, WS))
        }
        Command::Workspace(WorkspaceCommand::Update { workspace, name, runtime, model, billing_mode, kind }) => {
            let mut body = json!({});
            for (k, v) in [("name", name), ("runtime", runtime), ("kind", kind)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            for (k, v) in [("model", model), ("billing_mode", billing_mode)] {
                if let Some(v) = opt_clearable(v) {
                    body[k] = v;
                }
            }
            Ok(render(
                &c.call(Method::PATCH, &format!("/admin/workspaces/{workspace}"), Some(body)).await?,
                json_out,
                WS,
            ))
        }
        Command::Workspace(WorkspaceCommand::Delete { workspace }) => {
            c.call(Method::DELETE, &format!("/admin/workspaces/{workspace}"), None).await?;
            Ok(format!("deleted {workspace}\n"))
        }
        Command::Workspace(WorkspaceCommand::Secret(s)) => secret_cmd(c, "workspaces", s, json_out).await,
        Command::Provision { workspace, model, show_secrets } => {
            let body = model.as_ref().map_or_else(|| json!({}), |m| json!({ "model": m }));
            let v = c.call(Method::POST, &format!("/admin/workspaces/{workspace}/provision"), Some(body)).await?;
            if json_out {
                return Ok(format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
            }
            let mut out = crate::render::resolution_json(&v["resolution"]);
            out.push_str("\nenv plan\n");
            if let Some(env) = v["env"].as_object() {
                for (k, val) in env {
                    let shown = if *show_secrets { val.as_str().unwrap_or_default() } else { "<redacted>" };
                    out.push_str(&format!("  {k}={shown}\n"));
                }
            }
            let token = if *show_secrets {
                v["token"].as_str().unwrap_or_default()
            } else {
                "<redacted> (--show-secrets or --json to see it)"
            };
            out.push_str(&format!("\nworkspace token: {token}\n"));
            Ok(out)
        }
        Command::BillingMode { workspace } => {
            let v = c.call(Method::GET, &format!("/admin/workspaces/{workspace}/llm-billing-mode"), None).await?;
            if json_out {
                return Ok(format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
            }
            Ok(crate::render::resolution_json(&v))
        }
    }
}

/// A JSON object or array of objects as a table of `columns`, or pretty JSON.
fn render(v: &Value, json_out: bool, columns: &[&str]) -> String {
    if json_out {
        return format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default());
    }
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let cell = |item: &Value, col: &str| match &item[col] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![columns.iter().map(|c| c.to_ascii_uppercase()).collect::<Vec<_>>()];
    rows.extend(items.iter().map(|item| columns.iter().map(|c| cell(item, c)).collect()));
    crate::render::table(&rows)
}
