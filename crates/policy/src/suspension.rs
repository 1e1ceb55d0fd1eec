//! Suspension (DESIGN.md section 14): an org or a workspace stopped by an admin (or an alarm),
//! with a reason. Decided here, once: whether a workspace is suspended, and whose reason the
//! refusal names. The proxy and the control plane only carry the decision out.

use std::fmt;

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Why an org or a workspace is suspended: trimmed, 1 to [`MAX_REASON_CHARS`] characters, no
/// control characters (it is shown in agents' error messages and in logs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct SuspensionReason(String);

/// Why a text is not a [`SuspensionReason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Empty or only white space.
    #[error("the reason must not be empty")]
    Empty,
    /// Over [`MAX_REASON_CHARS`] characters.
    #[error("the reason must be at most {MAX_REASON_CHARS} characters")]
    TooLong,
    /// Holds a control character (a newline, say).
    #[error("the reason must not contain control characters")]
    ControlCharacter,
}

impl SuspensionReason {
    /// Parses `text`: surrounding white space is dropped; what remains must be 1 to
    /// [`MAX_REASON_CHARS`] characters without control characters.
    ///
    /// # Errors
    /// The [`ReasonError`] that applies.
    pub fn parse(text: &str) -> Result<Self, ReasonError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ReasonError::Empty);
        }
        if text.chars().count() > MAX_REASON_CHARS {
            return Err(ReasonError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(ReasonError::ControlCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SuspensionReason {
    type Error = ReasonError;

    fn try_from(s: String) -> Result<Self, ReasonError> {
        Self::parse(&s)
    }
}

impl fmt::Display for SuspensionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who suspended an org or a workspace: an admin, or a drain alarm (section 15).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum SuspendedBy {
    /// An admin, through the API or `tollgate admin`.
    Admin,
    /// A drain alarm with action `suspend`: the text `alarm:<rule key>` (see
    /// [`crate::alarms::AlarmRule::key`]), built only by [`SuspendedBy::alarm`] or
    /// [`SuspendedBy::parse`].
    Alarm(String),
}

impl SuspendedBy {
    /// The prefix of an alarm's text.
    const ALARM_PREFIX: &'static str = "alarm:";

    /// The alarm whose rule is `rule`.
    pub fn alarm(rule: &crate::alarms::AlarmRule) -> Self {
        Self::Alarm(format!("{}{}", Self::ALARM_PREFIX, rule.key()))
    }

    /// The stored and wire text: `admin`, or `alarm:<rule key>`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::Alarm(text) => text,
        }
    }

    /// The inverse of [`SuspendedBy::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            _ if s.len() > Self::ALARM_PREFIX.len() && s.starts_with(Self::ALARM_PREFIX) && s.len() <= 200 => {
                Some(Self::Alarm(s.to_owned()))
            }
            _ => None,
        }
    }
}

/// A suspension in force on an org or a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// Why.
    pub reason: SuspensionReason,
    /// Since when, in milliseconds since the Unix epoch (passed in: this crate reads no clock).
    pub since_ms: i64,
    /// By whom.
    pub by: SuspendedBy,
}

/// Which suspension stops a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspendedScope {
    /// Its org's: it covers all the org's workspaces.
    Org,
    /// Its own.
    Workspace,
}

/// The decision that a workspace may not be served: which suspension, and the message that
/// names its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspensionRefusal<'a> {
    /// The suspension that applies.
    pub scope: SuspendedScope,
    /// The suspension itself.
    pub suspension: &'a Suspension,
}

impl SuspensionRefusal<'_> {
    /// The refusal's message for the agent, naming the reason.
    pub fn message(&self) -> String {
        match self.scope {
            SuspendedScope::Org => format!("this workspace's org is suspended: {}", self.suspension.reason),
            SuspendedScope::Workspace => format!("this workspace is suspended: {}", self.suspension.reason),
        }
    }
}

/// Decides whether a workspace whose org carries `org` and which itself carries `workspace`
/// may be served: `None` when neither is suspended. When both are, the org's suspension is the
/// one named, since resuming the workspace alone would not lift it.
pub fn suspension_in_force<'a>(
    org: Option<&'a Suspension>,
    workspace: Option<&'a Suspension>,
) -> Option<SuspensionRefusal<'a>> {
    org.map(|s| SuspensionRefusal { scope: SuspendedScope::Org, suspension: s })
        .or_else(|| workspace.map(|s| SuspensionRefusal { scope: SuspendedScope::Workspace, suspension: s }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn suspension(reason: &str) -> Suspension {
        match SuspensionReason::parse(reason) {
            Ok(reason) => Suspension { reason, since_ms: 1, by: SuspendedBy::Admin },
            Err(e) => panic!("{reason}: {e}"),
        }
    }

    #[test]
    fn reasons_are_trimmed_non_empty_bounded_and_single_line() {
        assert_eq!(SuspensionReason::parse("  unpaid invoice ").map(|r| r.0), Ok("unpaid invoice".to_owned()));
        assert_eq!(SuspensionReason::parse(" \t "), Err(ReasonError::Empty));
        assert_eq!(SuspensionReason::parse(""), Err(ReasonError::Empty));
        assert_eq!(SuspensionReason::parse("a\nb"), Err(ReasonError::ControlCharacter));
        let longest = "é".repeat(MAX_REASON_CHARS);
        assert!(SuspensionReason::parse(&longest).is_ok(), "the bound counts characters, not bytes");
        assert_eq!(SuspensionReason::parse(&format!("{longest}x")), Err(ReasonError::TooLong));
    }

    #[test]
    fn by_round_trips_through_its_text() {
        assert_eq!(SuspendedBy::parse(SuspendedBy::Admin.as_str()), Some(SuspendedBy::Admin));
        assert_eq!(SuspendedBy::parse("root"), None);
        let alarm = SuspendedBy::alarm(&crate::alarms::AlarmRule::DEFAULT);
        assert_eq!(alarm.as_str(), "alarm:w60:max-:x5000:min5000000:notify");
        assert_eq!(SuspendedBy::parse(alarm.as_str()), Some(alarm));
        assert_eq!(SuspendedBy::parse("alarm:"), None);
    }

    #[test]
    fn nothing_suspended_is_served_and_either_suspension_refuses() {
        let org = suspension("unpaid invoice");
        let ws = suspension("runaway agent");
        assert_eq!(suspension_in_force(None, None), None);
        let refusal = suspension_in_force(None, Some(&ws));
        assert_eq!(
            refusal.as_ref().map(SuspensionRefusal::message).as_deref(),
            Some("this workspace is suspended: runaway agent")
        );
        let refusal = suspension_in_force(Some(&org), None);
        assert_eq!(
            refusal.as_ref().map(SuspensionRefusal::message).as_deref(),
            Some("this workspace's org is suspended: unpaid invoice")
        );
    }

    #[test]
    fn the_orgs_reason_wins_when_both_are_suspended() {
        let org = suspension("unpaid invoice");
        let ws = suspension("runaway agent");
        let refusal = suspension_in_force(Some(&org), Some(&ws));
        assert_eq!(refusal.map(|r| r.scope), Some(SuspendedScope::Org));
    }

    proptest! {
        #[test]
        fn a_parsed_reason_is_what_the_message_names(text in "\\PC{0,600}") {
            match SuspensionReason::parse(&text) {
                Ok(reason) => {
                    prop_assert_eq!(reason.as_str(), text.trim());
                    let s = Suspension { reason, since_ms: 0, by: SuspendedBy::Admin };
                    let refusal = suspension_in_force(None, Some(&s));
                    let message = refusal.map(|r| r.message()).unwrap_or_default();
                    prop_assert!(message.ends_with(text.trim()));
                }
                Err(ReasonError::Empty) => prop_assert!(text.trim().is_empty()),
                Err(ReasonError::TooLong) => prop_assert!(text.trim().chars().count() > MAX_REASON_CHARS),
                Err(ReasonError::ControlCharacter) => prop_assert!(text.chars().any(char::is_control)),
            }
        }
    }
}
