//! The store's own identifiers: credit leases and proxied requests. Minted by the proxy,
//! parsed (same rule as [`tollgate_policy::ids`]) where they come from elsewhere.

use std::fmt;

macro_rules! store_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// A new, unique id (a random UUID).
            pub fn mint() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Parses `s` by the rule of [`tollgate_policy::ids::is_valid`].
            pub fn parse(s: &str) -> Result<Self, String> {
                if tollgate_policy::ids::is_valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(concat!("not a valid ", $what, " id").to_owned())
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

store_id!(
    /// A credit lease: one per (instance, org), named by the instance that opens it.
    LeaseId,
    "lease"
);
store_id!(
    /// One proxied request: its ledger row is written once per id.
    RequestId,
    "request"
);

/// An agent's own session id (Claude Code's `X-Claude-Code-Session-Id`, Codex's
/// `session-id`), recorded with each ledger row so that usage can be grouped by session.
///
/// It comes from the client, so it is bounded and restricted: at most
/// [`AgentSessionId::MAX_LEN`] characters of ASCII letters, digits and `-`, `_`, `.`, `:`.
/// Anything else is refused, never stored as sent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentSessionId(String);

impl AgentSessionId {
    /// The longest id kept (a UUID is 36).
    pub const MAX_LEN: usize = 128;

    /// Parses a header value: trimmed; empty, over [`Self::MAX_LEN`] or holding any other
    /// character than `[A-Za-z0-9._:-]` is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::AgentSessionId;

    #[test]
    fn session_ids_are_bounded_and_restricted() {
        let uuid = "0b5e7f2c-6a1d-4c1e-9a51-3d1f0c7e8a90";
        assert_eq!(AgentSessionId::parse(uuid).map(|s| s.as_str().to_owned()), Some(uuid.to_owned()));
        assert_eq!(AgentSessionId::parse(" abc ").map(|s| s.as_str().to_owned()), Some("abc".to_owned()));
        assert!(AgentSessionId::parse("").is_none());
        assert!(AgentSessionId::parse("a b").is_none());
        assert!(AgentSessionId::parse("x\u{1b}[31m").is_none());
        assert!(AgentSessionId::parse("é").is_none());
        assert!(AgentSessionId::parse(&"a".repeat(AgentSessionId::MAX_LEN)).is_some());
        assert!(AgentSessionId::parse(&"a".repeat(AgentSessionId::MAX_LEN + 1)).is_none());
    }
}
