//! The JSON shapes of the API: request bodies (unknown fields rejected), response bodies and
//! the error body. Shared with `tollgate admin`, which sends and reads the same types, so the
//! client cannot drift from the server.
//!
//! Modes and kinds arrive as strings so that a bad one is answered with its own code
//! (`INVALID_BILLING_MODE`, `INVALID_KIND`) rather than `INVALID_JSON`.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tollgate_policy::json::{integral, opt_integral};
use tollgate_policy::{AlarmRuleSpec, BillingMode, Resolution, WorkspaceKind, WorkspaceToken};
use utoipa::{IntoParams, ToSchema};

/// `Some(None)` for an explicit `null`, `None` for an absent field (with `#[serde(default)]`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A nested object field (with `#[serde(default)]`; `null` is `None`): serde's derive would
/// also take a JSON array as the struct's fields in order, which the schema does not allow.
///
/// The object is read in place (not through a `serde_json::Value`), so an error inside it
/// keeps its path (`limits.requests_per_minute`) for the `INVALID_JSON` message.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct ObjectOnly<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    d.deserialize_option(ObjectOnly(std::marker::PhantomData))
}

/// A tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Org {
    /// UUID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The mode of workspaces with no provider; `null` when unset.
    #[schema(required = true)]
    pub default_billing_mode: Option<BillingMode>,
    /// Balance in micro-USD.
    pub credit_micros: i64,
    /// The price plan: the org is charged `ceil(provider price x (100 + markup_percent) / 100)`
    /// (DESIGN.md section 20); 0 by default.
    #[serde(default)]
    pub markup_percent: i64,
    /// The suspension in force, covering all the org's workspaces; `null` when none.
    #[schema(required = true)]
    pub suspended: Option<Suspended>,
    /// Spend controls (section 14); `allowed_models` narrows every workspace of the org.
    pub limits: Limits,
    /// Where the org's alarms and budgets are notified besides the global webhook (section
    /// 15), redacted: the URL is a credential, so only its scheme and host are shown
    /// (`https://hooks.slack.com/…`); `null` when none.
    #[serde(default)]
    #[schema(required = true)]
    pub alert_webhook_url: Option<String>,
    /// Drain alarm rules (section 15); `null` when none are set (the default rule applies),
    /// `[]` when turned off.
    #[serde(default)]
    #[schema(required = true)]
    pub alarms: Option<Vec<AlarmRuleSpec>>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&tollgate_store::Org> for Org {
    fn from(o: &tollgate_store::Org) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name.clone(),
            default_billing_mode: o.default_billing_mode,
            credit_micros: o.credit_micros.get(),
            markup_percent: o.markup_percent.percent(),
            suspended: o.suspended.as_ref().map(Suspended::from),
            limits: Limits::from(&o.limits),
            alert_webhook_url: o.alert_webhook_url.as_ref().map(tollgate_policy::WebhookUrl::redacted),
            alarms: o.alarms.as_ref().map(tollgate_policy::AlarmRules::specs),
            created_at: o.created_at.rfc3339(),
            updated_at: o.updated_at.rfc3339(),
        }
    }
}

/// An agent workspace.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    /// UUID.
    pub id: String,
    /// Owning org.
    pub org_id: String,
    /// Unique within the org.
    pub name: String,
    /// A runtime of the registry.
    pub runtime: String,
    /// The configured model.
    #[schema(required = true)]
    pub model: Option<String>,
    /// The explicit billing mode.
    #[schema(required = true)]
    pub billing_mode: Option<BillingMode>,
    /// `agent` or `concierge`.
    pub kind: WorkspaceKind,
    /// Spend controls (section 14).
    pub limits: Limits,
    /// Drain alarm rules (section 15); `null` when none.
    #[serde(default)]
    #[schema(required = true)]
    pub alarms: Option<Vec<AlarmRuleSpec>>,
    /// The workspace's own suspension in force; `null` when none. Its org's suspension (on
    /// the org) stops it too.
    #[schema(required = true)]
    pub suspended: Option<Suspended>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&tollgate_store::Workspace> for Workspace {
    fn from(w: &tollgate_store::Workspace) -> Self {
        Self {
            id: w.id.to_string(),
            org_id: w.org_id.to_string(),
            name: w.name.clone(),
            runtime: w.runtime.clone(),
            model: w.model.clone(),
            billing_mode: w.billing_mode,
            kind: w.kind,
            limits: Limits::from(&w.limits),
            alarms: w.alarms.as_ref().map(tollgate_policy::AlarmRules::specs),
            suspended: w.suspended.as_ref().map(Suspended::from),
            created_at: w.created_at.rfc3339(),
            updated_at: w.updated_at.rfc3339(),
        }
    }
}

/// An org's or a workspace's `limits` (section 14) as returned: every field, `null` when
/// unset.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Hard budget per UTC day, micro-USD.
    #[schema(required = true)]
    pub budget_micros_per_day: Option<i64>,
    /// Hard budget per UTC calendar month, micro-USD.
    #[schema(required = true)]
    pub budget_micros_per_month: Option<i64>,
    /// Percent of a budget whose crossing is notified.
    #[schema(required = true)]
    pub soft_budget_percent: Option<u8>,
    /// Requests admitted per minute.
    #[schema(required = true)]
    pub requests_per_minute: Option<u64>,
    /// Input plus output tokens per minute.
    #[schema(required = true)]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    #[schema(required = true)]
    pub max_concurrent_requests: Option<u64>,
    /// The platform models it may use (narrowing its runtime's protocol's); `null`: all of them.
    #[schema(required = true)]
    pub allowed_models: Option<Vec<String>>,
}

impl From<&tollgate_policy::Limits> for Limits {
    fn from(l: &tollgate_policy::Limits) -> Self {
        Self {
            budget_micros_per_day: l.budget_micros_per_day.map(|b| b.get()),
            budget_micros_per_month: l.budget_micros_per_month.map(|b| b.get()),
            soft_budget_percent: l.soft_budget_percent.map(|p| p.get()),
            requests_per_minute: l.requests_per_minute.map(|r| r.get()),
            tokens_per_minute: l.tokens_per_minute.map(|r| r.get()),
            max_concurrent_requests: l.max_concurrent_requests.map(|r| r.get()),
            allowed_models: l.allowed_models.clone(),
        }
    }
}

/// A suspension in force (section 14).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Suspended {
    /// Why, as given when suspending.
    pub reason: String,
    /// Since when (RFC 3339): the start of the unbroken suspension.
    pub since: String,
    /// Who suspended it: `admin` (the drain alarms add their own).
    pub by: String,
}

impl From<&tollgate_policy::Suspension> for Suspended {
    fn from(s: &tollgate_policy::Suspension) -> Self {
        Self {
            reason: s.reason.as_str().to_owned(),
            since: tollgate_store::Timestamp(s.since_ms).rfc3339(),
            by: s.by.as_str().to_owned(),
        }
    }
}

/// `POST /admin/orgs/{org}/suspend`, `POST /admin/workspaces/{ws}/suspend`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    /// Why: 1 to 500 characters (trimmed), no control characters. Named in every refusal.
    #[schema(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 500
    )]
    pub reason: String,
}
/// A change to `limits`: absent fields are left as they are, `null` removes one, unknown
/// fields are refused.
pub use tollgate_policy::limits::LimitsInput as PatchLimits;

/// A secret's name and last write; never its value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretMeta {
    /// The name.
    pub name: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&tollgate_store::SecretMeta> for SecretMeta {
    fn from(m: &tollgate_store::SecretMeta) -> Self {
        Self { name: m.name.clone(), updated_at: m.updated_at.rfc3339() }
    }
}

/// An org's balance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Credit {
    /// Balance in micro-USD after the adjustment.
    pub credit_micros: i64,
}

/// `POST /admin/orgs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Unique name: 1 to 200 characters, not blank, no control characters.
    #[schema(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// The mode for workspaces with no provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BillingMode>)]
    pub default_billing_mode: Option<String>,
    /// Initial balance in micro-USD, 0 to 10^15 (default 0).
    #[serde(default, deserialize_with = "opt_integral", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub credit_micros: Option<i64>,
    /// Spend controls (section 14).
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub limits: Option<PatchLimits>,
    /// Where to notify the org's alarms and budgets (section 15): an absolute http(s) URL,
    /// at most 2048 bytes. Never returned whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `tollgate_policy::webhook::WEBHOOK_URL_PATTERN` (the OpenAPI test ties them).
    #[schema(
        pattern = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?(/[!-~]*)?$",
        max_length = 2048
    )]
    pub alert_webhook_url: Option<String>,
    /// Drain alarm rules (section 15), at most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 16)]
    pub alarms: Option<Vec<AlarmRuleSpec>>,
}

/// `PATCH /admin/orgs/{org}`: absent fields are left as they are.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOrg {
    /// New name: 1 to 200 characters, not blank, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: Option<String>,
    /// New default mode; `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BillingMode>)]
    pub default_billing_mode: Option<Option<String>>,
    /// New price plan: an integer greater than -100 and at most 1000 (percent over the
    /// provider's price; negative for a discount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>, minimum = -99, maximum = 1000)]
    pub markup_percent: Option<serde_json::Number>,
    /// Changes to `limits`.
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub limits: Option<PatchLimits>,
    /// New alert webhook (an absolute http(s) URL, at most 2048 bytes); `null` removes it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    // `tollgate_policy::webhook::WEBHOOK_URL_PATTERN` (the OpenAPI test ties them).
    #[schema(value_type = Option<String>, pattern = r"^https?://(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?(/[!-~]*)?$", max_length = 2048)]
    pub alert_webhook_url: Option<Option<String>>,
    /// New drain alarm rules (section 15), at most 16, replacing the old; `null` removes them.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<AlarmRuleSpec>>, max_items = 16)]
    pub alarms: Option<Option<Vec<AlarmRuleSpec>>>,
}

/// `POST /admin/orgs/{org}/credit`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditAdjustment {
    /// Micro-USD to add (negative to remove); |delta| at most 10^15, and the resulting
    /// balance within ±10^15.
    #[serde(deserialize_with = "integral")]
    #[schema(minimum = -1_000_000_000_000_000_i64, maximum = 1_000_000_000_000_000_i64)]
    pub delta_micros: i64,
    /// Why, for the record: not blank, at most 1000 characters, no NUL.
    #[schema(pattern = r"^[^\x00]*[^\s\x00][^\x00]*$", max_length = 1000)]
    pub reason: String,
    /// Whether a debit may take the balance below zero (else 409 `INSUFFICIENT_CREDIT`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_negative: bool,
}

/// `PUT .../secrets/{name}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value: at most 64 KiB, no NUL. Stored encrypted; never returned by a read.
    #[schema(pattern = r"^[^\x00]*$")]
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret(<redacted>)")
    }
}

/// `POST /admin/workspaces`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Owning org.
    pub org_id: String,
    /// Unique within the org: 1 to 200 characters, not blank, no control characters.
    #[schema(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// A runtime of the registry (`claude-code`, `codex`, `openai-compatible`, ...).
    pub runtime: String,
    /// The configured model: at most 256 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub model: Option<String>,
    /// The explicit billing mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BillingMode>)]
    pub billing_mode: Option<String>,
    /// `agent` (default) or `concierge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkspaceKind>)]
    pub kind: Option<String>,
    /// Spend controls (section 14).
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub limits: Option<PatchLimits>,
    /// Drain alarm rules (section 15), at most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 16)]
    pub alarms: Option<Vec<AlarmRuleSpec>>,
}

/// `PATCH /admin/workspaces/{ws}`: absent fields are left as they are.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWorkspace {
    /// New name: 1 to 200 characters, not blank, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: Option<String>,
    /// New runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// New model (at most 256 characters, no control characters); `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub model: Option<Option<String>>,
    /// New explicit billing mode; `null` clears it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BillingMode>)]
    pub billing_mode: Option<Option<String>>,
    /// New kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WorkspaceKind>)]
    pub kind: Option<String>,
    /// Changes to `limits`.
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub limits: Option<PatchLimits>,
    /// New drain alarm rules (section 15), at most 16, replacing the old; `null` removes them.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<AlarmRuleSpec>>, max_items = 16)]
    pub alarms: Option<Option<Vec<AlarmRuleSpec>>>,
}

/// `GET /admin/workspaces` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWorkspaces {
    /// Only the workspaces of this org (empty or absent: all).
    pub org_id: Option<String>,
}

/// `POST /admin/workspaces/{ws}/provision`; the body may be empty.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// The model to provision with; it becomes the workspace's model when provisioning
    /// succeeds. Empty or absent: the workspace's own. At most 256 characters, no control
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", max_length = 256)]
    pub model: Option<String>,
}

/// A rendered environment: real values, serialised only into the provision and pull
/// responses. Held as `SecretString`s, zeroized on drop.
pub struct Env(pub BTreeMap<String, SecretString>);

impl Serialize for Env {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v.expose_secret())))
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let plain = BTreeMap::<String, String>::deserialize(d)?;
        Ok(Self(plain.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A successful provision. Goes only to the provisioner: it holds real values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = ProvisionResponse)]
pub struct Provisioned {
    /// The resolution.
    pub resolution: Resolution,
    /// The workspace's environment, values included, the new token filled in.
    #[schema(value_type = BTreeMap<String, String>)]
    pub env: Env,
    /// The new workspace token (`tg_ws_...`); the previous one is revoked.
    #[serde(serialize_with = "expose_token", deserialize_with = "parse_token")]
    #[schema(value_type = String)]
    pub token: WorkspaceToken,
}

fn expose_token<S: Serializer>(t: &WorkspaceToken, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.expose())
}

fn parse_token<'de, D: Deserializer<'de>>(d: D) -> Result<WorkspaceToken, D::Error> {
    let text = String::deserialize(d)?;
    WorkspaceToken::parse(&text).map_err(serde::de::Error::custom)
}

/// A successful pull.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = PullResponse)]
pub struct Pulled {
    /// The resolution.
    pub resolution: Resolution,
    /// The workspace's environment, values included.
    #[schema(value_type = BTreeMap<String, String>)]
    pub env: Env,
    /// Codex's configuration (provider endpoint, token variable, wire API, model, or the
    /// ChatGPT login's variable), for a runtime configured the Codex way (DESIGN.md section
    /// 12); absent otherwise. Names and URLs, no value: `tollgate exec` writes it to
    /// `$CODEX_HOME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub codex: Option<tollgate_policy::codex::CodexConfig>,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// The error body `crate::error` serialises (for the OpenAPI document and for clients), and
/// the names the route annotations use for the response types.
pub mod doc {
    use serde::{Deserialize, Serialize};
    pub use tollgate_policy::Resolution;
    use utoipa::ToSchema;

    pub use super::{Provisioned as ProvisionResponse, Pulled as PullResponse};

    /// An error's code and message.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub struct ErrorDetail {
        /// The stable code, e.g. `NOT_FOUND` or, on a 422, the resolution's code.
        pub code: String,
        /// For people; never a secret value or a token.
        pub message: String,
    }

    /// Every error: `{"error":{"code","message"}}`; a 422 from provision or the pull also
    /// carries the failed `resolution`.
    #[derive(Debug, Serialize, Deserialize, ToSchema)]
    pub struct ErrorResponse {
        /// The error.
        pub error: ErrorDetail,
        /// The failed resolution (422 only).
        pub resolution: Option<Resolution>,
    }
}

pub mod audit;

/// `GET /admin/usage` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Only this org's requests.
    pub org_id: Option<String>,
    /// Only this workspace's requests.
    pub workspace_id: Option<String>,
    /// From this time on (RFC 3339 in UTC, or a UTC date `YYYY-MM-DD`), inclusive. The
    /// pattern leaves out 29 February, which is accepted in leap years.
    #[param(
        pattern = r"^(|(19[7-9]\d|[2-9]\d{3})-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z)?)$"
    )]
    pub since: Option<String>,
    /// Up to this time (RFC 3339 in UTC, or a UTC date `YYYY-MM-DD`), exclusive.
    #[param(
        pattern = r"^(|(19[7-9]\d|[2-9]\d{3})-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z)?)$"
    )]
    pub until: Option<String>,
    /// `day` (default), `model`, `workspace` or `session` (the agent's session id; requests
    /// without one under the empty key).
    #[param(pattern = r"^(|day|model|workspace|session)$")]
    pub group_by: Option<String>,
}

/// One group of proxied requests, failed ones included.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    /// The UTC day (`YYYY-MM-DD`), model id, workspace id or agent session id.
    pub key: String,
    /// Proxied requests.
    pub requests: i64,
    /// Of which failed.
    pub errors: i64,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: i64,
    /// Of which written with the 1-hour TTL.
    #[serde(default)]
    pub cache_write_1h_tokens: i64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// What the provider billed the platform for them, micro-USD.
    #[serde(default)]
    pub provider_cost_micros: i64,
    /// Cost charged to the org's credit (the provider's price with the org's markup), micro-USD.
    pub cost_micros: i64,
    /// `cost_micros - provider_cost_micros`: the platform's margin (negative for a discount).
    #[serde(default)]
    pub margin_micros: i64,
    /// Of which charged on an estimate of the content relayed: streams that ended without
    /// their usage (cut, abandoned, timed out).
    #[serde(default)]
    pub estimated_requests: i64,
}

/// `GET /admin/usage` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// One row per group, ordered by key.
    pub rows: Vec<UsageRow>,
}

impl From<tollgate_store::UsageRow> for UsageRow {
    fn from(r: tollgate_store::UsageRow) -> Self {
        Self {
            key: r.key,
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_write_tokens: r.cache_write_tokens,
            cache_write_1h_tokens: r.cache_write_1h_tokens,
            cache_read_tokens: r.cache_read_tokens,
            provider_cost_micros: r.provider_cost_micros,
            cost_micros: r.cost_micros,
            margin_micros: r.cost_micros.saturating_sub(r.provider_cost_micros),
            estimated_requests: r.estimated_requests,
        }
    }
}

/// A position in the walk over every secret: the last one visited. Opaque to clients: send
/// back the `next` of the previous answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretCursor {
    /// `org` or `workspace`.
    #[schema(pattern = "^(org|workspace)$")]
    pub scope: String,
    /// The owner's id.
    pub owner_id: String,
    /// The secret's name.
    pub name: String,
}

/// `POST /admin/secrets/reencrypt`: one batch of the move to the newest master key.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reencrypt {
    /// Start after this secret (the previous answer's `next`); absent: from the start.
    #[serde(default, deserialize_with = "object", skip_serializing_if = "Option::is_none")]
    pub after: Option<SecretCursor>,
    /// How many secrets to visit, 1 to 1000 (default 100).
    #[serde(default, deserialize_with = "opt_integral", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The outcome of one re-encryption batch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reencrypted {
    /// The id of the newest master key, which every moved secret now uses.
    pub key_id: String,
    /// Secrets moved to it in this batch.
    pub moved: u64,
    /// Secrets set meanwhile (already under the newest key), left as they are.
    pub changed: u64,
    /// Secrets no configured key decrypts, left as they are (and `SECRET_UNREADABLE` for
    /// their workspaces); the log names them.
    pub unreadable: u64,
    /// Secrets after this batch not yet under the newest key.
    pub pending: u64,
    /// Where the next batch starts; `null` when every secret has been visited.
    #[schema(required = true)]
    pub next: Option<SecretCursor>,
}

/// `GET /admin/events` query. Empty values are as if absent.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Only events about this org (its workspaces' included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Only events about this workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// Only events of this kind (the pattern lists every kind).
    #[param(
        pattern = r"^(|org\.created|org\.updated|credit\.adjusted|secret\.set|secret\.deleted|workspace\.created|workspace\.updated|workspace\.deleted|workspace\.provisioned|limits\.updated|budget\.soft_crossed|budget\.exhausted|alarm\.fired|suspended|resumed|webhook\.failed)$"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Recorded at or after this time (RFC 3339 in UTC, or a UTC date `YYYY-MM-DD`). The
    /// pattern leaves out 29 February, which is accepted in leap years.
    #[param(
        pattern = r"^(|(19[7-9]\d|[2-9]\d{3})-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))(T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z)?)$"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The previous page's `next_cursor`: continue with the events older than its last.
    #[param(pattern = r"^(|e[0-9a-z]{1,12})$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// How many events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One event of the append-only log. `detail` never holds a secret value or token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventOut {
    /// Increasing with insertion.
    pub id: i64,
    /// When it was recorded, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// What happened.
    pub kind: tollgate_policy::EventKind,
    /// `admin` or `system`.
    pub actor: tollgate_policy::Actor,
    /// The org it concerns.
    #[schema(required = true)]
    pub org_id: Option<String>,
    /// The workspace it concerns.
    #[schema(required = true)]
    pub workspace_id: Option<String>,
    /// Names, modes, amounts: what a reader needs; never a secret value or token.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<tollgate_store::Event> for EventOut {
    fn from(e: tollgate_store::Event) -> Self {
        Self {
            id: e.id,
            at: e.at.rfc3339(),
            kind: e.kind,
            actor: e.actor,
            org_id: e.org_id.map(|o| o.to_string()),
            workspace_id: e.workspace_id.map(|w| w.to_string()),
            detail: e.detail,
        }
    }
}

/// The body of a webhook notification (DESIGN.md section 15): a Slack-compatible one-line
/// `text` and the event as `GET /admin/events` shows it. Signed in the
/// `x-tollgate-signature` header when a secret is configured.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// One line for people (Slack's `text`): the kind, the org and workspace, the detail's
    /// reason and amounts in dollars.
    pub text: String,
    /// The event.
    pub event: EventOut,
}

/// `GET /admin/events` answer: newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Events {
    /// The page's events, newest first.
    pub events: Vec<EventOut>,
    /// Pass as `cursor` for the next (older) page; `null` when this page is the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
