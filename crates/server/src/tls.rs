//! HTTPS (DESIGN.md section 18): rustls over the same router, with a certificate pair that
//! can be replaced while serving.
//!
//! [`CertReloader`] is the server's certificate resolver: every handshake takes the pair in
//! force at that moment, so a reload needs no restart and no new listener. A reload that fails
//! (unreadable file, bad PEM, a key that does not match the certificate) keeps the old pair.
//! Handshakes run in their own tasks, so a slow or silent client never holds up the others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::server::TlsStream;

/// The longest a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate pair could not be loaded. Names the file and the reason; never contains
/// key material.
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The modification times and lengths of the two files, to notice a replacement.
type Stamp = Option<[(SystemTime, u64); 2]>;

/// A certificate chain and private key read from two PEM files, reloadable at any time.
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

impl std::fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertReloader").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl CertReloader {
    /// Reads the certificate chain at `cert` and the private key at `key` (PEM; PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// # Errors
    /// A [`TlsError`] naming the file when either cannot be read or parsed, or when the key
    /// does not belong to the chain's first certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = stamp(cert, key);
        let pair = read_pair(cert, key, &provider)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Reads both files again and, when they make a valid pair, serves it from the next
    /// handshake on.
    ///
    /// # Errors
    /// As [`CertReloader::load`]; the pair in force is then kept.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = stamp(&self.cert, &self.key);
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
        Ok(())
    }

    /// Reloads when either file's modification time or length changed since the last load
    /// or attempt: `Ok(true)` when a new pair is in force, `Ok(false)` when nothing changed.
    /// A changed but bad pair is tried once (the next change is tried again).
    ///
    /// # Errors
    /// As [`CertReloader::reload`].
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.cert, &self.key);
        if now == *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// Polls the files every `every` and reloads them when they change, logging the outcome.
    /// Runs until the task is dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reload_logged(self.reload_if_changed(), "the files changed");
        }
    }

    /// Logs the outcome of a reload triggered by `why`.
    pub fn reload_logged(&self, outcome: Result<bool, TlsError>, why: &str) {
        match outcome {
            Ok(true) => tracing::info!(cert = %self.cert.display(), "{why}: reloaded the TLS certificate"),
            Ok(false) => {}
            Err(e) => tracing::warn!("{why}: kept the TLS certificate in force: {e}"),
        }
    }

    /// A rustls server configuration (HTTP/1.1, the ring provider's safe defaults) that
    /// takes its certificate from this reloader at each handshake.
    ///
    /// # Errors
    /// When the provider supports none of the default protocol versions (not with ring).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(cert)?, one(key)?])
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsError(format!("--tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!("--tls-cert {}: no PEM certificate in the file", cert.display())));
    }
    // The error of a PEM parse never quotes the key's bytes.
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("--tls-key {}: no PEM private key could be read: {e}", key.display())))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        TlsError(format!("--tls-cert {} and --tls-key {} do not make a pair: {e}", cert.display(), key.display()))
    })
}

/// A listener that yields connections whose TLS handshake has completed. Handshakes run in
/// their own tasks; failed ones are logged at debug level and dropped.
pub(crate) struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stop accepting when the server stops (graceful shutdown drops the listener).
        self.acceptor.abort();
    }
}

impl TlsListener {
    pub(crate) fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // As axum's own listener: out of descriptors and the like pass.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // As on plain HTTP: relayed SSE frames are small (see `serve`).
                let _ = tcp.set_nodelay(true);
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local, acceptor })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The acceptor task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for 127.0.0.1 and its key, as PEM.
    fn pair() -> (String, String) {
        let Ok(rcgen::CertifiedKey { cert, signing_key }) =
            rcgen::generate_simple_self_signed(["127.0.0.1".to_owned()])
        else {
            panic!("rcgen generates a certificate");
        };
        (cert.pem(), signing_key.serialize_pem())
    }

    fn served(r: &CertReloader) -> Vec<u8> {
        let current = r.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        current.cert[0].as_ref().to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        match CertificateDer::from_pem_slice(pem.as_bytes()) {
            Ok(c) => c.as_ref().to_vec(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_bad_new_pair_keeps_the_old_one_and_a_good_one_replaces_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (c1, k1) = pair();
        std::fs::write(&cert, &c1)?;
        std::fs::write(&key, &k1)?;
        let r = CertReloader::load(&cert, &key)?;
        assert_eq!(served(&r), der(&c1));
        assert!(!r.reload_if_changed()?, "nothing changed");

        // A new certificate with the old key: not a pair. The old one stays in force.
        let (c2, k2) = pair();
        std::fs::write(&cert, &c2)?;
        let e = r.reload().err().ok_or("a mismatched pair must be refused")?;
        assert!(e.to_string().contains("do not make a pair"), "{e}");
        assert!(!e.to_string().contains(k1.trim()), "no key material in the error");
        assert_eq!(served(&r), der(&c1));
        // Garbage instead of a key: refused too, naming the flag and the file.
        std::fs::write(&key, "not a key")?;
        let e = r.reload().err().ok_or("garbage must be refused")?;
        assert!(e.to_string().contains("--tls-key"), "{e}");
        assert_eq!(served(&r), der(&c1));

        // The matching key arrives: the change is noticed and the new pair served.
        std::fs::write(&key, format!("{k2}\n"))?;
        assert!(r.reload_if_changed()?, "the key file changed");
        assert_eq!(served(&r), der(&c2));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn missing_files_are_named() {
        let missing = Path::new("/nonexistent/tollgate/cert.pem");
        let Err(e) = CertReloader::load(missing, missing) else { panic!("a missing file must fail") };
        assert!(e.to_string().contains("/nonexistent/tollgate/cert.pem"), "{e}");
    }
}
