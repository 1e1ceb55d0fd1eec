//! `tollgate serve --tls-cert --tls-key` as a real process, with certificates made here
//! (rcgen): `tollgate admin` and `tollgate exec --pull` over HTTPS, a server they do not
//! trust refused with a message that says what to set, the certificate replaced without a
//! restart (when its files change, and on SIGHUP), and the real Anthropic and OpenAI Python
//! SDKs through the HTTPS proxy.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tollgate_testkit::cli_app::TlsFiles;
use tollgate_upstream::REPLY;

use crate::clients::{Books, Stack, run_python_with};
use crate::serve::{Server, data_dir, start};

/// The longest a reload may take to show (the reload interval of these tests is 200 ms).
const RELOAD_DEADLINE: Duration = Duration::from_secs(30);

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("Tollgate test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { issuer: Issuer::new(params, key), pem: cert.pem() }
    }

    /// A server certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
    fn leaf(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory of PEM files for one test, removed on drop.
struct Pems {
    dir: PathBuf,
}

impl Drop for Pems {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pems {
    fn new(name: &str) -> Pems {
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Pems { dir }
    }

    /// Writes `text` to the file `name` atomically (a rename, as certificate tools do).
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    /// The CA's certificate as a file.
    fn ca(&self, ca: &Ca, name: &str) -> PathBuf {
        self.write(name, &ca.pem)
    }

    /// Installs a new leaf of `ca` as `cert.pem` and `key.pem`.
    fn install(&self, ca: &Ca) -> (PathBuf, PathBuf) {
        let (cert, key) = ca.leaf();
        // The key first: a poll between the two renames sees a mismatched pair and keeps the old one.
        let key = self.write("key.pem", &key);
        (self.write("cert.pem", &cert), key)
    }
}

/// Whether `GET url/healthz` succeeds on a new connection from a client that trusts only `ca`.
fn trusted_by(url: &str, ca: &Ca) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
            .no_proxy()
            .build()
            .unwrap();
        client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success())
    })
}

/// Waits until a client trusting only `ca` is served, probing every 100 ms; every probe on
/// the way must be served by `ca` or by `old` (no failed handshake during a reload).
fn wait_for(url: &str, ca: &Ca, old: &Ca) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while !trusted_by(url, ca) {
        assert!(trusted_by(url, old) || trusted_by(url, ca), "neither certificate was served during the reload");
        assert!(Instant::now() < deadline, "the new certificate was not served within {RELOAD_DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `tollgate ARGS` with only `PATH` and `vars` in its environment.
fn tollgate_with(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::bin());
    cmd.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn https_stack(name: &str, pems: &Pems, ca: &Ca) -> Stack {
    let (cert, key) = pems.install(ca);
    let tls = TlsFiles { cert, key, ca: pems.ca(ca, "ca.pem") };
    Stack::start_https(crate::bin(), name, &tls)
}

/// Over HTTPS, `tollgate admin` and `tollgate exec --pull` work with the server's CA in
/// `TOLLGATE_CA_CERT`, and refuse the server at once, saying what to set, without it or with
/// another CA.
#[test]
fn admin_and_pull_verify_the_server() {
    let pems = Pems::new("verify");
    let ca = Ca::new("verify");
    // The stack's own `tollgate admin` calls (org create, workspace create, provision) trust `ca`.
    let stack = https_stack("tls-verify", &pems, &ca);
    assert!(stack.url().starts_with("https://127.0.0.1:"), "{}", stack.url());
    let (token, env) = stack.workspace("tls", "claude-code", "platform/sonnet");
    // The plan points the workspace at the HTTPS proxy.
    assert_eq!(env["ANTHROPIC_BASE_URL"], format!("{}/anthropic", stack.url()));
    let ws = env["TOLLGATE_WORKSPACE_ID"].clone();
    let ca_file = pems.dir.join("ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let pull = [("TOLLGATE_URL", stack.url()), ("TOLLGATE_WORKSPACE_ID", &ws), ("TOLLGATE_WORKSPACE_TOKEN", &token)];
    let exec = ["exec", "--pull", "--pull-timeout", "60s", "--", "env"];

    let mut vars = pull.to_vec();
    vars.push(("TOLLGATE_CA_CERT", ca_file));
    let out = tollgate_with(&vars, &exec);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("ANTHROPIC_AUTH_TOKEN={token}")),
        "the pulled plan reached the command"
    );

    let other = pems.ca(&Ca::new("other"), "other.pem");
    for ca_var in [None, Some(other.to_str().unwrap())] {
        let mut vars = pull.to_vec();
        vars.extend(ca_var.map(|v| ("TOLLGATE_CA_CERT", v)));
        // Not retried for the 60 s bound: a certificate that does not verify will not on a retry.
        let started = Instant::now();
        let out = tollgate_with(&vars, &exec);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("TLS certificate is not trusted") && err.contains("TOLLGATE_CA_CERT"), "{err}");
        assert!(!err.contains("retrying"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(60), "gave up at once, not at the bound");
        assert!(text(&out.stdout).is_empty());

        let mut vars = vec![("TOLLGATE_ADMIN_URL", stack.url()), ("TOLLGATE_ADMIN_TOKEN", crate::clients::ADMIN_TOKEN)];
        vars.extend(ca_var.map(|v| ("TOLLGATE_CA_CERT", v)));
        let out = tollgate_with(&vars, &["admin", "org", "list"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("TLS certificate is not trusted") && err.contains("TOLLGATE_CA_CERT"), "{err}");
    }

    // A CA file that does not exist is a configuration error naming the variable.
    let vars = [
        ("TOLLGATE_ADMIN_URL", stack.url()),
        ("TOLLGATE_ADMIN_TOKEN", "x"),
        ("TOLLGATE_CA_CERT", "/nonexistent/ca.pem"),
    ];
    let out = tollgate_with(&vars, &["admin", "org", "list"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("TOLLGATE_CA_CERT /nonexistent/ca.pem"), "{}", text(&out.stderr));
}

/// Arguments, environment, and what the error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// `--tls-cert` without `--tls-key` (or the reverse), a key that does not match the
/// certificate, or a missing file: `serve` refuses to start (exit 78) and says why.
#[test]
fn serve_refuses_an_incomplete_or_bad_pair() {
    let pems = Pems::new("bad-pair");
    let (cert, key) = pems.install(&Ca::new("bad"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let other_key = pems.write("other-key.pem", &Ca::new("other").leaf().1);
    let dir = data_dir("tls-bad-pair");
    let data = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()];
    let cases: [Case<'_>; 4] = [
        (&["--tls-cert", cert], &[], "--tls-key (TOLLGATE_TLS_KEY) is not"),
        (&[], &[("TOLLGATE_TLS_KEY", key)], "--tls-cert (TOLLGATE_TLS_CERT) is not"),
        (&["--tls-cert", cert, "--tls-key", other_key.to_str().unwrap()], &[], "do not make a pair"),
        (&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key], &[], "/nonexistent/cert.pem"),
    ];
    for (args, env, why) in cases {
        let all: Vec<&str> = data.iter().chain(args).copied().collect();
        let out = tollgate_with(env, &all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server started on `pems`' current pair with `--tls-reload-interval interval`.
fn tls_server(name: &str, pems: &Pems, interval: &str) -> (Server, PathBuf) {
    let dir = data_dir(name);
    let (cert, key) = (pems.dir.join("cert.pem"), pems.dir.join("key.pem"));
    let args =
        ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap(), "--tls-reload-interval", interval];
    (start(&dir, &args, &[("TOLLGATE_ADMIN_TOKEN", "tg_admin_tls-reload")]), dir)
}

/// Replacing the files is enough: the next handshakes show the new certificate, without a
/// restart and with no failed handshake on the way.
#[test]
fn a_replaced_certificate_is_served_without_a_restart() {
    let pems = Pems::new("reload-files");
    let (first, second) = (Ca::new("first"), Ca::new("second"));
    pems.install(&first);
    let (server, dir) = tls_server("tls-reload-files", &pems, "200ms");
    assert!(server.url.starts_with("https://"), "{}", server.url);
    assert!(trusted_by(&server.url, &first));
    assert!(!trusted_by(&server.url, &second), "a client that trusts another CA refuses the server");

    pems.install(&second);
    wait_for(&server.url, &second, &first);
    assert!(!trusted_by(&server.url, &first), "the old certificate is no longer served");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With polling off, a replaced pair is served only after SIGHUP; a bad pair on SIGHUP keeps
/// the one in force.
#[test]
fn sighup_reloads_the_certificate_and_a_bad_pair_keeps_the_old_one() {
    let pems = Pems::new("reload-hup");
    let (first, second) = (Ca::new("first"), Ca::new("second"));
    pems.install(&first);
    let (server, dir) = tls_server("tls-reload-hup", &pems, "0s");
    let hup = || {
        let status = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
        assert!(status.success());
    };

    pems.install(&second);
    // Polling is off: until the signal, the files' change is not seen.
    assert!(trusted_by(&server.url, &first), "reloaded without SIGHUP");
    hup();
    wait_for(&server.url, &second, &first);
    assert!(!trusted_by(&server.url, &first));

    // A key that does not match the certificate, then SIGHUP: the pair in force stays (every
    // probe for a second is served with it), and a good pair on the next SIGHUP is served.
    let third = Ca::new("third");
    pems.write("key.pem", &third.leaf().1);
    hup();
    for _ in 0..10 {
        assert!(trusted_by(&server.url, &second), "a bad pair replaced the good one");
        std::thread::sleep(Duration::from_millis(100));
    }
    pems.install(&third);
    hup();
    wait_for(&server.url, &third, &second);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real Anthropic and OpenAI Python SDKs through the HTTPS proxy, trusting the server's CA
/// through `SSL_CERT_FILE`; the books balance as over HTTP.
#[test]
fn python_sdks_through_the_https_proxy() {
    let pems = Pems::new("sdks");
    let ca = Ca::new("sdks");
    let mut stack = https_stack("tls-sdks", &pems, &ca);
    let ca_file = pems.dir.join("ca.pem");
    let ssl = [("SSL_CERT_FILE", ca_file.to_str().unwrap())];

    let (anthropic_token, _) = stack.workspace("tls-anthropic", "claude-code", "platform/sonnet");
    let base = format!("{}/anthropic", stack.url());
    let out = run_python_with("anthropic_sdk.py", &base, &anthropic_token, "platform/sonnet", &ssl);
    assert_eq!(out["create"]["text"], REPLY, "{out}");
    assert_eq!(out["create"]["stop_reason"], "end_turn", "{out}");

    let (openai_token, _) = stack.workspace("tls-openai", "codex", "platform/gpt");
    let base = format!("{}/openai/v1", stack.url());
    let out = run_python_with("openai_sdk.py", &base, &openai_token, "platform/gpt", &ssl);
    assert_eq!(out["stream_plain"]["text"], REPLY, "{out}");

    // Without the CA the SDK refuses the server (it does not fall back to plain HTTP).
    let home = crate::clients::temp_home("tls-sdk-untrusted");
    let mut cmd = crate::clients::clean_command(
        &crate::clients::python(),
        &home,
        &[("CLIENT_BASE_URL", &base), ("CLIENT_API_KEY", &openai_token), ("CLIENT_MODEL", "platform/gpt")],
    );
    cmd.arg(crate::clients::script("openai_sdk.py"));
    let out = crate::clients::run(cmd, "openai_sdk.py without the CA");
    let _ = std::fs::remove_dir_all(&home);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");

    let total = stack.check_upstream_and_ledger(&[&anthropic_token, &openai_token]);
    assert!(total > 0);
    stack.terminate_and_check_the_books(total);
}
