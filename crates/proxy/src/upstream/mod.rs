//! The proxy's HTTP client to the platform upstreams: HTTP/1.1 over TCP or rustls, written
//! for this one job and driven inside the request's own task.
//!
//! Why not a general client (hyper's, or `reqwest` over it, which the rest of the workspace
//! uses for its own calls): a relayed request is one `POST` whose answer is read once, in
//! order, by the task that sent it. A general client runs each connection in a task of its
//! own and hands the request and every body chunk across a channel, so each request woke two
//! tasks, often on two threads (about 2.5 context switches per request under `perf stat`), and
//! each open stream held that task, the channel's first block, a header write buffer and an
//! 8 KiB read buffer on top of the proxy's own (issue 14: 5,000 held streams). Here the
//! request task writes the request, parses the head (`httparse`, as hyper does) and decodes the
//! body from one read buffer per connection that starts at 2 KiB and grows only while reads
//! fill it; the head may grow it up to [`wire::MAX_HEAD_BYTES`], so a provider's long head of
//! rate-limit and CDN headers is never refused for its length. The framing rules are in
//! [`wire`], without IO.
//!
//! Connections are kept per upstream (at most [`POOL_MAX_IDLE`] idle, for
//! [`POOL_IDLE_TIMEOUT`]); one is reused only after its body was read to the end, and is
//! checked for a close by the upstream (a zero-length peek) when taken. A request whose write
//! fails on a reused connection is sent once more on a new one: the upstream closed it before
//! reading, so it cannot have acted on it. Nothing is retried once written.

mod wire;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use axum::http::Uri;
use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead as _, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub(crate) use wire::RequestHead;
use wire::{Decoded, Framing, WireError};

/// How long connecting to an upstream may take, TLS handshake included.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one of its addresses may take to accept the connection before the next is tried.
const ADDRESS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the proxy waits for the upstream's response head, and then for each read of its
/// body: a long stream lives as long as bytes keep coming.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream.
const POOL_MAX_IDLE: usize = 64;
/// A connection's read buffer: what it reserves for a read when it has less room than
/// [`MIN_READ`], and the most a read of a growing body reserves.
const FIRST_READ: usize = 2 * 1024;
const MAX_READ: usize = 64 * 1024;
const MIN_READ: usize = 1024;
/// An idle connection keeps a read buffer up to this size; a larger one is let go.
const MAX_IDLE_BUFFER: usize = 16 * 1024;

/// The proxy's HTTP client could not be built: its TLS configuration was refused.
/// The proxy does not start without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the proxy's HTTP client: {0}")]
pub struct ClientBuildError(#[source] rustls::Error);

/// Why a request to an upstream failed. Never holds a header value or a body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection: refused, unresolvable, timed out, or the TLS handshake failed.
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] io::Error),
    /// The request could not be written.
    #[error("cannot send the request to the upstream: {0}")]
    Write(#[source] io::Error),
    /// Reading the answer failed.
    #[error("reading the upstream's answer failed: {0}")]
    Read(#[source] io::Error),
    /// The upstream closed the connection before its answer was complete.
    #[error("the upstream closed the connection before its answer was complete")]
    Closed,
    /// The answer is not valid HTTP/1.1.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// The upstream client: the TLS configuration every `https://` upstream shares (the Mozilla
/// roots from `webpki-roots` and the system's, as the workspace's `reqwest` clients use;
/// ALPN `http/1.1`). Each [`Endpoint`] keeps its own connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    tls: TlsConnector,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient").finish_non_exhaustive()
    }
}

/// The client.
///
/// # Errors
/// [`ClientBuildError`] when rustls refuses the configuration (its crypto provider supports
/// no safe protocol version).
pub(crate) fn client() -> Result<UpstreamClient, ClientBuildError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // The system's store may be absent or partly unreadable: what loads is added, the rest is
    // left out (as reqwest does), never a reason not to start.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    client_trusting(roots)
}

/// The client, trusting exactly `roots`.
///
/// # Errors
/// As [`client`].
fn client_trusting(roots: rustls::RootCertStore) -> Result<UpstreamClient, ClientBuildError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(ClientBuildError)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(UpstreamClient { tls: TlsConnector::from(Arc::new(tls)) })
}

/// Where an upstream is, parsed once from its base URL at start, and its idle connections.
pub(crate) struct Endpoint {
    /// The host to connect to (an IPv6 address without its brackets).
    host: String,
    port: u16,
    /// `Some` for `https://`: the name its certificate must carry.
    tls: Option<ServerName<'static>>,
    /// The `host` header: the URL's authority.
    authority: String,
    /// The URL's path, without a trailing slash; request paths are appended to it.
    base_path: String,
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field("tls", &self.tls.is_some())
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// An upstream URL the client cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EndpointError {
    /// Not a URL, or one with user info, a query or a fragment.
    #[error("not an absolute http(s) URL without user info, query or fragment")]
    Invalid,
    /// A scheme other than `http` and `https`.
    #[error("the scheme must be http or https")]
    Scheme,
}

impl Endpoint {
    /// Parses an upstream's base URL (`http[s]://host[:port][/path]`).
    ///
    /// # Errors
    /// [`EndpointError`] for anything else.
    pub(crate) fn parse(url: &str) -> Result<Self, EndpointError> {
        let uri = Uri::try_from(url).map_err(|_| EndpointError::Invalid)?;
        let authority = uri.authority().ok_or(EndpointError::Invalid)?;
        if authority.as_str().contains('@') || uri.query().is_some() || url.contains('#') {
            return Err(EndpointError::Invalid);
        }
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(EndpointError::Scheme),
        };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(EndpointError::Invalid);
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            true => Some(ServerName::try_from(host.clone()).map_err(|_| EndpointError::Invalid)?),
            false => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            authority: authority.as_str().to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The request head of a `POST` to `path` (and `query`) under this upstream's base path.
    pub(crate) fn post(&self, path: &str, query: Option<&str>, body_len: usize) -> RequestHead {
        if self.base_path.is_empty() {
            RequestHead::post(&self.authority, path, query, body_len)
        } else {
            RequestHead::post(&self.authority, &format!("{}{path}", self.base_path), query, body_len)
        }
    }

    /// A pooled connection still open, the freshest first; expired ones are dropped.
    fn take_idle(&self) -> Option<Conn> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                let Some(mut i) = idle.pop() else { break None };
                if i.since.elapsed() < POOL_IDLE_TIMEOUT && i.conn.looks_open() {
                    break Some(i.conn);
                }
                stale.push(i);
            }
        };
        // Closed outside the lock.
        drop(stale);
        found
    }

    /// Keeps `conn` for another request, unless the pool is full.
    fn put_idle(&self, mut conn: Conn) {
        if conn.buf.capacity() > MAX_IDLE_BUFFER {
            conn.buf = BytesMut::new();
        }
        let now = Instant::now();
        let expired = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Oldest first: the expired ones are a prefix.
            let n = idle.iter().take_while(|i| now.duration_since(i.since) >= POOL_IDLE_TIMEOUT).count();
            let expired: Vec<Idle> = idle.drain(..n).collect();
            if idle.len() < POOL_MAX_IDLE {
                idle.push(Idle { conn, since: now });
                expired
            } else {
                drop(idle);
                drop(conn);
                expired
            }
        };
        drop(expired);
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl UpstreamClient {
    /// Sends `head` and `body` to `endpoint` and reads the response head. The body is read
    /// by the caller through the response's [`UpstreamBody`], in the caller's task; read to
    /// its end, it gives the connection back to the endpoint's pool.
    ///
    /// # Errors
    /// [`UpstreamError`] when no connection could be made, the request could not be written,
    /// or no valid response head came back. Timeouts other than the connect timeout are the
    /// caller's.
    pub(crate) async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        head: &[u8],
        body: &[u8],
    ) -> Result<axum::http::Response<UpstreamBody>, UpstreamError> {
        let mut conn = match endpoint.take_idle() {
            Some(mut conn) => match conn.write(head, body).await {
                Ok(()) => conn,
                // The upstream closed it before reading: the request was never seen.
                Err(_) => self.sent_on_new(endpoint, head, body).await?,
            },
            None => self.sent_on_new(endpoint, head, body).await?,
        };
        let head = loop {
            if !conn.buf.is_empty()
                && let Some(head) = wire::parse_response_head(&mut conn.buf)?
            {
                break head;
            }
            if std::future::poll_fn(|cx| conn.poll_fill(cx)).await? == 0 {
                return Err(UpstreamError::Closed);
            }
        };
        let mut response = axum::http::Response::new(UpstreamBody {
            conn: Some(conn),
            framing: head.framing,
            keep_alive: head.keep_alive,
            endpoint: Arc::clone(endpoint),
        });
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        Ok(response)
    }

    async fn sent_on_new(&self, endpoint: &Endpoint, head: &[u8], body: &[u8]) -> Result<Conn, UpstreamError> {
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(endpoint))
            .await
            .map_err(|_| UpstreamError::Connect(io::ErrorKind::TimedOut.into()))?
            .map_err(UpstreamError::Connect)?;
        conn.write(head, body).await.map_err(UpstreamError::Write)?;
        Ok(conn)
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Conn> {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port)).await?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the upstream's host has no address");
        let mut connected = None;
        for address in interleaved(addresses) {
            // An address that swallows the SYN (a broken IPv6 route) must leave time for the next.
            match tokio::time::timeout(ADDRESS_CONNECT_TIMEOUT, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    connected = Some(tcp);
                    break;
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = io::ErrorKind::TimedOut.into(),
            }
        }
        let tcp = connected.ok_or(last)?;
        // A relayed request is one write: it must not wait for an ACK.
        tcp.set_nodelay(true)?;
        let io = match &endpoint.tls {
            Some(name) => Io::Tls(Box::new(self.tls.connect(name.clone(), tcp).await?)),
            None => Io::Plain(tcp),
        };
        Ok(Conn { io, buf: BytesMut::new(), read_size: FIRST_READ })
    }
}

/// The resolver's addresses, the two families alternating from the first one's (the resolver's
/// preference kept within each family), so one unreachable family costs one attempt at a time,
/// not all of its addresses (a light form of RFC 8305's ordering).
fn interleaved(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = addresses.first().is_some_and(SocketAddr::is_ipv6);
    let (mut preferred, mut other): (std::collections::VecDeque<_>, std::collections::VecDeque<_>) =
        addresses.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    while !preferred.is_empty() || !other.is_empty() {
        out.extend(preferred.pop_front());
        out.extend(other.pop_front());
    }
    out
}

/// What a read must reserve first, with `spare` bytes of room left and `read_size` the read
/// size reached: nothing while at least [`MIN_READ`] is left.
fn to_reserve(spare: usize, read_size: usize) -> Option<usize> {
    (spare < MIN_READ).then_some(read_size)
}

/// The next read size after a read of `n` bytes into `room`: doubled (up to [`MAX_READ`]) when
/// the read filled the room, back to [`FIRST_READ`] when it did not fill a quarter of the
/// current size, else the same.
fn next_read_size(read_size: usize, room: usize, n: usize) -> usize {
    if n == room {
        (read_size * 2).min(MAX_READ)
    } else if n < read_size / 4 {
        FIRST_READ
    } else {
        read_size
    }
}

/// One connection to an upstream and its read buffer.
struct Conn {
    io: Io,
    buf: BytesMut,
    /// What the next read reserves when the buffer is short of room: doubled (up to
    /// [`MAX_READ`]) after a read that filled it, back to [`FIRST_READ`] after one that did not
    /// fill a quarter.
    read_size: usize,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Writes the request head and body (one vectored write when the socket takes it all).
    async fn write(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        let (mut head, mut body) = (head, body);
        while !head.is_empty() || !body.is_empty() {
            let slices = [io::IoSlice::new(head), io::IoSlice::new(body)];
            let n = match &mut self.io {
                Io::Plain(s) => s.write_vectored(&slices).await?,
                Io::Tls(s) => s.write_vectored(&slices).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(head.len());
            head = &head[from_head..];
            body = &body[n - from_head..];
        }
        if let Io::Tls(s) = &mut self.io {
            s.flush().await?;
        }
        Ok(())
    }

    /// Reads more bytes into the buffer: how many (0 at the connection's end).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, UpstreamError>> {
        if let Some(reserve) = to_reserve(self.buf.capacity() - self.buf.len(), self.read_size) {
            // Reclaims the buffer's own allocation when no chunk it handed out is still held.
            self.buf.reserve(reserve);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = ready!(match &mut self.io {
            Io::Plain(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, &mut self.buf),
            Io::Tls(s) => tokio_util::io::poll_read_buf(Pin::new(s.as_mut()), cx, &mut self.buf),
        })
        .map_err(UpstreamError::Read)?;
        self.read_size = next_read_size(self.read_size, room, n);
        Poll::Ready(Ok(n))
    }

    /// Whether an idle connection can carry a request: nothing is waiting to be read. A plain
    /// connection is peeked: the end of the stream means the upstream closed it, stray bytes
    /// mean it cannot be trusted. On TLS, what arrived is read through rustls without waiting,
    /// so a session ticket is consumed and the connection kept, while the upstream's
    /// `close_notify` (or any data) ends it.
    fn looks_open(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        let polled = match &mut self.io {
            Io::Plain(s) => s.poll_peek(&mut cx, &mut probe).map_ok(drop),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(&mut cx, &mut probe),
        };
        polled.is_pending()
    }
}

/// The upstream's response body, read by the task that holds it. Read to its end, its
/// connection goes back to the pool; dropped before, the connection is closed.
pub(crate) struct UpstreamBody {
    /// `None` once the body is complete or broken.
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    endpoint: Arc<Endpoint>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").field("framing", &self.framing).finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// The next piece of the body; `None` at its end.
    ///
    /// # Errors
    /// [`UpstreamError`] when the upstream broke the body off or framed it wrongly; the body
    /// yields nothing after that.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            match self.framing.decode(&mut conn.buf) {
                Ok(Decoded::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                Ok(Decoded::End) => {
                    self.finished();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if self.framing == Framing::Close => {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(UpstreamError::Closed)));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    /// The next piece of the body; `None` at its end.
    ///
    /// # Errors
    /// As [`UpstreamBody::poll_chunk`].
    pub(crate) async fn chunk(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The body was read to its end: its connection may serve another request if nothing
    /// followed the body.
    fn finished(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.endpoint.put_idle(conn);
        }
    }
}

#[cfg(test)]
mod tests;
