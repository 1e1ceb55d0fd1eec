//! The accept loop: each connection served by hyper's HTTP/1.1 connection directly, in one
//! task, with graceful shutdown.
//!
//! Why not `axum::serve`: it serves every connection with hyper-util's protocol-sniffing
//! builder (HTTP/1.1 or HTTP/2 prior knowledge), whose connection future holds both protocols'
//! state (about 8 KiB per connection task), and whose sniffed preface reaches HTTP/1.1 as a
//! first read of a few bytes, after which hyper grows the read buffer from 8 to 16 KiB. Tollgate
//! speaks HTTP/1.1 only (its TLS listener offers ALPN `http/1.1`), and a proxy holding
//! thousands of streams pays both per stream (issue 14).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt as _;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// every open connection to finish its in-flight request (and stream). Each request carries
/// its peer's address as [`ConnectInfo<SocketAddr>`], as `axum::serve` would give it.
pub(crate) async fn serve<L>(mut listener: L, app: Router, shutdown: impl Future<Output = ()> + Send + 'static)
where
    L: Listener<Addr = SocketAddr>,
{
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // `accept` retries failed accepts itself (axum's `Listener` contract).
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            // A client that leaves or sends garbage: nothing for the operator to act on.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
