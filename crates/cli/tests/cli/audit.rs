//! `tollgate audit` against a real `tollgate serve --demo`: the table, the JSON, `--org` and
//! the exit codes of `--fail-on`.

use std::process::Command;

use serde_json::Value;

use crate::serve::{data_dir, start};

const TOKEN: &str = "tg_admin_audit-cli-test";

fn audit(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::bin())
        .arg("audit")
        .args(args)
        .env("TOLLGATE_ADMIN_URL", url)
        .env("TOLLGATE_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn audit_reports_findings_and_exits_by_fail_on() {
    let dir = data_dir("audit");
    let s = start(&dir, &["--demo"], &[("TOLLGATE_ADMIN_TOKEN", TOKEN)]);
    // The demo's byok-missing-credential workspace does not resolve: an error, exit 1.
    let (code, table, err) = audit(&s.url, TOKEN, &[]);
    assert_eq!(code, 1, "{err}\n{table}");
    let row = table.lines().find(|l| l.contains("RESOLUTION_ERROR")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.starts_with("error") && row.contains("MISSING_BYOK_CREDENTIAL"), "{row}");
    assert!(table.contains("STRAY_ORG_CREDENTIAL"), "the demo's stray OAuth token: {table}");
    assert!(table.lines().last().unwrap().starts_with("8 workspaces checked at "), "{table}");
    assert!(!table.contains("sk-ant-oat01-demo") && !table.contains("demo-minimax-key"), "no value");
    let (code, _, _) = audit(&s.url, TOKEN, &["--fail-on", "never"]);
    assert_eq!(code, 0);

    let (code, json, _) = audit(&s.url, TOKEN, &["--format", "json", "--fail-on", "never"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["workspaces_checked"], 8);
    assert!(report["summary"]["RESOLUTION_ERROR"].as_u64().unwrap() >= 1, "{report}");

    // An org whose only finding is info: it passes the default gate and --fail-on warning.
    let org = s.admin_json(TOKEN, &["org", "create", "quiet"])["id"].as_str().unwrap().to_owned();
    s.admin_json(
        TOKEN,
        &[
            "workspace",
            "create",
            "--org",
            &org,
            "--name",
            "w",
            "--runtime",
            "claude-code",
            "--billing-mode",
            "disabled",
        ],
    );
    let (code, table, err) = audit(&s.url, TOKEN, &["--org", &org]);
    assert_eq!(code, 0, "{err}\n{table}");
    assert!(table.contains("NOT_PROVISIONED") && table.contains("1 workspaces checked"), "{table}");
    assert_eq!(audit(&s.url, TOKEN, &["--org", &org, "--fail-on", "warning"]).0, 0, "info is below warning");
    s.admin_json(
        TOKEN,
        &["workspace", "create", "--org", &org, "--name", "f", "--runtime", "claude-code", "--billing-mode", "byok"],
    );
    // byok without a provider does not resolve (NO_PROVIDER): an error again.
    assert_eq!(audit(&s.url, TOKEN, &["--org", &org]).0, 1);

    // Usage and configuration errors.
    assert_eq!(audit(&s.url, TOKEN, &["--fail-on", "sometimes"]).0, 2);
    assert_eq!(audit(&s.url, TOKEN, &["--org", "not an id"]).0, 2);
    assert_eq!(audit(&s.url, "tg_admin_wrong", &[]).0, 78);
    let (code, _, err) = audit(&s.url, TOKEN, &["--org", "no-such-org"]);
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND"), "{err}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
