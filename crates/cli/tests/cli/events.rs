//! `tollgate admin events` against a real `tollgate serve`: the table, `--json`, filters and
//! `--limit` across pages, and no secret value or token in what it prints.

use tollgate_testkit::cli_app::{ADMIN_TOKEN, Stack};

const SECRET: &str = "sk-ant-oat01-cli-events-secret-91c2";

#[test]
fn admin_events_lists_filters_and_pages() {
    let stack = Stack::start(crate::bin(), "events");
    stack.admin_text(&["org", "secret", "set", &stack.org, "CLAUDE_CODE_OAUTH_TOKEN"], Some(SECRET));
    let prov = stack.provisioned("ev", "claude-code", "platform/sonnet", &[]);
    let token = prov["token"].as_str().unwrap().to_owned();

    let all = stack.admin(&["events", "--limit", "1000"]);
    let kinds: Vec<&str> =
        all["events"].as_array().unwrap().iter().rev().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in ["org.created", "secret.set", "workspace.created", "workspace.provisioned"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(kinds[0], "org.created", "oldest last in the output, newest first");
    assert_eq!(all["next_cursor"], serde_json::Value::Null);

    // --limit takes the newest events and says where the rest start.
    let two = stack.admin(&["events", "--limit", "2"]);
    assert_eq!(two["events"].as_array().unwrap().len(), 2);
    assert_eq!(two["events"][0], all["events"][0]);
    assert!(two["next_cursor"].is_string());

    let of_kind = stack.admin(&["events", "--kind", "secret.set", "--org", &stack.org]);
    let of_kind = of_kind["events"].as_array().unwrap();
    assert_eq!(of_kind.len(), 1);
    assert_eq!(of_kind[0]["detail"]["name"], "CLAUDE_CODE_OAUTH_TOKEN");

    let table = stack.admin_text(&["events", "--kind", "workspace.provisioned"], None);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in ["AT", "KIND", "ACTOR", "ORG_ID", "WORKSPACE_ID", "DETAIL"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].contains("workspace.provisioned") && rows[0].contains("admin"), "{table}");

    let full = stack.admin_text(&["events", "--limit", "1000"], None);
    for text in [full.as_str(), &all.to_string()] {
        assert!(!text.contains(SECRET) && !text.contains(&token) && !text.contains(ADMIN_TOKEN), "a secret leaked");
    }
}

#[test]
fn admin_events_refuses_an_unknown_kind() {
    // Refused while parsing the arguments: no server is asked.
    let out = std::process::Command::new(crate::bin())
        .args(["admin", "events", "--kind", "org.exploded"])
        .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TOLLGATE_ADMIN_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--kind"), "{stderr}");
}
