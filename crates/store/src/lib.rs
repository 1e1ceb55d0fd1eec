//! Tollgate's storage: one [`Store`] trait with an SQLite implementation (the embedded default)
//! and a Postgres one (the scale-out backend), each with its own migrations.
//!
//! Secret values are encrypted at rest with AES-256-GCM under the master key, with the scope,
//! owner id and name as associated data, so a ciphertext copied to another row does not
//! decrypt. Workspace and admin tokens are stored only as SHA-256 hashes.

mod crypto;
mod ids;
mod invalidation;
mod sql;

use std::fmt;

use async_trait::async_trait;
use tollgate_policy::alarms::AlarmRules;
use tollgate_policy::audit::{LastProvision, PlanFingerprint};
use tollgate_policy::budget::{Applicable, BudgetRefusal};
use tollgate_policy::resolve::{BillingMode, WorkspaceKind, WorkspaceSpec};
use tollgate_policy::secret::{MergedSecrets, Scope, SecretValue};
use tollgate_policy::{
    Limits, LimitsPatch, Micros, OrgId, SecretName, SuspendedBy, Suspension, SuspensionReason, WorkspaceId,
};

pub use crypto::{KeyId, MasterKey, MasterKeyError, MasterKeys, TokenHash};
pub use ids::{AgentSessionId, LeaseId, RequestId};
pub use invalidation::Invalidation;
pub use sql::{PgStore, SqliteStore, connect};
pub use tollgate_policy::{Actor, EventKind};

/// Milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self(ms)
    }

    /// RFC 3339 with milliseconds, UTC, e.g. `2026-11-22T15:31:00.000Z`.
    pub fn rfc3339(self) -> String {
        let ms = u64::try_from(self.0).unwrap_or(0);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(t).to_string()
    }
}

impl From<i64> for Timestamp {
    /// Milliseconds since the Unix epoch, as stored.
    fn from(ms: i64) -> Self {
        Self(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    /// UUID.
    pub id: OrgId,
    /// Unique name.
    pub name: String,
    /// The mode for workspaces with no provider.
    pub default_billing_mode: Option<BillingMode>,
    /// Balance in micro-USD: what is not yet spent, including credit the proxy instances
    /// hold in leases for requests they are serving (their cost is charged when the request's
    /// ledger row is written).
    pub credit_micros: Micros,
    /// The org's price plan: what it is charged over the provider's price (DESIGN.md
    /// section 20).
    pub markup_percent: tollgate_policy::Markup,
    /// The suspension in force (section 14), if any: it covers all the org's workspaces.
    pub suspended: Option<Suspension>,
    /// Spend controls (section 14).
    pub limits: Limits,
    /// Where its alarms and budgets are notified, besides the global webhook (section 15).
    pub alert_webhook_url: Option<tollgate_policy::WebhookUrl>,
    /// Drain alarm rules (section 15); `None`: none set, the default rule applies.
    pub alarms: Option<AlarmRules>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A new org.
#[derive(Clone, Debug, Default)]
pub struct NewOrg {
    /// Unique name.
    pub name: String,
    /// The mode for workspaces with no provider.
    pub default_billing_mode: Option<BillingMode>,
    /// Initial balance.
    pub credit_micros: Micros,
    /// Spend controls (section 14).
    pub limits: Limits,
    /// Its alert webhook (section 15).
    pub alert_webhook_url: Option<tollgate_policy::WebhookUrl>,
    /// Drain alarm rules (section 15).
    pub alarms: Option<AlarmRules>,
}

/// Changes to an org; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct OrgPatch {
    /// New name.
    pub name: Option<String>,
    /// New default mode (`Some(None)` clears it).
    pub default_billing_mode: Option<Option<BillingMode>>,
    /// New price plan.
    pub markup_percent: Option<tollgate_policy::Markup>,
    /// Changes to its limits.
    pub limits: LimitsPatch,
    /// New alert webhook (`Some(None)` removes it).
    pub alert_webhook_url: Option<Option<tollgate_policy::WebhookUrl>>,
    /// New alarm rules (`Some(None)` removes them).
    pub alarms: Option<Option<AlarmRules>>,
}

/// An agent workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// UUID.
    pub id: WorkspaceId,
    /// Owning org.
    pub org_id: OrgId,
    /// Unique within the org.
    pub name: String,
    /// Runtime id (validated against the registry by the API).
    pub runtime: String,
    /// Configured model.
    pub model: Option<String>,
    /// Explicit billing mode.
    pub billing_mode: Option<BillingMode>,
    /// Agent or concierge.
    pub kind: WorkspaceKind,
    /// Spend controls (section 14); `limits.allowed_models` narrows its runtime's models.
    pub limits: Limits,
    /// The workspace's own suspension in force (section 14), if any; its org's is on [`Org`].
    pub suspended: Option<Suspension>,
    /// Drain alarm rules (section 15); `None`: none (the default rule is an org's only).
    pub alarms: Option<AlarmRules>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Workspace {
    /// The workspace as the resolver sees it.
    pub fn spec(&self) -> WorkspaceSpec {
        WorkspaceSpec {
            id: self.id.to_string(),
            runtime: self.runtime.clone(),
            kind: self.kind,
            model: self.model.clone(),
            billing_mode: self.billing_mode,
        }
    }
}

/// A new workspace.
#[derive(Clone, Debug)]
pub struct NewWorkspace {
    /// Owning org.
    pub org_id: OrgId,
    /// Unique within the org.
    pub name: String,
    /// Runtime id.
    pub runtime: String,
    /// Configured model.
    pub model: Option<String>,
    /// Explicit billing mode.
    pub billing_mode: Option<BillingMode>,
    /// Agent or concierge.
    pub kind: WorkspaceKind,
    /// Spend controls (section 14); `limits.allowed_models` narrows its runtime's models.
    pub limits: Limits,
    /// Drain alarm rules (section 15).
    pub alarms: Option<AlarmRules>,
}

/// Changes to a workspace; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct WorkspacePatch {
    /// New name.
    pub name: Option<String>,
    /// New runtime.
    pub runtime: Option<String>,
    /// New model.
    pub model: Option<Option<String>>,
    /// New explicit billing mode.
    pub billing_mode: Option<Option<BillingMode>>,
    /// New kind.
    pub kind: Option<WorkspaceKind>,
    /// Changes to its limits.
    pub limits: LimitsPatch,
    /// New alarm rules (`Some(None)` removes them).
    pub alarms: Option<Option<AlarmRules>>,
}

/// Who a secret belongs to: an org (inherited by its workspaces) or one workspace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// An org secret.
    Org(OrgId),
    /// A workspace secret.
    Workspace(WorkspaceId),
}

impl Owner {
    /// The secret scope this owner stands for.
    pub fn scope(&self) -> Scope {
        match self {
            Self::Org(_) => Scope::Org,
            Self::Workspace(_) => Scope::Workspace,
        }
    }

    /// The owner's id as text (the stored `owner_id`, bound into each ciphertext).
    pub fn id(&self) -> &str {
        match self {
            Self::Org(id) => id.as_str(),
            Self::Workspace(id) => id.as_str(),
        }
    }
}

/// A secret's name and when it was last set. Never its value.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretMeta {
    /// The name.
    pub name: String,
    /// Last write.
    #[sqlx(try_from = "i64")]
    pub updated_at: Timestamp,
}

/// Where a walk over the secrets table stands: the last row visited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretCursor {
    /// Its scope.
    pub scope: Scope,
    /// Its owner's id.
    pub owner_id: String,
    /// Its name.
    pub name: String,
}

/// The outcome of one [`Store::reencrypt_secrets`] batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReencryptBatch {
    /// Secrets moved to the newest key.
    pub moved: u64,
    /// Secrets set meanwhile (already under the newest key): not touched.
    pub changed: u64,
    /// Secrets no configured key decrypts: not touched.
    pub unreadable: u64,
    /// Secrets after this batch not yet under the newest key.
    pub pending: u64,
    /// Where the next batch starts; `None` when the walk is over.
    pub next: Option<SecretCursor>,
    /// The newest key's id.
    pub key_id: Option<KeyId>,
}

impl ReencryptBatch {
    /// Counts one conditional re-encryption: `rows_affected` 1 is a value moved to the newest
    /// key, 0 one set meanwhile (its compare failed) and left as it is.
    pub(crate) fn tally(&mut self, rows_affected: u64) {
        if rows_affected == 1 {
            self.moved += 1;
        } else {
            self.changed += 1;
        }
    }
}

/// What a successful provision stores, atomically.
#[derive(Clone, Debug)]
pub struct ProvisionRecord {
    /// The request's model, as sent.
    pub request_model: Option<String>,
    /// The workspace's model after the provision ([`WorkspaceSpec::after_provision`]).
    pub model_after: Option<String>,
    /// The resolution, as JSON, kept as the record of what was decided.
    pub resolution_json: String,
    /// The hash of the newly minted token; the previous token is revoked.
    pub token_hash: TokenHash,
    /// The plan's fingerprint (names, mode, provider; never values), for `PLAN_DRIFT`.
    pub fingerprint: Option<PlanFingerprint>,
}

/// A stored provision: what was decided, and when.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Provision {
    /// UUID.
    pub id: String,
    /// The workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The request's model.
    pub request_model: Option<String>,
    /// The resolution JSON.
    #[sqlx(rename = "resolution")]
    pub resolution_json: String,
    /// When.
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
}

/// Everything `resolve` needs about one workspace, loaded the same way for every caller
/// (the read endpoint, provisioning, the pull, the demo, `audit`).
#[derive(Clone, Debug)]
pub struct ResolutionInputs {
    /// The workspace.
    pub workspace: Workspace,
    /// Its org.
    pub org: Org,
    /// Its org and workspace secrets, decrypted and merged.
    pub secrets: MergedSecrets,
}

impl ResolutionInputs {
    /// Loads the workspace `id`, its org and its merged secrets.
    pub async fn load(store: &dyn Store, workspace_id: &WorkspaceId) -> Result<Self> {
        Self::for_workspace(store, store.get_workspace(workspace_id).await?).await
    }

    /// Loads the org and merged secrets of an already loaded workspace.
    pub async fn for_workspace(store: &dyn Store, workspace: Workspace) -> Result<Self> {
        let org = store.get_org(&workspace.org_id).await?;
        let secrets = store.merged_secrets(&workspace).await?;
        Ok(Self { workspace, org, secrets })
    }

    /// Runs the one resolver on these inputs.
    pub fn resolve(
        &self,
        ctx: &tollgate_policy::Context<'_>,
        request_model: Option<&str>,
    ) -> tollgate_policy::Resolved {
        let org = tollgate_policy::OrgSpec { default_billing_mode: self.org.default_billing_mode };
        tollgate_policy::resolve(ctx, &self.workspace.spec(), &org, &self.secrets, request_model)
    }
}

/// Everything an audit needs (DESIGN.md section 16), read with one query per table rather
/// than one per workspace, so that an audit of 100,000 workspaces stays a matter of seconds.
#[derive(Debug, Default)]
pub struct AuditSnapshot {
    /// The orgs audited (one, or all), balances including leased credit.
    pub orgs: Vec<Org>,
    /// Their workspaces, by org then name.
    pub workspaces: Vec<Workspace>,
    /// Org-scope secrets, decrypted, by org.
    pub org_secrets: std::collections::HashMap<OrgId, Vec<(SecretName, tollgate_policy::SecretState)>>,
    /// Workspace-scope secrets, decrypted, by workspace.
    pub workspace_secrets: std::collections::HashMap<WorkspaceId, Vec<(SecretName, tollgate_policy::SecretState)>>,
    /// The last provision of each provisioned workspace; absent means never provisioned.
    pub last_provisions: std::collections::HashMap<WorkspaceId, LastProvision>,
    /// Each org's settled spend since the snapshot's `spend_since`; absent means none.
    pub spend: std::collections::HashMap<OrgId, Micros>,
}

impl AuditSnapshot {
    /// The merged secrets of `workspace`, as [`Store::merged_secrets`] would load them.
    pub fn merged_secrets(&self, workspace: &Workspace) -> MergedSecrets {
        let org = self.org_secrets.get(&workspace.org_id).into_iter().flatten().cloned();
        let ws = self.workspace_secrets.get(&workspace.id).into_iter().flatten().cloned();
        MergedSecrets::merge(org, ws)
    }

    /// The last provision of `workspace`.
    pub fn last_provision(&self, workspace: &WorkspaceId) -> LastProvision {
        self.last_provisions.get(workspace).cloned().unwrap_or(LastProvision::Never)
    }
}

/// How `GET /admin/usage` groups ledger rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UsageGroup {
    /// By UTC day, `YYYY-MM-DD`.
    #[default]
    Day,
    /// By model id.
    Model,
    /// By workspace id.
    Workspace,
    /// By the agent's session id (requests without one under the empty key).
    Session,
}

impl UsageGroup {
    /// Parses `day`, `model`, `workspace` or `session`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Self::Day),
            "model" => Some(Self::Model),
            "workspace" => Some(Self::Workspace),
            "session" => Some(Self::Session),
            _ => None,
        }
    }
}

/// Which ledger rows to count.
#[derive(Clone, Debug, Default)]
pub struct UsageQuery {
    /// Only this org's.
    pub org_id: Option<OrgId>,
    /// Only this workspace's.
    pub workspace_id: Option<WorkspaceId>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// The grouping.
    pub group_by: UsageGroup,
}

/// Totals of one group of proxied requests (failed ones included).
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    /// The day, model, workspace id or agent session id.
    pub key: String,
    /// Proxied requests.
    pub requests: i64,
    /// Of which failed (an upstream or proxy error, or a stream cut before its end).
    pub errors: i64,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: i64,
    /// Of which written with the 1-hour TTL.
    pub cache_write_1h_tokens: i64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// What the provider billed the platform for them, micro-USD.
    pub provider_cost_micros: i64,
    /// What the orgs were charged (the provider's price with each org's markup), micro-USD.
    pub cost_micros: i64,
    /// Of which charged on an estimate (streams that ended without their usage).
    pub estimated_requests: i64,
}

/// One request of the ledger, as the dashboard lists a workspace's latest (never a prompt, a
/// header or a credential: the ledger holds none).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerRow {
    /// The proxy's request id.
    pub request_id: String,
    /// The model id called.
    pub model: String,
    /// `settled`, or the state of a request not yet settled.
    pub status: String,
    /// The upstream's HTTP status; `None` when no response came.
    pub http_status: Option<i64>,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// What the org was charged, micro-USD.
    pub cost_micros: i64,
    /// Whether the usage was estimated (a stream that ended without it).
    pub estimated: bool,
    /// When the request was admitted.
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
}

/// Credit an instance asks to take from an org's balance into its lease (see
/// [`Store::lease_credit`]).
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    /// The lease, created on first use; one per (instance, org).
    pub lease_id: LeaseId,
    /// The org whose credit is taken.
    pub org_id: OrgId,
    /// The least that must be taken for the request at hand; nothing is taken if the
    /// balance does not cover it.
    pub need: Micros,
    /// The most worth taking now (credit for the next requests too); at least `need`.
    pub want: Micros,
    /// How long the lease lives without renewal before any instance may reclaim it.
    pub ttl: std::time::Duration,
}

/// The answer to a [`LeaseRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leased {
    /// This much was moved from the org's balance into the lease (between `need` and `want`).
    Granted(Micros),
    /// The balance does not cover `need`: nothing was taken.
    Insufficient {
        /// The org's balance not held by any lease.
        available: Micros,
        /// Credit held by other leases of the org (other instances' unspent credit).
        leased_elsewhere: Micros,
    },
}

/// One proxied request's ledger row, written after the response (see
/// [`Store::record_usage`]).
#[derive(Clone, Debug)]
pub struct LedgerEntry {
    /// Unique per proxied request; writing the same id twice charges once.
    pub request_id: RequestId,
    /// The workspace that sent the request.
    pub workspace_id: WorkspaceId,
    /// The platform model requested.
    pub model: String,
    /// The worst case reserved for it (zero when refused).
    pub reserved: Micros,
    /// What it used and what the client got.
    pub settlement: Settlement,
    /// Refused for lack of credit (HTTP 402): never forwarded.
    pub rejected: bool,
    /// When the request arrived.
    pub created_at: Timestamp,
    /// The agent's session id, when the client sent a valid one.
    pub session_id: Option<AgentSessionId>,
}

/// The final accounting of one proxied request.
#[derive(Clone, Copy, Debug)]
pub struct Settlement {
    /// Tokens metered from the response (what was seen, for a cut stream).
    pub usage: tollgate_policy::Usage,
    /// What the org is charged for them (the provider's price with the org's markup).
    pub cost: Micros,
    /// What the provider bills the platform for them.
    pub provider_cost: Micros,
    /// The status the client got; `None` when the stream broke before its end.
    pub http_status: Option<u16>,
    /// The usage was estimated from the content relayed: the stream ended without its usage.
    pub estimated: bool,
}

/// A request's reservation under the hard budgets that apply to it (see
/// [`Store::reserve_budget`]).
#[derive(Clone, Debug)]
pub struct BudgetHold {
    /// The request; its hold is settled by this id.
    pub id: RequestId,
    /// Every budget that applies, in [`tollgate_policy::budget::applicable`]'s order.
    pub budgets: Vec<Applicable>,
    /// The request's worst case.
    pub need: Micros,
    /// How long the hold lives unsettled before any instance may reclaim it.
    pub ttl: std::time::Duration,
}

/// An event to append to the log (DESIGN.md section 15), see [`Store::record_event`].
///
/// `detail` is free JSON for the reader; it must never hold a secret value or token.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    pub actor: Actor,
    /// The org it concerns, if any.
    pub org_id: Option<OrgId>,
    /// The workspace it concerns, if any.
    pub workspace_id: Option<WorkspaceId>,
    /// What a reader needs to know (names, modes, amounts; never values).
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Increasing with insertion order on each backend (Postgres: allocation order).
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    pub actor: Actor,
    /// The org it concerns, if any.
    pub org_id: Option<OrgId>,
    /// The workspace it concerns, if any.
    pub workspace_id: Option<WorkspaceId>,
    /// The detail JSON.
    pub detail: serde_json::Value,
}

/// Where a page of events ends: the events after it are those with a smaller id. Opaque to
/// clients as the text [`EventCursor::encode`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventCursor(i64);

impl EventCursor {
    /// The cursor of a page whose last event has id `id`.
    pub fn after(id: i64) -> Self {
        Self(id)
    }

    /// The id the next page's events are below.
    pub fn id(self) -> i64 {
        self.0
    }

    /// The cursor's text: `e` and the last id returned, in base 36 (opaque to clients).
    pub fn encode(self) -> String {
        let mut n = u64::try_from(self.0).unwrap_or(0);
        let mut digits = Vec::new();
        loop {
            let d = u8::try_from(n % 36).unwrap_or(0);
            digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
            n /= 36;
            if n == 0 {
                break;
            }
        }
        digits.reverse();
        format!("e{}", String::from_utf8_lossy(&digits))
    }

    /// Parses `e` and 1 to 12 base-36 digits (lower case), what [`EventCursor::encode`] gives
    /// for any id below 36^12; `None` for any other text. Every such text is a cursor (the
    /// API's documented pattern is exactly this); after `e0` nothing follows.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('e')?;
        if digits.is_empty()
            || digits.len() > 12
            || !digits.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        {
            return None;
        }
        let n = u64::from_str_radix(digits, 36).ok()?;
        i64::try_from(n).ok().map(Self)
    }
}

/// The most events one page returns.
pub const MAX_EVENTS_PAGE: u32 = 1000;

/// Which events to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only this org's.
    pub org_id: Option<OrgId>,
    /// Only this workspace's.
    pub workspace_id: Option<WorkspaceId>,
    /// Only of this kind.
    pub kind: Option<EventKind>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Continue after this cursor (a previous page's `next`).
    pub cursor: Option<EventCursor>,
    /// At most this many (1 to [`MAX_EVENTS_PAGE`]; clamped).
    pub limit: u32,
}

/// A page of events, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<EventCursor>,
}

/// An org or workspace the alarm evaluator looks at beyond those with spend: one that carries
/// alarm rules or a hard budget (see [`AlarmStore::alarm_owners`]).
#[derive(Clone, Debug)]
pub struct AlarmOwner {
    /// The org or workspace.
    pub owner: Owner,
    /// Its org (itself for an org).
    pub org_id: OrgId,
    /// Its rules, as on [`Org::alarms`] / [`Workspace::alarms`].
    pub alarms: Option<AlarmRules>,
    /// Its limits (the budgets and `soft_budget_percent` matter here).
    pub limits: Limits,
}

/// Settled cost of one workspace in a span of the ledger (see [`AlarmStore::spend_by_workspace`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceSpend {
    /// Its org.
    pub org_id: OrgId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// What it was charged in the span.
    pub cost: Micros,
}

/// A rule's state row: which owner, which rule (see [`AlarmStore::fire_alarm`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlarmStateKey {
    /// The org or workspace the rule is on.
    pub owner: Owner,
    /// The rule's key ([`tollgate_policy::alarms::AlarmRule::key`]).
    pub rule_key: String,
}

/// A rule's state row that is firing, and when it last changed: what
/// [`AlarmStore::rearm_alarm`] compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiringAlarm {
    /// The rule's state row.
    pub key: AlarmStateKey,
    /// The evaluation time that last changed it (the firing's).
    pub changed_at: Timestamp,
}

/// A firing to record (see [`AlarmStore::fire_alarm`]).
#[derive(Clone, Debug)]
pub struct AlarmFire {
    /// The owner and rule.
    pub key: AlarmStateKey,
    /// The evaluation's time: the row's `changed_at`.
    pub at: Timestamp,
    /// The `alarm.fired` event's detail (amounts and the rule).
    pub detail: serde_json::Value,
    /// With action `suspend`: suspend the owner with this reason, by the alarm `by` (an owner
    /// already suspended keeps its suspension).
    pub suspend: Option<(SuspensionReason, SuspendedBy)>,
}

/// A budget notice to record once per period (see [`AlarmStore::record_budget_notice`]).
#[derive(Clone, Debug)]
pub struct BudgetNoticeRecord {
    /// The org or workspace whose budget it is.
    pub owner: Owner,
    /// The period's key (`YYYY-MM-DD` or `YYYY-MM`).
    pub period_key: String,
    /// `soft_crossed` or `exhausted`.
    pub notice: tollgate_policy::alarms::NoticeKind,
    /// The event's detail.
    pub detail: serde_json::Value,
}

/// The Postgres `NOTIFY` channel of cache invalidations.
pub const INVALIDATION_CHANNEL: &str = "tollgate_invalidate";

/// The largest balance, in either direction, an org may reach: 10^15 micro-USD (a billion
/// dollars), the bound on the credit an org is created with.
pub const MAX_BALANCE_MICROS: i64 = 1_000_000_000_000_000;

/// The outcome of [`Store::adjust_credit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditAdjusted {
    /// The new balance, leased credit included.
    pub balance: Micros,
    /// The leases a debit closed: the instances holding them must stop spending them (see
    /// [`Invalidation::CreditCut`]).
    pub closed_leases: Vec<LeaseId>,
}

/// Whether a debit may take an org's balance below zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overdraft {
    /// A debit beyond the balance is refused.
    Refuse,
    /// The balance may go negative (an admin's explicit `allow_negative`); a negative balance
    /// admits no request.
    Allow,
}

/// What can go wrong in the store. Messages never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such org, workspace or secret.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (e.g. a workspace name taken in the org).
    #[error("{0}")]
    Conflict(String),
    /// The resulting balance would be beyond ±[`MAX_BALANCE_MICROS`].
    #[error("the balance would be beyond ±{MAX_BALANCE_MICROS} micro-USD")]
    Overflow,
    /// A debit larger than the balance, without [`Overdraft::Allow`].
    #[error("the debit exceeds the balance of {} micro-USD", balance.get())]
    InsufficientCredit {
        /// The balance before the debit (leased credit included).
        balance: Micros,
    },
    /// A stored value that should parse does not (e.g. an unknown mode string).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Encryption failed (never "could not decrypt": that is `SecretState::Unreadable`).
    #[error("encryption failed")]
    Crypto,
    /// The database cannot be reached now (pool timeout or closed, IO, TLS): an outage,
    /// worth retrying later, not a fault of the request.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database URL or connection options are malformed: fix the configuration.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    /// Sorts a driver error into what a caller acts on: an outage, a configuration error, or
    /// any other database failure.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(e)
            }
            sqlx::Error::Configuration(c) => Self::Config(format!("invalid database URL: {c}")),
            other => Self::Database(other),
        }
    }
}

/// Names one rate limiter's shared counts: an org's or a workspace's limit of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateKey(String);

impl RateKey {
    /// The limiter of `kind` on workspace `id`.
    pub fn workspace(id: &WorkspaceId, kind: tollgate_policy::rate::RateKind) -> Self {
        Self(format!("ws:{id}:{}", kind.field()))
    }

    /// The limiter of `kind` on org `id`.
    pub fn org(id: &OrgId, kind: tollgate_policy::rate::RateKind) -> Self {
        Self(format!("org:{id}:{}", kind.field()))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shared counts of section 14's rate limits (every instance on one database sees the
/// same). The decisions are `tollgate_policy::rate`'s; this keeps the figures and the lock.
#[async_trait]
pub trait RateStore: Send + Sync {
    /// Grants a block of `key`'s slot at `now_millis` (milliseconds since the epoch) under the
    /// limiter's lock: at least `need` and up to `want` units, as many as the last minute's
    /// counts leave room for (`tollgate_policy::rate::grant`), counted in that slot at once;
    /// or a refusal saying when room appears. First takes back `returning` units the caller
    /// held unspent in that slot (its block too small for this need).
    async fn lease_rate(
        &self,
        key: &RateKey,
        limit: u64,
        need: u64,
        want: u64,
        returning: u64,
        now_millis: i64,
    ) -> Result<tollgate_policy::rate::Grant>;

    /// Takes units back from the slots they were counted in: unspent blocks, and settlements
    /// that used less than admission counted. Only ever lowers a count.
    async fn return_rate(&self, returns: &[(RateKey, i64, u64)]) -> Result<()>;

    /// Takes one request slot of `key` for `instance` if all live instances together hold
    /// fewer than `limit`; the instance's row expires after `ttl` unless renewed.
    async fn lease_concurrency(
        &self,
        key: &RateKey,
        instance: &str,
        limit: u64,
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Gives `units` of `instance`'s request slots of `key` back (0: only renews its expiry).
    async fn release_concurrency(
        &self,
        key: &RateKey,
        instance: &str,
        units: u64,
        ttl: std::time::Duration,
    ) -> Result<()>;
}

/// What the drain alarms and budget notices (section 15) read and record. The decisions are
/// `tollgate_policy::alarms`'s; this reads spend and keeps each rule's firing state, so that
/// a rule fires once per crossing however many instances evaluate it.
#[async_trait]
pub trait AlarmStore: Send + Sync {
    /// The orgs and workspaces that carry alarm rules (an empty list included) or a hard
    /// budget: the alarm evaluator's owners besides those with spend.
    async fn alarm_owners(&self) -> Result<Vec<AlarmOwner>>;

    /// Settled cost per workspace of the ledger rows created in `[since, until)`, only for
    /// workspaces with rows there (an index on the time bounds the read to the span).
    async fn spend_by_workspace(&self, since: Timestamp, until: Timestamp) -> Result<Vec<WorkspaceSpend>>;

    /// Settled cost of one org or workspace in `[since, until)`.
    async fn owner_spend(&self, owner: &Owner, since: Timestamp, until: Timestamp) -> Result<Micros>;

    /// The rules whose condition held at their last evaluation (state rows with `firing`), with
    /// the time each last changed. An evaluation reads this *before* it reads the ledger and
    /// re-arms only from it (see [`AlarmStore::rearm_alarm`]).
    async fn firing_alarms(&self) -> Result<Vec<FiringAlarm>>;

    /// Records that a rule's condition holds, once per crossing across instances: in one
    /// transaction, turns its state row to firing unless it already is (or was changed by a
    /// later evaluation than `fire.at`), and only then records `alarm.fired` and, with
    /// `fire.suspend`, suspends the owner (recording `suspended`, actor `system`) unless it
    /// is suspended already. Returns the events recorded, empty when another evaluation had
    /// already fired it; the caller notifies and invalidates after this returns.
    async fn fire_alarm(&self, fire: &AlarmFire) -> Result<Vec<Event>>;

    /// Re-arms a rule whose condition no longer holds, as of an evaluation at `at` that saw it
    /// firing as `seen` (from [`AlarmStore::firing_alarms`], read before the ledger): only if
    /// the row is still that firing (compare and swap on `changed_at`) and `at` is later. A
    /// crossing another instance fired after that snapshot (its ledger read saw rows this one
    /// did not) is never undone, whatever the clocks say. Returns whether it re-armed.
    async fn rearm_alarm(&self, seen: &FiringAlarm, at: Timestamp) -> Result<bool>;

    /// Records a budget notice and its event (`budget.soft_crossed` or `budget.exhausted`,
    /// actor `system`) in one transaction, once per (owner, period, kind) across instances:
    /// `None` when it was recorded before.
    async fn record_budget_notice(&self, notice: &BudgetNoticeRecord) -> Result<Option<Event>>;
}

/// Shorthand.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything Tollgate keeps, behind one interface with two backends.
///
/// Every method is atomic on its own; [`Store::record_provision`] is atomic as a whole.
#[async_trait]
pub trait Store: RateStore + AlarmStore + Send + Sync + fmt::Debug {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    /// Creates an org. A taken name is `Conflict`.
    async fn create_org(&self, new: &NewOrg) -> Result<Org>;
    /// The org `id`.
    async fn get_org(&self, id: &OrgId) -> Result<Org>;
    /// All orgs, by name.
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    /// Applies `patch` to org `id`.
    async fn update_org(&self, id: &OrgId, patch: &OrgPatch) -> Result<Org>;
    /// Adds `delta` (possibly negative) to the org's credit and records why; returns the new
    /// balance (leased credit included, as in [`Org::credit_micros`]).
    ///
    /// A debit (`delta` < 0) binds at once: in the same transaction every lease of the org is
    /// closed and its credit returned to the balance, so no instance holds credit the org no
    /// longer has (instances learn it through [`Invalidation::CreditRecall`], which the caller
    /// publishes). A debit that would take the balance below zero is
    /// [`StoreError::InsufficientCredit`] unless `overdraft` is [`Overdraft::Allow`]; a
    /// resulting balance beyond ±[`MAX_BALANCE_MICROS`] is [`StoreError::Overflow`].
    async fn adjust_credit(
        &self,
        org_id: &OrgId,
        delta: Micros,
        reason: &str,
        overdraft: Overdraft,
    ) -> Result<CreditAdjusted>;

    /// Suspends the org or workspace `owner` (section 14) with `reason`, by `by`, as of now;
    /// an owner already suspended keeps its `since` and takes the new reason and `by`. The
    /// caller publishes the invalidation that makes every instance refuse it. An unknown
    /// owner is `NotFound`. Returns the suspension in force.
    async fn suspend(&self, owner: &Owner, reason: &SuspensionReason, by: &SuspendedBy) -> Result<Suspension>;
    /// Lifts the suspension of `owner` (a no-op when it is not suspended). An unknown owner
    /// is `NotFound`.
    async fn resume(&self, owner: &Owner) -> Result<()>;

    /// Creates a workspace. An unknown org is `NotFound`, a name taken in the org `Conflict`.
    async fn create_workspace(&self, new: &NewWorkspace) -> Result<Workspace>;
    /// The workspace `id`.
    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace>;
    /// Workspaces of one org, or all, by name.
    async fn list_workspaces(&self, org_id: Option<&OrgId>) -> Result<Vec<Workspace>>;
    /// Applies `patch` to workspace `id`.
    async fn update_workspace(&self, id: &WorkspaceId, patch: &WorkspacePatch) -> Result<Workspace>;
    /// Deletes a workspace with its secrets, tokens and provision records.
    async fn delete_workspace(&self, id: &WorkspaceId) -> Result<()>;

    /// Sets a secret (encrypting it). The owner must exist.
    async fn put_secret(&self, owner: &Owner, name: &SecretName, value: &SecretValue) -> Result<()>;
    /// Deletes a secret; an absent one is `NotFound`.
    async fn delete_secret(&self, owner: &Owner, name: &SecretName) -> Result<()>;
    /// Names and times of one owner's secrets, by name. The owner must exist.
    async fn list_secrets(&self, owner: &Owner) -> Result<Vec<SecretMeta>>;
    /// The workspace's org and workspace secrets, decrypted and merged. A ciphertext that
    /// does not decrypt is `SecretState::Unreadable`, never absent.
    async fn merged_secrets(&self, workspace: &Workspace) -> Result<MergedSecrets>;
    /// Moves up to `limit` secrets that are not under the newest master key to it, visiting
    /// rows in (scope, owner id, name) order after `after`. A row set meanwhile is left as it
    /// is (it is under the newest key already); a row no configured key opens is left as it
    /// is and counted. Values do not change, so nothing needs invalidating.
    async fn reencrypt_secrets(&self, after: Option<&SecretCursor>, limit: u32) -> Result<ReencryptBatch>;

    /// Stores a successful provision: the workspace's model, the new token (revoking the
    /// old one) and the record, in one transaction.
    async fn record_provision(&self, workspace_id: &WorkspaceId, record: &ProvisionRecord) -> Result<()>;
    /// Provision records of a workspace, oldest first.
    async fn list_provisions(&self, workspace_id: &WorkspaceId) -> Result<Vec<Provision>>;
    /// The workspace whose active token has this hash.
    async fn workspace_for_token(&self, hash: &TokenHash) -> Result<Option<Workspace>>;

    /// Moves credit from the org's balance into the lease `lease_id` (created if new), in one
    /// atomic statement per backend: concurrent requests from any number of instances never
    /// take more than the balance. Takes `need`, plus up to `want - need` more while leaving
    /// seven eighths of the rest to other instances; takes nothing if the balance is below
    /// `need`. Extends the lease's expiry to now + `ttl`.
    async fn lease_credit(&self, request: &LeaseRequest) -> Result<Leased>;

    /// Writes settled requests' ledger rows and charges their cost to the lease, in one
    /// transaction, and extends the lease's expiry to now + `ttl`. Idempotent per request id:
    /// a row already written is neither written nor charged again. If the lease is gone
    /// (reclaimed after expiry), the cost is charged to the org's balance instead. Returns
    /// whether the lease still exists.
    async fn record_usage(
        &self,
        lease_id: &LeaseId,
        org_id: &OrgId,
        entries: &[LedgerEntry],
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Returns unspent credit from a lease to its org's balance: `Some(amount)` returns that
    /// much and extends the lease to now + `ttl`; `None` returns all of it and closes the
    /// lease. Returns whether the lease existed.
    async fn release_lease(&self, lease_id: &LeaseId, amount: Option<Micros>, ttl: std::time::Duration)
    -> Result<bool>;

    /// Closes every lease past its expiry (its instance died or lost the database), returning
    /// its credit to the org. Returns how many were closed.
    async fn reclaim_expired_leases(&self) -> Result<u64>;

    /// Reserves `hold.need` under every budget of `hold` at once, or under none: admitted
    /// exactly when, for each, settled spend plus open reservations plus the need fit the
    /// budget ([`tollgate_policy::budget::fits`]). The budgets' rows are locked in the given
    /// order for the check and the reservation (SQLite: the whole database), so instances
    /// sharing the database never admit more than a budget between them.
    ///
    /// Returns `Ok(Err(refusal))` naming the first budget that does not fit.
    async fn reserve_budget(&self, hold: &BudgetHold) -> Result<Result<(), BudgetRefusal>>;

    /// Settles the budget hold of request `id`: what it still reserves is released and `cost`
    /// counted as spent in each of its budgets (also when the hold was reclaimed meanwhile:
    /// the request ran after all). Returns whether the hold existed; one already settled is
    /// not charged again.
    async fn settle_budget(&self, id: &RequestId, cost: Micros) -> Result<bool>;

    /// Grows (or opens) an instance's lease `id` of one budget by at least `short`, locked with
    /// the budget's row: the grant is [`tollgate_policy::budget::lease_grant`] of what remains
    /// (settled spend and every open reservation, leases included, subtracted), reserved under
    /// the budget and held by the lease, which lives until now + `ttl` unless renewed. The
    /// lease is settled like a request's hold ([`Store::settle_budget`]) or adjusted
    /// ([`Store::adjust_budget_lease`]).
    ///
    /// Returns the amount granted, or `Ok(Err(refusal))` when `short` does not fit.
    async fn lease_budget(
        &self,
        id: &RequestId,
        budget: &Applicable,
        short: Micros,
        ttl: std::time::Duration,
    ) -> Result<Result<Micros, BudgetRefusal>>;

    /// Counts `spent` of budget lease `id` as spent, releases `release` more of what it holds,
    /// and extends it to now + `ttl`. Returns `false`, counting `spent` all the same, when the
    /// lease is gone or holds less than both (it was reclaimed): its instance must stop
    /// spending from it.
    async fn adjust_budget_lease(
        &self,
        id: &RequestId,
        spent: Micros,
        release: Micros,
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Releases the reservation of every budget hold past its expiry (its instance died or
    /// lost the database); a marker stays a day so that a late settlement is still counted.
    /// Returns how many.
    async fn reclaim_expired_budget_holds(&self) -> Result<u64>;

    /// The settled spend and open reservations of one budget period (zero when none).
    async fn budget_usage(
        &self,
        scope: tollgate_policy::budget::BudgetScope,
        owner_id: &str,
        period_key: &str,
    ) -> Result<(Micros, Micros)>;

    /// Credit of the org currently held by leases (all instances).
    async fn leased_credit(&self, org_id: &OrgId) -> Result<Micros>;

    /// Tells every instance sharing this database (this one included) that cached state is
    /// stale, or asks them to return leased credit (see [`Invalidation`]). Postgres: `NOTIFY`
    /// with [`Invalidation::encode`]'s text; SQLite: in process.
    async fn publish_invalidation(&self, notice: &Invalidation) -> Result<()>;

    /// A receiver of every invalidation published on this database, from any instance.
    /// After a lost connection it receives [`Invalidation::All`], since notifications sent
    /// meanwhile are lost.
    async fn invalidations(&self) -> Result<tokio::sync::broadcast::Receiver<Invalidation>>;

    /// What an audit of one org (or all) needs, in one query per table; `spend_since` is the
    /// start of the spend window (the last 24 hours for `LOW_CREDIT`). An unknown org is
    /// `NotFound`.
    async fn audit_snapshot(&self, org_id: Option<&OrgId>, spend_since: Timestamp) -> Result<AuditSnapshot>;

    /// Usage totals of the ledger, grouped and ordered by key.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>>;

    /// Appends one event to the log, in its own transaction, as of now. For system actions
    /// (budgets, alarms, webhooks) that have no store change of their own to share a
    /// transaction with; admin mutations write theirs inside their own transaction.
    async fn record_event(&self, event: &NewEvent) -> Result<Event>;

    /// Events matching `query`, newest first (by id), at most `query.limit`. Paging with
    /// [`EventPage::next`] is stable under concurrent inserts: each later page holds only
    /// events with smaller ids, so no event is returned twice and none that existed when the
    /// first page was read is skipped.
    async fn list_events(&self, query: &EventQuery) -> Result<EventPage>;

    /// The latest `limit` ledger rows of workspace `workspace_id` (of org `org_id`), newest
    /// first.
    async fn recent_ledger(&self, org_id: &OrgId, workspace_id: &WorkspaceId, limit: u32) -> Result<Vec<LedgerRow>>;

    /// The stored admin token hash, if any.
    async fn admin_token_hash(&self) -> Result<Option<TokenHash>>;
    /// Replaces the admin token hash.
    async fn set_admin_token_hash(&self, hash: &TokenHash) -> Result<()>;
}
