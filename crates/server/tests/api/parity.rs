//! PARITY: every scenario of `tests/scenarios/` through the real API.
//!
//! For each scenario the org, the workspace and every secret (under its own scope; an
//! `{unreadable: true}` secret is PUT and then given another row's ciphertext in the
//! database) are created through the API. Then the read endpoint, provisioning (with the
//! request model) and, when provisioning succeeded, the pull with the returned token must
//! agree with each other, with the policy crate's `resolve` on the scenario's own state
//! (field for field, env included), and with the scenario's `expect`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_policy::scenario::{RegistryRef, Scenario};
use tollgate_policy::{Context, MergedSecrets, PublicUrl, Registry, Resolved, SecretState, WorkspaceToken, resolve};
use tollgate_store::NewWorkspace;

use crate::support::{AdminToken, Backend, Db, Options, TestApp, spawn_on};

/// `explain`'s default public URL, used when a scenario sets none.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Just the secrets of a scenario, by scope, as written (the policy's `Scenario` only keeps
/// the merge, and an overridden org secret must be stored too).
#[derive(Deserialize)]
struct RawScenario {
    #[serde(default)]
    org: RawScope,
    workspace: RawScope,
}

#[derive(Default, Deserialize)]
struct RawScope {
    #[serde(default)]
    secrets: BTreeMap<String, Value>,
}

#[derive(Clone, Debug)]
enum RawSecret {
    Value(String),
    Unreadable,
}

fn raw_secret(v: &Value) -> RawSecret {
    match v {
        Value::String(s) => RawSecret::Value(s.clone()),
        Value::Bool(b) => RawSecret::Value(b.to_string()),
        Value::Number(n) => RawSecret::Value(n.to_string()),
        Value::Null => RawSecret::Value(String::new()),
        Value::Object(m) if m.get("unreadable") == Some(&Value::Bool(true)) => RawSecret::Unreadable,
        other => panic!("unexpected secret {other}"),
    }
}

struct Case {
    name: String,
    path: PathBuf,
    scenario: Scenario,
    registry_key: String,
    registry: Arc<Registry>,
    public_url: String,
    org_secrets: Vec<(String, RawSecret)>,
    ws_secrets: Vec<(String, RawSecret)>,
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

fn load_cases() -> Vec<Case> {
    let dir = scenarios_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 100,
        "expected the scenario corpus (~100 files) in {}, found {}",
        dir.display(),
        files.len()
    );
    let mut registries: HashMap<String, Arc<Registry>> = HashMap::new();
    registries.insert("default".to_owned(), Arc::new(Registry::embedded().unwrap()));
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let scenario = Scenario::parse(&path.display().to_string(), &text, &name).unwrap_or_else(|e| panic!("{e}"));
            let registry_key = match &scenario.registry {
                RegistryRef::Default => "default".to_owned(),
                RegistryRef::Path(rel) => path.parent().unwrap().join(rel).display().to_string(),
            };
            let registry = registries
                .entry(registry_key.clone())
                .or_insert_with(|| {
                    let yaml = std::fs::read_to_string(&registry_key).unwrap_or_else(|e| panic!("{registry_key}: {e}"));
                    Arc::new(Registry::parse(&registry_key, &yaml).unwrap_or_else(|e| panic!("{e}")))
                })
                .clone();
            let raw: RawScenario = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let scope = |s: &RawScope| s.secrets.iter().map(|(k, v)| (k.clone(), raw_secret(v))).collect::<Vec<_>>();
            let case = Case {
                public_url: scenario.public_url.clone().unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
                org_secrets: scope(&raw.org),
                ws_secrets: scope(&raw.workspace),
                name,
                path,
                scenario,
                registry_key,
                registry,
            };
            check_raw_matches_merge(&case);
            case
        })
        .collect()
}

/// The secrets read here merge to exactly the policy's view of the scenario.
fn check_raw_matches_merge(case: &Case) {
    let state = |s: &RawSecret| match s {
        RawSecret::Value(v) => SecretState::Value(tollgate_policy::SecretValue::parse(v.as_str()).unwrap()),
        RawSecret::Unreadable => SecretState::Unreadable,
    };
    let name = |n: &str| tollgate_policy::SecretName::parse(n).unwrap();
    let ours = MergedSecrets::merge(
        case.org_secrets.iter().map(|(n, s)| (name(n), state(s))),
        case.ws_secrets.iter().map(|(n, s)| (name(n), state(s))),
    );
    let show = |m: &MergedSecrets| {
        m.iter()
            .map(|(n, s)| format!("{n}:{}:{}", s.origin, s.value().map_or("<unreadable>", |v| v.expose())))
            .collect::<Vec<_>>()
    };
    assert_eq!(show(&ours), show(&case.scenario.secrets), "{}: secrets read differently", case.name);
}

/// One app per (registry, public URL), all on the same database.
struct Apps {
    db: Db,
    apps: HashMap<(String, String), TestApp>,
    admin_token: Option<String>,
    donor_org: Option<String>,
}

impl Apps {
    /// Starts the app `case` needs, if it is not running yet; returns its key.
    async fn ensure(&mut self, case: &Case) -> (String, String) {
        let key = (case.registry_key.clone(), case.public_url.clone());
        if !self.apps.contains_key(&key) {
            let admin_token = match &self.admin_token {
                Some(t) => AdminToken::Configure(t.clone()),
                None => AdminToken::Generate,
            };
            let options = Options {
                registry: case.registry.clone(),
                public_url: case.public_url.clone(),
                admin_token,
                ..Options::default()
            };
            let app = spawn_on(&self.db, options).await;
            self.admin_token = Some(app.admin_token.clone());
            if self.donor_org.is_none() {
                // A readable secret whose ciphertext belongs to another row.
                let donor = app.org("parity-donor").await;
                app.secret("orgs", &donor, "DONOR", "donor-value").await;
                self.donor_org = Some(donor);
            }
            self.apps.insert(key.clone(), app);
        }
        key
    }
}

/// (resolved_mode, source, provider, error code) of a resolution JSON.
fn decision(r: &Value) -> (Value, Value, Value, Value) {
    (r["resolved_mode"].clone(), r["source"].clone(), r["provider"].clone(), r["error"]["code"].clone())
}

fn rendered(resolved: &Resolved, token: &str) -> Value {
    let token = WorkspaceToken::parse(token).expect("a workspace token");
    let env = resolved.plan().expect("a plan").render(&token);
    Value::Object(env.iter().map(|(k, v)| (k.clone(), json!(secrecy::ExposeSecret::expose_secret(v)))).collect())
}

/// Runs one scenario; returns what differs.
async fn run_case(apps: &mut Apps, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let key = apps.ensure(case).await;
    let donor = apps.donor_org.clone().expect("the donor org");
    let app = &apps.apps[&key];
    let sc = &case.scenario;

    // The org and the workspace, through the API.
    let org = app
        .create_org(json!({"name": case.name, "default_billing_mode": sc.org.default_billing_mode.map(|m| m.as_str())}))
        .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let ws_body = json!({
        "org_id": org_id,
        "name": "ws",
        "runtime": sc.workspace.runtime,
        "model": sc.workspace.model,
        "billing_mode": sc.workspace.billing_mode.map(|m| m.as_str()),
        "kind": sc.workspace.kind.as_str(),
    });
    let created = app.post("/admin/workspaces", ws_body).await;
    let ws_id = if case.registry.runtime(&sc.workspace.runtime).is_some() {
        check(created.status == 201, format!("create workspace: {} {}", created.status, created.text));
        created.body["id"].as_str().unwrap_or_default().to_owned()
    } else {
        // The API refuses a runtime the registry lacks; such a workspace exists only when the
        // registry changed after it was created. Store it directly to resolve it.
        check(
            created.status == 400 && created.body["error"]["code"] == "UNKNOWN_RUNTIME",
            format!("create with an unknown runtime: {} {}", created.status, created.text),
        );
        let new = NewWorkspace {
            org_id: org_id.parse().unwrap(),
            name: "ws".to_owned(),
            runtime: sc.workspace.runtime.clone(),
            model: sc.workspace.model.clone(),
            billing_mode: sc.workspace.billing_mode,
            kind: sc.workspace.kind,
            limits: tollgate_policy::Limits::default(),
            alarms: None,
        };
        app.store.create_workspace(&new).await.unwrap().id.to_string()
    };

    // Every secret under its own scope; unreadable ones get another row's ciphertext.
    for (scope, owner, secrets) in [("org", &org_id, &case.org_secrets), ("workspace", &ws_id, &case.ws_secrets)] {
        let path_scope = if scope == "org" { "orgs" } else { "workspaces" };
        for (name, secret) in secrets {
            match secret {
                RawSecret::Value(v) => app.secret(path_scope, owner, name, v).await,
                RawSecret::Unreadable => {
                    app.secret(path_scope, owner, name, "placeholder-to-be-corrupted").await;
                    app.db.copy_ciphertext(("org", &donor, "DONOR"), (scope, owner, name)).await;
                }
            }
        }
    }

    // What the policy crate says about the same state, with the API's workspace id.
    let public_url = PublicUrl::parse(&case.public_url).unwrap();
    let ctx = Context { registry: &case.registry, public_url: &public_url };
    let spec = tollgate_policy::WorkspaceSpec { id: ws_id.clone(), ..sc.workspace.clone() };
    let local_read = resolve(&ctx, &spec, &sc.org, &sc.secrets, None);
    let local_prov = resolve(&ctx, &spec, &sc.org, &sc.secrets, sc.request_model.as_deref());
    if let Some(expect) = &sc.expect {
        for d in expect.check(&local_prov) {
            check(false, format!("policy vs expect: {d}"));
        }
    }
    let json_of = |r: &Resolved| serde_json::to_value(r.resolution()).unwrap();

    // 1. The read endpoint.
    let read1 = app.read_mode(&ws_id).await;
    check(read1 == json_of(&local_read), format!("read != policy:\n api    {read1}\n policy {}", json_of(&local_read)));

    // 2. Provisioning with the request model.
    let prov = app.provision(&ws_id, sc.request_model.as_deref()).await;
    let expected_prov = json_of(&local_prov);
    let ok = local_prov.resolution().error.is_none();
    if ok {
        check(prov.status == 200, format!("provision: expected 200, got {} {}", prov.status, prov.text));
        check(
            prov.body["resolution"] == expected_prov,
            format!("provision != policy:\n api    {}\n policy {expected_prov}", prov.body["resolution"]),
        );
        let token = prov.body["token"].as_str().unwrap_or_default().to_owned();
        if prov.status == 200 {
            check(prov.body["env"] == rendered(&local_prov, &token), "provision env != policy plan".to_owned());
        }
        if let Some(expect) = &sc.expect {
            let env = prov.body["env"].as_object().cloned().unwrap_or_default();
            for n in &expect.env_has {
                check(env.contains_key(n), format!("env_has: {n} missing from the provision env"));
            }
            for n in &expect.env_lacks {
                check(!env.contains_key(n), format!("env_lacks: {n} in the provision env"));
            }
        }

        // 3. The pull with the returned token; the read after provisioning.
        let pull = app.pull(&ws_id, &token).await;
        let read2 = app.read_mode(&ws_id).await;
        check(pull.status == 200, format!("pull: {} {}", pull.status, pull.text));
        check(pull.body["resolution"] == read2, "pull resolution != read after provision".to_owned());
        check(pull.body["env"] == prov.body["env"], "pull env != provision env".to_owned());
        let after = resolve(&ctx, &spec.after_provision(sc.request_model.as_deref()), &sc.org, &sc.secrets, None);
        check(read2 == json_of(&after), "read after provision != policy".to_owned());
        let d = decision(&prov.body["resolution"]);
        check(decision(&read2) == d, format!("read {:?} != provision {d:?}", decision(&read2)));
        check(decision(&pull.body["resolution"]) == d, "pull decision != provision decision".to_owned());
    } else {
        let code = local_prov.resolution().error.as_ref().map(|e| e.code.as_str()).unwrap_or_default();
        check(prov.status == 422, format!("provision: expected 422, got {} {}", prov.status, prov.text));
        check(prov.body["error"]["code"] == code, format!("provision code {} != {code}", prov.body["error"]["code"]));
        check(
            prov.body["resolution"] == expected_prov,
            format!("422 resolution != policy:\n api    {}\n policy {expected_prov}", prov.body["resolution"]),
        );
        // Nothing stored.
        let ws = app.get(&format!("/admin/workspaces/{ws_id}")).await;
        check(ws.body["model"] == json!(sc.workspace.model), "a failed provision changed the model".to_owned());
        check(
            app.store.list_provisions(&ws_id.parse().unwrap()).await.unwrap().is_empty(),
            "a failed provision was recorded".to_owned(),
        );
        let read2 = app.read_mode(&ws_id).await;
        check(read2 == read1, "the read changed after a failed provision".to_owned());
        if sc.request_model.as_deref().is_none_or(str::is_empty) {
            // Without a request model the read and the provision see the same state.
            check(decision(&read1) == decision(&prov.body["resolution"]), "read and provision disagree".to_owned());
        }
    }
    problems
}

/// Runs the corpus on `backend`; returns a summary line.
async fn parity(backend: Backend) -> String {
    let cases = load_cases();
    let mut apps = Apps { db: Db::fresh(backend).await, apps: HashMap::new(), admin_token: None, donor_org: None };
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut unreadable = 0;
    let mut with_registry = 0;
    let mut provisioned = 0;
    for case in &cases {
        unreadable += usize::from(
            case.org_secrets.iter().chain(&case.ws_secrets).any(|(_, s)| matches!(s, RawSecret::Unreadable)),
        );
        with_registry += usize::from(case.registry_key != "default");
        let problems = run_case(&mut apps, case).await;
        if problems.is_empty() {
            let ok = resolve_ok(case);
            provisioned += usize::from(ok);
        } else {
            failures.push(format!("{}:\n  {}", case.path.display(), problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} scenarios differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(
        unreadable >= 5 && with_registry >= 5 && provisioned >= 50,
        "coverage: {unreadable} {with_registry} {provisioned}"
    );
    for (_, app) in apps.apps.drain() {
        app.stop().await;
    }
    format!("parity ({backend:?}): {} scenarios in {:?}", cases.len(), started.elapsed())
}

fn resolve_ok(case: &Case) -> bool {
    let public_url = PublicUrl::parse(&case.public_url).unwrap();
    let ctx = Context { registry: &case.registry, public_url: &public_url };
    let sc = &case.scenario;
    resolve(&ctx, &sc.workspace, &sc.org, &sc.secrets, sc.request_model.as_deref()).error().is_none()
}

#[tokio::test]
async fn every_scenario_agrees_through_the_api_sqlite() {
    eprintln!("{}", parity(Backend::Sqlite).await);
}

#[tokio::test]
async fn every_scenario_agrees_through_the_api_postgres() {
    eprintln!("{}", parity(Backend::Postgres).await);
}
