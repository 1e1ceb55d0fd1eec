//! The client against scripted upstreams on loopback: what goes on the wire, what comes back,
//! and when a connection is reused.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

/// What the scripted upstream does with each request on a connection: the bytes to answer,
/// and whether to close the connection afterwards.
type Script = Arc<dyn Fn(usize, &[u8]) -> (Vec<Vec<u8>>, bool) + Send + Sync>;

struct Upstream {
    endpoint: Arc<Endpoint>,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Reads one request (head and `content-length` body); `None` at the connection's end.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(socket: &mut S, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if pending.len() >= end + 4 + len {
                return Some(pending.drain(..end + 4 + len).collect());
            }
        }
        let mut b = [0u8; 4096];
        let n = socket.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&b[..n]);
    }
}

async fn upstream(script: Script) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (script, r) = (script.clone(), r.clone());
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut nth = 0;
                while let Some(request) = read_request(&mut socket, &mut pending).await {
                    let (pieces, close) = script(nth, &request);
                    r.lock().unwrap().push(request);
                    nth += 1;
                    for piece in pieces {
                        if socket.write_all(&piece).await.is_err() {
                            return;
                        }
                        socket.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    Upstream { endpoint: Arc::new(Endpoint::parse(&format!("http://{addr}/base")).unwrap()), accepted, requests }
}

/// Waits (10 s at most, then goes on and lets the test fail) until the upstream's close of the
/// pooled connection has reached this side: before that, the connection looks open.
async fn close_seen(endpoint: &Endpoint) {
    let seen = async {
        while endpoint.idle.lock().unwrap().first_mut().is_some_and(|i| i.conn.looks_open()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), seen).await;
}

fn answer(body: &str) -> Vec<Vec<u8>> {
    vec![
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
            .into_bytes(),
    ]
}

async fn post(up: &Upstream, body: &str) -> Result<(StatusCode, HeaderMap, Vec<u8>), UpstreamError> {
    let client = client().unwrap();
    let head = up.endpoint.post("/v1/messages", None, body.len()).finish();
    let response = client.send(&up.endpoint, &head, body.as_bytes()).await?;
    let (parts, mut b) = response.into_parts();
    let mut all = Vec::new();
    while let Some(chunk) = b.chunk().await {
        all.extend_from_slice(&chunk?);
    }
    Ok((parts.status, parts.headers, all))
}

#[tokio::test]
async fn the_request_goes_out_as_written_and_the_answer_comes_back() {
    let up = upstream(Arc::new(|_, _| (answer(r#"{"ok":true}"#), false))).await;
    let (status, headers, body) = post(&up, r#"{"model":"m"}"#).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, br#"{"ok":true}"#);
    let sent = up.requests.lock().unwrap()[0].clone();
    let authority = &up.endpoint.authority;
    assert_eq!(
        String::from_utf8(sent).unwrap(),
        format!(
            "POST /base/v1/messages HTTP/1.1\r\nhost: {authority}\r\ncontent-length: 13\r\n\r\n{{\"model\":\"m\"}}"
        )
    );
}

#[tokio::test]
async fn a_connection_read_to_its_end_is_reused() {
    let up = upstream(Arc::new(|n, _| (answer(&format!("answer {n}")), false))).await;
    for n in 0..3 {
        assert_eq!(post(&up, "{}").await.unwrap().2, format!("answer {n}").into_bytes());
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "one connection for all three");
}

#[tokio::test]
async fn a_body_left_unread_closes_its_connection() {
    let up = upstream(Arc::new(|_, _| (answer("0123456789"), false))).await;
    let client = client().unwrap();
    let head = up.endpoint.post("/v1/messages", None, 2).finish();
    let response = client.send(&up.endpoint, &head, b"{}").await.unwrap();
    drop(response);
    assert_eq!(post(&up, "{}").await.unwrap().2, b"0123456789");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "the unread one was not reused");
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used() {
    // Answers, then closes without saying so: the next request must not be sent on it.
    let up = upstream(Arc::new(|n, _| (answer(&format!("answer {n}")), true))).await;
    assert_eq!(post(&up, "{}").await.unwrap().2, b"answer 0");
    close_seen(&up.endpoint).await;
    assert_eq!(post(&up, "{}").await.unwrap().2, b"answer 0", "a new connection's first answer");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_chunked_answer_in_pieces_is_read_whole_and_reused() {
    let up = upstream(Arc::new(|_, _| {
        let pieces: Vec<&[u8]> = vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            b"7\r\nevent: \r\n",
            b"5\r\nhel",
            b"lo\r\n0\r\n",
            b"\r\n",
        ];
        (pieces.into_iter().map(<[u8]>::to_vec).collect(), false)
    }))
    .await;
    assert_eq!(post(&up, "{}").await.unwrap().2, b"event: hello");
    assert_eq!(post(&up, "{}").await.unwrap().2, b"event: hello");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_close_delimited_answer_ends_with_its_connection() {
    let up = upstream(Arc::new(|_, _| (vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end".to_vec()], true))).await;
    assert_eq!(post(&up, "{}").await.unwrap().2, b"until the end");
    assert_eq!(post(&up, "{}").await.unwrap().2, b"until the end");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "never reused");
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error() {
    let up =
        upstream(Arc::new(|_, _| (vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234".to_vec()], true))).await;
    assert!(matches!(post(&up, "{}").await, Err(UpstreamError::Closed)));
    let up = upstream(Arc::new(|_, _| {
        (vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab".to_vec()], true)
    }))
    .await;
    assert!(matches!(post(&up, "{}").await, Err(UpstreamError::Closed)));
}

#[tokio::test]
async fn no_answer_or_a_broken_one_is_an_error() {
    let up = upstream(Arc::new(|_, _| (vec![], true))).await;
    assert!(matches!(post(&up, "{}").await, Err(UpstreamError::Closed)));
    let up = upstream(Arc::new(|_, _| (vec![b"SMTP ready\r\n\r\n".to_vec()], true))).await;
    assert!(matches!(post(&up, "{}").await, Err(UpstreamError::Wire(WireError::Head(_)))));
    let refused = Arc::new(Endpoint::parse("http://127.0.0.1:1").unwrap());
    let head = refused.post("/v1/messages", None, 0).finish();
    assert!(matches!(client().unwrap().send(&refused, &head, b"").await, Err(UpstreamError::Connect(_))));
}

#[tokio::test]
async fn a_long_head_and_a_large_body_grow_the_buffer() {
    let up = upstream(Arc::new(|_, _| {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..100 {
            head.push_str(&format!("x-ratelimit-{i}: {}\r\n", "v".repeat(200)));
        }
        let body = "b".repeat(300_000);
        head.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        (vec![head.into_bytes()], false)
    }))
    .await;
    let (status, headers, body) = post(&up, "{}").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.len(), 101);
    assert_eq!(body.len(), 300_000);
    // Pooled, the connection lets the grown buffer go.
    let idle = up.endpoint.idle.lock().unwrap();
    assert_eq!(idle.len(), 1);
    assert!(idle[0].conn.buf.capacity() <= MAX_IDLE_BUFFER, "{}", idle[0].conn.buf.capacity());
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_limit_of_idle_connections_with_their_small_buffers() {
    let up = upstream(Arc::new(|_, _| (answer("ok"), false))).await;
    let client = client().unwrap();
    // Bodies not yet read: each request takes a connection of its own.
    let mut bodies = Vec::new();
    for _ in 0..=POOL_MAX_IDLE {
        let head = up.endpoint.post("/v1/messages", None, 2).finish();
        bodies.push(client.send(&up.endpoint, &head, b"{}").await.unwrap().into_body());
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), POOL_MAX_IDLE + 1);
    for mut body in bodies {
        assert_eq!(body.chunk().await.unwrap().unwrap(), "ok");
        assert!(body.chunk().await.is_none());
    }
    let idle = up.endpoint.idle.lock().unwrap();
    assert_eq!(idle.len(), POOL_MAX_IDLE, "one over the limit was closed, none of the others");
    assert!(idle.iter().all(|i| i.conn.buf.capacity() > 0), "a small read buffer is kept for the next answer");
}

#[test]
fn endpoints_are_parsed_once() {
    let e = Endpoint::parse("https://api.anthropic.com").unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.tls.is_some(), e.authority.as_str()),
        ("api.anthropic.com", 443, true, "api.anthropic.com")
    );
    assert_eq!(e.base_path, "");
    let e = Endpoint::parse("http://127.0.0.1:8080/prefix/").unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.tls.is_some(), e.authority.as_str()),
        ("127.0.0.1", 8080, false, "127.0.0.1:8080")
    );
    assert_eq!(e.base_path, "/prefix");
    let e = Endpoint::parse("http://[::1]:9").unwrap();
    assert_eq!((e.host.as_str(), e.authority.as_str()), ("::1", "[::1]:9"));
    assert_eq!(Endpoint::parse("http://h").unwrap().port, 80);
    assert_eq!(Endpoint::parse("ftp://h").unwrap_err(), EndpointError::Scheme);
    for bad in ["", "not a url", "/v1", "http://user:pw@h", "http://h/?q=1", "http://h/#f"] {
        assert_eq!(Endpoint::parse(bad).unwrap_err(), EndpointError::Invalid, "{bad}");
    }
}

#[tokio::test]
async fn https_upstreams_are_verified_and_their_connections_reused() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(mut tls) = acceptor.accept(socket).await else { return };
                let mut pending = Vec::new();
                let mut served = 0;
                while read_request(&mut tls, &mut pending).await.is_some() {
                    let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nsecure\r\n0\r\n\r\n";
                    if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                        return;
                    }
                    served += 1;
                    if served == 2 {
                        // Idle, the upstream closes the connection properly: close_notify, then FIN.
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    let endpoint = Arc::new(Endpoint::parse(&format!("https://localhost:{port}")).unwrap());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let trusting = client_trusting(roots).unwrap();
    for _ in 0..2 {
        let head = endpoint.post("/v1/messages", None, 2).finish();
        let mut body = trusting.send(&endpoint, &head, b"{}").await.unwrap().into_body();
        assert_eq!(body.chunk().await.unwrap().unwrap(), "secure");
        assert!(body.chunk().await.is_none());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one TLS connection for both requests");
    close_seen(&endpoint).await;
    let head = endpoint.post("/v1/messages", None, 2).finish();
    let mut body = trusting.send(&endpoint, &head, b"{}").await.unwrap().into_body();
    assert_eq!(body.chunk().await.unwrap().unwrap(), "secure");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection after the close");
    // The usual roots do not include a self-signed certificate: no connection, no request.
    // (A fresh endpoint: the pool of the one above holds the verified connection.)
    let fresh = Arc::new(Endpoint::parse(&format!("https://localhost:{port}")).unwrap());
    let head = fresh.post("/v1/messages", None, 2).finish();
    let refused = client().unwrap().send(&fresh, &head, b"{}").await;
    assert!(matches!(refused, Err(UpstreamError::Connect(_))), "{refused:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "the handshake was tried, and refused");
}

#[tokio::test]
async fn a_request_larger_than_the_socket_takes_at_once_is_written_whole() {
    // The upstream answers with the length of the body it read.
    let up = upstream(Arc::new(|_, request: &[u8]| {
        let body = request.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |end| request.len() - end - 4);
        (answer(&body.to_string()), false)
    }))
    .await;
    // More than loopback's socket buffers take in one write.
    let big = "x".repeat(16 * 1024 * 1024);
    let answered = tokio::time::timeout(Duration::from_secs(60), post(&up, &big)).await;
    assert_eq!(answered.expect("the whole request was written").unwrap().2, big.len().to_string().into_bytes());
    // A request without a body is written too.
    let answered = tokio::time::timeout(Duration::from_secs(60), post(&up, "")).await;
    assert_eq!(answered.expect("the head was written").unwrap().2, b"0");
}

#[test]
fn reads_reserve_only_when_short_of_room_and_grow_only_while_they_fill_it() {
    assert_eq!(FIRST_READ, 2048, "a held stream's buffer: about half a page");
    assert_eq!(to_reserve(0, FIRST_READ), Some(FIRST_READ));
    assert_eq!(to_reserve(MIN_READ - 1, 8192), Some(8192));
    assert_eq!(to_reserve(MIN_READ, 8192), None);
    assert_eq!(next_read_size(FIRST_READ, 2048, 2048), 4096, "filled: doubled");
    assert_eq!(next_read_size(MAX_READ / 2, 100, 100), MAX_READ);
    assert_eq!(next_read_size(MAX_READ, 100, 100), MAX_READ, "never past the most");
    assert_eq!(next_read_size(16384, 16384, 4095), FIRST_READ, "under a quarter: back to the first size");
    assert_eq!(next_read_size(16384, 16384, 4096), 16384, "a quarter or more: the same");
    assert_eq!(next_read_size(16384, 16384, 8000), 16384);
}

#[tokio::test]
async fn a_small_answer_leaves_a_small_buffer_with_room_for_the_next() {
    let up = upstream(Arc::new(|_, _| (answer("ok"), false))).await;
    assert_eq!(post(&up, "{}").await.unwrap().2, b"ok");
    let idle = up.endpoint.idle.lock().unwrap();
    let room = idle[0].conn.buf.capacity();
    // The first read reserved FIRST_READ; the answer took about a hundred bytes of it.
    assert!((FIRST_READ - 200..=FIRST_READ).contains(&room), "{room}");
    assert_eq!(idle[0].conn.read_size, FIRST_READ);
}

#[test]
fn address_families_alternate_from_the_resolvers_first() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let (v6a, v6b, v4a, v4b, v4c) = (a("[::1]:1"), a("[::2]:1"), a("10.0.0.1:1"), a("10.0.0.2:1"), a("10.0.0.3:1"));
    assert_eq!(interleaved(vec![v6a, v6b, v4a, v4b, v4c]), [v6a, v4a, v6b, v4b, v4c]);
    assert_eq!(interleaved(vec![v4a, v4b, v6a]), [v4a, v6a, v4b]);
    assert_eq!(interleaved(vec![v4a, v4b]), [v4a, v4b]);
    assert!(interleaved(vec![]).is_empty());
}

#[tokio::test]
async fn an_upstream_named_by_host_is_resolved_and_reached() {
    let up = upstream(Arc::new(|_, _| (answer("by name"), false))).await;
    let port = up.endpoint.port;
    let named = Arc::new(Endpoint::parse(&format!("http://localhost:{port}")).unwrap());
    let head = named.post("/v1/messages", None, 0).finish();
    let mut body = client().unwrap().send(&named, &head, b"").await.unwrap().into_body();
    assert_eq!(body.chunk().await.unwrap().unwrap(), "by name");
}
