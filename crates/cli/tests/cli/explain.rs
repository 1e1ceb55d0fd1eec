//! `tollgate explain`: every scenario of the project and of ../shared, plus the command's
//! own contract (formats, exit codes, diffs, redaction).

use std::path::{Path, PathBuf};

use crate::{repo_root, tollgate};

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn run_all(dir: &Path) -> usize {
    let files = scenario_files(dir);
    let mut failures = Vec::new();
    for f in &files {
        for format in ["json", "text"] {
            let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", format]);
            if !out.status.success() {
                failures.push(format!(
                    "{} ({format}): exit {:?}\n{}",
                    f.display(),
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), files.len(), failures.join("\n"));
    files.len()
}

/// Every scenario of DESIGN.md's `../shared/scenarios/` holds.
#[test]
fn shared_scenarios_hold() {
    let dir = repo_root().join("../shared/scenarios");
    assert!(run_all(&dir) >= 11);
}

/// Every scenario the project keeps under `tests/scenarios/` holds, and there are at least 40.
#[test]
fn project_scenarios_hold() {
    let dir = repo_root().join("tests/scenarios");
    let n = run_all(&dir);
    assert!(n >= 40, "only {n} scenarios under tests/scenarios");
}

/// The README's examples hold.
#[test]
fn examples_hold() {
    assert!(run_all(&repo_root().join("examples")) >= 2);
}

/// The project's scenarios exercise every error code and every mode source.
#[test]
fn project_scenarios_cover_every_code_and_source() {
    let mut seen = std::collections::BTreeSet::new();
    for f in scenario_files(&repo_root().join("tests/scenarios")) {
        let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = &v["resolution"];
        if let Some(code) = r["error"]["code"].as_str() {
            seen.insert(code.to_owned());
        }
        if let Some(source) = r["source"].as_str() {
            seen.insert(source.to_owned());
        }
    }
    for want in [
        "UNKNOWN_PROVIDER",
        "UNKNOWN_MODEL",
        "MODE_PROVIDER_CONFLICT",
        "NO_PROVIDER",
        "MISSING_BYOK_CREDENTIAL",
        "SECRET_UNREADABLE",
        "UNKNOWN_RUNTIME",
        "explicit",
        "stored_provider",
        "concierge_pin",
        "derived_provider",
        "org_default",
        "fallback",
    ] {
        assert!(seen.contains(want), "no scenario produces {want}; seen {seen:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tollgate-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A codex workspace's explanation carries Codex's settings (names and URLs; the customer's
/// key nowhere), in JSON under `codex` and in text as a `codex` line; other runtimes' none.
#[test]
fn codex_settings_are_explained_without_values() {
    let dir = tmpdir("codex");
    let f = write(
        &dir,
        "ws.yaml",
        "workspace: {runtime: codex, model: gpt-5, secrets: {OPENAI_API_KEY: sk-very-secret}}\n",
    );
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("very-secret"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let want = serde_json::json!({
        "provider": {"kind": "endpoint", "base_url": {"url": "https://api.openai.com/v1"}, "env_key": "OPENAI_API_KEY", "wire_api": "responses"},
        "model": "gpt-5"
    });
    assert_eq!(v["codex"], want);
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l == "codex      model_provider tollgate (base_url https://api.openai.com/v1, env_key OPENAI_API_KEY, wire_api responses), model gpt-5"),
        "{text}"
    );
    let f = write(&dir, "cc.yaml", "workspace: {runtime: openai-compatible, model: platform/gpt}\n");
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("codex").is_none(), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_output_has_the_resolution_and_a_redacted_env() {
    let dir = tmpdir("json");
    let f = write(
        &dir,
        "ws.yaml",
        "org: {secrets: {CLAUDE_CODE_OAUTH_TOKEN: sk-ant-oat01-very-secret, GITHUB_TOKEN: ghp-also-secret}}\nworkspace: {runtime: claude-code, model: platform/opus}\n",
    );
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("very-secret") && !stdout.contains("also-secret"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["resolution"]["workspace_id"], "ws", "the file stem is the default workspace id");
    assert_eq!(v["resolution"]["resolved_mode"], "platform_managed");
    assert_eq!(v["env"]["ANTHROPIC_BASE_URL"], "http://127.0.0.1:8080/anthropic");
    assert_eq!(v["env"]["ANTHROPIC_AUTH_TOKEN"], "<redacted>");
    assert_eq!(v["env"]["GITHUB_TOKEN"], "<redacted>");
    assert_eq!(v["env"]["LLM_PROVIDER"], "platform");
    assert!(v["env"].get("CLAUDE_CODE_OAUTH_TOKEN").is_none());
    // --public-url changes the injected proxy URL.
    let out = tollgate(&[
        "explain",
        "--scenario",
        f.to_str().unwrap(),
        "--format",
        "json",
        "--public-url",
        "https://tg.example/",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["env"]["ANTHROPIC_BASE_URL"], "https://tg.example/anthropic");
}

#[test]
fn text_output_is_a_table_for_people() {
    let f = repo_root().join("../shared/scenarios/seed001-minimax-strips-stray-org-oauth.yaml");
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("mode       byok (source derived_provider)"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("CLAUDE_CODE_OAUTH_TOKEN")
            && l.contains("org")
            && l.contains("dropped")
            && l.contains("not in auth_env of provider minimax")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("MINIMAX_API_KEY") && l.contains("kept")), "{text}");
    assert!(text.contains("MINIMAX_API_KEY=<redacted>"), "{text}");
    assert!(!text.contains("mm-key"), "{text}");
    assert!(text.contains("expect: ok"));
}

#[test]
fn failed_expectations_exit_1_with_a_diff() {
    let dir = tmpdir("expect");
    let f = write(
        &dir,
        "wrong.yaml",
        "workspace: {runtime: claude-code, model: MiniMax-M2.7, secrets: {MINIMAX_API_KEY: k}}\nexpect:\n  resolved_mode: platform_managed\n  provider: minimax\n  error: null\n  env_has: [CLAUDE_CODE_OAUTH_TOKEN]\n  env_lacks: [MINIMAX_API_KEY]\n",
    );
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("resolved_mode: expected platform_managed, got byok"), "{stderr}");
    assert!(stderr.contains("env_has: CLAUDE_CODE_OAUTH_TOKEN is not in the env plan"), "{stderr}");
    assert!(stderr.contains("env_lacks: MINIMAX_API_KEY is in the env plan"), "{stderr}");
    assert!(!stderr.contains("provider:"), "a matching field is not reported: {stderr}");
    assert!(!stderr.contains("`k`"), "{stderr}");
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "text format too");
    let f = write(
        &dir,
        "err.yaml",
        "workspace: {runtime: claude-code, model: MiniMax-M2.7}\nexpect: {error: NO_PROVIDER}\n",
    );
    let out = tollgate(&["explain", "--scenario", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr).unwrap().contains("error: expected NO_PROVIDER, got MISSING_BYOK_CREDENTIAL")
    );
}

#[test]
fn invalid_files_exit_78_with_a_location() {
    let dir = tmpdir("invalid");
    let cases = [
        (
            "lower.yaml",
            "workspace:\n  runtime: claude-code\n  secrets: {minimax_api_key: k}\n",
            "must already be upper case",
        ),
        ("unknown-field.yaml", "workspace:\n  runtime: claude-code\n  modle: opus\n", "modle"),
        ("bad-mode.yaml", "workspace:\n  runtime: claude-code\n  billing_mode: BYOK\n", "BYOK"),
        ("no-runtime.yaml", "workspace: {model: opus}\n", "runtime"),
        ("bad-expect.yaml", "workspace: {runtime: codex}\nexpect: {mode: byok}\n", "mode"),
        ("reserved.yaml", "workspace: {runtime: codex, secrets: {TOLLGATE_UPSTREAM_OPENAI_KEY: x}}\n", "reserved"),
        ("registry.yaml", "registry: missing.yaml\nworkspace: {runtime: codex}\n", "cannot read registry"),
    ];
    for (name, text, needle) in cases {
        let f = write(&dir, name, text);
        let out = tollgate(&["explain", "--scenario", f.to_str().unwrap()]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(78), "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: the message names the file: {stderr}");
    }
    write(
        &dir,
        "reg-bad.yaml",
        "runtimes: {codex: {protocol: openai, base_url_env: B, token_env: T}}\nproviders:\n  - {id: a, runtimes: [codex], auth_env: [bad]}\n",
    );
    let s = write(&dir, "uses-reg.yaml", "registry: reg-bad.yaml\nworkspace: {runtime: codex}\n");
    let out = tollgate(&["explain", "--scenario", s.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr.contains("reg-bad.yaml:3:") && stderr.contains("providers[0].auth_env[0]"), "{stderr}");
    let out = tollgate(&["explain", "--scenario", dir.join("absent.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(tollgate(&["explain"]).status.code(), Some(2));
    assert_eq!(tollgate(&["explain", "--scenario", "x", "--format", "xml"]).status.code(), Some(2));
    assert_eq!(tollgate(&["frobnicate"]).status.code(), Some(2));
    let help = tollgate(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8(help.stdout).unwrap().contains("explain"));
}
