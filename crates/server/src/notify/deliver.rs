//! Delivery: the dispatcher, one delivery per destination with its retries, the signature,
//! and the `webhook.failed` record of what could not be delivered.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tollgate_policy::{Actor, EventKind, WebhookUrl};
use tollgate_store::{Event, NewEvent, Store, StoreError};

use super::{NotifierConfig, SIGNATURE_HEADER, WEBHOOK_DELIVERIES};
use crate::api::{EventOut, Notification};

/// What every delivery task shares.
#[derive(Debug)]
pub(super) struct Shared {
    store: Arc<dyn Store>,
    config: NotifierConfig,
    client: reqwest::Client,
}

/// Which configured URL a destination is (recorded in `webhook.failed`, with its host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `TOLLGATE_ALERT_WEBHOOK_URL`.
    Global,
    /// The org's `alert_webhook_url`.
    Org,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Org => "org",
        }
    }
}

/// Why an attempt failed: a status, or an error class (never the error's text, which may
/// quote the URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The receiver answered this non-2xx status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection.
    Connect,
    /// Any other transport error.
    Request,
}

impl Failure {
    /// Worth another attempt: the receiver may be back soon (network errors, 5xx, 429); any
    /// other status says the request itself is refused.
    fn retryable(self) -> bool {
        match self {
            Self::Status(s) => s == 429 || s >= 500,
            Self::Timeout | Self::Connect | Self::Request => true,
        }
    }

    fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else {
            Self::Request
        }
    }

    /// The error class recorded when there is no status.
    fn class(self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Request => "request",
        }
    }
}

/// Takes queued events one by one, each when a delivery slot is free, and delivers it in its
/// own task. Ends when every [`super::Notifier`] is gone.
pub(super) async fn dispatch(mut queue: mpsc::Receiver<Event>, shared: Arc<Shared>) {
    let concurrency = shared.config.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // A slot first: while every slot is busy, events wait in the bounded queue.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(event) = queue.recv().await else {
            // Every sender is gone and the queue is empty: end once the deliveries under way
            // have (each holds a slot), so that a shutdown can wait for them.
            drop(slot);
            let _ = slots.acquire_many(u32::try_from(concurrency).unwrap_or(u32::MAX)).await;
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.deliver(&event).await;
            drop(slot);
        });
    }
}

impl Shared {
    pub(super) fn new(store: Arc<dyn Store>, config: NotifierConfig, client: reqwest::Client) -> Self {
        Self { store, config, client }
    }

    /// Sends `event` to each of its destinations, concurrently, each with its retries.
    async fn deliver(self: &Arc<Self>, event: &Event) {
        let targets = self.targets(event).await;
        if targets.is_empty() {
            tracing::debug!(event_id = event.id, kind = %event.kind, "no webhook for this event");
            return;
        }
        let body = match body(event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(event_id = event.id, error = %e, "cannot serialise a notification");
                return;
            }
        };
        let signature = self.config.secret.as_ref().and_then(|s| sign(s, &body));
        let mut tasks = tokio::task::JoinSet::new();
        for (target, url) in targets {
            let (shared, body, signature, event) = (self.clone(), body.clone(), signature.clone(), event.clone());
            tasks.spawn(async move { shared.deliver_to(target, &url, body, signature, &event).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The global URL and the org's (once, when they are the same).
    async fn targets(&self, event: &Event) -> Vec<(Target, WebhookUrl)> {
        let mut targets = Vec::new();
        if let Some(url) = &self.config.global_url {
            targets.push((Target::Global, url.clone()));
        }
        if let Some(org) = &event.org_id {
            match self.store.get_org(org).await {
                Ok(o) => {
                    if let Some(url) = o.alert_webhook_url.filter(|u| targets.iter().all(|(_, t)| t != u)) {
                        targets.push((Target::Org, url));
                    }
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(event_id = event.id, error = %e, "cannot read the org's alert webhook: not sent there");
                }
            }
        }
        targets
    }

    /// Attempts `url` up to the configured number of times; records `webhook.failed` when no
    /// attempt succeeded.
    async fn deliver_to(
        &self,
        target: Target,
        url: &WebhookUrl,
        body: Vec<u8>,
        signature: Option<String>,
        event: &Event,
    ) {
        let attempts = self.config.attempts.max(1);
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            let mut request = self
                .client
                .post(url.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(sig) = &signature {
                request = request.header(SIGNATURE_HEADER, sig);
            }
            let mut asked_wait = None;
            let failure = match request.send().await {
                Ok(resp) if resp.status().is_success() => {
                    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "delivered").increment(1);
                    tracing::info!(event_id = event.id, kind = %event.kind, destination = url.origin(), attempt, "notification delivered");
                    return;
                }
                Ok(resp) => {
                    asked_wait = retry_after(resp.headers());
                    Failure::Status(resp.status().as_u16())
                }
                Err(e) => Failure::of(&e),
            };
            if !failure.retryable() || attempt >= attempts {
                break failure;
            }
            tracing::debug!(
                event_id = event.id,
                destination = url.origin(),
                attempt,
                ?failure,
                "notification attempt failed: retrying"
            );
            tokio::time::sleep(wait_before_retry(self.backoff(attempt), asked_wait, self.config.max_backoff)).await;
        };
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "failed").increment(1);
        tracing::warn!(event_id = event.id, kind = %event.kind, destination = url.origin(), attempts = attempt, ?failure, "notification failed");
        let mut detail = serde_json::json!({
            "event_id": event.id,
            "event_kind": event.kind,
            "target": target.as_str(),
            "destination": url.origin(),
            "attempts": attempt,
        });
        match failure {
            Failure::Status(s) => detail["last_status"] = s.into(),
            other => detail["last_error"] = other.class().into(),
        }
        self.record_failed(event, detail).await;
    }

    /// The wait after failed attempt `attempt` (1-based): `backoff` doubled per attempt, at
    /// most `max_backoff`, less up to half at random.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self.config.backoff.saturating_mul(2u32.saturating_pow(attempt - 1)).min(self.config.max_backoff);
        let jitter = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
        full.mul_f64(1.0 - jitter / 2.0)
    }

    /// Records that `event` was dropped because the queue was full.
    pub(super) async fn record_queue_full(&self, event: &Event) {
        let detail = serde_json::json!({
            "event_id": event.id,
            "event_kind": event.kind,
            "attempts": 0,
            "last_error": "queue_full",
        });
        self.record_failed(event, detail).await;
    }

    /// Appends a `webhook.failed` event about `event` (never notified: no loop).
    async fn record_failed(&self, event: &Event, detail: serde_json::Value) {
        let failed = NewEvent {
            kind: EventKind::WebhookFailed,
            actor: Actor::System,
            org_id: event.org_id.clone(),
            workspace_id: event.workspace_id.clone(),
            detail,
        };
        if let Err(e) = self.store.record_event(&failed).await {
            tracing::error!(event_id = event.id, error = %e, "cannot record webhook.failed");
        }
    }
}

/// The JSON body of `event`'s notification.
fn body(event: &Event) -> serde_json::Result<Vec<u8>> {
    let text = tollgate_policy::events::summary(
        event.kind,
        event.org_id.as_ref().map(tollgate_policy::OrgId::as_str),
        event.workspace_id.as_ref().map(tollgate_policy::WorkspaceId::as_str),
        &event.detail,
    );
    serde_json::to_vec(&Notification { text, event: EventOut::from(event.clone()) })
}

/// `sha256=<hex HMAC-SHA256 of body>` under `secret`.
fn sign(secret: &SecretString, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).ok()?;
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 2 * digest.len());
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    Some(hex)
}

/// A receiver's `Retry-After` in whole seconds (the form rate limiters send; an HTTP date is
/// ignored and the backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// The wait before the next attempt: the backoff, or longer when the receiver asked for it
/// (`Retry-After`), but never past `max_backoff` (a receiver cannot park a delivery slot).
fn wait_before_retry(backoff: Duration, asked: Option<Duration>, max_backoff: Duration) -> Duration {
    asked.map_or(backoff, |a| a.max(backoff).min(max_backoff.max(backoff)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receivers_retry_after_is_honoured_up_to_the_longest_backoff() {
        let (backoff, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(wait_before_retry(backoff, None, max), backoff);
        assert_eq!(wait_before_retry(backoff, Some(Duration::from_secs(7)), max), Duration::from_secs(7));
        assert_eq!(wait_before_retry(backoff, Some(Duration::ZERO), max), backoff, "never sooner than the backoff");
        assert_eq!(wait_before_retry(backoff, Some(Duration::from_secs(3_600)), max), max, "capped");
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "12".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(12)));
        h.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), None, "a date: the backoff applies");
    }

    /// The RFC 4231 test case 2 vector: the signature is plain HMAC-SHA256 in lower-case hex.
    #[test]
    fn signs_with_hmac_sha256() {
        let sig = sign(&SecretString::from("Jefe"), b"what do ya want for nothing?");
        assert_eq!(sig.as_deref(), Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    }

    #[test]
    fn retries_network_errors_5xx_and_429_only() {
        for f in [
            Failure::Timeout,
            Failure::Connect,
            Failure::Request,
            Failure::Status(500),
            Failure::Status(503),
            Failure::Status(429),
        ] {
            assert!(f.retryable(), "{f:?}");
        }
        for f in [Failure::Status(400), Failure::Status(404), Failure::Status(410), Failure::Status(301)] {
            assert!(!f.retryable(), "{f:?}");
        }
    }
}
