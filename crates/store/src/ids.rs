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
