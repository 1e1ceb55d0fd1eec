//! The API server's test harness: real servers on 127.0.0.1:0 over a fresh database per
//! test (SQLite file or a database on [`crate::postgres`]), and a small HTTP client.
#![expect(clippy::expect_used, reason = "test support: a failed step is a failed test")]

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate_policy::{PublicUrl, Registry};
use tollgate_server::AppState;
use tollgate_store::{MasterKeys, Store};

/// The two store backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A file in the temporary directory.
    Sqlite,
    /// A fresh database on the process's throwaway server ([`crate::postgres`]).
    Postgres,
}

/// Generates `NAME::sqlite` and `NAME::postgres` tests from `async fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::server_app::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::server_app::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// Removes an SQLite database file (and its WAL files) when the last app using it is gone.
#[derive(Debug)]
pub struct SqliteFile(pub PathBuf);

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A database some apps share.
#[derive(Clone, Debug)]
pub struct Db {
    /// Its backend.
    pub backend: Backend,
    /// Its URL, as `tollgate serve --database-url` takes it.
    pub url: String,
    /// The SQLite file, removed when the last clone is dropped; `None` for Postgres.
    pub sqlite_file: Option<Arc<SqliteFile>>,
    /// The master key, base64; or several, oldest first, separated by commas.
    pub key_b64: String,
}

impl Db {
    /// A fresh, empty database and a fresh master key.
    pub async fn fresh(backend: Backend) -> Db {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("random key");
        let key_b64 = base64::engine::general_purpose::STANDARD.encode(key);
        match backend {
            Backend::Sqlite => {
                let path =
                    std::env::temp_dir().join(format!("tollgate-server-test-{}.db", uuid::Uuid::new_v4().simple()));
                let url = format!("sqlite://{}", path.display());
                Db { backend, url, sqlite_file: Some(Arc::new(SqliteFile(path))), key_b64 }
            }
            Backend::Postgres => {
                let url = crate::postgres().fresh_database().await.expect("fresh Postgres database");
                Db { backend, url, sqlite_file: None, key_b64 }
            }
        }
    }

    /// The SQLite file's path.
    pub fn sqlite_path(&self) -> &std::path::Path {
        &self.sqlite_file.as_ref().expect("an SQLite database").0
    }

    /// Runs one SQL statement with text parameters, directly on the database.
    pub async fn execute(&self, sql: &str, params: &[&str]) -> u64 {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.expect("open the SQLite file");
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                let done = q.execute(&pool).await.expect("SQL statement").rows_affected();
                pool.close().await;
                done
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.expect("connect to Postgres");
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(*p);
                }
                let done = q.execute(&pool).await.expect("SQL statement").rows_affected();
                pool.close().await;
                done
            }
        }
    }

    /// Overwrites the ciphertext (and nonce) of secret `(scope, owner, name)` with those of
    /// another row: the value must then be unreadable, never absent.
    pub async fn copy_ciphertext(&self, from: (&str, &str, &str), to: (&str, &str, &str)) {
        let sql = "UPDATE secrets SET \
                   nonce = (SELECT nonce FROM secrets WHERE scope = $1 AND owner_id = $2 AND name = $3), \
                   ciphertext = (SELECT ciphertext FROM secrets WHERE scope = $1 AND owner_id = $2 AND name = $3) \
                   WHERE scope = $4 AND owner_id = $5 AND name = $6";
        let n = self.execute(sql, &[from.0, from.1, from.2, to.0, to.1, to.2]).await;
        assert_eq!(n, 1, "exactly one secret row overwritten");
    }
}

/// How to start an app.
#[derive(Clone, Debug)]
pub struct Options {
    /// The registry in force (default: the embedded one).
    pub registry: Arc<Registry>,
    /// The public URL workspaces are told.
    pub public_url: String,
    /// How the admin token comes about.
    pub admin_token: AdminToken,
    /// How failed admin-token attempts are slowed (default: the server's default).
    pub admin_throttle: tollgate_server::AdminThrottleConfig,
    /// Webhook notifications: delivered with this configuration; `None` (the default): the
    /// notifier is disabled.
    pub notifier: Option<tollgate_server::notify::NotifierConfig>,
}

/// How a test app gets its admin token.
#[derive(Clone, Debug, Default)]
pub enum AdminToken {
    /// Bootstrap generates one (the database must have none yet).
    #[default]
    Generate,
    /// `TOLLGATE_ADMIN_TOKEN`.
    Configure(String),
    /// The database already has this one; bootstrap must keep it and print nothing.
    Existing(String),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            registry: Arc::new(Registry::embedded().expect("embedded registry")),
            public_url: "http://tollgate.test:8080".to_owned(),
            admin_token: AdminToken::Generate,
            admin_throttle: tollgate_server::AdminThrottleConfig::default(),
            notifier: None,
        }
    }
}

/// A running server and a client for it.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The admin token, in clear.
    pub admin_token: String,
    /// The client requests are sent with (no proxy).
    pub client: reqwest::Client,
    /// The database the server runs on.
    pub db: Db,
    /// The server's store, for direct checks.
    pub store: Arc<dyn Store>,
    /// The server's notifier (what the alarm evaluator calls), for tests that record an event
    /// through [`TestApp::store`] and hand it over.
    pub notifier: tollgate_server::notify::Notifier,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct Resp {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON; `Value::Null` when empty or not JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {}: {}", self.status, self.text))
    }

    /// Asserts an error status and code, and the error shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {}", self.text);
        assert_eq!(self.code(), code, "code of {}", self.text);
        let message = self.body["error"]["message"].as_str().expect("error.message is a string");
        assert!(!message.is_empty(), "error.message is not empty");
        let keys: Vec<&String> = self.body["error"].as_object().expect("error object").keys().collect();
        assert_eq!(keys, ["code", "message"], "error has exactly code and message");
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "status of {}", self.text);
        &self.body
    }
}

/// Starts an app on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, Options::default()).await
}

/// Starts an app with `options` on a fresh database.
pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
    let db = Db::fresh(backend).await;
    spawn_on(&db, options).await
}

/// Starts an app on `db` (which may already serve other apps).
pub async fn spawn_on(db: &Db, options: Options) -> TestApp {
    // One key, or several separated by commas (a rotation in progress).
    let key = MasterKeys::parse_list(&db.key_b64).expect("master keys");
    let store = tollgate_store::connect(&db.url, key).await.expect("connect the store");
    let admin_token = match &options.admin_token {
        AdminToken::Configure(t) => {
            let printed = tollgate_server::bootstrap_admin_token(&*store, Some(t)).await.expect("bootstrap");
            assert!(printed.is_none(), "a configured token is not printed");
            t.clone()
        }
        AdminToken::Existing(t) => {
            let printed = tollgate_server::bootstrap_admin_token(&*store, None).await.expect("bootstrap");
            assert!(printed.is_none(), "an existing token is kept and not printed again");
            t.clone()
        }
        AdminToken::Generate => {
            let printed = tollgate_server::bootstrap_admin_token(&*store, None).await.expect("bootstrap");
            let token = printed.expect("a fresh database gets a generated admin token");
            secrecy::ExposeSecret::expose_secret(&token).to_owned()
        }
    };
    let public_url = PublicUrl::parse(&options.public_url).expect("public URL");
    let notifier = match options.notifier {
        Some(config) => tollgate_server::notify::Notifier::new(store.clone(), config).expect("the notifier"),
        None => tollgate_server::notify::Notifier::disabled(),
    };
    let state = AppState::new(store.clone(), options.registry.clone(), public_url)
        .with_admin_throttle(options.admin_throttle)
        .with_notifier(notifier.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(tollgate_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    TestApp {
        base: format!("http://{addr}"),
        admin_token,
        client,
        db: db.clone(),
        store,
        notifier,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// What to authenticate with.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// No credentials.
    None,
    /// The app's admin token, as `Authorization: Bearer`.
    Admin,
    /// This token as `Authorization: Bearer`.
    Bearer(&'a str),
    /// This token as `x-api-key`.
    ApiKey(&'a str),
    /// Any header (name, value).
    Header(&'a str, &'a str),
}

impl TestApp {
    /// Sends a request; `body` is sent as raw bytes when given.
    pub async fn send_raw(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<Vec<u8>>) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::None => req,
            Auth::Admin => req.bearer_auth(&self.admin_token),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::ApiKey(t) => req.header("x-api-key", t),
            Auth::Header(name, value) => req.header(name, value),
        };
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("response body");
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        Resp { status, body, text, headers }
    }

    /// Sends JSON (or nothing) with `auth`.
    pub async fn send(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> Resp {
        self.send_raw(method, path, auth, body.map(|b| serde_json::to_vec(&b).expect("JSON"))).await
    }

    /// `GET path` with the admin token.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, Auth::Admin, None).await
    }

    /// `POST path` with a JSON `body` and the admin token.
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Auth::Admin, Some(body)).await
    }

    /// `PUT path` with a JSON `body` and the admin token.
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Auth::Admin, Some(body)).await
    }

    /// `PATCH path` with a JSON `body` and the admin token.
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Auth::Admin, Some(body)).await
    }

    /// `DELETE path` with the admin token.
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, Auth::Admin, None).await
    }

    /// Creates an org and returns its JSON.
    pub async fn create_org(&self, body: Value) -> Value {
        self.post("/admin/orgs", body).await.assert_status(201).clone()
    }

    /// Creates an org called `name` and returns its id.
    pub async fn org(&self, name: &str) -> String {
        self.create_org(json!({"name": name})).await["id"].as_str().expect("org id").to_owned()
    }

    /// Creates a workspace; `extra` is merged into `{org_id, name, runtime}`.
    pub async fn create_workspace(&self, org_id: &str, name: &str, runtime: &str, extra: Value) -> Value {
        let mut body = json!({"org_id": org_id, "name": name, "runtime": runtime});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/admin/workspaces", body).await.assert_status(201).clone()
    }

    /// Creates a workspace and returns its id.
    pub async fn workspace(&self, org_id: &str, name: &str, runtime: &str, extra: Value) -> String {
        self.create_workspace(org_id, name, runtime, extra).await["id"].as_str().expect("ws id").to_owned()
    }

    /// Sets a secret (`scope` is `orgs` or `workspaces`); asserts 204.
    pub async fn secret(&self, scope: &str, owner: &str, name: &str, value: &str) {
        let r = self.put(&format!("/admin/{scope}/{owner}/secrets/{name}"), json!({"value": value})).await;
        assert_eq!(r.status, 204, "PUT secret {name}: {}", r.text);
        assert!(r.text.is_empty(), "204 has no body");
    }

    /// `GET /admin/workspaces/{ws}/llm-billing-mode`, asserting 200.
    pub async fn read_mode(&self, ws: &str) -> Value {
        self.get(&format!("/admin/workspaces/{ws}/llm-billing-mode")).await.assert_status(200).clone()
    }

    /// `POST /admin/workspaces/{ws}/provision`.
    pub async fn provision(&self, ws: &str, model: Option<&str>) -> Resp {
        let body = match model {
            Some(m) => json!({"model": m}),
            None => json!({}),
        };
        self.post(&format!("/admin/workspaces/{ws}/provision"), body).await
    }

    /// `GET /workspaces/{ws}/secrets/values` with `token` as a bearer token.
    pub async fn pull(&self, ws: &str, token: &str) -> Resp {
        self.send(Method::GET, &format!("/workspaces/{ws}/secrets/values"), Auth::Bearer(token), None).await
    }

    /// Signals the server to shut down, without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
    }
}
