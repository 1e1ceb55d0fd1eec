//! `tollgate serve` and `tollgate admin` as real processes.

use std::path::Path;
use std::process::{Command, Stdio};

pub(crate) use tollgate_testkit::cli_app::{Server, data_dir};

/// Starts `tollgate serve` with `args` on a free port and waits for "listening on".
pub(crate) fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    Server::start(crate::bin(), data, args, env)
}

/// Starts `tollgate serve` listening on `listen` (e.g. to restart on a known port).
pub(crate) fn start_on(data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    Server::start_on(crate::bin(), data, listen, args, env)
}

fn admin_token(out: &str) -> String {
    out.split_whitespace().find(|w| w.starts_with("tg_admin_")).unwrap_or_default().to_owned()
}

fn admin(server: &Server, token: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    server.admin(token, args, stdin)
}

fn json_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn demo_seeds_every_case_and_prints_the_admin_token_once() {
    let dir = data_dir("demo");
    let s = start(&dir, &["--demo"], &[]);
    let token = admin_token(&s.stdout);
    assert_eq!(token.len(), "tg_admin_".len() + 43, "{}", s.stdout);
    let row = |name: &str| s.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(row("platform-managed ").contains("platform_managed"), "{}", s.stdout);
    assert!(row("byok-anthropic-oauth").contains("anthropic-oauth"));
    assert!(row("byok-minimax-stray-oauth").contains("CLAUDE_CODE_OAUTH_TOKEN(org)"), "the stray org token is dropped");
    assert!(row("concierge").contains("concierge_pin"));
    assert!(row("disabled").contains("disabled"));
    assert!(row("byok-missing-credential").contains("MISSING_BYOK_CREDENTIAL"));
    assert!(row("codex-platform-managed").contains("platform_managed"), "{}", s.stdout);
    assert!(row("codex-byok-openai").contains("OPENAI_API_KEY(workspace)"), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!("public URL {}", s.url)),
        "the default public URL is the bound address, not port 0: {}",
        s.stdout
    );
    assert!(
        !s.stdout.contains("demo-minimax-key")
            && !s.stdout.contains("sk-ant-oat01-demo")
            && !s.stdout.contains("sk-demo-customer"),
        "no secret value printed"
    );
    assert!(s.stdout.contains("Wrote a week of usage history: "), "{}", s.stdout);
    let (code, out, _) = admin(&s, &token, &["org", "list"], None);
    assert_eq!(code, 0);
    assert!(out.contains("demo"));
    drop(s);
    // A restart on the same data dir keeps everything, seeds nothing twice, prints no token.
    let s = start(&dir, &["--demo"], &[]);
    assert_eq!(admin_token(&s.stdout), "", "the admin token is printed once, at first start only");
    assert_eq!(s.stdout.matches("byok-anthropic-oauth").count(), 1);
    assert!(!s.stdout.contains("Wrote a week"), "the history is written once: {}", s.stdout);
    let (code, out, _) = admin(&s, &token, &["workspace", "list", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_walkthrough_and_exit_codes() {
    let dir = data_dir("admin");
    let s = start(&dir, &[], &[("TOLLGATE_ADMIN_TOKEN", "tg_admin_configured-by-env")]);
    assert_eq!(admin_token(&s.stdout), "", "a configured token is never printed");
    let t = "tg_admin_configured-by-env";
    let (code, out, err) = admin(&s, t, &["org", "create", "acme", "--credit-micros", "5000000", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let org = json_id(&out);
    let (_, out, _) = admin(
        &s,
        t,
        &[
            "workspace",
            "create",
            "--org",
            &org,
            "--name",
            "dev",
            "--runtime",
            "claude-code",
            "--model",
            "MiniMax-M2.7",
            "--json",
        ],
        None,
    );
    let ws = json_id(&out);
    assert_eq!(
        admin(&s, t, &["org", "secret", "set", &org, "CLAUDE_CODE_OAUTH_TOKEN"], Some("sk-ant-oat01-stray\n")).0,
        0
    );
    assert_eq!(admin(&s, t, &["workspace", "secret", "set", &ws, "MINIMAX_API_KEY"], Some("mm-key-value")).0, 0);
    let (code, _, err) = admin(&s, t, &["workspace", "secret", "set", &ws, "minimax_api_key"], Some("x"));
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_SECRET_NAME"), "{err}");
    let (code, _, err) = admin(&s, t, &["workspace", "secret", "set", &ws, "EMPTY"], Some(""));
    assert_eq!(code, 1, "an empty value is refused before sending");
    assert!(err.contains("empty"));
    let (code, out, _) = admin(&s, t, &["billing-mode", &ws], None);
    assert_eq!(code, 0);
    assert!(out.contains("mode       byok (source derived_provider)"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("CLAUDE_CODE_OAUTH_TOKEN") && l.contains("dropped")));
    let (code, out, _) = admin(&s, t, &["provision", &ws], None);
    assert_eq!(code, 0);
    assert!(out.contains("MINIMAX_API_KEY=<redacted>") && !out.contains("mm-key-value"), "{out}");
    assert!(!out.contains("tg_ws_"), "the token is not shown without --show-secrets");
    let (_, out, _) = admin(&s, t, &["provision", &ws, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["token"].as_str().unwrap().starts_with("tg_ws_"));
    assert_eq!(v["env"]["MINIMAX_API_KEY"], "mm-key-value", "--json is for the provisioner: real values");
    let (code, out, _) = admin(&s, t, &["org", "credit", &org, "--delta-micros", "-1000", "--reason", "test"], None);
    assert_eq!(code, 0);
    assert!(out.contains("4999000"));
    let debit = ["org", "credit", &org, "--delta-micros", "-5000000", "--reason", "fee"];
    let (code, _, err) = admin(&s, t, &debit, None);
    assert_eq!((code, err.contains("INSUFFICIENT_CREDIT")), (1, true), "a debit beyond the balance: {err}");
    let (code, out, _) = admin(&s, t, &[&debit[..], &["--allow-negative"]].concat(), None);
    assert_eq!(code, 0);
    assert!(out.contains("-1000"), "{out}");
    // A price plan, negative (a discount) included; out of range is the server's 400.
    let (code, out, err) = admin(&s, t, &["org", "update", &org, "--markup-percent", "-20", "--json"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["markup_percent"], -20);
    let (code, out, _) = admin(&s, t, &["org", "update", &org, "--markup-percent", "35"], None);
    assert_eq!(code, 0);
    assert!(out.contains("MARKUP_PERCENT") && out.contains(" 35 "), "{out}");
    let (code, _, err) = admin(&s, t, &["org", "update", &org, "--markup-percent", "-100"], None);
    assert_eq!((code, err.contains("INVALID_MARKUP")), (1, true), "{err}");
    // An alert webhook, read from standard input (a credential stays off the command line);
    // shown by scheme and host only; `none` removes it.
    let hook = ["org", "update", &org, "--alert-webhook-url", "-", "--json"];
    let (code, out, err) = admin(&s, t, &hook, Some("https://hooks.slack.com/services/T0/B0/hooksecret\n"));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("hooksecret"), "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["alert_webhook_url"],
        "https://hooks.slack.com/…"
    );
    let (code, _, err) = admin(&s, t, &["org", "update", &org, "--alert-webhook-url", "hooks.slack.com/x"], None);
    assert_eq!((code, err.contains("INVALID_WEBHOOK_URL")), (1, true), "{err}");
    let (code, out, _) = admin(&s, t, &["org", "update", &org, "--alert-webhook-url", "none", "--json"], None);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["alert_webhook_url"], serde_json::Value::Null);
    let (code, _, err) = admin(&s, t, &["org", "get", "no-such-org"], None);
    assert_eq!((code, err.contains("NOT_FOUND")), (1, true), "{err}");
    let (code, _, err) = admin(&s, "tg_admin_wrong", &["org", "list"], None);
    assert_eq!((code, err.contains("UNAUTHORIZED")), (78, true), "a bad admin token is a configuration error");
    let out =
        Command::new(crate::bin()).args(["admin", "org", "list"]).env_remove("TOLLGATE_ADMIN_TOKEN").output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An org or workspace id argument that is not an id is a usage error (exit 2) before any
/// request, and the admin token is never printed.
#[test]
fn malformed_id_arguments_are_usage_errors() {
    let token = "tg_admin_never-printed-by-usage-errors";
    for args in [
        &["org", "get", "a/b"][..],
        &["org", "credit", "", "--delta-micros", "1", "--reason", "x"],
        &["workspace", "delete", "../orgs"],
        &["workspace", "list", "--org", "a b"],
        &["workspace", "create", "--org", "x?y", "--name", "n", "--runtime", "codex"],
        &["org", "secret", "list", "*"],
        &["workspace", "secret", "set", "a:b", "NAME"],
        &["provision", "a/b"],
        &["billing-mode", "a%2Fb"],
    ] {
        let out = Command::new(crate::bin())
            .arg("admin")
            .args(args)
            .env("TOLLGATE_ADMIN_URL", "http://127.0.0.1:9")
            .env("TOLLGATE_ADMIN_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not a valid"), "{args:?}: {err}");
        assert!(!err.contains(token) && !String::from_utf8_lossy(&out.stdout).contains(token));
    }
}

/// The soft and hard "Max open files" of a `/proc/PID/limits` text.
fn open_file_limits(limits: &str) -> (String, String) {
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut fields = line.trim_start_matches("Max open files").split_whitespace();
    (fields.next().unwrap().to_owned(), fields.next().unwrap().to_owned())
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    // Started with a soft limit of 256 (a shell that lowers it and execs serve): a server that
    // kept it would refuse connections at about 128 concurrent streams.
    let dir = data_dir("nofile");
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.with_extension("sh");
    let script = format!("#!/bin/sh\nulimit -Sn 256 || exit 1\nexec '{}' \"$@\"\n", crate::bin().display());
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_, hard) = open_file_limits(&std::fs::read_to_string("/proc/self/limits").unwrap());
    assert_ne!(hard, "256", "the hard limit must be above the lowered soft limit for this test to mean anything");
    let s = Server::start(&wrapper, &dir, &[], &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    assert_eq!(open_file_limits(&limits), (hard.clone(), hard), "{limits}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&wrapper);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = data_dir("sigterm");
    let mut s = start(&dir, &[], &[]);
    assert_eq!(s.terminate(), Some(0), "SIGTERM is a clean exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_exit_78() {
    let dir = data_dir("config");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(crate::bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()])
            .args(args)
            .env_remove("TOLLGATE_MASTER_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let bad = dir.with_extension("providers.yaml");
    std::fs::write(&bad, "runtimes: {}\nproviders: []\n").unwrap();
    let out = run(&["--providers", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one runtime"));
    let out = run(&[], &[("TOLLGATE_MASTER_KEY", "not-base64-32-bytes")]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_MASTER_KEY"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-base64"), "the key is never echoed");
    let out = run(&["--public-url", "ftp://x"], &[]);
    assert_eq!(out.status.code(), Some(78));
    let out = run(&["--database-url", "mysql://x"], &[]);
    assert_eq!(out.status.code(), Some(78));
    // A webhook URL is a credential: refused without being echoed.
    let out = run(&[], &[("TOLLGATE_ALERT_WEBHOOK_URL", "ftp://hooks.example/T0/secret-path")]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--alert-webhook-url") && !err.contains("secret-path"), "{err}");
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_dir_all(&dir);
}
