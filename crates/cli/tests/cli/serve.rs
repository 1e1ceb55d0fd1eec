//! `tollgate serve` and `tollgate admin` as real processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `tollgate serve`, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub url: String,
    pub stdout: String,
}

impl Server {
    /// Sends SIGTERM and waits (at most 20 s) for the exit code.
    pub(crate) fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tollgate-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Starts `tollgate serve` with `args` on a free port and waits for "listening on".
pub(crate) fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    start_on(data, "127.0.0.1:0", args, env)
}

/// Starts `tollgate serve` listening on `listen` (e.g. to restart on a known port).
pub(crate) fn start_on(data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(["serve", "--listen", listen, "--data-dir", data.to_str().unwrap()])
        .args(args)
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .env_remove("TOLLGATE_MASTER_KEY")
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_PUBLIC_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let pipe = child.stdout.take().unwrap();
    // Owned by a `Server` from here on, so a failed assertion still kills and reaps it.
    let mut server = Server { child, url: String::new(), stdout: String::new() };
    let mut reader = BufReader::new(pipe);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited early:\n{}", server.stdout);
        server.stdout.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            server.url = rest.split_whitespace().next().unwrap().to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = reader.read_to_string(&mut sink);
            });
            return server;
        }
        assert!(Instant::now() < deadline, "serve did not start:\n{}", server.stdout);
    }
}

fn admin_token(out: &str) -> String {
    out.split_whitespace().find(|w| w.starts_with("tg_admin_")).unwrap_or_default().to_owned()
}

fn admin(server: &Server, token: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("admin")
        .args(args)
        .env("TOLLGATE_ADMIN_URL", &server.url)
        .env("TOLLGATE_ADMIN_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
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
    let (code, out, _) = admin(&s, &token, &["org", "list"], None);
    assert_eq!(code, 0);
    assert!(out.contains("demo"));
    drop(s);
    // A restart on the same data dir keeps everything, seeds nothing twice, prints no token.
    let s = start(&dir, &["--demo"], &[]);
    assert_eq!(admin_token(&s.stdout), "", "the admin token is printed once, at first start only");
    assert_eq!(s.stdout.matches("byok-anthropic-oauth").count(), 1);
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
    let (code, _, err) = admin(&s, t, &["org", "get", "no-such-org"], None);
    assert_eq!((code, err.contains("NOT_FOUND")), (1, true), "{err}");
    let (code, _, err) = admin(&s, "tg_admin_wrong", &["org", "list"], None);
    assert_eq!((code, err.contains("UNAUTHORIZED")), (78, true), "a bad admin token is a configuration error");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["admin", "org", "list"])
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let _ = std::fs::remove_dir_all(&dir);
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
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
    let _ = std::fs::remove_file(&bad);
    let _ = std::fs::remove_dir_all(&dir);
}
