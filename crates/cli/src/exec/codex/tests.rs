//! The merge of Tollgate's Codex settings into a user's `config.toml`.

use secrecy::SecretString;
use std::os::unix::fs::PermissionsExt;
use tollgate_policy::EnvName;
use tollgate_policy::codex::WireApi;

use super::*;

fn platform() -> CodexConfig {
    CodexConfig {
        provider: CodexProvider::Endpoint {
            base_url: BaseUrl::Url("http://127.0.0.1:8080/openai/v1".to_owned()),
            env_key: EnvName::parse("OPENAI_API_KEY").unwrap(),
            wire_api: WireApi::Responses,
        },
        model: Some("platform/gpt".to_owned()),
    }
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned()))).collect()
}

fn parsed(text: &str) -> DocumentMut {
    text.parse().unwrap()
}

const USER: &str = r#"# my settings
model = "o3"  # the model I like
approval_policy = "never"

[model_providers.mine]
name = "Mine"
base_url = "https://mine.example/v1"

[mcp_servers.docs]
command = "docs-mcp"
"#;

#[test]
fn an_empty_file_gets_the_provider_table_and_the_top_level_keys() {
    let out = merge("", &platform(), &Env::new()).unwrap();
    let doc = parsed(&out);
    assert_eq!(doc["model_provider"].as_str(), Some("tollgate"));
    assert_eq!(doc["model"].as_str(), Some("platform/gpt"));
    let t = &doc["model_providers"]["tollgate"];
    assert_eq!(t["base_url"].as_str(), Some("http://127.0.0.1:8080/openai/v1"));
    assert_eq!(t["env_key"].as_str(), Some("OPENAI_API_KEY"));
    assert_eq!(t["wire_api"].as_str(), Some("responses"));
    assert!(out.contains("[model_providers.tollgate]"), "{out}");
    assert!(!out.contains("[model_providers]\n"), "implicit parent table: {out}");
}

#[test]
fn the_users_comments_layout_and_keys_stay() {
    let out = merge(USER, &platform(), &Env::new()).unwrap();
    for kept in [
        "# my settings\n",
        "approval_policy = \"never\"\n",
        "[model_providers.mine]\nname = \"Mine\"\nbase_url = \"https://mine.example/v1\"\n",
        "[mcp_servers.docs]\ncommand = \"docs-mcp\"\n",
        "# the model I like",
    ] {
        assert!(out.contains(kept), "lost {kept:?} in:\n{out}");
    }
    let doc = parsed(&out);
    assert_eq!(doc["model"].as_str(), Some("platform/gpt"));
    assert_eq!(doc["model_provider"].as_str(), Some("tollgate"));
    // Merging twice changes nothing more: the file does not grow with every run.
    assert_eq!(merge(&out, &platform(), &Env::new()).unwrap(), out);
}

#[test]
fn an_active_profile_that_picks_a_provider_is_overridden_and_others_are_not() {
    let text = "profile = \"work\"\n[profiles.work]\nmodel_provider = \"openai\"\nmodel = \"o3\"\n[profiles.home]\nmodel_provider = \"openai\"\n";
    let doc = parsed(&merge(text, &platform(), &Env::new()).unwrap());
    assert_eq!(doc["profiles"]["work"]["model_provider"].as_str(), Some("tollgate"));
    assert_eq!(doc["profiles"]["work"]["model"].as_str(), Some("platform/gpt"));
    assert_eq!(doc["profiles"]["home"]["model_provider"].as_str(), Some("openai"));
    assert_eq!(doc["profile"].as_str(), Some("work"));
}

#[test]
fn an_inline_providers_table_is_merged_inline() {
    let text = "model_providers = { mine = { name = \"Mine\", base_url = \"https://mine.example/v1\" } }\n";
    let doc = parsed(&merge(text, &platform(), &Env::new()).unwrap());
    assert_eq!(doc["model_providers"]["mine"]["name"].as_str(), Some("Mine"));
    assert_eq!(doc["model_providers"]["tollgate"]["env_key"].as_str(), Some("OPENAI_API_KEY"));
}

#[test]
fn a_file_tollgate_cannot_merge_into_is_refused_not_overwritten() {
    let bad = merge("model = \n", &platform(), &Env::new()).unwrap_err();
    assert!(bad.contains("not valid TOML (line 1)"), "{bad}");
    let clash = merge("[model_providers]\ntollgate = \"x\"\n", &platform(), &Env::new()).unwrap_err();
    assert!(clash.contains("model_providers.tollgate` is not a table"), "{clash}");
}

#[test]
fn a_base_url_by_name_takes_the_variables_value() {
    let mut config = platform();
    config.provider = CodexProvider::Endpoint {
        base_url: BaseUrl::Env(EnvName::parse("OPENAI_BASE_URL").unwrap()),
        env_key: EnvName::parse("OPENAI_API_KEY").unwrap(),
        wire_api: WireApi::Responses,
    };
    let out = merge("", &config, &env(&[("OPENAI_BASE_URL", "https://relay.example/v1")])).unwrap();
    assert_eq!(parsed(&out)["model_providers"]["tollgate"]["base_url"].as_str(), Some("https://relay.example/v1"));
    let missing = merge("", &config, &Env::new()).unwrap_err();
    assert!(missing.contains("OPENAI_BASE_URL, which is not set"), "{missing}");
}

#[test]
fn a_chatgpt_login_selects_the_builtin_provider_and_writes_auth_json_0600() {
    let config = CodexConfig {
        provider: CodexProvider::ChatgptLogin { auth_json_env: EnvName::parse("CODEX_AUTH_JSON").unwrap() },
        model: None,
    };
    let dir = std::env::temp_dir().join(format!("tollgate-codex-test-{}", std::process::id()));
    let home = dir.join("codex-home");
    let login = r#"{"tokens":{"id_token":"e30.e30.x","access_token":"a","refresh_token":"r"}}"#;
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), USER).unwrap();
    let written = write(&home, &config, &env(&[("CODEX_AUTH_JSON", login)])).unwrap();
    assert_eq!(written.files, [home.join("auth.json"), home.join("config.toml")]);
    assert_eq!(std::fs::read_to_string(home.join("auth.json")).unwrap(), login);
    for f in &written.files {
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    let doc = parsed(&std::fs::read_to_string(home.join("config.toml")).unwrap());
    assert_eq!(doc["model_provider"].as_str(), Some("openai"));
    assert_eq!(doc["model"].as_str(), Some("o3"), "no model in the plan: the user's stays");
    assert!(doc.get("model_providers").and_then(|p| p.get("tollgate")).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
