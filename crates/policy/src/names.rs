//! Environment-variable and secret names, parsed once and trusted afterwards.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest name Tollgate accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The name prefix reserved for variables Tollgate itself injects or reads
/// (`TOLLGATE_URL`, `TOLLGATE_UPSTREAM_<NAME>_KEY`, ...). No secret may use it,
/// which is what keeps a platform upstream key name out of every plan (I1).
pub const RESERVED_PREFIX: &str = "TOLLGATE_";

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The string is empty.
    #[error("a name cannot be empty")]
    Empty,
    /// The string is longer than [`MAX_NAME_BYTES`].
    #[error("a name is at most {MAX_NAME_BYTES} bytes; this one has {0}")]
    TooLong(usize),
    /// The string contains lower-case letters. Names are never upper-cased for the caller.
    #[error(
        "`{0}` has lower-case letters; names are case-sensitive and must already be upper case (did you mean `{1}`?)"
    )]
    LowerCase(String, String),
    /// The string does not match `[A-Z_][A-Z0-9_]*`.
    #[error("`{0}` is not a valid name: use upper-case letters, digits and `_`, not starting with a digit")]
    Invalid(String),
    /// The name is in Tollgate's reserved namespace.
    #[error("`{0}` is reserved: names starting with `{RESERVED_PREFIX}` belong to Tollgate")]
    Reserved(String),
}

fn check_env_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(s.len()));
    }
    let mut bytes = s.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    if s.bytes().any(|b| b.is_ascii_lowercase()) && check_env_name(&upper).is_ok() {
        return Err(NameError::LowerCase(s.to_owned(), upper));
    }
    Err(NameError::Invalid(truncate_for_message(s)))
}

/// Keeps error messages bounded when someone sends a megabyte of garbage as a name.
fn truncate_for_message(s: &str) -> String {
    crate::text::truncate(s, 64)
}

/// An environment-variable name: `[A-Z_][A-Z0-9_]*`, 1 to 128 bytes.
///
/// Shared (`Arc<str>`): names are copied into every plan, and a clone must not allocate.
///
/// Used for registry fields (`auth_env`, `base_url_env`, `key_env`, ...) and for the
/// names Tollgate injects. Secrets use the stricter [`SecretName`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(std::sync::Arc<str>);

impl EnvName {
    /// Parses `s`, rejecting lower case (never upper-casing it) and anything outside
    /// `[A-Z_][A-Z0-9_]*` or longer than 128 bytes.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_env_name(s)?;
        Ok(Self(std::sync::Arc::from(s)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name is in Tollgate's reserved `TOLLGATE_` namespace.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX)
    }

    /// A name known to be valid at compile time; used for Tollgate's own constants.
    pub(crate) fn from_static(s: &'static str) -> Self {
        debug_assert!(check_env_name(s).is_ok(), "invalid static name {s}");
        Self(std::sync::Arc::from(s))
    }
}

/// The name of a secret: a valid [`EnvName`] outside the reserved `TOLLGATE_` namespace.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(EnvName);

impl SecretName {
    /// Parses `s` as an [`EnvName`] and rejects the reserved `TOLLGATE_` prefix.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let name = EnvName::parse(s)?;
        if name.is_reserved() {
            return Err(NameError::Reserved(s.to_owned()));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as an environment-variable name.
    pub fn as_env(&self) -> &EnvName {
        &self.0
    }
}

impl TryFrom<&str> for EnvName {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for SecretName {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

/// The pattern a [`SecretName`] matches, for the OpenAPI document: `[A-Z_][A-Z0-9_]*`, not
/// starting with [`RESERVED_PREFIX`]. Built from the same constants [`SecretName::parse`] checks.
pub fn secret_name_pattern() -> String {
    format!("^(?!{RESERVED_PREFIX})[A-Z_][A-Z0-9_]*$")
}

#[cfg(feature = "utoipa")]
impl utoipa::PartialSchema for SecretName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(secret_name_pattern()))
            .min_length(Some(1))
            .max_length(Some(MAX_NAME_BYTES))
            .description(Some(format!(
                "A secret name: upper-case letters, digits and `_`, not starting with a digit nor `{RESERVED_PREFIX}`"
            )))
            .into()
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::ToSchema for SecretName {}

impl std::str::FromStr for SecretName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::str::FromStr for EnvName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::borrow::Borrow<str> for EnvName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SecretName {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for EnvName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for SecretName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_upper_case_digits_and_underscores() {
        for ok in ["A", "_", "MINIMAX_API_KEY", "_X1", "A1_2"] {
            assert_eq!(EnvName::parse(ok).map(|n| n.as_str().to_owned()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn rejects_lower_case_without_upper_casing_it() {
        let err = SecretName::parse("minimax_api_key");
        assert_eq!(err, Err(NameError::LowerCase("minimax_api_key".into(), "MINIMAX_API_KEY".into())));
        assert!(matches!(EnvName::parse("Minimax"), Err(NameError::LowerCase(..))));
    }

    #[test]
    fn rejects_invalid_shapes() {
        assert_eq!(EnvName::parse(""), Err(NameError::Empty));
        for bad in ["1ABC", "A-B", "A B", "É", "A.B", "=", "A=B"] {
            assert!(matches!(EnvName::parse(bad), Err(NameError::Invalid(_))), "{bad} should be invalid");
        }
    }

    #[test]
    fn length_limit_is_128_bytes() {
        let ok = "A".repeat(MAX_NAME_BYTES);
        assert!(EnvName::parse(&ok).is_ok());
        let long = "A".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(EnvName::parse(&long), Err(NameError::TooLong(129)));
    }

    #[test]
    fn secret_names_cannot_use_the_reserved_prefix() {
        assert!(EnvName::parse("TOLLGATE_UPSTREAM_ANTHROPIC_KEY").is_ok());
        assert_eq!(
            SecretName::parse("TOLLGATE_UPSTREAM_ANTHROPIC_KEY"),
            Err(NameError::Reserved("TOLLGATE_UPSTREAM_ANTHROPIC_KEY".into()))
        );
        assert!(SecretName::parse("TOLLGATEX").is_ok());
    }

    #[test]
    fn long_garbage_is_truncated_in_messages() {
        let garbage = "-".repeat(10_000);
        let msg = EnvName::parse(&garbage[..MAX_NAME_BYTES]).err().map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.len() < 200));
        assert_eq!(truncate_for_message("short"), "short");
        assert_eq!(truncate_for_message(&"x".repeat(70)), format!("{}...", "x".repeat(64)));
        // A multi-byte character straddling the limit is cut before it, never inside it.
        let s = format!("{}é{}", "a".repeat(63), "b".repeat(10));
        assert_eq!(truncate_for_message(&s), format!("{}...", "a".repeat(63)));
    }

    #[test]
    fn display_and_debug_show_the_name() {
        let n = SecretName::parse("MINIMAX_API_KEY").unwrap();
        assert_eq!(format!("{n} {n:?}"), "MINIMAX_API_KEY \"MINIMAX_API_KEY\"");
        let e = EnvName::parse("TOLLGATE_URL").unwrap();
        assert_eq!(format!("{e} {e:?}"), "TOLLGATE_URL \"TOLLGATE_URL\"");
        assert!(e.is_reserved() && !n.as_env().is_reserved());
        assert_eq!("A_B".parse::<SecretName>().map(|n| n.as_str().to_owned()), Ok("A_B".to_owned()));
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"MINIMAX_API_KEY\"");
        assert!(serde_json::from_str::<SecretName>("\"lower\"").is_err());
    }
}
