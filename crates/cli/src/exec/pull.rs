//! `tollgate exec --pull`: fetching the workspace's plan from `GET /workspaces/{id}/secrets/values`
//! (DESIGN.md section 9) with the workspace token.
//!
//! Transport failures (connection refused or reset, timeouts) and 502/503/504 are retried with
//! exponential backoff until the pull's time bound; every other answer is final. No message
//! quotes the token or a secret value: only variable names, the URL (without any userinfo) and
//! the server's own error codes and messages, which never hold values.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use tollgate_policy::codex::CodexConfig;
use tollgate_policy::normalise::Env;
use tollgate_policy::token::is_oauth_shaped;
use tollgate_policy::{Resolution, WorkspaceId, WorkspaceToken};

use crate::exit::{self, CliError};

/// The control plane's URL (the server's public URL).
pub(super) const URL_VAR: &str = "TOLLGATE_URL";
/// The workspace whose plan is pulled.
pub(super) const WORKSPACE_VAR: &str = "TOLLGATE_WORKSPACE_ID";
/// The workspace token, sent as `Authorization: Bearer`.
pub(super) const TOKEN_VAR: &str = "TOLLGATE_WORKSPACE_TOKEN";

/// The first wait between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The shortest time one attempt is given, so that the last attempt at the bound can answer.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// A pulled plan.
#[derive(Debug)]
pub(super) struct Plan {
    /// The workspace's resolution: names, origins and reasons, never values.
    pub resolution: Resolution,
    /// The workspace's environment with real values, the token filled in.
    pub env: Env,
    /// Codex's configuration, for a Codex workspace (names and URLs).
    pub codex: Option<CodexConfig>,
}

/// Where to pull from: the three variables of the inherited environment, checked. No `Debug`:
/// the URL may hold a password.
pub(super) struct Source {
    url: reqwest::Url,
    workspace: WorkspaceId,
    token: WorkspaceToken,
}

impl Source {
    /// Reads `TOLLGATE_URL`, `TOLLGATE_WORKSPACE_ID` and `TOLLGATE_WORKSPACE_TOKEN` from `env`.
    /// A missing one, a URL that is not http(s), or a token that is not a workspace token (for
    /// example a Claude OAuth token, seed 004) is a configuration error (exit 78) naming the
    /// variable to fix; nothing is sent.
    pub(super) fn from_env(env: &Env) -> Result<Self, CliError> {
        let get = |name: &str| env.get(name).map(ExposeSecret::expose_secret).filter(|v| !v.trim().is_empty());
        let missing: Vec<&str> = [URL_VAR, WORKSPACE_VAR, TOKEN_VAR].into_iter().filter(|n| get(n).is_none()).collect();
        let (Some(url), Some(workspace), Some(token)) = (get(URL_VAR), get(WORKSPACE_VAR), get(TOKEN_VAR)) else {
            return Err(CliError::config(format!(
                "--pull needs {URL_VAR}, {WORKSPACE_VAR} and {TOKEN_VAR} in the environment; missing or empty: {}",
                missing.join(", ")
            )));
        };
        let url = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| CliError::config(format!("{URL_VAR} is not an http(s) URL: fix {URL_VAR}")))?;
        let token = WorkspaceToken::parse(token.trim()).map_err(|e| {
            let hint = if is_oauth_shaped(token) { "; it holds a Claude OAuth token" } else { "" };
            CliError::config(format!("{TOKEN_VAR} is {e}{hint}: fix {TOKEN_VAR} (provisioning returns the token)"))
        })?;
        let workspace = WorkspaceId::parse(workspace.trim())
            .map_err(|e| CliError::config(format!("{WORKSPACE_VAR} is {e}: fix {WORKSPACE_VAR}")))?;
        Ok(Self { url, workspace, token })
    }

    /// The server's URL for messages: without userinfo, which may hold a password.
    pub(super) fn display_url(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        let _ = u.set_username("");
        u.as_str().trim_end_matches('/').to_owned()
    }

    /// `<TOLLGATE_URL>/workspaces/<id>/secrets/values`, the id escaped as one path segment.
    fn endpoint(&self) -> Result<reqwest::Url, CliError> {
        let mut u = self.url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.path_segments_mut()
            .map_err(|()| CliError::config(format!("{URL_VAR} cannot be a base URL: fix {URL_VAR}")))?
            .pop_if_empty()
            .extend(["workspaces", self.workspace.as_str(), "secrets", "values"]);
        Ok(u)
    }
}

/// Pulls the plan, retrying transport failures and 502/503/504 with backoff for at most
/// `bound`. Exit codes: 78 when the server refuses the token (401/403: the message names the
/// variable to fix) or the workspace's resolution fails (422: retrying cannot help); 1 when the
/// server stays unreachable for `bound` or answers anything else.
pub(super) fn fetch(source: &Source, bound: Duration) -> Result<Plan, CliError> {
    // Dropped on return, before `exec`: no runtime thread outlives the pull.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(fetch_with_retries(source, bound))
}

/// The outcome of one attempt.
enum Attempt {
    Done(Box<Result<Plan, CliError>>),
    Retry(String),
}

async fn fetch_with_retries(source: &Source, bound: Duration) -> Result<Plan, CliError> {
    let endpoint = source.endpoint()?;
    let client = crate::tls::client_builder()?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CliError::failure(format!("cannot build the HTTP client: {e}")))?;
    let start = Instant::now();
    let deadline = start + bound;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let timeout = deadline.saturating_duration_since(Instant::now()).max(MIN_ATTEMPT);
        let why = match attempt(&client, &endpoint, source, timeout).await {
            Attempt::Done(result) => return *result,
            Attempt::Retry(why) => why,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(CliError::failure(format!(
                "cannot pull the plan from {} ({URL_VAR}): {why}; gave up after {attempts} attempts in {:.1}s \
                 (the bound is --pull-timeout / TOLLGATE_PULL_TIMEOUT)",
                source.display_url(),
                start.elapsed().as_secs_f64()
            )));
        }
        if attempts == 1 {
            exit::warn(format!(
                "cannot pull the plan from {} ({why}); retrying for up to {}",
                source.display_url(),
                humantime::format_duration(bound)
            ));
        }
        tokio::time::sleep(backoff.min(remaining)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn attempt(client: &reqwest::Client, endpoint: &reqwest::Url, source: &Source, timeout: Duration) -> Attempt {
    let sent = client.get(endpoint.clone()).bearer_auth(source.token.expose()).timeout(timeout).send().await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            // A certificate that does not verify will not verify on the next attempt either.
            if let Some(why) = crate::tls::untrusted(&e) {
                let message = format!("cannot pull the plan from {}: {why}", source.display_url());
                return Attempt::Done(Box::new(Err(CliError::failure(message))));
            }
            return Attempt::Retry(transport_error(&e));
        }
    };
    let status = response.status();
    let mut body = match response.text().await {
        Ok(b) => b,
        Err(e) => return Attempt::Retry(transport_error(&e)),
    };
    let outcome = if status.is_success() {
        parse_plan(&body).map_err(|e| {
            CliError::failure(format!("{} answered a plan that does not parse: {e}", source.display_url()))
        })
    } else if matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
    {
        body.zeroize();
        return Attempt::Retry(format!("the server answered {status}"));
    } else {
        Err(refusal(status, &body, source))
    };
    // The body of a plan holds every secret of the workspace: do not leave it in freed memory.
    body.zeroize();
    Attempt::Done(Box::new(outcome))
}

fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "the connection failed"
    };
    // The source chain says why (e.g. "Connection refused"); the URL is left out on purpose.
    let mut detail = String::new();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

/// The response of the pull, parsed with every value going straight into a `SecretString`.
#[derive(Deserialize)]
struct PullResponse {
    resolution: Resolution,
    #[serde(deserialize_with = "secret_env")]
    env: Env,
    /// Absent for runtimes that are not configured the Codex way (and from older servers).
    #[serde(default)]
    codex: Option<CodexConfig>,
}

fn secret_env<'de, D: Deserializer<'de>>(d: D) -> Result<Env, D::Error> {
    let plain = std::collections::BTreeMap::<String, String>::deserialize(d)?;
    Ok(plain.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect())
}

fn parse_plan(body: &str) -> Result<Plan, String> {
    // serde_json's messages quote no input, only positions and expected types.
    let pulled: PullResponse = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(Plan { resolution: pulled.resolution, env: pulled.env, codex: pulled.codex })
}

/// A final, non-2xx answer as an error with the right exit code and the variable to fix.
fn refusal(status: StatusCode, body: &str, source: &Source) -> CliError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("HTTP_ERROR");
    let message = v["error"]["message"].as_str().unwrap_or("");
    let answer = format!("{} answered {status}: {code}: {message}", source.display_url());
    match status {
        StatusCode::UNAUTHORIZED => CliError::config(format!(
            "the server refused the workspace token ({answer}): fix {TOKEN_VAR}; it must be the current token of \
             workspace {} (each provision revokes the previous one)",
            source.workspace
        )),
        StatusCode::FORBIDDEN => CliError::config(format!(
            "the server refused the workspace token ({answer}): fix {WORKSPACE_VAR} or {TOKEN_VAR}; both must name \
             the same workspace"
        )),
        StatusCode::UNPROCESSABLE_ENTITY => CliError::config(format!(
            "the workspace's plan does not resolve ({answer}): fix the workspace's configuration on the server; \
             `tollgate admin billing-mode {}` explains it",
            source.workspace
        )),
        _ => CliError::failure(format!("cannot pull the plan: {answer}")),
    }
}
