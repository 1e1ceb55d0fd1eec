//! A webhook receiver for the notification tests: an axum server on 127.0.0.1:0 that records
//! every request (headers and exact body bytes) and answers as told, including not at all.
#![expect(clippy::expect_used, reason = "test support: a failed step is a failed test")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 200 to every request.
    Accept,
    /// This status to every request.
    Status(u16),
    /// This status to the first `n` requests, 200 after.
    FailFirst(usize, u16),
    /// Never answers (the connection stays open).
    Hang,
}

/// One request received.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, byte for byte.
    pub body: Bytes,
}

impl Hit {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

#[derive(Debug)]
struct Inner {
    behaviour: Behaviour,
    hits: Mutex<Vec<Hit>>,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Where to send: `http://127.0.0.1:<port>/hook/<path>` (the path stands for the secret
    /// part of a Slack URL).
    pub url: String,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering with `behaviour`; `path` is the last segment of its URL.
    pub async fn start(behaviour: Behaviour, path: &str) -> Receiver {
        let inner = Arc::new(Inner { behaviour, hits: Mutex::new(Vec::new()) });
        let app = axum::Router::new().fallback(receive).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url: format!("http://{addr}/hook/{path}"), inner, task }
    }

    /// The requests received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("hits lock").clone()
    }

    /// Waits until at least `n` requests have arrived (or `deadline` has passed) and returns
    /// them all.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Hit> {
        let end = Instant::now() + deadline;
        loop {
            let hits = self.hits();
            if hits.len() >= n || Instant::now() >= end {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let seen = {
        let mut hits = inner.hits.lock().expect("hits lock");
        hits.push(Hit { headers, body });
        hits.len()
    };
    let status = match inner.behaviour {
        Behaviour::Accept => 200,
        Behaviour::Status(s) => s,
        Behaviour::FailFirst(n, s) if seen <= n => s,
        Behaviour::FailFirst(..) => 200,
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            200
        }
    };
    StatusCode::from_u16(status).expect("a valid status")
}
