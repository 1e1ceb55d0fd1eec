//! `tollgate exec` as a real process: against a real `tollgate serve` (the stack of
//! `clients.rs`: the stand-in upstream, the server, an org with credit), with stray credentials
//! in the inherited environment, the cases of seeds 000 and 004. The rules themselves are unit
//! tested in the policy crate (`normalise/tests.rs`); these tests check that `exec` applies
//! them to a real environment and a real pull, and what reaches the command.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tollgate_upstream::REPLY;

use crate::clients::{ADMIN_TOKEN, Books, Stack, clean_command, run_client, temp_home};
use crate::serve::{data_dir, start, start_on};

/// The tenant-wide Claude subscription token of seed 000, inherited by every workspace.
const STRAY_OAUTH: &str = "sk-ant-oat01-stray-tenant-wide-oauth-token-of-the-exec-test";
/// A stray Anthropic API key in the workspace's environment.
const STRAY_API_KEY: &str = "sk-ant-api03-stray-api-key-of-the-exec-test";
/// A MiniMax workspace's own key.
const MINIMAX_KEY: &str = "mm-own-key-of-the-exec-test-workspace";
/// A well-formed workspace token no server has minted.
const UNKNOWN_TOKEN: &str = "tg_ws_0123456789abcdefghijABCDEFGHIJ0123456789abc";

/// `tollgate exec ARGS` with only `PATH` and `vars` in its environment.
fn exec(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::bin());
    cmd.arg("exec").args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The output of `env` as a map.
fn env_of(out: &Output) -> BTreeMap<String, String> {
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Fails if any of `secrets` appears in stdout or stderr.
fn assert_no_values(out: &Output, secrets: &[&str]) {
    assert_not_printed(&format!("{}{}", text(&out.stdout), text(&out.stderr)), secrets);
}

/// Fails if any of `secrets` appears in `all`, what a command printed.
fn assert_not_printed(all: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!all.contains(s), "a secret value was printed:\n{all}");
    }
}

/// The pull variables of a provisioned workspace.
fn pull_vars<'a>(stack: &'a Stack, ws: &'a str, token: &'a str) -> [(&'static str, &'a str); 3] {
    [("TOLLGATE_URL", stack.url()), ("TOLLGATE_WORKSPACE_ID", ws), ("TOLLGATE_WORKSPACE_TOKEN", token)]
}

/// A BYOK MiniMax workspace as in seed 000's drain (the tenant's OAuth token on the org, the
/// workspace's own key), provisioned: its id and token.
fn minimax_workspace(stack: &Stack, name: &str) -> (String, String) {
    stack.admin_text(&["org", "secret", "set", &stack.org, "CLAUDE_CODE_OAUTH_TOKEN"], Some(STRAY_OAUTH));
    let ws = stack.admin(&[
        "workspace",
        "create",
        "--org",
        &stack.org,
        "--name",
        name,
        "--runtime",
        "claude-code",
        "--model",
        "MiniMax-M2.7",
    ]);
    let ws = ws["id"].as_str().unwrap().to_owned();
    stack.admin_text(&["workspace", "secret", "set", &ws, "MINIMAX_API_KEY"], Some(MINIMAX_KEY));
    let provisioned = stack.admin(&["provision", &ws]);
    assert_eq!(provisioned["resolution"]["resolved_mode"], "byok", "{provisioned}");
    (ws, provisioned["token"].as_str().unwrap().to_owned())
}

/// A provisioned platform-managed claude-code workspace: its id and token.
fn platform_workspace(stack: &Stack, name: &str) -> (String, String) {
    let (token, env) = stack.workspace(name, "claude-code", "platform/sonnet");
    (env["TOLLGATE_WORKSPACE_ID"].clone(), token)
}

/// Seed 004: a platform-managed workspace whose environment also holds the tenant's OAuth token
/// and a stray API key. After the pull only the workspace token remains, pointed at the proxy.
#[test]
fn pull_platform_managed_drops_stray_credentials_and_routes_to_the_proxy() {
    let stack = Stack::start(crate::bin(), "exec-platform");
    let (ws, token) = platform_workspace(&stack, "platform");
    let mut vars = pull_vars(&stack, &ws, &token).to_vec();
    vars.extend([
        ("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH),
        ("ANTHROPIC_API_KEY", STRAY_API_KEY),
        ("UNRELATED_SETTING", "kept as it is"),
    ]);
    let out = exec(&vars, &["--pull", "--", "env"]);
    let env = env_of(&out);
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"), "{env:?}");
    assert!(!env.contains_key("ANTHROPIC_API_KEY"), "{env:?}");
    assert_eq!(env["ANTHROPIC_BASE_URL"], format!("{}/anthropic", stack.url()));
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], token);
    assert_eq!(env["ANTHROPIC_MODEL"], "platform/sonnet");
    assert_eq!(env["LLM_PROVIDER"], "platform");
    assert_eq!(env["LLM_BILLING_MODE"], "platform_managed");
    assert_eq!(env["UNRELATED_SETTING"], "kept as it is");
    assert_eq!(env["PATH"], std::env::var("PATH").unwrap());
    assert_no_values(&Output { stdout: Vec::new(), ..out }, &[STRAY_OAUTH, STRAY_API_KEY, &token]);
}

/// Seed 000: a BYOK MiniMax workspace gets MiniMax's endpoint and its own key, and neither the
/// org's OAuth token (dropped by the plan) nor an inherited one (dropped by normalisation).
#[test]
fn pull_byok_minimax_gets_its_own_endpoint_and_key_and_no_oauth_token() {
    let stack = Stack::start(crate::bin(), "exec-minimax");
    let (ws, token) = minimax_workspace(&stack, "dev-b");
    let mut vars = pull_vars(&stack, &ws, &token).to_vec();
    vars.push(("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH));
    // In MiniMax's `auth_env` too, so only the plan being authoritative removes it.
    vars.push(("ANTHROPIC_API_KEY", "sk-ant-api03-host-injected"));
    let out = exec(&vars, &["--pull", "--", "env"]);
    let env = env_of(&out);
    assert!(!env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"), "{env:?}");
    assert!(!env.contains_key("ANTHROPIC_API_KEY"), "a credential the plan does not carry: {env:?}");
    assert_eq!(env["ANTHROPIC_BASE_URL"], "https://api.minimax.io/anthropic");
    assert_eq!(env["MINIMAX_API_KEY"], MINIMAX_KEY);
    assert_eq!(env["ANTHROPIC_MODEL"], "MiniMax-M2.7");
    assert_eq!(env["LLM_PROVIDER"], "minimax");
    assert_eq!(env["LLM_BILLING_MODE"], "byok");
    assert!(!env.contains_key("ANTHROPIC_AUTH_TOKEN"), "nothing points at the proxy: {env:?}");
    let to_tollgate: Vec<&String> =
        env.iter().filter(|(k, v)| *k != "TOLLGATE_URL" && v.starts_with(stack.url())).map(|(k, _)| k).collect();
    assert!(to_tollgate.is_empty(), "only TOLLGATE_URL points at Tollgate: {to_tollgate:?}");
}

/// The real Claude Code CLI, started by `tollgate exec --pull` with the tenant's OAuth token and
/// a stray Anthropic key in its inherited environment, answers through the proxy on the
/// platform's key.
///
/// What Claude Code 2.1.330 does with strays (found while writing this test): with
/// `ANTHROPIC_AUTH_TOKEN` set it sends that as `Authorization: Bearer` and ignores
/// `CLAUDE_CODE_OAUTH_TOKEN`; with only the OAuth token it sends the OAuth token to
/// `ANTHROPIC_BASE_URL` (seed 004's 401); with a stray `ANTHROPIC_API_KEY` it also sends
/// `x-api-key: <stray key>`, which the proxy refuses, and Claude Code retries until killed. So
/// without `exec`'s normalisation this test times out.
#[test]
fn claude_code_under_exec_answers_through_the_proxy() {
    let claude = crate::clients::claude();
    let stack = Stack::start(crate::bin(), "exec-claude");
    let (ws, token) = platform_workspace(&stack, "claude");
    let home = temp_home("exec-claude");
    let mut vars = pull_vars(&stack, &ws, &token).to_vec();
    vars.extend([
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH),
        ("ANTHROPIC_API_KEY", STRAY_API_KEY),
    ]);
    let mut cmd = clean_command(crate::bin(), &home, &vars);
    cmd.args(["exec", "--pull", "--"]).arg(&claude).args(["-p", "Say hello"]);
    let (stdout, stderr, seen) = run_client(&stack, cmd, &home, "tollgate exec --pull -- claude -p");
    assert_eq!(stdout.trim(), REPLY, "stderr:\n{stderr}");
    assert!(!stderr.contains("assumes a context window"), "the plan gave Claude Code its window:\n{stderr}");
    assert!(!seen.is_empty());
    for r in &seen {
        for (name, value) in &r.headers {
            assert!(
                !value.contains(STRAY_OAUTH) && !value.contains("sk-ant-oat"),
                "header {name} carries the OAuth token"
            );
            assert!(!value.contains(STRAY_API_KEY), "header {name} carries the stray API key");
        }
        assert!(!r.body.to_string().contains(STRAY_OAUTH));
    }
    // The platform key and never the workspace token upstream; the ledger and the credit moved
    // by exactly the stand-in's usage at the registry's prices.
    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);
    assert_not_printed(&format!("{stdout}{stderr}"), &[STRAY_OAUTH, STRAY_API_KEY, &token]);
}

/// Preflight (DESIGN.md section 7 step 5): no silent fallback. The command does not run and
/// the message names what is missing, never a value.
#[test]
fn preflight_failures_exit_78_and_name_what_is_missing() {
    let marker = std::env::temp_dir().join(format!("tollgate-exec-preflight-{}", std::process::id()));
    let touch = ["--", "touch", marker.to_str().unwrap()];
    // Seed 000's DevB: provider minimax, no MiniMax key, the tenant's OAuth token present.
    let out = exec(
        &[("LLM_PROVIDER", "minimax"), ("LLM_BILLING_MODE", "byok"), ("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH)],
        &touch,
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("MINIMAX_API_KEY") && err.contains("minimax"), "{err}");
    assert_no_values(&out, &[STRAY_OAUTH]);
    // Seed 004 without a pull: platform-managed, routed to the proxy, an OAuth-shaped bearer.
    let out = exec(
        &[
            ("LLM_PROVIDER", "platform"),
            ("LLM_BILLING_MODE", "platform_managed"),
            ("TOLLGATE_URL", "http://127.0.0.1:9"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/anthropic"),
            ("ANTHROPIC_AUTH_TOKEN", STRAY_OAUTH),
        ],
        &touch,
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("ANTHROPIC_AUTH_TOKEN") && err.contains("OAuth"), "{err}");
    assert_no_values(&out, &[STRAY_OAUTH]);
    // Platform-managed with no routing at all names the routing variables.
    let out = exec(&[("LLM_PROVIDER", "platform"), ("LLM_BILLING_MODE", "platform_managed")], &touch);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("ANTHROPIC_BASE_URL") && err.contains("TOLLGATE_URL"), "{err}");
    assert!(!marker.exists(), "the command ran although the preflight failed");
}

/// Disabled billing skips the preflight; no provider is legacy behaviour with a warning; and the
/// command replaces `tollgate` (same pid), so signals reach the agent directly.
#[test]
fn disabled_and_legacy_run_the_command_in_place() {
    let out = exec(&[("LLM_PROVIDER", "minimax"), ("LLM_BILLING_MODE", "disabled")], &["--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = exec(&[("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH)], &["--", "env"]);
    let err = text(&out.stderr);
    assert!(err.contains("warning") && err.contains("LLM_PROVIDER is not set"), "{err}");
    assert_eq!(env_of(&out)["CLAUDE_CODE_OAUTH_TOKEN"], STRAY_OAUTH, "legacy: nothing dropped by provider");

    let child = Command::new(crate::bin())
        .args(["exec", "--", "sh", "-c", "echo $$"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout).trim(), pid.to_string(), "exec replaces the process; it does not spawn a child");
}

#[test]
fn command_not_found_and_usage_errors() {
    let out = exec(&[], &["--", "no-such-command-of-the-exec-test"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("command not found: no-such-command-of-the-exec-test"));
    let out = exec(&[], &["--", "/dev/null"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    assert_eq!(exec(&[], &[]).status.code(), Some(2), "a command is required without --check");
    assert_eq!(exec(&[], &["--secrets-dir", "/tmp/x", "--", "true"]).status.code(), Some(2), "needs --pull");
    assert_eq!(exec(&[], &["--pull-timeout", "5 parsecs", "--", "true"]).status.code(), Some(2));
    assert_eq!(exec(&[], &["--pull-timeout", "-1s", "--", "true"]).status.code(), Some(2));
    assert_eq!(exec(&[], &["--pull-timeout", "1m 30s", "--", "true"]).status.code(), Some(0), "humantime spelling");
}

/// A workspace id that is not one (here, one that would add path segments) is refused before
/// anything is sent: 78, naming the variable, echoing neither the id nor the token.
#[test]
fn a_malformed_workspace_id_is_a_configuration_error() {
    let url = format!("http://127.0.0.1:{}", unused_port());
    let bad_id = "ws/../../admin/orgs";
    let out = exec(
        &[("TOLLGATE_URL", &url), ("TOLLGATE_WORKSPACE_ID", bad_id), ("TOLLGATE_WORKSPACE_TOKEN", UNKNOWN_TOKEN)],
        &["--pull", "--pull-timeout", "5s", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("TOLLGATE_WORKSPACE_ID is not a valid workspace id"), "{err}");
    assert!(!err.contains("retrying"), "nothing is sent: {err}");
    assert_no_values(&out, &[UNKNOWN_TOKEN, bad_id]);
}

/// The server refuses the token: 78, naming the variable to fix, never the token. So is a
/// plan that no longer resolves (422) and a token that is not a workspace token at all.
#[test]
fn refused_pulls_exit_78_and_name_the_variable() {
    let stack = Stack::start(crate::bin(), "exec-refused");
    let (ws, token) = minimax_workspace(&stack, "refused");
    let (other_ws, other_token) = platform_workspace(&stack, "other");
    let run_pull = |vars: &[(&str, &str)]| exec(vars, &["--pull", "--pull-timeout", "5s", "--", "true"]);

    let out = run_pull(&pull_vars(&stack, &ws, UNKNOWN_TOKEN));
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("401") && err.contains("fix TOLLGATE_WORKSPACE_TOKEN"), "{err}");
    assert_no_values(&out, &[UNKNOWN_TOKEN]);

    let out = run_pull(&pull_vars(&stack, &ws, &other_token));
    assert_eq!(out.status.code(), Some(78), "another workspace's token");
    let err = text(&out.stderr);
    assert!(err.contains("403") && err.contains("TOLLGATE_WORKSPACE_ID"), "{err}");
    assert_no_values(&out, &[&other_token, &token]);

    let out = run_pull(&pull_vars(&stack, &ws, STRAY_OAUTH));
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("TOLLGATE_WORKSPACE_TOKEN") && err.contains("OAuth"), "{err}");
    assert_no_values(&out, &[STRAY_OAUTH]);

    let out = run_pull(&[("TOLLGATE_URL", stack.url())]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("TOLLGATE_WORKSPACE_ID, TOLLGATE_WORKSPACE_TOKEN"), "{err}");

    // The workspace loses its key: the pull answers 422 MISSING_BYOK_CREDENTIAL.
    stack.admin_text(&["workspace", "secret", "delete", &ws, "MINIMAX_API_KEY"], None);
    let out = run_pull(&pull_vars(&stack, &ws, &token));
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(err.contains("MISSING_BYOK_CREDENTIAL") && err.contains("MINIMAX_API_KEY"), "{err}");
    assert_no_values(&out, &[&token, MINIMAX_KEY]);

    // The other workspace still pulls.
    assert_eq!(run_pull(&pull_vars(&stack, &other_ws, &other_token)).status.code(), Some(0));
}

/// A free local port with nothing listening on it.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Server down: retried with backoff, then exit 1 within the bound, saying so.
#[test]
fn unreachable_server_is_retried_until_the_bound() {
    let url = format!("http://127.0.0.1:{}", unused_port());
    let started = Instant::now();
    let out = exec(
        &[("TOLLGATE_URL", &url), ("TOLLGATE_WORKSPACE_ID", "ws"), ("TOLLGATE_WORKSPACE_TOKEN", UNKNOWN_TOKEN)],
        &["--pull", "--pull-timeout", "1s", "--", "true"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "took {took:?}");
    let err = text(&out.stderr);
    assert!(err.contains("retrying for up to 1s") && err.contains("TOLLGATE_URL"), "{err}");
    let attempts: u32 =
        err.split("gave up after ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(attempts >= 3, "backoff retries several times within 1s: {err}");
    assert_no_values(&out, &[UNKNOWN_TOKEN]);
}

/// A workspace that starts before its control plane is reachable: the pull keeps trying and
/// succeeds once the server is up.
#[test]
fn pull_waits_for_a_server_that_starts_late() {
    let dir = data_dir("exec-late");
    let env = [("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = start(&dir, &[], &env);
    let url = server.url.clone();
    let admin = |args: &[&str]| server.admin_json(ADMIN_TOKEN, args);
    let org = admin(&["org", "create", "late"])["id"].as_str().unwrap().to_owned();
    let ws = admin(&[
        "workspace",
        "create",
        "--org",
        &org,
        "--name",
        "w",
        "--runtime",
        "claude-code",
        "--model",
        "platform/sonnet",
    ]);
    let ws = ws["id"].as_str().unwrap().to_owned();
    let token = admin(&["provision", &ws])["token"].as_str().unwrap().to_owned();
    drop(server);

    let child = Command::new(crate::bin())
        .args(["exec", "--pull", "--pull-timeout", "60s", "--", "env"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TOLLGATE_URL", &url)
        .env("TOLLGATE_WORKSPACE_ID", &ws)
        .env("TOLLGATE_WORKSPACE_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let listen = url.trim_start_matches("http://");
    let server = start_on(&dir, listen, &[], &env);
    let out = child.wait_with_output().unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text(&out.stderr).contains("retrying"), "{}", text(&out.stderr));
    assert_eq!(env_of(&out)["ANTHROPIC_AUTH_TOKEN"], token);
}

/// `--check` prints the decision, names and reasons only, and runs nothing.
#[test]
fn check_prints_names_and_reasons_never_values() {
    let stack = Stack::start(crate::bin(), "exec-check");
    let (ws, token) = minimax_workspace(&stack, "check");
    let marker = std::env::temp_dir().join(format!("tollgate-exec-check-{}", std::process::id()));
    let mut vars = pull_vars(&stack, &ws, &token).to_vec();
    vars.extend([("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH), ("GITHUB_TOKEN", "ghp-inherited-value")]);
    let out = exec(&vars, &["--pull", "--check", "--", "touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!marker.exists(), "--check runs nothing");
    let report = text(&out.stdout);
    let row = |name: &str| {
        report.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}:\n{report}"))
    };
    assert!(row("CLAUDE_CODE_OAUTH_TOKEN").contains("removed"), "{report}");
    assert!(row("CLAUDE_CODE_OAUTH_TOKEN").contains("not in auth_env of provider minimax"), "the plan's reason");
    let key = row("MINIMAX_API_KEY");
    assert!(key.contains("injected") && key.contains("workspace"), "origin from the resolution: {key}");
    assert!(row("ANTHROPIC_BASE_URL").contains("injected"));
    assert!(report.contains("provider   minimax") && report.contains("preflight  ok"), "{report}");
    assert!(report.contains("other inherited variables"), "PATH and GITHUB_TOKEN are counted, not listed");
    assert_no_values(&out, &[STRAY_OAUTH, MINIMAX_KEY, &token, "ghp-inherited-value"]);

    // Failing preflight: the report says why, exit 78, still no value.
    let out = exec(
        &[("LLM_PROVIDER", "kimi-coding"), ("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH), ("KIMI_API_KEY", "")],
        &["--check"],
    );
    assert_eq!(out.status.code(), Some(78));
    let report = text(&out.stdout);
    assert!(report.contains("preflight  FAILED") && report.contains("KIMI_API_KEY"), "{report}");
    assert!(text(&out.stderr).contains("preflight failed"));
    assert_no_values(&out, &[STRAY_OAUTH]);
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `--secrets-dir`: one 0600 file per variable of the plan in a 0700 directory, with the exact
/// value; a file left for a variable that is now removed is deleted; no temporary file remains.
#[test]
fn secrets_dir_holds_the_plan_in_private_files() {
    let stack = Stack::start(crate::bin(), "exec-secrets-dir");
    let (ws, token) = minimax_workspace(&stack, "files");
    let root = std::env::temp_dir().join(format!("tollgate-exec-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir: PathBuf = root.join("nested/secrets");
    let vars = pull_vars(&stack, &ws, &token);
    let out = exec(&vars, &["--pull", "--secrets-dir", dir.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(mode(&dir), 0o700);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("MINIMAX_API_KEY"), MINIMAX_KEY);
    assert_eq!(read("TOLLGATE_WORKSPACE_TOKEN"), token);
    assert_eq!(read("ANTHROPIC_BASE_URL"), "https://api.minimax.io/anthropic");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    for name in &names {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    assert!(names.iter().all(|n| !n.starts_with('.')), "no temporary file left: {names:?}");
    assert!(names.contains(&"LLM_PROVIDER".to_owned()) && !names.contains(&"PATH".to_owned()), "{names:?}");

    // A stale file for the OAuth token (from an earlier run) goes; the others are rewritten.
    std::fs::write(dir.join("CLAUDE_CODE_OAUTH_TOKEN"), STRAY_OAUTH).unwrap();
    std::fs::write(dir.join("MINIMAX_API_KEY"), "old").unwrap();
    let mut vars = vars.to_vec();
    vars.push(("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH));
    let out = exec(&vars, &["--pull", "--secrets-dir", dir.to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!dir.join("CLAUDE_CODE_OAUTH_TOKEN").exists(), "the removed variable's file is deleted");
    assert_eq!(read("MINIMAX_API_KEY"), MINIMAX_KEY);
    assert_eq!(mode(&dir.join("MINIMAX_API_KEY")), 0o600);
    let _ = std::fs::remove_dir_all(&root);
}
