//! The real Codex CLI (0.169.0, `target/test-clients`) under `tollgate exec --pull`, which
//! writes Codex's configuration from the pulled plan (DESIGN.md section 12): platform-managed
//! through the proxy, BYOK `openai` straight to a stand-in provider, and a ChatGPT login.
//!
//! Every run has nothing in its environment but `PATH`, `HOME`, the three pull variables and
//! deliberate strays (an inherited `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CODEX_AUTH_JSON`, a
//! Claude OAuth token, and a ChatGPT login already in `~/.codex/auth.json`); `CODEX_HOME` is
//! not set, so exec writes to Codex's default `~/.codex`, where a user's own `config.toml`
//! waits with comments and settings that must survive.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use tollgate_policy::registry::DEFAULT_REGISTRY_YAML;
use tollgate_upstream::{REPLY, Upstream};

use crate::clients::{Books, CREDIT, Stack, clean_command, codex, run, stand_in_usage, summary, temp_home};

const STRAY_KEY: &str = "sk-stray-inherited-openai-key";
const STRAY_OAUTH: &str = "sk-ant-oat01-stray-inherited-oauth";
const CUSTOMER_KEY: &str = "sk-customer-own-openai-key";

/// The user's own Codex configuration: a comment, a provider of their own selected at the top
/// level, a setting Codex reads, and a table Tollgate has no business with.
const USER_CONFIG: &str = r#"# my own Codex settings
model_provider = "mine"   # my relay
model = "o3"
approval_policy = "never"

[model_providers.mine]
name = "Mine"
base_url = "http://127.0.0.1:9/v1"
env_key = "MY_RELAY_KEY"
wire_api = "responses"

[history]
persistence = "none"
"#;

/// A ChatGPT login of the shape `codex login` writes (its id token a JWT of `{}` claims and an
/// email), whose tokens are fake: `codex login status` reads it without a network call.
const LOGIN: &str = r#"{"OPENAI_API_KEY":null,"tokens":{"id_token":"eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImRldkBleGFtcGxlLmNvbSJ9.sig","access_token":"chatgpt-access-of-the-test","refresh_token":"chatgpt-refresh-of-the-test","account_id":"acc-1"},"last_refresh":"2026-11-30T00:00:00Z"}"#;

/// The user's own ChatGPT login already in `~/.codex/auth.json`: never sent to the proxy.
const OWN_LOGIN: &str = r#"{"OPENAI_API_KEY":"sk-own-login-key","tokens":{"id_token":"e30.e30.x","access_token":"own-oauth-access-token","refresh_token":"r"}}"#;

/// A home with the user's `~/.codex/config.toml` and `auth.json`.
fn user_home(name: &str) -> std::path::PathBuf {
    let home = temp_home(name);
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".codex/config.toml"), USER_CONFIG).unwrap();
    std::fs::write(home.join(".codex/auth.json"), OWN_LOGIN).unwrap();
    home
}

/// `tollgate exec --pull -- codex ARGS` for the provisioned workspace, with the strays.
fn exec_codex(provisioned: &Value, home: &Path, codex_args: &[&str]) -> Output {
    let mut cmd = exec_command(provisioned, home);
    cmd.args(["exec", "--pull", "--"]).arg(codex()).args(codex_args);
    run(cmd, "tollgate exec --pull -- codex")
}

/// `tollgate exec --pull --check` for the provisioned workspace, with the strays.
fn exec_codex_check(provisioned: &Value, home: &Path) -> Output {
    let mut cmd = exec_command(provisioned, home);
    cmd.args(["exec", "--pull", "--check"]);
    run(cmd, "tollgate exec --pull --check")
}

/// `tollgate` with the three pull variables of `provisioned` and the strays.
fn exec_command(provisioned: &Value, home: &Path) -> std::process::Command {
    let env = &provisioned["env"];
    let var = |n: &str| env[n].as_str().unwrap_or_else(|| panic!("{n} not in the plan: {env}")).to_owned();
    let (url, ws, token) = (var("TOLLGATE_URL"), var("TOLLGATE_WORKSPACE_ID"), var("TOLLGATE_WORKSPACE_TOKEN"));
    clean_command(
        Path::new(env!("CARGO_BIN_EXE_tollgate")),
        home,
        &[
            ("TOLLGATE_URL", &url),
            ("TOLLGATE_WORKSPACE_ID", &ws),
            ("TOLLGATE_WORKSPACE_TOKEN", &token),
            ("OPENAI_API_KEY", STRAY_KEY),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("CODEX_AUTH_JSON", OWN_LOGIN),
            ("CLAUDE_CODE_OAUTH_TOKEN", STRAY_OAUTH),
            ("MY_RELAY_KEY", "sk-my-relay"),
        ],
    )
}

fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The user's settings are all still there, with their comment; Tollgate's are beside them.
fn check_user_settings_intact(home: &Path) -> toml_value::Doc {
    let text = std::fs::read_to_string(home.join(".codex/config.toml")).unwrap();
    for kept in [
        "# my own Codex settings\n",
        "# my relay",
        "approval_policy = \"never\"\n",
        "[model_providers.mine]\nname = \"Mine\"\nbase_url = \"http://127.0.0.1:9/v1\"\nenv_key = \"MY_RELAY_KEY\"\nwire_api = \"responses\"\n",
        "[history]\npersistence = \"none\"\n",
    ] {
        assert!(text.contains(kept), "the user's {kept:?} is gone from config.toml:\n{text}");
    }
    let mode = std::fs::metadata(home.join(".codex/config.toml")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    toml_value::Doc(text)
}

/// Just enough TOML reading for the assertions: `key = "value"` lines of one table.
mod toml_value {
    pub(super) struct Doc(pub(super) String);

    impl Doc {
        /// The string value of `key` in `[table]` (`""` for the top level).
        pub(super) fn get(&self, table: &str, key: &str) -> Option<String> {
            let mut current = String::new();
            for line in self.0.lines().map(str::trim) {
                if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    current = t.to_owned();
                } else if current == table
                    && let Some((k, v)) = line.split_once('=')
                    && k.trim() == key
                {
                    let v = v.split('#').next().unwrap_or_default().trim();
                    return Some(v.trim_matches('"').to_owned());
                }
            }
            None
        }
    }
}

/// Platform-managed: `exec --pull` writes the proxy's `/openai/v1` into `~/.codex/config.toml`,
/// Codex's one streamed `POST /responses` reaches the stand-in through the proxy with the
/// platform key, the ledger and the credit move by exactly its cost, no stray credential (the
/// inherited key, the user's own ChatGPT login, a Claude OAuth token) and no workspace token
/// reaches the upstream, and the user's own settings survive.
#[test]
fn codex_cli_platform_managed_through_exec_pull_is_billed_exactly() {
    let stack = Stack::start(crate::bin(), "codex");
    let provisioned = stack.provisioned("codex", "codex", "platform/gpt", &[]);
    assert_eq!(provisioned["resolution"]["resolved_mode"], "platform_managed", "{provisioned}");
    let token = provisioned["token"].as_str().unwrap().to_owned();
    let home = user_home("codex-platform");

    // `--check` says what Codex will be told (names and URLs), and writes nothing.
    let out = exec_codex_check(&provisioned, &home);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.starts_with("codex ")).unwrap_or_else(|| panic!("no codex line:\n{stdout}"));
    let config = home.join(".codex/config.toml");
    let want = format!(
        "writes {}: model_provider tollgate (base_url {}/openai/v1, env_key TOLLGATE_WORKSPACE_TOKEN, wire_api responses), model platform/gpt",
        config.display(),
        stack.url()
    );
    assert!(line.ends_with(&want), "{line}\nwant …{want}");
    assert!(!stdout.contains(&token) && !stdout.contains("tg_ws_"), "no token in --check:\n{stdout}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), USER_CONFIG, "--check writes nothing");
    // A config.toml exec could not merge fails --check as it would fail the run: 78, untouched.
    std::fs::write(&config, "model = \n").unwrap();
    let out = exec_codex_check(&provisioned, &home);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    assert!(stderr.contains("not valid TOML (line 1)") && stderr.contains("config.toml"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "model = \n");
    std::fs::write(&config, USER_CONFIG).unwrap();

    let out = exec_codex(&provisioned, &home, &["exec", "--skip-git-repo-check", "say hi"]);
    let (stdout, stderr) = texts(&out);
    let seen = stack.upstream.requests();
    assert!(out.status.success(), "failed ({}):\n{stdout}\n{stderr}\nupstream saw {:#?}", out.status, summary(&seen));
    assert_eq!(stdout.trim(), REPLY, "stderr:\n{stderr}");

    let doc = check_user_settings_intact(&home);
    assert_eq!(doc.get("", "model_provider").as_deref(), Some("tollgate"));
    assert_eq!(doc.get("", "model").as_deref(), Some("platform/gpt"));
    let proxy = format!("{}/openai/v1", stack.url());
    assert_eq!(doc.get("model_providers.tollgate", "base_url"), Some(proxy));
    assert_eq!(doc.get("model_providers.tollgate", "env_key").as_deref(), Some("TOLLGATE_WORKSPACE_TOKEN"));
    assert_eq!(doc.get("model_providers.tollgate", "wire_api").as_deref(), Some("responses"));
    assert!(!doc.0.contains(&token), "config.toml names the token's variable, never holds it");

    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/responses"), "{:#?}", summary(&seen));
        assert_eq!(r.body["stream"], true, "Codex streams");
        let all = format!("{:?} {}", r.headers, r.body);
        for stray in [STRAY_KEY, STRAY_OAUTH, "sk-own-login-key", "own-oauth-access-token", "sk-my-relay"] {
            assert!(!all.contains(stray), "{stray} reached the upstream");
        }
    }
    assert!(stand_in_usage(&seen[0]).cache_read > 0, "Codex's developer messages are cache reads at the stand-in");
    // Every upstream request carries the platform key and no workspace token; the ledger and
    // the credit moved by exactly the stand-in's usage at the registry's price.
    let total = stack.check_upstream_and_ledger(&[&token]);
    assert!(total > 0);

    // The file outlives the run: a `codex` started later without exec, with a personal key in
    // OPENAI_API_KEY, finds no TOLLGATE_WORKSPACE_TOKEN and sends nothing anywhere.
    let mut cmd = clean_command(&codex(), &home, &[("OPENAI_API_KEY", STRAY_KEY)]);
    cmd.args(["exec", "--skip-git-repo-check", "say hi"]);
    let out = run(cmd, "codex exec without tollgate");
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("TOLLGATE_WORKSPACE_TOKEN"), "{stderr}");
    assert_eq!(stack.upstream.requests().len(), seen.len(), "nothing more reached the upstream");
    let _ = std::fs::remove_dir_all(&home);
}

/// BYOK `openai`, its `base_url` pointed by the server's registry at a second stand-in: Codex
/// talks to that provider directly with the customer's own key (not the inherited stray), the
/// platform's stand-in and the ledger see nothing, and the credit does not move.
#[test]
fn codex_cli_byok_openai_goes_to_the_provider_with_the_customers_key() {
    let mut provider: Option<Upstream> = None;
    let stack = Stack::start_with(crate::bin(), "codex-byok", |rt| {
        let p = rt.block_on(Upstream::start()).unwrap();
        let yaml = DEFAULT_REGISTRY_YAML
            .replace(r#"base_url: "https://api.openai.com/v1""#, &format!(r#"base_url: "{}/v1""#, p.url()));
        assert_ne!(yaml, DEFAULT_REGISTRY_YAML, "the registry's openai base_url was replaced");
        provider = Some(p);
        Some(yaml)
    });
    let provider = provider.unwrap();
    let provisioned = stack.provisioned("codex-byok", "codex", "gpt-5", &[("OPENAI_API_KEY", CUSTOMER_KEY)]);
    assert_eq!(provisioned["resolution"]["resolved_mode"], "byok", "{provisioned}");
    assert_eq!(provisioned["resolution"]["provider"], "openai");
    let home = user_home("codex-byok");
    let out = exec_codex(&provisioned, &home, &["exec", "--skip-git-repo-check", "say hi"]);
    let (stdout, stderr) = texts(&out);
    let seen = provider.requests();
    assert!(out.status.success(), "failed ({}):\n{stdout}\n{stderr}\nprovider saw {:#?}", out.status, summary(&seen));
    assert_eq!(stdout.trim(), REPLY, "stderr:\n{stderr}");

    let doc = check_user_settings_intact(&home);
    assert_eq!(doc.get("model_providers.tollgate", "base_url"), Some(format!("{}/v1", provider.url())));
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/responses"), "{:#?}", summary(&seen));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {CUSTOMER_KEY}").as_str()));
        assert!(!format!("{:?}", r.headers).contains("tg_ws_"), "no workspace token at the provider");
        assert_eq!(r.body["model"], "gpt-5");
    }
    assert!(stack.upstream.requests().is_empty(), "the platform's upstream saw nothing");
    let usage = stack.get(&format!("/admin/usage?org_id={}", stack.org));
    assert_eq!(usage["rows"], serde_json::json!([]), "nothing in the ledger");
    assert_eq!(stack.credit(), CREDIT);
    let _ = std::fs::remove_dir_all(&home);
}

/// ChatGPT-login BYOK: only `CODEX_AUTH_JSON` picks `openai-chatgpt`; exec writes the login to
/// `~/.codex/auth.json` (0600, replacing the user's own) and selects Codex's built-in provider,
/// and `codex login status` reads it. A login Codex would answer 401 with forever is refused
/// before Codex starts: exit 78 naming the variable.
#[test]
fn codex_cli_reads_the_chatgpt_login_exec_writes() {
    let stack = Stack::start(crate::bin(), "codex-chatgpt");
    let provisioned = stack.provisioned("codex-login", "codex", "gpt-5", &[("CODEX_AUTH_JSON", LOGIN)]);
    assert_eq!(provisioned["resolution"]["provider"], "openai-chatgpt", "{provisioned}");
    let home = user_home("codex-chatgpt");
    let out = exec_codex(&provisioned, &home, &["login", "status"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(format!("{stdout}{stderr}").contains("Logged in using ChatGPT"), "{stdout}\n{stderr}");
    let auth = home.join(".codex/auth.json");
    assert_eq!(std::fs::read_to_string(&auth).unwrap(), LOGIN);
    assert_eq!(std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777, 0o600);
    let doc = check_user_settings_intact(&home);
    assert_eq!(doc.get("", "model_provider").as_deref(), Some("openai"));
    assert_eq!(doc.get("", "model").as_deref(), Some("gpt-5"));
    assert!(stack.upstream.requests().is_empty());

    let broken = stack.provisioned("codex-broken-login", "codex", "gpt-5", &[("CODEX_AUTH_JSON", "{}")]);
    assert_eq!(broken["resolution"]["provider"], "openai-chatgpt", "{broken}");
    let home = user_home("codex-broken-login");
    let out = exec_codex(&broken, &home, &["login", "status"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    assert!(stderr.contains("CODEX_AUTH_JSON") && stderr.contains("tokens"), "{stderr}");
    assert!(stdout.is_empty(), "Codex never started: {stdout}");
    assert_eq!(std::fs::read_to_string(home.join(".codex/auth.json")).unwrap(), OWN_LOGIN, "nothing written");
    let _ = std::fs::remove_dir_all(&home);
}
