//! Secret values, their scope and origin, and the merge of org and workspace secrets.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::names::SecretName;

/// The largest secret value Tollgate stores, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Where a credential in a resolution came from.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An org-scope secret, inherited by every workspace of the org.
    Org,
    /// A secret set on the workspace itself.
    Workspace,
    /// A value Tollgate injected (the workspace token, the proxy URL, ...).
    Tollgate,
}

impl Origin {
    /// The lower-case word used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The scope a secret is stored under.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Inherited by every workspace of the org.
    Org,
    /// Set on one workspace.
    Workspace,
}

impl Scope {
    /// The lower-case word used in storage and messages.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn origin(self) -> Origin {
        match self {
            Scope::Org => Origin::Org,
            Scope::Workspace => Origin::Workspace,
        }
    }
}

/// Why a string is not an acceptable secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Longer than [`MAX_VALUE_BYTES`]. The message carries the size, never the value.
    #[error("a secret value is at most {MAX_VALUE_BYTES} bytes; this one has {0}")]
    TooLong(usize),
    /// Contains a NUL byte, which no process environment can carry.
    #[error("a secret value cannot contain a NUL byte")]
    Nul,
}

/// A secret value: at most 64 KiB, no NUL, zeroized on drop, redacted in `Debug`.
///
/// Shared (`Arc`): a plan holds the same value as the merged secrets without copying it;
/// the bytes are zeroized when the last holder drops them.
#[derive(Clone)]
pub struct SecretValue(std::sync::Arc<SecretString>);

impl SecretValue {
    /// Accepts `value` if it fits the limits. The error never contains the value.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value: String = value.into();
        if value.len() > MAX_VALUE_BYTES {
            let len = value.len();
            zeroize::Zeroize::zeroize(&mut { value });
            return Err(ValueError::TooLong(len));
        }
        if value.contains('\0') {
            zeroize::Zeroize::zeroize(&mut { value });
            return Err(ValueError::Nul);
        }
        Ok(Self(std::sync::Arc::new(SecretString::from(value))))
    }

    /// The value. Call sites are few and audited: the plan renderer, the store's encryption.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the value is the empty string (an empty credential satisfies nothing).
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }

    /// The value as a `secrecy` string.
    pub fn as_secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A stored secret as the resolver sees it: a value, or a ciphertext that did not decrypt.
///
/// An unreadable secret is never treated as absent: it makes resolution fail with
/// `SECRET_UNREADABLE`, because "absent" could silently change who pays.
#[derive(Clone, Debug)]
pub enum SecretState {
    /// The decrypted value.
    Value(SecretValue),
    /// The stored ciphertext did not decrypt (wrong master key, moved or corrupted row).
    Unreadable,
}

/// One merged secret: its state and where it came from.
#[derive(Clone, Debug)]
pub struct MergedSecret {
    /// `Org` or `Workspace`.
    pub origin: Origin,
    /// The value or its unreadability.
    pub state: SecretState,
}

impl MergedSecret {
    /// The value if it is readable.
    pub fn value(&self) -> Option<&SecretValue> {
        match &self.state {
            SecretState::Value(v) => Some(v),
            SecretState::Unreadable => None,
        }
    }

    /// Whether the secret is readable and non-empty.
    pub fn is_present(&self) -> bool {
        self.value().is_some_and(|v| !v.is_empty())
    }
}

/// The secrets of a workspace after the merge: a workspace secret overrides the org secret
/// of the same name, and each entry remembers its origin.
#[derive(Clone, Debug, Default)]
pub struct MergedSecrets {
    entries: BTreeMap<SecretName, MergedSecret>,
}

impl MergedSecrets {
    /// Merges `org` and `workspace` secrets; on a name clash the workspace one wins.
    pub fn merge(
        org: impl IntoIterator<Item = (SecretName, SecretState)>,
        workspace: impl IntoIterator<Item = (SecretName, SecretState)>,
    ) -> Self {
        let mut merged = Self::default();
        merged.extend(Scope::Org, org);
        merged.extend(Scope::Workspace, workspace);
        merged
    }

    /// Adds the secrets of one scope; a workspace secret replaces an org one, never the reverse.
    pub fn extend(&mut self, scope: Scope, secrets: impl IntoIterator<Item = (SecretName, SecretState)>) {
        for (name, state) in secrets {
            let entry = MergedSecret { origin: scope.origin(), state };
            match scope {
                Scope::Workspace => {
                    self.entries.insert(name, entry);
                }
                Scope::Org => {
                    self.entries.entry(name).or_insert(entry);
                }
            }
        }
    }

    /// The merged secret called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&MergedSecret> {
        self.entries.get(name)
    }

    /// All merged secrets, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&SecretName, &MergedSecret)> {
        self.entries.iter()
    }

    /// How many secrets there are after the merge.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SecretName {
        SecretName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn val(s: &str) -> SecretState {
        SecretState::Value(SecretValue::parse(s).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn workspace_overrides_org_and_remembers_origin() {
        let merged = MergedSecrets::merge(
            [(name("A"), val("org-a")), (name("B"), val("org-b"))],
            [(name("A"), val("ws-a")), (name("C"), val("ws-c"))],
        );
        let a = merged.get("A");
        assert_eq!(a.map(|s| s.origin), Some(Origin::Workspace));
        assert_eq!(a.and_then(|s| s.value()).map(SecretValue::expose), Some("ws-a"));
        assert_eq!(merged.get("B").map(|s| s.origin), Some(Origin::Org));
        assert_eq!(merged.get("C").map(|s| s.origin), Some(Origin::Workspace));
        assert_eq!(merged.len(), 3);
        assert!(!merged.is_empty());
    }

    #[test]
    fn org_never_overrides_workspace_whatever_the_order() {
        let mut merged = MergedSecrets::default();
        merged.extend(Scope::Workspace, [(name("A"), val("ws"))]);
        merged.extend(Scope::Org, [(name("A"), val("org"))]);
        assert_eq!(merged.get("A").map(|s| s.origin), Some(Origin::Workspace));
    }

    #[test]
    fn values_are_limited_and_never_echoed() {
        assert!(SecretValue::parse("x".repeat(MAX_VALUE_BYTES)).is_ok());
        let err = SecretValue::parse("s".repeat(MAX_VALUE_BYTES + 1)).err();
        assert_eq!(err, Some(ValueError::TooLong(MAX_VALUE_BYTES + 1)));
        // The documented limit is 64 KiB exactly.
        assert!(SecretValue::parse("x".repeat(65_536)).is_ok());
        assert!(SecretValue::parse("x".repeat(65_537)).is_err());
        assert!(!err.map(|e| e.to_string()).unwrap_or_default().contains("sss"));
        assert_eq!(SecretValue::parse("a\0b").err(), Some(ValueError::Nul));
    }

    #[test]
    fn debug_output_redacts_values() {
        let v = SecretValue::parse("sk-very-secret").unwrap_or_else(|e| panic!("{e}"));
        let merged = MergedSecrets::merge([(name("K"), SecretState::Value(v.clone()))], []);
        let dbg = format!("{v:?} {merged:?}");
        assert!(!dbg.contains("sk-very-secret"), "{dbg}");
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted>)", "says what it hides");
        assert!(!merged.is_empty() && merged.len() == 1);
        assert!(MergedSecrets::merge([], []).is_empty());
    }

    #[test]
    fn presence_means_readable_and_non_empty() {
        let merged = MergedSecrets::merge(
            [(name("E"), val("")), (name("U"), SecretState::Unreadable), (name("P"), val("p"))],
            [],
        );
        assert_eq!(merged.get("E").map(MergedSecret::is_present), Some(false));
        assert_eq!(merged.get("U").map(MergedSecret::is_present), Some(false));
        assert_eq!(merged.get("P").map(MergedSecret::is_present), Some(true));
        assert_eq!(Origin::Tollgate.to_string(), "tollgate");
        assert_eq!(Scope::Org.as_str(), "org");
    }
}
