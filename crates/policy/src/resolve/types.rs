//! The inputs and outputs of resolution: the billing vocabulary, the resolution object of
//! DESIGN.md section 9 and the workspace, org and deployment inputs.

use serde::{Deserialize, Serialize};

use super::non_empty;
use super::plan::EnvPlan;
use super::public_url::PublicUrl;
use crate::registry::Registry;
use crate::secret::Origin;

/// Who pays for a workspace's LLM calls.
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// Through the Tollgate proxy on the platform's key, charged to the org's credit.
    PlatformManaged,
    /// Directly to the provider with the customer's own key.
    Byok,
    /// No LLM calls at all.
    Disabled,
}

impl BillingMode {
    /// Parses a wire name exactly (no case folding).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The wire name (the serde name), from the one table the derive keeps.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What kind of workspace this is.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceKind {
    /// An ordinary agent workspace.
    #[default]
    Agent,
    /// The platform's own concierge agent: pinned to the platform unless told otherwise.
    Concierge,
}

impl WorkspaceKind {
    /// Parses a wire name exactly (no case folding).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The wire name (the serde name), from the one table the derive keeps.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where the resolved mode came from.
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModeSource {
    /// The workspace's own `billing_mode`.
    Explicit,
    /// A workspace secret `LLM_PROVIDER`.
    StoredProvider,
    /// A concierge pinned to the platform.
    ConciergePin,
    /// The provider derived from the effective model.
    DerivedProvider,
    /// The org's `default_billing_mode`.
    OrgDefault,
    /// Nothing decided: `platform_managed` by default.
    Fallback,
}

impl ModeSource {
    /// The wire name (the serde name), from the one table the derive keeps.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where the effective model came from.
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
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// The provision request's `model`.
    Request,
    /// The workspace's `model`.
    Workspace,
    /// A `MODEL` secret (workspace, then org).
    Secret,
}

impl ModelSource {
    /// The wire name (the serde name), from the one table the derive keeps.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The stable error codes of a failed resolution (answered 422 by provision and the pull).
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
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "utoipa", schema(as = ResolutionCode))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// `LLM_PROVIDER` names no provider of the registry for this runtime.
    UnknownProvider,
    /// No provider serves the effective model for this runtime.
    UnknownModel,
    /// The explicit billing mode contradicts the provider.
    ModeProviderConflict,
    /// BYOK (or platform-managed without a platform provider) with no provider to honour.
    NoProvider,
    /// BYOK with no credential of the provider's `auth_env` left.
    MissingByokCredential,
    /// A stored secret could not be decrypted.
    SecretUnreadable,
    /// The workspace's runtime is not in the registry (e.g. after `--providers` changed).
    UnknownRuntime,
}

impl ErrorCode {
    /// The wire name (the serde name), from the one table the derive keeps.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name exactly (no case folding).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// A failed resolution: a stable code and a message a person can act on (never a value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ResolutionError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong and how to fix it (never a value).
    pub message: String,
}

/// A credential kept in (or injected into) the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CredentialRef {
    /// The env name.
    pub name: String,
    /// `org`, `workspace` or `tollgate`.
    pub origin: Origin,
    /// Why it was kept; for people (`explain --format text`), not part of the JSON shape.
    #[serde(skip)]
    pub reason: String,
}

/// A credential or routing name the plan dropped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Dropped {
    /// The env name.
    pub name: String,
    /// `org` or `workspace`.
    pub origin: Origin,
    /// Why it was dropped.
    pub reason: String,
}

/// The resolution object of DESIGN.md section 9, field for field. Holds no secret value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Resolution {
    /// The workspace resolved.
    pub workspace_id: String,
    /// The billing mode; `null` (`None`) exactly when `error` is set.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub resolved_mode: Option<BillingMode>,
    /// Where the mode came from; `null` (`None`) when `error` is set.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub source: Option<ModeSource>,
    /// The provider id, where one was determined (also on some errors, to explain them).
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub provider: Option<String>,
    /// The effective model.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub effective_model: Option<String>,
    /// Where the effective model came from.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub model_source: Option<ModelSource>,
    /// The error, when resolution failed.
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub error: Option<ResolutionError>,
    /// LLM credentials in the plan, with their origin.
    pub credentials: Vec<CredentialRef>,
    /// LLM credentials and routing names left out, with the reason.
    pub dropped: Vec<Dropped>,
    /// One line per decision, in order.
    pub trace: Vec<String>,
}

/// The result of [`resolve`](super::resolve()): either a resolution with its env plan, or a failed resolution
/// and no plan. A caller cannot hold an error and a plan at once.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// Resolution succeeded: `resolution.error` is `None`, `resolved_mode` is set.
    Planned {
        /// The resolution object.
        resolution: Resolution,
        /// The env plan.
        plan: EnvPlan,
    },
    /// Resolution failed: `resolution.error` is `Some`, `resolved_mode` is `None`, no plan.
    Failed {
        /// The resolution object, with `error` set.
        resolution: Resolution,
    },
}

impl Resolved {
    /// The resolution object (the wire JSON of DESIGN.md section 9), either way.
    pub fn resolution(&self) -> &Resolution {
        match self {
            Self::Planned { resolution, .. } | Self::Failed { resolution } => resolution,
        }
    }

    /// The resolution object, by value, dropping any plan.
    pub fn into_resolution(self) -> Resolution {
        match self {
            Self::Planned { resolution, .. } | Self::Failed { resolution } => resolution,
        }
    }

    /// The env plan; `Some` exactly when resolution succeeded.
    pub fn plan(&self) -> Option<&EnvPlan> {
        match self {
            Self::Planned { plan, .. } => Some(plan),
            Self::Failed { .. } => None,
        }
    }

    /// The error; `Some` exactly when resolution failed.
    pub fn error(&self) -> Option<&ResolutionError> {
        self.resolution().error.as_ref()
    }

    /// `Ok((resolution, plan))` on success, `Err(resolution)` (with `error` set) on failure.
    pub fn into_result(self) -> Result<(Resolution, EnvPlan), Box<Resolution>> {
        match self {
            Self::Planned { resolution, plan } => Ok((resolution, plan)),
            Self::Failed { resolution } => Err(Box::new(resolution)),
        }
    }
}

/// The deployment-wide inputs of resolution: the registry and the public URL.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The provider registry in force.
    pub registry: &'a Registry,
    /// The URL workspaces use to reach this Tollgate.
    pub public_url: &'a PublicUrl,
}

/// The stored state of a workspace, as resolution needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceSpec {
    /// The workspace id.
    pub id: String,
    /// The runtime id (validated against the registry by `resolve`).
    pub runtime: String,
    /// Agent or concierge.
    pub kind: WorkspaceKind,
    /// The configured model, if any.
    pub model: Option<String>,
    /// The explicit billing mode, if any.
    pub billing_mode: Option<BillingMode>,
}

impl WorkspaceSpec {
    /// The workspace as stored after a successful provision with `request_model`: a
    /// non-empty request model becomes the workspace's model, so that the read endpoint and
    /// the pull resolve exactly as the provision did (invariant I2).
    #[must_use]
    pub fn after_provision(&self, request_model: Option<&str>) -> Self {
        let mut next = self.clone();
        if let Some(m) = non_empty(request_model) {
            next.model = Some(m.to_owned());
        }
        next
    }
}

/// The org-level input of resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrgSpec {
    /// The org's default billing mode.
    pub default_billing_mode: Option<BillingMode>,
}
