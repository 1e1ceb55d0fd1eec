//! The pure policy core of Tollgate.
//!
//! Every decision about billing modes and credentials is made here, once: the provider
//! registry, the resolution of a workspace's mode, provider and credentials, the env plan,
//! and the runtime normalisation `tollgate exec` applies. This crate does no IO, spawns no
//! task, reads no clock and draws no random number; callers pass everything in.

pub mod access;
pub mod alarms;
pub mod audit;
pub mod budget;
pub mod codex;
pub mod events;
pub mod ids;
pub mod json;
pub mod limits;
pub mod money;
pub mod names;
pub mod normalise;
pub mod pricing;
pub mod rate;
pub mod registry;
pub mod resolve;
pub mod scenario;
pub mod secret;
pub mod suspension;
pub mod text;
pub mod token;
pub mod webhook;

pub use access::ModelRefusal;
pub use alarms::{AlarmAction, AlarmRule, AlarmRuleSpec, AlarmRules};
pub use events::{Actor, EventKind};
pub use ids::{IdError, OrgId, WorkspaceId};
pub use limits::{LimitError, Limits, LimitsPatch};
pub use money::{Micros, PicoPerToken, Price, ServiceTier, Usage};
pub use names::{EnvName, NameError, SecretName};
pub use pricing::{Charge, Markup, MarkupError, Pricing};
pub use registry::{Protocol, Provider, Registry, RegistryError, RegistryErrors, Runtime};
pub use resolve::{
    BillingMode, Context, CredentialRef, Dropped, EnvPlan, ErrorCode, ModeSource, ModelSource, OrgSpec, PlanValue,
    PublicUrl, Resolution, ResolutionError, Resolved, WorkspaceKind, WorkspaceSpec, resolve,
};
pub use secret::{MergedSecrets, Origin, Scope, SecretState, SecretValue};
pub use suspension::{SuspendedBy, Suspension, SuspensionReason};
pub use token::WorkspaceToken;
pub use webhook::{WebhookUrl, WebhookUrlError};
