//! Identifiers of orgs and workspaces, parsed once where they enter (an HTTP path, a CLI
//! argument, a database row) so that an org id cannot be passed where a workspace id is meant.
//!
//! An id is 1 to 64 ASCII letters, digits, `-` or `_` (the store mints UUIDs). The rule keeps
//! ids safe in URL path segments and in `:`-separated notification payloads.

use std::fmt;
use std::str::FromStr;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not an id. Carries no part of the input (it may be anything a client sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what} id")]
pub struct IdError {
    what: &'static str,
}

impl IdError {
    /// What kind of id was expected: `"org"` or `"workspace"`.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// Whether `s` is a valid id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_`. Other
/// crates' id types (the store's lease and request ids) follow the same rule.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses `s`: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Self::try_from(s.to_owned())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                if is_valid(&s) { Ok(Self(s)) } else { Err(IdError { what: $what }) }
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
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

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// The id of an org (a tenant).
    OrgId,
    "org"
);
id_type!(
    /// The id of a workspace.
    WorkspaceId,
    "workspace"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_the_allowed_alphabet() {
        for ok in ["3f2b8c1e-9d4a-4e57-b8a2-0c6d1e9f7a31", "a", "A_b-9", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(OrgId::parse(ok).map(|id| id.to_string()), Ok(ok.to_owned()));
            assert_eq!(WorkspaceId::parse(ok).as_ref().map(AsRef::as_ref), Ok(ok));
        }
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        for bad in ["", long.as_str(), "a:b", "a/b", "a b", "é", "*", "a\n"] {
            assert_eq!(OrgId::parse(bad), Err(IdError { what: "org" }), "{bad:?}");
            assert_eq!(bad.parse::<WorkspaceId>().map_err(|e| e.what()), Err("workspace"), "{bad:?}");
        }
    }

    #[test]
    fn serde_is_the_bare_string_and_validates() -> Result<(), serde_json::Error> {
        let id = OrgId::parse("org-1").map_err(serde::de::Error::custom)?;
        assert_eq!(serde_json::to_string(&id)?, r#""org-1""#);
        assert_eq!(serde_json::from_str::<OrgId>(r#""org-1""#)?, id);
        assert!(serde_json::from_str::<WorkspaceId>(r#""a:b""#).is_err());
        Ok(())
    }
}
