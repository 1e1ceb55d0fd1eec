//! The CLI's test harness: `tollgate serve` and `tollgate admin` as real processes, and a
//! [`Stack`] of the stand-in upstream (in process), `tollgate serve` pointed at it and an org
//! with credit.
//!
//! Only the CLI's own tests know where the binary is (`env!("CARGO_BIN_EXE_tollgate")`), so
//! every starter takes its path.
#![expect(clippy::unwrap_used, reason = "test support: a failed step is a failed test")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_policy::Registry;
use tollgate_upstream::Upstream;

/// A running `tollgate serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    bin: PathBuf,
    /// The address it listens on, as it printed it (`http://127.0.0.1:PORT`).
    pub url: String,
    /// What it printed up to and including its "listening on" line.
    pub stdout: String,
    /// The CA certificate (PEM file) [`Server::admin`] trusts, for a server on HTTPS.
    pub ca_cert: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh (removed if present) data directory for `tollgate serve`, unique to this process.
pub fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tollgate-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

impl Server {
    /// Starts `bin serve` with `args` and `env` on a free port over `data`, and waits for its
    /// "listening on" line. The Tollgate variables of the test's own environment are removed.
    ///
    /// # Panics
    /// When it exits early or does not start within 60 s.
    pub fn start(bin: &Path, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on(bin, data, "127.0.0.1:0", args, env)
    }

    /// As [`Server::start`], listening on `listen` (e.g. to restart on a known port).
    ///
    /// # Panics
    /// When it exits early or does not start within 60 s.
    pub fn start_on(bin: &Path, data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(bin, data, listen, args, env, Stdio::null())
    }

    /// As [`Server::start`], its standard error (the log) written to the file `log`.
    ///
    /// # Panics
    /// When it exits early or does not start within 60 s.
    pub fn start_logged(bin: &Path, data: &Path, args: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
        Self::launch(bin, data, "127.0.0.1:0", args, env, Stdio::from(std::fs::File::create(log).unwrap()))
    }

    fn launch(bin: &Path, data: &Path, listen: &str, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", listen, "--data-dir", data.to_str().unwrap()])
            .args(args)
            .env_remove("TOLLGATE_ADMIN_TOKEN")
            .env_remove("TOLLGATE_MASTER_KEY")
            .env_remove("TOLLGATE_DATABASE_URL")
            .env_remove("TOLLGATE_PUBLIC_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pipe = child.stdout.take().unwrap();
        // Owned by a `Server` from here on, so a failed assertion still kills and reaps it.
        let mut server =
            Server { child, bin: bin.to_owned(), url: String::new(), stdout: String::new(), ca_cert: None };
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

    /// The process id, to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit code.
    ///
    /// # Panics
    /// When it does not stop within 20 s.
    pub fn terminate(&mut self) -> Option<i32> {
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

    /// Runs `tollgate admin ARGS` against this server with `token`, `stdin` piped in (or
    /// closed): exit code, stdout and stderr.
    pub fn admin(&self, token: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut child = Command::new(&self.bin)
            .arg("admin")
            .args(args)
            .env("TOLLGATE_ADMIN_URL", &self.url)
            .env("TOLLGATE_ADMIN_TOKEN", token)
            .env("TOLLGATE_CA_CERT", self.ca_cert.as_deref().unwrap_or(Path::new("")))
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
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    }

    /// `tollgate admin ARGS --json` against this server with `token`; it must succeed: the JSON
    /// it printed.
    pub fn admin_json(&self, token: &str, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (code, stdout, stderr) = self.admin(token, &args, None);
        assert_eq!(code, 0, "tollgate admin {args:?}: {stderr}\n{stdout}");
        serde_json::from_str(&stdout).unwrap()
    }
}

/// The PEM files of an HTTPS [`Stack`]: the server's certificate and key, and the CA
/// certificate its clients trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key (`--tls-key`).
    pub key: PathBuf,
    /// The CA that signed it (`TOLLGATE_CA_CERT`).
    pub ca: PathBuf,
}

/// The master key that the `serve` processes of a multi-instance test share (test data only:
/// bytes 0 to 31).
pub const SHARED_MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The environment of each `serve` process of a multi-instance test: [`ADMIN_TOKEN`], the
/// [`SHARED_MASTER_KEY`], the Postgres database at `database_url`, and the stand-in upstream
/// at `upstream_url` for both protocols with [`ANTHROPIC_KEY`] and [`OPENAI_KEY`].
pub fn shared_serve_env<'a>(database_url: &'a str, upstream_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("TOLLGATE_MASTER_KEY", SHARED_MASTER_KEY),
        ("TOLLGATE_DATABASE_URL", database_url),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", upstream_url),
        ("TOLLGATE_UPSTREAM_OPENAI_URL", upstream_url),
        ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", ANTHROPIC_KEY),
        ("TOLLGATE_UPSTREAM_OPENAI_KEY", OPENAI_KEY),
    ]
}

/// The admin token of every [`Stack`].
pub const ADMIN_TOKEN: &str = "tg_admin_clients-e2e";
/// Distinctive fake platform keys: the upstream must see these and nothing else.
pub const ANTHROPIC_KEY: &str = "sk-ant-api03-platform-key-of-the-clients-test";
/// The OpenAI platform key of every [`Stack`].
pub const OPENAI_KEY: &str = "sk-proj-platform-key-of-the-clients-test";
/// The org's credit: enough for the worst-case reservation of Claude Code's 32000 max_tokens.
pub const CREDIT: i64 = 20_000_000;

/// The stand-in upstream in process (so that a test can read what it received), `tollgate
/// serve` as a process pointed at it with the platform keys above, and an org with
/// [`CREDIT`]. The server is stopped and its data directory removed on drop.
#[expect(missing_debug_implementations, reason = "a test fixture")]
pub struct Stack {
    server: Option<Server>,
    /// The stand-in upstream.
    pub upstream: Upstream,
    http: reqwest::Client,
    registry: Registry,
    /// The org's id.
    pub org: String,
    dir: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Drop for Stack {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Stack {
    /// Starts a stack named `name` (unique within the test process) with the binary `bin` and
    /// the embedded registry.
    pub fn start(bin: &Path, name: &str) -> Stack {
        Stack::start_with(bin, name, |_| None)
    }

    /// [`Stack::start`] with `tollgate serve --providers FILE` when `registry` returns a
    /// registry's YAML (given the stack's runtime, to start more stand-ins on).
    pub fn start_with(
        bin: &Path,
        name: &str,
        registry: impl FnOnce(&tokio::runtime::Runtime) -> Option<String>,
    ) -> Stack {
        Stack::start_inner(bin, name, registry, None, &[], None)
    }

    /// [`Stack::start`] serving HTTPS with the PEM files `tls` (certificate, key), trusting
    /// the CA certificate `tls.ca` in its own clients (`tollgate admin` and [`Stack::get`]).
    pub fn start_https(bin: &Path, name: &str, tls: &TlsFiles) -> Stack {
        Stack::start_inner(bin, name, |_| None, Some(tls), &[], None)
    }

    /// [`Stack::start_with`], the server also given `env` (e.g. `OTEL_*`) and, with `log`, its
    /// standard error written to that file.
    pub fn start_observed(
        bin: &Path,
        name: &str,
        registry: impl FnOnce(&tokio::runtime::Runtime) -> Option<String>,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Stack {
        Stack::start_inner(bin, name, registry, None, env, log)
    }

    fn start_inner(
        bin: &Path,
        name: &str,
        registry: impl FnOnce(&tokio::runtime::Runtime) -> Option<String>,
        tls: Option<&TlsFiles>,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Stack {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let upstream = rt.block_on(Upstream::start()).unwrap();
        let dir = data_dir(&format!("clients-{name}"));
        let url = upstream.url();
        let yaml = registry(&rt);
        let providers = dir.with_extension("providers.yaml");
        let mut args = Vec::new();
        if let Some(yaml) = &yaml {
            std::fs::write(&providers, yaml).unwrap();
            args = vec!["--providers", providers.to_str().unwrap()];
        }
        if let Some(tls) = tls {
            args.extend(["--tls-cert", tls.cert.to_str().unwrap(), "--tls-key", tls.key.to_str().unwrap()]);
        }
        let mut vars = vec![
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_URL", url.as_str()),
            ("TOLLGATE_UPSTREAM_OPENAI_URL", url.as_str()),
            ("TOLLGATE_UPSTREAM_ANTHROPIC_KEY", ANTHROPIC_KEY),
            ("TOLLGATE_UPSTREAM_OPENAI_KEY", OPENAI_KEY),
        ];
        vars.extend_from_slice(env);
        let mut server = match log {
            Some(log) => Server::start_logged(bin, &dir, &args, &vars, log),
            None => Server::start(bin, &dir, &args, &vars),
        };
        let registry = yaml.map_or_else(|| Registry::embedded().unwrap(), |y| Registry::parse("test", &y).unwrap());
        let mut http = reqwest::Client::builder();
        if let Some(tls) = tls {
            server.ca_cert = Some(tls.ca.clone());
            let pem = std::fs::read(&tls.ca).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let mut stack = Stack {
            server: Some(server),
            upstream,
            http: http.build().unwrap(),
            registry,
            org: String::new(),
            dir,
            rt,
        };
        let org = stack.admin(&["org", "create", &format!("clients-{name}"), "--credit-micros", &CREDIT.to_string()]);
        stack.org = org["id"].as_str().unwrap().to_owned();
        stack
    }

    /// The registry the server runs with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.server().url
    }

    /// The server's data directory (its SQLite database and master key).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `fut` on the stack's runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Stops the server with SIGTERM: its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.server.as_mut().unwrap().terminate()
    }

    /// `tollgate admin ARGS --json` against this server; it must succeed: the JSON it printed.
    pub fn admin(&self, args: &[&str]) -> Value {
        self.server().admin_json(ADMIN_TOKEN, args)
    }

    /// `tollgate admin ARGS` (no `--json`) against this server with `stdin` piped in (e.g. a
    /// secret value) or closed; it must succeed: what it printed.
    pub fn admin_text(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, stdout, stderr) = self.server().admin(ADMIN_TOKEN, args, stdin);
        assert_eq!(code, 0, "tollgate admin {args:?}: {stderr}\n{stdout}");
        stdout
    }

    /// A workspace on `runtime` with `model` and workspace `secrets`, provisioned: the
    /// provision response (`resolution`, `env`, `token`).
    pub fn provisioned(&self, name: &str, runtime: &str, model: &str, secrets: &[(&str, &str)]) -> Value {
        let ws = self.admin(&[
            "workspace",
            "create",
            "--org",
            &self.org,
            "--name",
            name,
            "--runtime",
            runtime,
            "--model",
            model,
        ]);
        let id = ws["id"].as_str().unwrap();
        for (secret, value) in secrets {
            self.rt.block_on(async {
                let r = self
                    .http
                    .put(format!("{}/admin/workspaces/{id}/secrets/{secret}", self.url()))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({ "value": value }))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "PUT secret {secret}: {}", r.status());
            });
        }
        self.admin(&["provision", id])
    }

    /// A workspace on `runtime` with `model`, provisioned platform-managed: its token and env
    /// plan.
    pub fn workspace(&self, name: &str, runtime: &str, model: &str) -> (String, BTreeMap<String, String>) {
        let provisioned = self.provisioned(name, runtime, model, &[]);
        assert_eq!(provisioned["resolution"]["resolved_mode"], "platform_managed", "{provisioned}");
        let token = provisioned["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("tg_ws_"), "{token}");
        let env = serde_json::from_value(provisioned["env"].clone()).unwrap();
        (token, env)
    }

    /// `GET path` with the admin token; it must succeed with JSON.
    pub fn get(&self, path: &str) -> Value {
        self.rt.block_on(async {
            let r = self.http.get(format!("{}{path}", self.url())).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            assert!(r.status().is_success(), "GET {path}: {}", r.status());
            r.json::<Value>().await.unwrap()
        })
    }

    /// `GET path` without credentials (e.g. `/metrics`); it must succeed.
    pub fn get_text(&self, path: &str) -> String {
        self.rt.block_on(async {
            let r = self.http.get(format!("{}{path}", self.url())).send().await.unwrap();
            assert!(r.status().is_success(), "GET {path}: {}", r.status());
            r.text().await.unwrap()
        })
    }

    /// The org's credit now, in micro-USD.
    pub fn credit(&self) -> i64 {
        self.get(&format!("/admin/orgs/{}", self.org))["credit_micros"].as_i64().unwrap()
    }
}
