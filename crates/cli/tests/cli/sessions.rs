//! Agent sessions with the real clients (DESIGN.md section 19): two runs of Claude Code and two
//! of Codex through one `tollgate serve` give four sessions, each with its own totals, in
//! `tollgate admin usage --group-by session` (table and `--json`) and
//! `GET /admin/usage?group_by=session`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clients::{Stack, claude, clean_command, codex, run_client, temp_home};

/// Runs `claude -p` once with the workspace token; the number of requests the upstream has
/// seen after it.
fn claude_run(stack: &Stack, token: &str, n: usize) -> usize {
    let home = temp_home(&format!("session-claude-{n}"));
    let base = format!("{}/anthropic", stack.url());
    let mut cmd = clean_command(
        &claude(),
        &home,
        &[
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_AUTH_TOKEN", token),
            ("ANTHROPIC_MODEL", "platform/sonnet"),
            ("CLAUDE_CODE_MAX_CONTEXT_TOKENS", "200000"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
    );
    cmd.args(["-p", "Say hello"]);
    run_client(stack, cmd, &home, "claude -p").2.len()
}

/// Runs `codex exec` once with the workspace token; the number of requests the upstream has
/// seen after it.
fn codex_run(stack: &Stack, token: &str, n: usize) -> usize {
    let home = temp_home(&format!("session-codex-{n}"));
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        "model_provider = \"tollgate\"\nmodel = \"platform/gpt\"\n\n[model_providers.tollgate]\nname = \"Tollgate\"\n\
         base_url = \"{}/openai/v1\"\nenv_key = \"TOLLGATE_WORKSPACE_TOKEN\"\nwire_api = \"responses\"\n",
        stack.url()
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = clean_command(
        &codex(),
        &home,
        &[("CODEX_HOME", codex_home.to_str().unwrap()), ("TOLLGATE_WORKSPACE_TOKEN", token)],
    );
    cmd.args(["exec", "--skip-git-repo-check", "say hi"]);
    run_client(stack, cmd, &home, "codex exec").2.len()
}

/// `GET /admin/usage?group_by=session&workspace_id=WS` once `n` requests are settled: session
/// id to (requests, cost).
fn sessions(stack: &Stack, ws: &str, n: i64) -> BTreeMap<String, (i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = stack.get(&format!("/admin/usage?group_by=session&workspace_id={ws}"));
        let rows: BTreeMap<String, (i64, i64)> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = r["key"].as_str().unwrap().to_owned();
                (key, (r["requests"].as_i64().unwrap(), r["cost_micros"].as_i64().unwrap()))
            })
            .collect();
        let errors: i64 = v["rows"].as_array().unwrap().iter().map(|r| r["errors"].as_i64().unwrap()).sum();
        if rows.values().map(|r| r.0).sum::<i64>() == n && errors == 0 {
            return rows;
        }
        assert!(Instant::now() < deadline, "usage did not settle to {n} requests: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn workspace_id(stack: &Stack, name: &str) -> String {
    let list = stack.admin(&["workspace", "list", "--org", &stack.org]);
    let found = list.as_array().unwrap().iter().find(|w| w["name"] == name).unwrap();
    found["id"].as_str().unwrap().to_owned()
}

#[test]
fn two_runs_of_each_real_agent_are_two_sessions_with_their_own_totals() {
    let stack = Stack::start(crate::bin(), "sessions");
    let (claude_token, _) = stack.workspace("claude", "claude-code", "platform/sonnet");
    let (codex_token, _) = stack.workspace("codex", "codex", "platform/gpt");
    let first = claude_run(&stack, &claude_token, 1);
    let claude_requests = claude_run(&stack, &claude_token, 2);
    assert!(claude_requests > first);
    let claude_ws = workspace_id(&stack, "claude");
    let by_session = sessions(&stack, &claude_ws, i64::try_from(claude_requests).unwrap());
    eprintln!("Claude Code sessions: {by_session:?}");
    assert_eq!(by_session.len(), 2, "two Claude Code runs, two sessions: {by_session:?}");
    assert!(!by_session.contains_key(""), "every Claude Code request carried its session id");
    assert!(by_session.values().all(|(requests, cost)| *requests >= 1 && *cost > 0));

    codex_run(&stack, &codex_token, 1);
    let all = codex_run(&stack, &codex_token, 2);
    let codex_ws = workspace_id(&stack, "codex");
    let by_session = sessions(&stack, &codex_ws, i64::try_from(all - claude_requests).unwrap());
    eprintln!("Codex sessions: {by_session:?}");
    assert_eq!(by_session.len(), 2, "two Codex runs, two sessions: {by_session:?}");
    assert!(!by_session.contains_key(""), "every Codex request carried its session id");
    assert!(by_session.values().all(|(requests, cost)| *requests >= 1 && *cost > 0));

    // The CLI: the same rows as JSON, and as a table.
    let json: Value = stack.admin(&["usage", "--group-by", "session", "--org", &stack.org]);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    let table = stack.admin_text(&["usage", "--group-by", "session", "--org", &stack.org], None);
    eprintln!("tollgate admin usage --group-by session:\n{table}");
    assert!(table.lines().next().unwrap().starts_with("SESSION"), "{table}");
    for r in rows {
        let key = r["key"].as_str().unwrap();
        let line = table.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} not in\n{table}"));
        let cost = tollgate_policy::Micros::new(r["cost_micros"].as_i64().unwrap()).to_string();
        assert!(line.contains(&cost), "{line} shows {cost}");
    }
}
