//! What instances sharing a database tell each other on its notification channel, and the one
//! text form it travels in (Postgres `NOTIFY` payloads are text).

use tollgate_policy::{OrgId, WorkspaceId};

use crate::LeaseId;

/// A notice on the store's invalidation channel (see [`crate::Store::publish_invalidation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Cached state about this workspace (its authorisation) is stale.
    Workspace(WorkspaceId),
    /// Cached state about this org and all its workspaces is stale.
    Org(OrgId),
    /// Instance `from` could not reserve credit of `org`: every other instance returns the
    /// unreserved credit of its lease of that org.
    CreditRecall {
        /// The org whose leased credit is recalled.
        org: OrgId,
        /// The asking instance, which ignores its own notice.
        from: String,
    },
    /// A debit closed every lease of this org (see [`crate::Store::adjust_credit`]): every
    /// instance drops its lease of the org before its next admission and starts a new one.
    CreditCut(OrgId),
    /// An instance obeyed a [`Invalidation::CreditCut`]: it no longer spends from this lease.
    /// The debit waits for these before it answers.
    CreditCutDone(LeaseId),
    /// Anything may be stale (e.g. notifications were lost with a connection): drop it all.
    All,
}

impl Invalidation {
    /// The channel text: `ws:<id>`, `org:<id>`, `credit:<org>:<instance>`, `cut:<org>`, `cutdone:<lease>` or `*`.
    /// [`Invalidation::decode`] reads it back to the same value.
    pub fn encode(&self) -> String {
        match self {
            Self::Workspace(id) => format!("ws:{id}"),
            Self::Org(id) => format!("org:{id}"),
            Self::CreditRecall { org, from } => format!("credit:{org}:{from}"),
            Self::CreditCut(org) => format!("cut:{org}"),
            Self::CreditCutDone(lease) => format!("cutdone:{lease}"),
            Self::All => "*".to_owned(),
        }
    }

    /// Reads a channel text. Anything it does not recognise (another version's notice, a
    /// malformed id) decodes as [`Invalidation::All`]: dropping too much is safe, keeping a
    /// stale authorisation is not.
    pub fn decode(text: &str) -> Self {
        let parsed = if let Some(id) = text.strip_prefix("ws:") {
            WorkspaceId::parse(id).ok().map(Self::Workspace)
        } else if let Some(id) = text.strip_prefix("org:") {
            OrgId::parse(id).ok().map(Self::Org)
        } else if let Some(id) = text.strip_prefix("cutdone:") {
            LeaseId::parse(id).ok().map(Self::CreditCutDone)
        } else if let Some(id) = text.strip_prefix("cut:") {
            OrgId::parse(id).ok().map(Self::CreditCut)
        } else if let Some(rest) = text.strip_prefix("credit:") {
            // An org id has no `:`, so the first one ends it; the instance is the rest.
            rest.split_once(':').and_then(|(org, from)| {
                Some(Self::CreditRecall { org: OrgId::parse(org).ok()?, from: from.to_owned() })
            })
        } else {
            None
        };
        parsed.unwrap_or(Self::All)
    }
}
