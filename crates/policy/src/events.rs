//! The event log's vocabulary (DESIGN.md section 15): what happened and who did it. The store
//! writes events; these enums are what crosses crate boundaries, never free strings.

use serde::{Deserialize, Serialize};

mod summary;

pub use summary::{dollars, summary};

/// What an event records. The wire name (`org.created`, ...) is the stored `kind`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// An org was created.
    #[serde(rename = "org.created")]
    #[strum(serialize = "org.created")]
    OrgCreated,
    /// An org's name, default mode or price plan changed.
    #[serde(rename = "org.updated")]
    #[strum(serialize = "org.updated")]
    OrgUpdated,
    /// An org's credit was adjusted.
    #[serde(rename = "credit.adjusted")]
    #[strum(serialize = "credit.adjusted")]
    CreditAdjusted,
    /// A secret was set (its name only).
    #[serde(rename = "secret.set")]
    #[strum(serialize = "secret.set")]
    SecretSet,
    /// A secret was deleted (its name only).
    #[serde(rename = "secret.deleted")]
    #[strum(serialize = "secret.deleted")]
    SecretDeleted,
    /// A workspace was created.
    #[serde(rename = "workspace.created")]
    #[strum(serialize = "workspace.created")]
    WorkspaceCreated,
    /// A workspace's name, runtime, model, mode or kind changed.
    #[serde(rename = "workspace.updated")]
    #[strum(serialize = "workspace.updated")]
    WorkspaceUpdated,
    /// A workspace was deleted.
    #[serde(rename = "workspace.deleted")]
    #[strum(serialize = "workspace.deleted")]
    WorkspaceDeleted,
    /// A workspace was provisioned (mode and provider; never the token or env values).
    #[serde(rename = "workspace.provisioned")]
    #[strum(serialize = "workspace.provisioned")]
    WorkspaceProvisioned,
    /// An org's or workspace's limits changed.
    #[serde(rename = "limits.updated")]
    #[strum(serialize = "limits.updated")]
    LimitsUpdated,
    /// Spend crossed a budget's `soft_budget_percent` (once per period).
    #[serde(rename = "budget.soft_crossed")]
    #[strum(serialize = "budget.soft_crossed")]
    BudgetSoftCrossed,
    /// A hard budget was exhausted.
    #[serde(rename = "budget.exhausted")]
    #[strum(serialize = "budget.exhausted")]
    BudgetExhausted,
    /// A drain alarm fired.
    #[serde(rename = "alarm.fired")]
    #[strum(serialize = "alarm.fired")]
    AlarmFired,
    /// An org or workspace was suspended.
    #[serde(rename = "suspended")]
    #[strum(serialize = "suspended")]
    Suspended,
    /// An org's or workspace's suspension was lifted.
    #[serde(rename = "resumed")]
    #[strum(serialize = "resumed")]
    Resumed,
    /// A webhook notification finally failed after its retries.
    #[serde(rename = "webhook.failed")]
    #[strum(serialize = "webhook.failed")]
    WebhookFailed,
}

impl EventKind {
    /// Parses a wire name exactly (`org.created`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every kind, in declaration order (for a filter's choices).
    pub fn all() -> &'static [EventKind] {
        <Self as strum::VariantArray>::VARIANTS
    }

    /// Whether the event is one an operator must look at: a drain alarm, a budget crossed or
    /// exhausted, a suspension, a notification that could not be delivered.
    pub fn is_alert(self) -> bool {
        matches!(
            self,
            Self::AlarmFired | Self::BudgetSoftCrossed | Self::BudgetExhausted | Self::Suspended | Self::WebhookFailed
        )
    }
}

/// Who caused an event: an admin (API or `tollgate admin`) or Tollgate itself (alarms,
/// budgets, webhooks).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum Actor {
    /// An admin.
    Admin,
    /// Tollgate itself.
    System,
}

impl Actor {
    /// Parses `admin` or `system`.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Whether an event of `kind` caused by `actor` is sent to the alert webhooks (DESIGN.md
/// section 15): only what needs a human's attention. Drain alarms and budgets crossing, and a
/// suspension Tollgate made itself (an alarm's); never an admin's own change (the admin knows),
/// and never `webhook.failed` (a failing webhook notifying itself would loop).
pub fn notifies(kind: EventKind, actor: Actor) -> bool {
    match kind {
        EventKind::AlarmFired | EventKind::BudgetSoftCrossed | EventKind::BudgetExhausted => true,
        EventKind::Suspended => actor == Actor::System,
        EventKind::OrgCreated
        | EventKind::OrgUpdated
        | EventKind::CreditAdjusted
        | EventKind::SecretSet
        | EventKind::SecretDeleted
        | EventKind::WorkspaceCreated
        | EventKind::WorkspaceUpdated
        | EventKind::WorkspaceDeleted
        | EventKind::WorkspaceProvisioned
        | EventKind::LimitsUpdated
        | EventKind::Resumed
        | EventKind::WebhookFailed => false,
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    /// The strum table and the serde names come from separate attributes: they must agree,
    /// and every name must parse back to its variant.
    #[test]
    fn wire_names_agree_and_round_trip() {
        for k in EventKind::VARIANTS {
            let serde_name = serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned));
            assert_eq!(serde_name.as_deref(), Some(k.as_str()));
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        for a in Actor::VARIANTS {
            let serde_name = serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned));
            assert_eq!(serde_name.as_deref(), Some(a.as_str()));
            assert_eq!(Actor::parse(a.as_str()), Some(*a));
        }
        assert_eq!(EventKind::parse("Org.Created"), None);
        assert_eq!(EventKind::all().len(), EventKind::VARIANTS.len());
        let alerts: Vec<&str> = EventKind::all().iter().filter(|k| k.is_alert()).map(|k| k.as_str()).collect();
        assert_eq!(alerts, ["budget.soft_crossed", "budget.exhausted", "alarm.fired", "suspended", "webhook.failed"]);
    }

    /// Exactly the four attention-worthy kinds notify; an admin's suspension and every admin
    /// change do not, and `webhook.failed` never does, whoever records it (no loop).
    #[test]
    fn only_attention_worthy_events_notify() {
        let mut notified = Vec::new();
        for k in EventKind::VARIANTS {
            for a in Actor::VARIANTS {
                if notifies(*k, *a) {
                    notified.push((k.as_str(), a.as_str()));
                }
            }
        }
        assert_eq!(
            notified,
            [
                ("budget.soft_crossed", "admin"),
                ("budget.soft_crossed", "system"),
                ("budget.exhausted", "admin"),
                ("budget.exhausted", "system"),
                ("alarm.fired", "admin"),
                ("alarm.fired", "system"),
                ("suspended", "system"),
            ]
        );
        assert!(!notifies(EventKind::WebhookFailed, Actor::System));
    }
}
