//! Test support shared by the store, server, proxy and CLI test suites.
//!
//! [`server_app`] starts the API server over a fresh database per test; [`proxy_app`] starts
//! the metering proxy in front of the stand-in upstream; [`cli_app`] runs the `tollgate`
//! binary (`serve`, `admin`) as processes; [`webhook`] is a webhook receiver that records what
//! it gets and answers as told.
//!
//! [`postgres()`] starts one throwaway Postgres server per test process (initdb + pg_ctl, as
//! the `postgres` user when run as root) and [`TestPostgres::fresh_database`] gives each test
//! its own database. It never skips: if Postgres cannot start, the test fails and says why.

pub mod cli_app;
pub mod proxy_app;
pub mod server_app;
pub mod webhook;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection;

/// A Postgres server started for this test process; stopped when the process exits.
#[derive(Debug)]
pub struct TestPostgres {
    dir: PathBuf,
    port: u16,
}

static SERVER: OnceLock<Result<TestPostgres, String>> = OnceLock::new();

/// The process's throwaway Postgres server, started on first use.
///
/// # Panics
/// When Postgres cannot be started: the message says what is missing. Tests that need
/// Postgres fail rather than skip.
#[expect(clippy::panic, reason = "a test fixture that cannot start must fail the test loudly")]
pub fn postgres() -> &'static TestPostgres {
    match SERVER.get_or_init(TestPostgres::start) {
        Ok(pg) => pg,
        Err(e) => panic!("cannot start the test Postgres server: {e}"),
    }
}

fn find_bin(name: &str) -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join(name).exists() {
            return Some(dir.join(name));
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    if let Some(p) = versions.pop() {
        return Some(p);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `bin args` as the `postgres` user when we are root (initdb refuses root).
fn run_as_owner(bin: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().map_err(|e| format!("{}: {e}", bin.display()))
}

impl TestPostgres {
    fn start() -> Result<Self, String> {
        let initdb = find_bin("initdb").ok_or("initdb not found (install the postgresql package)")?;
        let pg_ctl = find_bin("pg_ctl").ok_or("pg_ctl not found (install the postgresql package)")?;
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let dir =
            std::env::temp_dir().join(format!("tollgate-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("cannot chown the data dir to the postgres user (does it exist?)".to_owned());
            }
        }
        let data = dir.join("data");
        let data_s = data.to_str().ok_or("non-UTF-8 temp dir")?;
        let out = run_as_owner(&initdb, &["-D", data_s, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let dir_s = dir.to_str().ok_or("non-UTF-8 temp dir")?;
        let opts = format!("-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200");
        let log = dir.join("log");
        let log_s = log.to_str().ok_or("non-UTF-8 temp dir")?;
        let out = run_as_owner(&pg_ctl, &["-D", data_s, "-o", &opts, "-l", log_s, "-w", "start"])?;
        if !out.status.success() {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {}\n{log_text}", String::from_utf8_lossy(&out.stderr)));
        }
        // A reaper stops the server and removes its files once this test process exits.
        let me = std::process::id();
        let stop = if is_root() {
            format!("runuser -u postgres -- {} -D {data_s} -m immediate stop", pg_ctl.display())
        } else {
            format!("{} -D {data_s} -m immediate stop", pg_ctl.display())
        };
        let script =
            format!("while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir_s}");
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the reaper: {e}"))?;
        Ok(Self { dir, port })
    }

    /// A Postgres server of the caller's own, not the process's shared one: for a test that
    /// stops and restarts it ([`TestPostgres::stop`], [`TestPostgres::restart`]) without
    /// disturbing the other tests. Stopped and removed when the test process exits.
    pub fn private() -> Result<Self, String> {
        Self::start()
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let pg_ctl = find_bin("pg_ctl").ok_or("pg_ctl not found")?;
        let data = self.dir.join("data");
        let data_s = data.to_str().ok_or("non-UTF-8 temp dir")?;
        let mut all = vec!["-D", data_s];
        all.extend_from_slice(args);
        let out = run_as_owner(&pg_ctl, &all)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as in a crash or a
    /// network partition) and waits until it is down.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"])
    }

    /// Starts the server again on the same port and data, after [`TestPostgres::stop`].
    pub fn restart(&self) -> Result<(), String> {
        let dir_s = self.dir.to_str().ok_or("non-UTF-8 temp dir")?;
        let opts =
            format!("-p {} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", self.port);
        let log = self.dir.join("log");
        let log_s = log.to_str().ok_or("non-UTF-8 temp dir")?;
        self.pg_ctl(&["-o", &opts, "-l", log_s, "-w", "start"])
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn fresh_database(&self) -> Result<String, sqlx::Error> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        conn.close().await?;
        Ok(self.url(&name))
    }
}
