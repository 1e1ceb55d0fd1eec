//! Webhook notifications (DESIGN.md section 15): events worth a human's attention
//! (`alarm.fired`, `budget.soft_crossed`, `budget.exhausted`, `suspended` by Tollgate itself;
//! the choice is `tollgate_policy::events::notifies`) sent to `TOLLGATE_ALERT_WEBHOOK_URL` and
//! the org's `alert_webhook_url`.
//!
//! The notifier is handed an event that is already recorded; delivery happens off the caller's
//! path and never blocks it: [`Notifier::notify`] puts the event on a bounded queue and
//! returns, a dispatcher task hands each queued event to a delivery task (at most
//! [`NotifierConfig::concurrency`] at once), and each destination is tried with timeouts and
//! retried with backoff (`notify/deliver.rs`). A delivery that finally fails, or an event that finds
//! the queue full, is recorded as a `webhook.failed` event, which is never itself sent.
//!
//! A webhook URL is a credential (a Slack incoming webhook): logs, errors and events name its
//! scheme and host only.

mod deliver;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::mpsc;
use tollgate_policy::WebhookUrl;
use tollgate_store::{Event, Store};

/// Deliveries by `outcome`: `delivered`, `failed` (after its retries, or refused with a 4xx),
/// `queue_full` (dropped at once, recorded as `webhook.failed`).
pub const WEBHOOK_DELIVERIES: &str = "tollgate_webhook_deliveries_total";

/// The header carrying the body's signature: `sha256=<hex HMAC-SHA256 of the body>` under
/// `TOLLGATE_ALERT_WEBHOOK_SECRET`; absent when no secret is configured.
pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";

/// How notifications are delivered. [`NotifierConfig::default`] is the production setting;
/// tests shorten the backoff and the timeouts.
#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// `TOLLGATE_ALERT_WEBHOOK_URL`: receives every notified event.
    pub global_url: Option<WebhookUrl>,
    /// `TOLLGATE_ALERT_WEBHOOK_SECRET`: signs every body (global and per-org destinations).
    pub secret: Option<SecretString>,
    /// Attempts per destination, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each further one, up to `max_backoff`,
    /// with up to half of it taken off at random so that retries do not march in step.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// The bound on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The bound on one whole attempt, connection to the last byte of the response: a
    /// receiver that hangs costs this much, not a delivery task forever.
    pub timeout: Duration,
    /// Events waiting for a delivery task; beyond it an event is dropped and recorded as
    /// `webhook.failed`.
    pub queue: usize,
    /// Events delivered at once.
    pub concurrency: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            global_url: None,
            secret: None,
            attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            queue: 1024,
            concurrency: 4,
        }
    }
}

impl NotifierConfig {
    /// The default delivery settings with the global URL and secret of the environment as
    /// `get` reads it (`TOLLGATE_ALERT_WEBHOOK_URL`, `TOLLGATE_ALERT_WEBHOOK_SECRET`; empty is
    /// unset). A URL that does not parse is an error that does not quote it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let global_url = get("TOLLGATE_ALERT_WEBHOOK_URL")
            .filter(|u| !u.is_empty())
            .map(|u| WebhookUrl::parse(&u).map_err(|e| format!("TOLLGATE_ALERT_WEBHOOK_URL: {e}")))
            .transpose()?;
        let secret = get("TOLLGATE_ALERT_WEBHOOK_SECRET").filter(|s| !s.is_empty()).map(SecretString::from);
        Ok(Self { global_url, secret, ..Self::default() })
    }
}

/// Sends recorded events to the configured webhooks. Cheap to clone.
///
/// This is the interface the alarm evaluator calls; delivery (signing, retries,
/// `webhook.failed`) is built behind it.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Event>>,
    shared: Option<Arc<deliver::Shared>>,
    /// The dispatcher: it ends once every sender is gone, the queue is empty and the last
    /// delivery is done (see [`Notifier::drain`]).
    dispatcher: Option<Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>>,
}

impl Notifier {
    /// A notifier that sends nothing (no webhook configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A notifier delivering to `config`'s global URL and each org's `alert_webhook_url` (read
    /// from `store` when an event is delivered, so a change applies to the next one), recording
    /// failures in `store`. Starts its dispatcher task: call it inside a Tokio runtime. Fails
    /// only if the HTTP client cannot be built.
    pub fn new(store: Arc<dyn Store>, config: NotifierConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // A redirect is a failure: the body is signed for the URL configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(deliver::Shared::new(store, config, client));
        let dispatcher = tokio::spawn(deliver::dispatch(rx, shared.clone()));
        Ok(Self {
            queue: Some(tx),
            shared: Some(shared),
            dispatcher: Some(Arc::new(std::sync::Mutex::new(Some(dispatcher)))),
        })
    }

    /// At shutdown, once nothing else can notify (the server and the alarm evaluator have
    /// stopped, their copies of the notifier dropped): drops this sender and waits, up to
    /// `deadline`, for the queued and in-flight deliveries (their retries included) to end.
    /// Returns whether they all did; what is left is logged (every notified event is in the
    /// event log, so nothing is lost but the message).
    pub async fn drain(self, deadline: std::time::Duration) -> bool {
        let Some(dispatcher) = self.dispatcher.as_ref().and_then(|d| d.lock().ok().and_then(|mut h| h.take())) else {
            return true;
        };
        let queued = self.queue.as_ref().map_or(0, |q| q.max_capacity() - q.capacity());
        drop(self);
        match tokio::time::timeout(deadline, dispatcher).await {
            Ok(_) => true,
            Err(_) => {
                tracing::warn!(
                    queued,
                    ?deadline,
                    "webhook deliveries still under way at shutdown: not sent (the events are in the event log)"
                );
                false
            }
        }
    }

    /// Queues `event` for delivery and returns at once. The event must already be recorded in
    /// the event log (the caller's transaction committed): a notification is never the only
    /// trace of what happened. Events of kinds that are not notified are ignored here, so a
    /// caller may hand over every event it records.
    pub fn notify(&self, event: &Event) {
        if !tollgate_policy::events::notifies(event.kind, event.actor) {
            return;
        }
        let (Some(queue), Some(shared)) = (&self.queue, &self.shared) else {
            tracing::debug!(event_id = event.id, kind = %event.kind, "no webhook configured: event not sent");
            return;
        };
        match queue.try_send(event.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => {
                metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => "queue_full").increment(1);
                tracing::warn!(event_id = event.id, kind = %event.kind, "webhook queue full: event not sent");
                let shared = shared.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn(async move { shared.record_queue_full(&event).await })),
                    Err(_) => tracing::warn!("no async runtime: the dropped notification is not recorded"),
                }
            }
            Err(mpsc::error::TrySendError::Closed(event)) => {
                tracing::warn!(event_id = event.id, kind = %event.kind, "webhook dispatcher stopped: event not sent");
            }
        }
    }
}
