//! The two [`Store`] implementations. SQLite and Postgres both accept `$N` parameters,
//! `RETURNING` and `ON CONFLICT ... DO UPDATE`, so the method bodies are written once (in
//! [`impl_store!`]) and stamped out per backend; schemas and migrations stay per backend.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::broadcast;
use tollgate_policy::budget::{Applicable, BudgetRefusal, BudgetScope};
use tollgate_policy::limits::{BudgetMicros, RateLimit, SoftPercent};
use tollgate_policy::resolve::{BillingMode, WorkspaceKind};
use tollgate_policy::secret::{MergedSecrets, Scope, SecretState, SecretValue};
use tollgate_policy::{
    Actor, EventKind, Limits, LimitsPatch, Micros, OrgId, SecretName, SuspendedBy, Suspension, SuspensionReason,
    WorkspaceId,
};

mod alarms;
mod rate;

use tollgate_policy::alarms::{AlarmRuleSpec, AlarmRules};
use tollgate_policy::audit::{LastProvision, PlanFingerprint};

use crate::crypto::{MasterKeys, TokenHash};
use crate::{
    AuditSnapshot, BudgetHold, CreditAdjusted, Event, EventCursor, EventPage, EventQuery, Invalidation, LeaseId,
    LeaseRequest, Leased, LedgerEntry, LedgerRow, MAX_BALANCE_MICROS, MAX_EVENTS_PAGE, NewEvent, NewOrg, NewWorkspace,
    Org, OrgPatch, Overdraft, Owner, Provision, ProvisionRecord, ReencryptBatch, RequestId, Result, SecretCursor,
    SecretMeta, Store, StoreError, Timestamp, UsageGroup, UsageQuery, UsageRow, Workspace, WorkspacePatch,
};

/// The SQLite store: the embedded default (a file under the data dir, WAL mode).
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    key: MasterKeys,
    invalidations: broadcast::Sender<Invalidation>,
}

/// The Postgres store: the scale-out backend, shared by any number of instances.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    key: MasterKeys,
    invalidations: broadcast::Sender<Invalidation>,
    listening: tokio::sync::OnceCell<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite database at `url` (`sqlite://PATH`) and migrates it.
    ///
    /// The database file and its `-wal` and `-shm` companions are readable by the owner only
    /// (0600), whatever the umask (`restrict_database_files`).
    pub async fn connect(url: &str, key: impl Into<MasterKeys>) -> Result<Self> {
        let key = key.into();
        let options = SqliteConnectOptions::from_str(url)?;
        restrict_database_files(options.get_filename()).map_err(sqlx::Error::Io)?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool, key, invalidations: broadcast::channel(1024).0 })
    }
}

/// Makes the SQLite database at `path` owner-only before SQLite opens it: creates the file
/// with mode 0600 when it does not exist, and takes group and other permissions away from it
/// and from existing `-wal` and `-shm` files. SQLite creates `-wal` and `-shm` with the
/// database file's permissions (umask-independent: it `fchmod`s them), so they follow.
/// In-memory databases (no file) are left alone.
#[cfg(unix)]
fn restrict_database_files(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let name = path.as_os_str().to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        match std::fs::metadata(&file) {
            // Files made by an older version (0644 under the usual umask): owner bits kept.
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let owner_only = meta.permissions().mode() & 0o700;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(owner_only))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Elsewhere file permissions are the platform's business.
#[cfg(not(unix))]
fn restrict_database_files(_path: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

impl PgStore {
    /// Connects to Postgres at `url` and applies the migrations.
    pub async fn connect(url: &str, key: impl Into<MasterKeys>) -> Result<Self> {
        let key = key.into();
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool, key, invalidations: broadcast::channel(1024).0, listening: tokio::sync::OnceCell::new() })
    }
}

impl SqliteStore {
    /// SQLite serves one instance: invalidations stay in process.
    async fn publish(&self, notice: &Invalidation) -> Result<()> {
        // No receiver yet is fine: nothing is cached anywhere.
        let _ = self.invalidations.send(notice.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<broadcast::Receiver<Invalidation>> {
        Ok(self.invalidations.subscribe())
    }
}

impl PgStore {
    async fn publish(&self, notice: &Invalidation) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::INVALIDATION_CHANNEL)
            .bind(notice.encode())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts (once) the task that LISTENs on the channel and fans notifications out.
    async fn subscribe(&self) -> Result<broadcast::Receiver<Invalidation>> {
        let receiver = self.invalidations.subscribe();
        self.listening
            .get_or_try_init(|| async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
                listener.listen(crate::INVALIDATION_CHANNEL).await?;
                let tx = self.invalidations.clone();
                tokio::spawn(async move {
                    loop {
                        // `try_recv` reconnects by itself and yields `None` after a lost
                        // connection: notifications sent meanwhile are gone, so flush all.
                        match listener.try_recv().await {
                            Ok(Some(n)) => {
                                let _ = tx.send(Invalidation::decode(n.payload()));
                            }
                            Ok(None) => {
                                let _ = tx.send(Invalidation::All);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "invalidation listener: retrying");
                                let _ = tx.send(Invalidation::All);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                });
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(receiver)
    }
}

/// Opens the store a database URL names: `postgres://...` (or `postgresql://`) or
/// `sqlite:...`. Any other scheme, or a URL the driver cannot read, is
/// [`StoreError::Config`]; a database that does not answer is [`StoreError::Unavailable`].
/// This is the one place a database URL is checked.
///
/// `key` is one master key or several ([`MasterKeys`]: the newest encrypts, all decrypt).
pub async fn connect(url: &str, key: impl Into<MasterKeys>) -> Result<Arc<dyn Store>> {
    let key = key.into();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, key).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, key).await?))
    } else {
        Err(StoreError::Config("the database URL must start with postgres:// or sqlite://".to_owned()))
    }
}

/// A walk's position as the (scope, owner id, name) it compares rows with; before every row
/// when there is none (every scope sorts after the empty string).
fn cursor_parts(c: Option<&SecretCursor>) -> (&str, &str, &str) {
    c.map_or(("", "", ""), |c| (c.scope.as_str(), c.owner_id.as_str(), c.name.as_str()))
}

fn mode_to_text(m: Option<BillingMode>) -> Option<&'static str> {
    m.map(BillingMode::as_str)
}

fn mode_from_text(s: Option<String>) -> Result<Option<BillingMode>> {
    s.map(|s| BillingMode::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("billing mode `{s}`")))).transpose()
}

fn kind_from_text(s: &str) -> Result<WorkspaceKind> {
    WorkspaceKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("workspace kind `{s}`")))
}

fn scope_from_text(s: &str) -> Result<Scope> {
    match s {
        "org" => Ok(Scope::Org),
        "workspace" => Ok(Scope::Workspace),
        other => Err(StoreError::Corrupt(format!("secret scope `{other}`"))),
    }
}

/// Maps a unique-constraint violation to `Conflict(message)`, anything else to `Database`.
fn unique(e: sqlx::Error, message: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message.to_owned()),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("org"),
        _ => StoreError::from(e),
    }
}

/// The table holding `owner`'s row, and what to call it when it is missing.
fn suspendable(owner: &Owner) -> (&'static str, &'static str) {
    match owner {
        Owner::Org(_) => ("orgs", "org"),
        Owner::Workspace(_) => ("workspaces", "workspace"),
    }
}

/// `ttl` in milliseconds, saturating.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// How much a lease takes from a balance that covers `need`: `need`, plus up to `want` in all
/// while leaving seven eighths of the balance to other instances.
fn lease_size(balance: i64, need: i64, want: i64) -> i64 {
    let share = balance / 8;
    share.clamp(need, want.max(need)).min(balance)
}

/// A stored id that does not parse is a corrupt row.
fn parse_org_id(s: String) -> Result<OrgId> {
    OrgId::try_from(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An org's stored alert webhook as written before it was sealed (plain text); one that no
/// longer parses is a corrupt row (the message does not quote it: it is a credential).
fn webhook_from_text(text: Option<String>) -> Result<Option<tollgate_policy::WebhookUrl>> {
    text.map(|t| {
        tollgate_policy::WebhookUrl::parse(&t).map_err(|_| StoreError::Corrupt("orgs.alert_webhook_url".to_owned()))
    })
    .transpose()
}

/// How a sealed webhook URL starts in `orgs.alert_webhook_url`: `sealed1:<key id>:<nonce>:<ciphertext>`
/// (base64). A Slack URL's path is its key, so it is encrypted at rest like a secret value.
const WEBHOOK_SEALED: &str = "sealed1:";
/// The name the URL's ciphertext is bound to (with the org's id), as a secret's name is.
const WEBHOOK_NAME: &str = "alert_webhook_url";

/// Seals `url` for org `org_id` under the newest master key.
fn seal_webhook(keys: &MasterKeys, org_id: &str, url: &tollgate_policy::WebhookUrl) -> Result<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let value = SecretValue::parse(url.expose()).map_err(|_| StoreError::Crypto)?;
    let (key_id, nonce, ct) = keys.seal(Scope::Org, org_id, WEBHOOK_NAME, &value).ok_or(StoreError::Crypto)?;
    Ok(format!("{WEBHOOK_SEALED}{key_id}:{}:{}", b64.encode(nonce), b64.encode(ct)))
}

/// Opens an org's stored webhook: sealed (current form) or plain text (written before
/// sealing). A sealed URL no configured key opens (its key was retired before `tollgate admin
/// reencrypt` moved it) is logged and read as none: the org's other data stays readable, and
/// its notifications go to the global webhook only until the URL is set again.
fn open_webhook(keys: &MasterKeys, org_id: &str, text: Option<String>) -> Result<Option<tollgate_policy::WebhookUrl>> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let Some(text) = text else { return Ok(None) };
    let Some(sealed) = text.strip_prefix(WEBHOOK_SEALED) else { return webhook_from_text(Some(text)) };
    let corrupt = || StoreError::Corrupt("orgs.alert_webhook_url".to_owned());
    let mut parts = sealed.splitn(3, ':');
    let (Some(key_id), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt());
    };
    let (nonce, ct) = (b64.decode(nonce).map_err(|_| corrupt())?, b64.decode(ct).map_err(|_| corrupt())?);
    match keys.open(Scope::Org, org_id, WEBHOOK_NAME, Some(key_id), &nonce, &ct) {
        SecretState::Value(v) => tollgate_policy::WebhookUrl::parse(v.expose()).map(Some).map_err(|_| corrupt()),
        _ => {
            tracing::error!(org_id, key_id, "an org's alert webhook URL opens with no configured key: read as none");
            Ok(None)
        }
    }
}

/// The key id a sealed webhook was written under (`None`: plain text or absent).
fn webhook_key_id(text: &str) -> Option<&str> {
    text.strip_prefix(WEBHOOK_SEALED).and_then(|s| s.split(':').next())
}

/// A stored id that does not parse is a corrupt row.
fn parse_workspace_id(s: String) -> Result<WorkspaceId> {
    WorkspaceId::try_from(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An org's stored markup; a value outside the accepted range (written by hand) is refused.
fn markup_from_row(percent: i32) -> Result<tollgate_policy::Markup> {
    tollgate_policy::Markup::try_from(i64::from(percent))
        .map_err(|e| StoreError::Corrupt(format!("orgs.markup_percent: {e}")))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

const ORG_COLUMNS: &str = "id, name, default_billing_mode, credit_micros, markup_percent, created_at, updated_at, \
     budget_micros_per_day, budget_micros_per_month, soft_budget_percent, requests_per_minute, tokens_per_minute, \
     max_concurrent_requests, allowed_models, alert_webhook_url";
/// The columns of orgs and workspaces read with every row but not in the INSERT lists: the
/// suspension (written only by `suspend`, `resume` and `fire_alarm`) and the alarm rules
/// (written by their own statement in create and update, see `set_alarms`).
const SUSPENSION_COLUMNS: &str = "suspended_reason, suspended_at, suspended_by, alarms";
/// An org as read: its balance includes the credit its instances' leases hold, which is not
/// spent until the requests it covers are recorded.
const ORG_SELECT: &str = "SELECT o.id, o.name, o.default_billing_mode, \
     CAST(o.credit_micros + COALESCE((SELECT SUM(l.amount) FROM credit_leases l WHERE l.org_id = o.id), 0) AS BIGINT) AS credit_micros, \
     o.markup_percent, o.created_at, o.updated_at, o.budget_micros_per_day, o.budget_micros_per_month, o.soft_budget_percent, \
     o.requests_per_minute, o.tokens_per_minute, o.max_concurrent_requests, o.allowed_models, \
     o.alert_webhook_url, o.suspended_reason, o.suspended_at, o.suspended_by, o.alarms FROM orgs o";
/// The credit an org's leases hold.
const LEASED_SUM: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_leases WHERE org_id = $1";
/// `allowed_models` as stored: ids one per line (ids are registry model ids, which hold no
/// newline); `""` is the empty list, distinct from NULL (no narrowing).
fn models_to_text(models: &[String]) -> String {
    models.join("\n")
}

/// The inverse of [`models_to_text`].
fn models_from_text(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| if t.is_empty() { Vec::new() } else { t.split('\n').map(str::to_owned).collect() })
}

const WS_COLUMNS: &str = "id, org_id, name, runtime, model, billing_mode, kind, allowed_models, created_at, updated_at, \
     budget_micros_per_day, budget_micros_per_month, soft_budget_percent, requests_per_minute, tokens_per_minute, \
     max_concurrent_requests";

/// The numeric `limits` columns, in the order of [`limit_values`] and [`limit_patch`].
const LIMIT_COLUMNS: [&str; 6] = [
    "budget_micros_per_day",
    "budget_micros_per_month",
    "soft_budget_percent",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent_requests",
];

/// The numeric limits as stored, in [`LIMIT_COLUMNS`] order.
fn limit_values(l: &Limits) -> [Option<i64>; 6] {
    let rate = |r: Option<RateLimit>| r.map(|v| i64::try_from(v.get()).unwrap_or(i64::MAX));
    [
        l.budget_micros_per_day.map(BudgetMicros::get),
        l.budget_micros_per_month.map(BudgetMicros::get),
        l.soft_budget_percent.map(|p| i64::from(p.get())),
        rate(l.requests_per_minute),
        rate(l.tokens_per_minute),
        rate(l.max_concurrent_requests),
    ]
}

/// For each of [`LIMIT_COLUMNS`]: whether the patch sets it, and to what.
fn limit_patch(p: &LimitsPatch) -> [(bool, Option<i64>); 6] {
    let set = Limits::default().patched(p);
    let values = limit_values(&set);
    let given = [
        p.budget_micros_per_day.is_some(),
        p.budget_micros_per_month.is_some(),
        p.soft_budget_percent.is_some(),
        p.requests_per_minute.is_some(),
        p.tokens_per_minute.is_some(),
        p.max_concurrent_requests.is_some(),
    ];
    [0, 1, 2, 3, 4, 5].map(|i| (given[i], values[i]))
}

/// `col = CASE WHEN $n THEN $n+1 ELSE col END, ...` for [`LIMIT_COLUMNS`], numbering from
/// `first`: the limits a patch sets, the others untouched, in the same statement.
fn limit_set_clause(first: usize) -> String {
    LIMIT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = CASE WHEN ${} THEN ${} ELSE {c} END", first + 2 * i, first + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The numeric limits of a row (a value that does not parse is a corrupt row).
fn limits_from_values(v: [Option<i64>; 6], allowed_models: Option<Vec<String>>) -> Result<Limits> {
    let corrupt = |e: tollgate_policy::LimitError| StoreError::Corrupt(e.to_string());
    let budget = |f, x: Option<i64>| x.map(|x| BudgetMicros::parse(f, x)).transpose().map_err(corrupt);
    let rate = |f, x: Option<i64>| x.map(|x| RateLimit::parse(f, x)).transpose().map_err(corrupt);
    Ok(Limits {
        budget_micros_per_day: budget(LIMIT_COLUMNS[0], v[0])?,
        budget_micros_per_month: budget(LIMIT_COLUMNS[1], v[1])?,
        soft_budget_percent: v[2].map(SoftPercent::parse).transpose().map_err(corrupt)?,
        requests_per_minute: rate(LIMIT_COLUMNS[3], v[3])?,
        tokens_per_minute: rate(LIMIT_COLUMNS[4], v[4])?,
        max_concurrent_requests: rate(LIMIT_COLUMNS[5], v[5])?,
        allowed_models,
    })
}

/// How long the marker of a reclaimed budget hold is kept (see `close_budget_hold`).
const HOLD_MARKER_LIFE: Duration = Duration::from_secs(24 * 3600);

/// A budget's `budget_usage` key as a hold lists it.
fn budget_key(a: &Applicable) -> String {
    format!("{}\t{}\t{}", a.scope.as_str(), a.owner, a.period.key)
}

/// Splits one line of a hold's `budgets` back into (scope, owner, period).
fn split_budget_key(line: &str) -> Result<(String, String, String)> {
    let mut parts = line.splitn(3, '\t');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => Ok((a.to_owned(), b.to_owned(), c.to_owned())),
        _ => Err(StoreError::Corrupt("a budget hold's key".to_owned())),
    }
}

/// The row counts of `record_usage`'s INSERT statements, largest first: a flush of any size is
/// written as runs of these ([`ledger_chunks`]). A fixed few, because each distinct count is
/// another statement that each connection prepares and keeps in its statement cache: with every
/// count from 1 to 500, a loaded server prepared a many-row INSERT (hundreds of thousands of
/// instructions) on most flushes and held a hundred of them per connection, tens of MiB in all.
/// 64 rows of 19 parameters are well under SQLite's 32766 and Postgres's 65535.
const LEDGER_INSERT_SIZES: [usize; 4] = [64, 16, 4, 1];

/// `entries` as consecutive runs whose lengths are all in [`LEDGER_INSERT_SIZES`], largest
/// first, in order: at most 3 runs of each smaller size.
fn ledger_chunks<T>(mut rest: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    for size in LEDGER_INSERT_SIZES {
        while let Some((head, tail)) = rest.split_at_checked(size) {
            chunks.push(head);
            rest = tail;
        }
    }
    chunks
}

/// The suspension stored in a row's `suspended_reason`, `suspended_at` and `suspended_by`
/// (all NULL when there is none).
fn suspension_from_columns(reason: Option<String>, at: Option<i64>, by: Option<String>) -> Result<Option<Suspension>> {
    let Some(reason) = reason else { return Ok(None) };
    let reason =
        SuspensionReason::parse(&reason).map_err(|e| StoreError::Corrupt(format!("suspension reason: {e}")))?;
    let by = by.as_deref().unwrap_or_default();
    let by = SuspendedBy::parse(by).ok_or_else(|| StoreError::Corrupt(format!("suspended by `{by}`")))?;
    let since_ms = at.ok_or_else(|| StoreError::Corrupt("suspension without a time".to_owned()))?;
    Ok(Some(Suspension { reason, since_ms, by }))
}

/// Alarm rules as stored: their JSON list (the API's shape).
fn alarms_to_text(rules: &AlarmRules) -> String {
    serde_json::to_string(&rules.specs()).unwrap_or_else(|_| "[]".to_owned())
}

/// The inverse of [`alarms_to_text`] (rules that no longer parse are a corrupt row).
fn alarms_from_text(text: Option<String>) -> Result<Option<AlarmRules>> {
    text.map(|t| {
        let specs: Vec<AlarmRuleSpec> =
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("alarms: {e}")))?;
        AlarmRules::parse(&specs).map_err(|e| StoreError::Corrupt(e.to_string()))
    })
    .transpose()
}

/// An event of Tollgate itself (alarms, budgets).
fn system_event(kind: EventKind, owner: &Owner, org_id: &OrgId, detail: serde_json::Value) -> NewEvent {
    let workspace_id = match owner {
        Owner::Org(_) => None,
        Owner::Workspace(id) => Some(id.clone()),
    };
    NewEvent { kind, actor: Actor::System, org_id: Some(org_id.clone()), workspace_id, detail }
}

/// An admin's event.
fn admin_event(
    kind: EventKind,
    org_id: Option<&OrgId>,
    workspace_id: Option<&WorkspaceId>,
    detail: serde_json::Value,
) -> NewEvent {
    NewEvent { kind, actor: Actor::Admin, org_id: org_id.cloned(), workspace_id: workspace_id.cloned(), detail }
}

/// Who an event of a suspension by `by` is to name as its actor.
fn suspension_actor(by: &SuspendedBy) -> Actor {
    match by {
        SuspendedBy::Admin => Actor::Admin,
        SuspendedBy::Alarm(_) => Actor::System,
    }
}

/// The names of the limits a patch changes (for `limits.updated`).
fn limit_fields(p: &LimitsPatch) -> Vec<&'static str> {
    let given = [
        ("budget_micros_per_day", p.budget_micros_per_day.is_some()),
        ("budget_micros_per_month", p.budget_micros_per_month.is_some()),
        ("soft_budget_percent", p.soft_budget_percent.is_some()),
        ("requests_per_minute", p.requests_per_minute.is_some()),
        ("tokens_per_minute", p.tokens_per_minute.is_some()),
        ("max_concurrent_requests", p.max_concurrent_requests.is_some()),
        ("allowed_models", p.allowed_models.is_some()),
    ];
    given.into_iter().filter(|(_, g)| *g).map(|(f, _)| f).collect()
}

/// The events of a PATCH: `<object>.updated` naming the other fields it sets (also when it
/// sets nothing: the request was made), and `limits.updated` when it changes limits.
fn patch_events(
    updated: EventKind,
    other_fields: Vec<&'static str>,
    limits_patch: &LimitsPatch,
    limits_after: &Limits,
    alarms: Option<&Option<AlarmRules>>,
    org_id: &OrgId,
    workspace_id: Option<&WorkspaceId>,
) -> Vec<NewEvent> {
    let mut events = Vec::new();
    let limits = limit_fields(limits_patch);
    let mut other_fields = other_fields;
    if alarms.is_some() {
        other_fields.push("alarms");
    }
    if !other_fields.is_empty() || limits.is_empty() {
        let mut detail = serde_json::json!({ "fields": other_fields });
        if let Some(a) = alarms {
            detail["alarms"] = serde_json::json!(a.as_ref().map(AlarmRules::specs));
        }
        events.push(admin_event(updated, Some(org_id), workspace_id, detail));
    }
    if !limits.is_empty() {
        let detail = serde_json::json!({ "fields": limits, "limits": limits_after });
        events.push(admin_event(EventKind::LimitsUpdated, Some(org_id), workspace_id, detail));
    }
    events
}

/// A provision's event detail: the mode and provider decided (read back from the resolution
/// JSON the caller stores), the model; never the token or env values.
fn provision_detail(record: &ProvisionRecord) -> serde_json::Value {
    let resolution: serde_json::Value = serde_json::from_str(&record.resolution_json).unwrap_or_default();
    serde_json::json!({
        "mode": resolution.get("resolved_mode").cloned().unwrap_or_default(),
        "provider": resolution.get("provider").cloned().unwrap_or_default(),
        "model": record.model_after,
    })
}

/// An event row as read.
fn event_from_parts(
    id: i64,
    at: i64,
    kind: &str,
    actor: &str,
    org_id: Option<String>,
    workspace_id: Option<String>,
    detail: &str,
) -> Result<Event> {
    Ok(Event {
        id,
        at: Timestamp(at),
        kind: EventKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("event kind `{kind}`")))?,
        actor: Actor::parse(actor).ok_or_else(|| StoreError::Corrupt(format!("event actor `{actor}`")))?,
        org_id: org_id.map(parse_org_id).transpose()?,
        workspace_id: workspace_id.map(parse_workspace_id).transpose()?,
        detail: serde_json::from_str(detail).map_err(|e| StoreError::Corrupt(format!("event detail: {e}")))?,
    })
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal, $begin:literal, $lock:literal, $day:literal) => {
        impl $store {
            /// Re-seals every org's webhook URL not under the newest key (plain text ones too),
            /// each only if the row still holds what was read. Counts in a [`ReencryptBatch`].
            async fn reencrypt_webhooks(&self) -> Result<ReencryptBatch> {
                let current = self.key.current().as_str();
                let rows = sqlx::query("SELECT id, alert_webhook_url FROM orgs WHERE alert_webhook_url IS NOT NULL")
                    .fetch_all(&self.pool)
                    .await?;
                let mut batch = ReencryptBatch::default();
                for r in &rows {
                    let id: String = r.try_get("id")?;
                    let text: String = r.try_get("alert_webhook_url")?;
                    if webhook_key_id(&text) == Some(current) {
                        continue;
                    }
                    let Some(url) = open_webhook(&self.key, &id, Some(text.clone()))? else {
                        batch.unreadable += 1;
                        continue;
                    };
                    let done = sqlx::query("UPDATE orgs SET alert_webhook_url = $1 WHERE id = $2 AND alert_webhook_url = $3")
                        .bind(seal_webhook(&self.key, &id, &url)?)
                        .bind(&id)
                        .bind(&text)
                        .execute(&self.pool)
                        .await?;
                    batch.tally(done.rows_affected());
                }
                Ok(batch)
            }

            fn org_from_row(&self, row: &<$db as sqlx::Database>::Row) -> Result<Org> {
                let id: String = row.try_get("id")?;
                Ok(Org {
                    alert_webhook_url: open_webhook(&self.key, &id, row.try_get("alert_webhook_url")?)?,
                    id: parse_org_id(id)?,
                    name: row.try_get("name")?,
                    default_billing_mode: mode_from_text(row.try_get("default_billing_mode")?)?,
                    credit_micros: Micros::new(row.try_get("credit_micros")?),
                    limits: Self::limits_from_row(row, models_from_text(row.try_get("allowed_models")?))?,
                    markup_percent: markup_from_row(row.try_get("markup_percent")?)?,
                    suspended: Self::suspension_from_row(row)?,
                    alarms: alarms_from_text(row.try_get("alarms")?)?,
                    created_at: Timestamp(row.try_get("created_at")?),
                    updated_at: Timestamp(row.try_get("updated_at")?),
                })
            }

            fn ws_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Workspace> {
                let kind: String = row.try_get("kind")?;
                Ok(Workspace {
                    id: parse_workspace_id(row.try_get("id")?)?,
                    org_id: parse_org_id(row.try_get("org_id")?)?,
                    name: row.try_get("name")?,
                    runtime: row.try_get("runtime")?,
                    model: row.try_get("model")?,
                    billing_mode: mode_from_text(row.try_get("billing_mode")?)?,
                    kind: kind_from_text(&kind)?,
                    limits: Self::limits_from_row(row, models_from_text(row.try_get("allowed_models")?))?,
                    suspended: Self::suspension_from_row(row)?,
                    alarms: alarms_from_text(row.try_get("alarms")?)?,
                    created_at: Timestamp(row.try_get("created_at")?),
                    updated_at: Timestamp(row.try_get("updated_at")?),
                })
            }

            fn suspension_from_row(row: &<$db as sqlx::Database>::Row) -> Result<Option<Suspension>> {
                suspension_from_columns(
                    row.try_get("suspended_reason")?,
                    row.try_get("suspended_at")?,
                    row.try_get("suspended_by")?,
                )
            }

            fn limits_from_row(
                row: &<$db as sqlx::Database>::Row,
                allowed_models: Option<Vec<String>>,
            ) -> Result<Limits> {
                let mut values = [None; 6];
                for (v, c) in values.iter_mut().zip(LIMIT_COLUMNS) {
                    *v = row.try_get::<Option<i64>, _>(c)?;
                }
                limits_from_values(values, allowed_models)
            }

            /// Settles (`cost` `Some`) or reclaims (`None`) hold `id`, locked first.
            ///
            /// Settling releases what the hold still reserves from each of its budgets, counts
            /// `cost` as spent there and deletes the hold. Reclaiming (its instance is gone)
            /// releases the reservation but keeps the hold, reserving nothing, as a marker
            /// until [`HOLD_MARKER_LIFE`]: a request still running after all is then charged
            /// to its budgets when it settles. Returns whether the hold existed.
            async fn close_budget_hold(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                cost: Option<i64>,
            ) -> Result<bool> {
                let row = sqlx::query(concat!("SELECT budgets, amount FROM budget_holds WHERE id = $1", $lock))
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let (keys, amount): (String, i64) = (row.try_get("budgets")?, row.try_get("amount")?);
                for line in keys.lines() {
                    let (scope, owner, period) = split_budget_key(line)?;
                    sqlx::query(
                        "UPDATE budget_usage SET spent = spent + $1, reserved = reserved - $2 \
                         WHERE scope = $3 AND owner_id = $4 AND period = $5",
                    )
                    .bind(cost.unwrap_or(0))
                    .bind(amount)
                    .bind(scope)
                    .bind(owner)
                    .bind(period)
                    .execute(&mut **tx)
                    .await?;
                }
                if cost.is_some() {
                    sqlx::query("DELETE FROM budget_holds WHERE id = $1").bind(id).execute(&mut **tx).await?;
                } else {
                    sqlx::query("UPDATE budget_holds SET amount = 0, expires_at = $1 WHERE id = $2")
                        .bind(Timestamp::now().0.saturating_add(ttl_millis(HOLD_MARKER_LIFE)))
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(true)
            }

            /// Sets (or with `None` removes) the alarm rules of row `id` of `table` in `tx`.
            async fn set_alarms(
                tx: &mut sqlx::Transaction<'_, $db>,
                table: &str,
                id: &str,
                rules: Option<&AlarmRules>,
            ) -> Result<()> {
                sqlx::query(&format!("UPDATE {table} SET alarms = $1 WHERE id = $2"))
                    .bind(rules.map(alarms_to_text))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Appends `event` in `tx`, as of now.
            async fn insert_event(tx: &mut sqlx::Transaction<'_, $db>, event: &NewEvent) -> Result<Event> {
                let at = Timestamp::now().0;
                let detail = event.detail.to_string();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO events (at, kind, actor, org_id, workspace_id, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(at)
                .bind(event.kind.as_str())
                .bind(event.actor.as_str())
                .bind(event.org_id.as_ref().map(OrgId::as_str))
                .bind(event.workspace_id.as_ref().map(WorkspaceId::as_str))
                .bind(&detail)
                .fetch_one(&mut **tx)
                .await?;
                Ok(Event {
                    id,
                    at: Timestamp(at),
                    kind: event.kind,
                    actor: event.actor,
                    org_id: event.org_id.clone(),
                    workspace_id: event.workspace_id.clone(),
                    detail: event.detail.clone(),
                })
            }

            /// The org and workspace ids an event about `owner` names, read in `tx`; an
            /// unknown owner is `NotFound`.
            async fn owner_event_ids(
                tx: &mut sqlx::Transaction<'_, $db>,
                owner: &Owner,
            ) -> Result<(OrgId, Option<WorkspaceId>)> {
                match owner {
                    Owner::Org(id) => {
                        let found: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&mut **tx)
                            .await?;
                        found.ok_or(StoreError::NotFound("org"))?;
                        Ok((id.clone(), None))
                    }
                    Owner::Workspace(id) => {
                        let org: Option<String> = sqlx::query_scalar("SELECT org_id FROM workspaces WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&mut **tx)
                            .await?;
                        Ok((parse_org_id(org.ok_or(StoreError::NotFound("workspace"))?)?, Some(id.clone())))
                    }
                }
            }

            async fn owner_exists(&self, scope: Scope, owner_id: &str) -> Result<()> {
                let (sql, what) = match scope {
                    Scope::Org => ("SELECT 1 AS one FROM orgs WHERE id = $1", "org"),
                    Scope::Workspace => ("SELECT 1 AS one FROM workspaces WHERE id = $1", "workspace"),
                };
                match sqlx::query(sql).bind(owner_id).fetch_optional(&self.pool).await? {
                    Some(_) => Ok(()),
                    None => Err(StoreError::NotFound(what)),
                }
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_org(&self, new: &NewOrg) -> Result<Org> {
                let now = Timestamp::now().0;
                let sql = format!(
                    "INSERT INTO orgs ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, 0, $5, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     RETURNING {ORG_COLUMNS}, {SUSPENSION_COLUMNS}"
                );
                let id = new_id();
                let webhook = new.alert_webhook_url.as_ref().map(|u| seal_webhook(&self.key, &id, u)).transpose()?;
                let mut query = sqlx::query(&sql)
                    .bind(&id)
                    .bind(&new.name)
                    .bind(mode_to_text(new.default_billing_mode))
                    .bind(new.credit_micros.get())
                    .bind(now);
                for v in limit_values(&new.limits) {
                    query = query.bind(v);
                }
                let mut tx = self.pool.begin_with($begin).await?;
                let row = query
                    .bind(new.limits.allowed_models.as_deref().map(models_to_text))
                    .bind(webhook)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique(e, &format!("an org named `{}` already exists", new.name)))?;
                let mut org = self.org_from_row(&row)?;
                if let Some(rules) = &new.alarms {
                    Self::set_alarms(&mut tx, "orgs", org.id.as_str(), Some(rules)).await?;
                    org.alarms = Some(rules.clone());
                }
                let detail = serde_json::json!({
                    "name": org.name,
                    "default_billing_mode": mode_to_text(org.default_billing_mode),
                    "credit_micros": org.credit_micros.get(),
                    "limits": org.limits,
                    "alarms": org.alarms.as_ref().map(AlarmRules::specs),
                });
                Self::insert_event(&mut tx, &admin_event(EventKind::OrgCreated, Some(&org.id), None, detail)).await?;
                tx.commit().await?;
                Ok(org)
            }

            async fn get_org(&self, id: &OrgId) -> Result<Org> {
                let sql = format!("{ORG_SELECT} WHERE o.id = $1");
                let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
                row.map_or(Err(StoreError::NotFound("org")), |r| self.org_from_row(&r))
            }

            async fn list_orgs(&self) -> Result<Vec<Org>> {
                let sql = format!("{ORG_SELECT} ORDER BY o.name");
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(|r| self.org_from_row(r)).collect()
            }

            async fn update_org(&self, id: &OrgId, patch: &OrgPatch) -> Result<Org> {
                // One statement that sets only the given fields (a flag per field says which):
                // two concurrent PATCHes of different fields both land.
                let sql = format!(
                    "UPDATE orgs SET name = CASE WHEN $1 THEN $2 ELSE name END, \
                     default_billing_mode = CASE WHEN $3 THEN $4 ELSE default_billing_mode END, \
                     updated_at = $5, allowed_models = CASE WHEN $6 THEN $7 ELSE allowed_models END, {}, \
                     markup_percent = CASE WHEN $21 THEN $22 ELSE markup_percent END, \
                     alert_webhook_url = CASE WHEN $23 THEN $24 ELSE alert_webhook_url END WHERE id = $20",
                    limit_set_clause(8)
                );
                let mut query = sqlx::query(&sql)
                    .bind(patch.name.is_some())
                    .bind(patch.name.as_deref())
                    .bind(patch.default_billing_mode.is_some())
                    .bind(patch.default_billing_mode.and_then(mode_to_text))
                    .bind(Timestamp::now().0)
                    .bind(patch.limits.allowed_models.is_some())
                    .bind(patch.limits.allowed_models.as_ref().and_then(|m| m.as_deref().map(models_to_text)));
                for (given, value) in limit_patch(&patch.limits) {
                    query = query.bind(given).bind(value);
                }
                let mut tx = self.pool.begin_with($begin).await?;
                let updated = query
                .bind(id.as_str())
                .bind(patch.markup_percent.is_some())
                .bind(patch.markup_percent.map_or(0, |m| i32::try_from(m.percent()).unwrap_or(0)))
                .bind(patch.alert_webhook_url.is_some())
                .bind(
                    patch
                        .alert_webhook_url
                        .as_ref()
                        .and_then(|u| u.as_ref().map(|u| seal_webhook(&self.key, id.as_str(), u)))
                        .transpose()?,
                )
                .execute(&mut *tx)
                .await
                .map_err(|e| unique(e, &format!("an org named `{}` already exists", patch.name.as_deref().unwrap_or(""))))?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound("org"));
                }
                if let Some(rules) = &patch.alarms {
                    Self::set_alarms(&mut tx, "orgs", id.as_str(), rules.as_ref()).await?;
                }
                let sql = format!("{ORG_SELECT} WHERE o.id = $1");
                let org = self.org_from_row(&sqlx::query(&sql).bind(id.as_str()).fetch_one(&mut *tx).await?)?;
                let fields = [
                    ("name", patch.name.is_some()),
                    ("default_billing_mode", patch.default_billing_mode.is_some()),
                    ("markup_percent", patch.markup_percent.is_some()),
                    // The field's name only: the URL is a credential.
                    ("alert_webhook_url", patch.alert_webhook_url.is_some()),
                ];
                let fields = fields.into_iter().filter(|(_, g)| *g).map(|(f, _)| f).collect();
                for event in patch_events(EventKind::OrgUpdated, fields, &patch.limits, &org.limits, patch.alarms.as_ref(), id, None) {
                    Self::insert_event(&mut tx, &event).await?;
                }
                tx.commit().await?;
                Ok(org)
            }

            async fn adjust_credit(
                &self,
                org_id: &OrgId,
                delta: Micros,
                reason: &str,
                overdraft: Overdraft,
            ) -> Result<CreditAdjusted> {
                let now = Timestamp::now().0;
                let mut tx = self.pool.begin_with($begin).await?;
                // The org's row is locked first, so its leases cannot change until the commit.
                let current: Option<i64> =
                    sqlx::query_scalar(concat!("SELECT credit_micros FROM orgs WHERE id = $1", $lock))
                        .bind(org_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let current = current.ok_or(StoreError::NotFound("org"))?;
                let leased: i64 = sqlx::query_scalar(LEASED_SUM).bind(org_id.as_str()).fetch_one(&mut *tx).await?;
                let before = current.saturating_add(leased);
                let balance = before.checked_add(delta.get()).ok_or(StoreError::Overflow)?;
                if balance.unsigned_abs() > MAX_BALANCE_MICROS.unsigned_abs() {
                    return Err(StoreError::Overflow);
                }
                if delta.get() < 0 && balance < 0 && overdraft == Overdraft::Refuse {
                    return Err(StoreError::InsufficientCredit { balance: Micros::new(before) });
                }
                // A debit takes every lease's credit back to the balance in this transaction:
                // instances must not go on spending credit the org no longer has. Their rows
                // still to be written are then charged to the balance (see `record_usage`).
                let (cut, closed) = if delta.get() < 0 {
                    let ids: Vec<String> = sqlx::query_scalar("DELETE FROM credit_leases WHERE org_id = $1 RETURNING id")
                        .bind(org_id.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                    let ids = ids.iter().map(|id| LeaseId::parse(id).map_err(StoreError::Corrupt)).collect::<Result<Vec<_>>>()?;
                    (leased, ids)
                } else {
                    (0, Vec::new())
                };
                // The increment is applied in SQL, not from the value read (the row is locked,
                // but this keeps the statement right on its own).
                let stored: i64 = sqlx::query_scalar(
                    "UPDATE orgs SET credit_micros = credit_micros + $1, updated_at = $2 WHERE id = $3 RETURNING credit_micros",
                )
                .bind(delta.get().saturating_add(cut))
                .bind(now)
                .bind(org_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                let balance = stored.saturating_add(leased - cut);
                sqlx::query(
                    "INSERT INTO credit_events (id, org_id, delta_micros, reason, balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_id())
                .bind(org_id.as_str())
                .bind(delta.get())
                .bind(reason)
                .bind(balance)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let detail = serde_json::json!({
                    "delta_micros": delta.get(),
                    "reason": reason,
                    "balance_micros": balance,
                    "closed_leases": closed.len(),
                });
                Self::insert_event(&mut tx, &admin_event(EventKind::CreditAdjusted, Some(org_id), None, detail)).await?;
                tx.commit().await?;
                Ok(CreditAdjusted { balance: Micros::new(balance), closed_leases: closed })
            }

            async fn suspend(&self, owner: &Owner, reason: &SuspensionReason, by: &SuspendedBy) -> Result<Suspension> {
                let (table, what) = suspendable(owner);
                let now = Timestamp::now().0;
                // `since` is the start of an unbroken suspension: a second suspend keeps it.
                let sql = format!(
                    "UPDATE {table} SET suspended_reason = $1, suspended_by = $2, \
                     suspended_at = COALESCE(suspended_at, $3), updated_at = $3 WHERE id = $4 RETURNING suspended_at"
                );
                let mut tx = self.pool.begin_with($begin).await?;
                let since: Option<i64> = sqlx::query_scalar(&sql)
                    .bind(reason.as_str())
                    .bind(by.as_str())
                    .bind(now)
                    .bind(owner.id())
                    .fetch_optional(&mut *tx)
                    .await?;
                let since_ms = since.ok_or(StoreError::NotFound(what))?;
                let (org_id, workspace_id) = Self::owner_event_ids(&mut tx, owner).await?;
                let event = NewEvent {
                    kind: EventKind::Suspended,
                    actor: suspension_actor(by),
                    org_id: Some(org_id),
                    workspace_id,
                    detail: serde_json::json!({ "scope": what, "reason": reason.as_str(), "by": by.as_str() }),
                };
                Self::insert_event(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(Suspension { reason: reason.clone(), since_ms, by: by.clone() })
            }

            async fn resume(&self, owner: &Owner) -> Result<()> {
                let (table, what) = suspendable(owner);
                let sql = format!(
                    "UPDATE {table} SET suspended_reason = NULL, suspended_at = NULL, suspended_by = NULL, \
                     updated_at = CASE WHEN suspended_reason IS NULL THEN updated_at ELSE $1 END WHERE id = $2"
                );
                let mut tx = self.pool.begin_with($begin).await?;
                // Whether it was suspended, read under the lock the update takes anyway: a
                // resume of an owner not suspended changes nothing and records nothing.
                let was = format!(concat!("SELECT suspended_reason FROM {} WHERE id = $1", $lock), table);
                let before: Option<Option<String>> =
                    sqlx::query_scalar(&was).bind(owner.id()).fetch_optional(&mut *tx).await?;
                let before = before.ok_or(StoreError::NotFound(what))?;
                let done = sqlx::query(&sql).bind(Timestamp::now().0).bind(owner.id()).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(what));
                }
                if let Some(reason) = before {
                    let (org_id, workspace_id) = Self::owner_event_ids(&mut tx, owner).await?;
                    let detail = serde_json::json!({ "scope": what, "lifted_reason": reason });
                    Self::insert_event(&mut tx, &admin_event(EventKind::Resumed, Some(&org_id), workspace_id.as_ref(), detail))
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_workspace(&self, new: &NewWorkspace) -> Result<Workspace> {
                self.owner_exists(Scope::Org, new.org_id.as_str()).await?;
                let now = Timestamp::now().0;
                let sql = format!(
                    "INSERT INTO workspaces ({WS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15) \
                     RETURNING {WS_COLUMNS}, {SUSPENSION_COLUMNS}"
                );
                let mut query = sqlx::query(&sql)
                    .bind(new_id())
                    .bind(new.org_id.as_str())
                    .bind(&new.name)
                    .bind(&new.runtime)
                    .bind(&new.model)
                    .bind(mode_to_text(new.billing_mode))
                    .bind(new.kind.as_str())
                    .bind(new.limits.allowed_models.as_deref().map(models_to_text))
                    .bind(now);
                for v in limit_values(&new.limits) {
                    query = query.bind(v);
                }
                let mut tx = self.pool.begin_with($begin).await?;
                let row = query
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique(e, &format!("the org already has a workspace named `{}`", new.name)))?;
                let mut ws = Self::ws_from_row(&row)?;
                if let Some(rules) = &new.alarms {
                    Self::set_alarms(&mut tx, "workspaces", ws.id.as_str(), Some(rules)).await?;
                    ws.alarms = Some(rules.clone());
                }
                let detail = serde_json::json!({
                    "name": ws.name,
                    "runtime": ws.runtime,
                    "model": ws.model,
                    "billing_mode": mode_to_text(ws.billing_mode),
                    "kind": ws.kind.as_str(),
                    "limits": ws.limits,
                    "alarms": ws.alarms.as_ref().map(AlarmRules::specs),
                });
                Self::insert_event(&mut tx, &admin_event(EventKind::WorkspaceCreated, Some(&ws.org_id), Some(&ws.id), detail))
                    .await?;
                tx.commit().await?;
                Ok(ws)
            }

            async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
                let sql = format!("SELECT {WS_COLUMNS}, {SUSPENSION_COLUMNS} FROM workspaces WHERE id = $1");
                let row = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&self.pool).await?;
                row.map_or(Err(StoreError::NotFound("workspace")), |r| Self::ws_from_row(&r))
            }

            async fn list_workspaces(&self, org_id: Option<&OrgId>) -> Result<Vec<Workspace>> {
                let rows = match org_id {
                    Some(org) => {
                        self.owner_exists(Scope::Org, org.as_str()).await?;
                        let sql = format!("SELECT {WS_COLUMNS}, {SUSPENSION_COLUMNS} FROM workspaces WHERE org_id = $1 ORDER BY name, id");
                        sqlx::query(&sql).bind(org.as_str()).fetch_all(&self.pool).await?
                    }
                    None => {
                        let sql = format!("SELECT {WS_COLUMNS}, {SUSPENSION_COLUMNS} FROM workspaces ORDER BY org_id, name, id");
                        sqlx::query(&sql).fetch_all(&self.pool).await?
                    }
                };
                rows.iter().map(Self::ws_from_row).collect()
            }

            async fn update_workspace(&self, id: &WorkspaceId, patch: &WorkspacePatch) -> Result<Workspace> {
                // One statement that sets only the given fields (a flag per field says which):
                // two concurrent PATCHes of different fields both land.
                let sql = format!(
                    "UPDATE workspaces SET name = CASE WHEN $1 THEN $2 ELSE name END, \
                     runtime = CASE WHEN $3 THEN $4 ELSE runtime END, \
                     model = CASE WHEN $5 THEN $6 ELSE model END, \
                     billing_mode = CASE WHEN $7 THEN $8 ELSE billing_mode END, \
                     kind = CASE WHEN $9 THEN $10 ELSE kind END, \
                     allowed_models = CASE WHEN $11 THEN $12 ELSE allowed_models END, \
                     updated_at = $13, {} WHERE id = $14 RETURNING {WS_COLUMNS}, {SUSPENSION_COLUMNS}",
                    limit_set_clause(15)
                );
                let mut query = sqlx::query(&sql)
                    .bind(patch.name.is_some())
                    .bind(patch.name.as_deref())
                    .bind(patch.runtime.is_some())
                    .bind(patch.runtime.as_deref())
                    .bind(patch.model.is_some())
                    .bind(patch.model.clone().flatten())
                    .bind(patch.billing_mode.is_some())
                    .bind(patch.billing_mode.and_then(mode_to_text))
                    .bind(patch.kind.is_some())
                    .bind(patch.kind.map(WorkspaceKind::as_str))
                    .bind(patch.limits.allowed_models.is_some())
                    .bind(patch.limits.allowed_models.as_ref().and_then(|m| m.as_deref().map(models_to_text)))
                    .bind(Timestamp::now().0)
                    .bind(id.as_str());
                for (given, value) in limit_patch(&patch.limits) {
                    query = query.bind(given).bind(value);
                }
                let mut tx = self.pool.begin_with($begin).await?;
                let row = query
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| {
                        let name = patch.name.as_deref().unwrap_or("");
                        unique(e, &format!("the org already has a workspace named `{name}`"))
                    })?;
                let mut ws = row.map_or(Err(StoreError::NotFound("workspace")), |r| Self::ws_from_row(&r))?;
                if let Some(rules) = &patch.alarms {
                    Self::set_alarms(&mut tx, "workspaces", ws.id.as_str(), rules.as_ref()).await?;
                    ws.alarms.clone_from(rules);
                }
                let fields = [
                    ("name", patch.name.is_some()),
                    ("runtime", patch.runtime.is_some()),
                    ("model", patch.model.is_some()),
                    ("billing_mode", patch.billing_mode.is_some()),
                    ("kind", patch.kind.is_some()),
                ];
                let fields = fields.into_iter().filter(|(_, g)| *g).map(|(f, _)| f).collect();
                for event in patch_events(EventKind::WorkspaceUpdated, fields, &patch.limits, &ws.limits, patch.alarms.as_ref(), &ws.org_id, Some(&ws.id)) {
                    Self::insert_event(&mut tx, &event).await?;
                }
                tx.commit().await?;
                Ok(ws)
            }

            async fn delete_workspace(&self, id: &WorkspaceId) -> Result<()> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query("DELETE FROM secrets WHERE scope = 'workspace' AND owner_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM workspace_tokens WHERE workspace_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM provisions WHERE workspace_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM workspaces WHERE id = $1 RETURNING org_id, name")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(done) = done else {
                    return Err(StoreError::NotFound("workspace"));
                };
                let org_id = parse_org_id(done.try_get("org_id")?)?;
                let name: String = done.try_get("name")?;
                let detail = serde_json::json!({ "name": name });
                Self::insert_event(&mut tx, &admin_event(EventKind::WorkspaceDeleted, Some(&org_id), Some(id), detail)).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn put_secret(&self, owner: &Owner, name: &SecretName, value: &SecretValue) -> Result<()> {
                let (scope, owner_id) = (owner.scope(), owner.id());
                self.owner_exists(scope, owner_id).await?;
                let (key_id, nonce, ct) = self.key.seal(scope, owner_id, name.as_str(), value).ok_or(StoreError::Crypto)?;
                let mut tx = self.pool.begin_with($begin).await?;
                let (org_id, workspace_id) = Self::owner_event_ids(&mut tx, owner).await?;
                sqlx::query(
                    "INSERT INTO secrets (scope, owner_id, name, nonce, ciphertext, updated_at, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (scope, owner_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     updated_at = excluded.updated_at, key_id = excluded.key_id",
                )
                .bind(scope.as_str())
                .bind(owner_id)
                .bind(name.as_str())
                .bind(nonce)
                .bind(ct)
                .bind(Timestamp::now().0)
                .bind(key_id.as_str())
                .execute(&mut *tx)
                .await?;
                // The name only: the value never leaves the ciphertext.
                let detail = serde_json::json!({ "scope": scope.as_str(), "name": name.as_str() });
                Self::insert_event(&mut tx, &admin_event(EventKind::SecretSet, Some(&org_id), workspace_id.as_ref(), detail))
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_secret(&self, owner: &Owner, name: &SecretName) -> Result<()> {
                let (scope, owner_id) = (owner.scope(), owner.id());
                self.owner_exists(scope, owner_id).await?;
                let mut tx = self.pool.begin_with($begin).await?;
                let (org_id, workspace_id) = Self::owner_event_ids(&mut tx, owner).await?;
                let done = sqlx::query("DELETE FROM secrets WHERE scope = $1 AND owner_id = $2 AND name = $3")
                    .bind(scope.as_str())
                    .bind(owner_id)
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("secret"));
                }
                let detail = serde_json::json!({ "scope": scope.as_str(), "name": name.as_str() });
                Self::insert_event(&mut tx, &admin_event(EventKind::SecretDeleted, Some(&org_id), workspace_id.as_ref(), detail))
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_secrets(&self, owner: &Owner) -> Result<Vec<SecretMeta>> {
                let (scope, owner_id) = (owner.scope(), owner.id());
                self.owner_exists(scope, owner_id).await?;
                let sql = "SELECT name, updated_at FROM secrets WHERE scope = $1 AND owner_id = $2 ORDER BY name";
                Ok(sqlx::query_as::<_, SecretMeta>(sql)
                    .bind(scope.as_str())
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn merged_secrets(&self, workspace: &Workspace) -> Result<MergedSecrets> {
                let rows = sqlx::query(
                    "SELECT scope, owner_id, name, key_id, nonce, ciphertext FROM secrets \
                     WHERE (scope = 'org' AND owner_id = $1) OR (scope = 'workspace' AND owner_id = $2)",
                )
                .bind(workspace.org_id.as_str())
                .bind(workspace.id.as_str())
                .fetch_all(&self.pool)
                .await?;
                let mut org = Vec::new();
                let mut ws = Vec::new();
                for r in &rows {
                    let scope_text: String = r.try_get("scope")?;
                    let scope = scope_from_text(&scope_text)?;
                    let owner: String = r.try_get("owner_id")?;
                    let name_text: String = r.try_get("name")?;
                    let name = SecretName::parse(&name_text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let nonce: Vec<u8> = r.try_get("nonce")?;
                    let ct: Vec<u8> = r.try_get("ciphertext")?;
                    let key_id: Option<String> = r.try_get("key_id")?;
                    let state: SecretState = self.key.open(scope, &owner, &name_text, key_id.as_deref(), &nonce, &ct);
                    if matches!(state, SecretState::Unreadable) {
                        let key_id = key_id.as_deref().unwrap_or("none");
                        tracing::warn!(scope = scope.as_str(), owner = %owner, name = %name_text, key_id, "secret does not decrypt");
                    }
                    match scope {
                        Scope::Org => org.push((name, state)),
                        Scope::Workspace => ws.push((name, state)),
                    }
                }
                Ok(MergedSecrets::merge(org, ws))
            }

            async fn record_provision(&self, workspace_id: &WorkspaceId, record: &ProvisionRecord) -> Result<()> {
                let now = Timestamp::now().0;
                let mut tx = self.pool.begin_with($begin).await?;
                let org: Option<String> =
                    sqlx::query_scalar("UPDATE workspaces SET model = $1, updated_at = $2 WHERE id = $3 RETURNING org_id")
                        .bind(&record.model_after)
                        .bind(now)
                        .bind(workspace_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let org_id = parse_org_id(org.ok_or(StoreError::NotFound("workspace"))?)?;
                sqlx::query("UPDATE workspace_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(workspace_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO workspace_tokens (token_hash, workspace_id, created_at) VALUES ($1, $2, $3)")
                    .bind(record.token_hash.as_bytes().to_vec())
                    .bind(workspace_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO provisions (id, workspace_id, request_model, resolution, created_at, fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_id())
                .bind(workspace_id.as_str())
                .bind(&record.request_model)
                .bind(&record.resolution_json)
                .bind(now)
                .bind(record.fingerprint.as_ref().map(PlanFingerprint::encode))
                .execute(&mut *tx)
                .await?;
                let event = admin_event(EventKind::WorkspaceProvisioned, Some(&org_id), Some(workspace_id), provision_detail(record));
                Self::insert_event(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_provisions(&self, workspace_id: &WorkspaceId) -> Result<Vec<Provision>> {
                Ok(sqlx::query_as::<_, Provision>(
                    "SELECT id, workspace_id, request_model, resolution, created_at FROM provisions \
                     WHERE workspace_id = $1 ORDER BY seq",
                )
                .bind(workspace_id.as_str())
                .fetch_all(&self.pool)
                .await?)
            }

            async fn workspace_for_token(&self, hash: &TokenHash) -> Result<Option<Workspace>> {
                let sql = format!(
                    "SELECT {} FROM workspace_tokens t JOIN workspaces w ON w.id = t.workspace_id \
                     WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
                    WS_COLUMNS.split(", ").chain(SUSPENSION_COLUMNS.split(", ")).map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ")
                );
                let row = sqlx::query(&sql).bind(hash.as_bytes().to_vec()).fetch_optional(&self.pool).await?;
                row.map(|r| Self::ws_from_row(&r)).transpose()
            }

            async fn lease_credit(&self, r: &LeaseRequest) -> Result<Leased> {
                let now = Timestamp::now().0;
                let expires = now.saturating_add(ttl_millis(r.ttl));
                let mut tx = self.pool.begin_with($begin).await?;
                // The row is locked (SQLite: the whole database, by BEGIN IMMEDIATE) from the
                // read to the commit, so concurrent leases never take more than the balance.
                let sql = concat!("SELECT credit_micros FROM orgs WHERE id = $1", $lock);
                let balance: Option<i64> = sqlx::query_scalar(sql).bind(r.org_id.as_str()).fetch_optional(&mut *tx).await?;
                let balance = balance.ok_or(StoreError::NotFound("org"))?;
                let need = r.need.get().max(0);
                if balance < need {
                    let elsewhere: i64 = sqlx::query_scalar(
                        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_leases WHERE org_id = $1 AND id <> $2",
                    )
                    .bind(r.org_id.as_str())
                    .bind(r.lease_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    return Ok(Leased::Insufficient {
                        available: Micros::new(balance),
                        leased_elsewhere: Micros::new(elsewhere.max(0)),
                    });
                }
                let take = lease_size(balance, need, r.want.get());
                sqlx::query("UPDATE orgs SET credit_micros = credit_micros - $1, updated_at = $2 WHERE id = $3")
                    .bind(take)
                    .bind(now)
                    .bind(r.org_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO credit_leases (id, org_id, amount, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET amount = credit_leases.amount + excluded.amount, expires_at = excluded.expires_at",
                )
                .bind(r.lease_id.as_str())
                .bind(r.org_id.as_str())
                .bind(take)
                .bind(expires)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Leased::Granted(Micros::new(take)))
            }

            async fn record_usage(
                &self,
                lease_id: &LeaseId,
                org_id: &OrgId,
                entries: &[LedgerEntry],
                ttl: Duration,
            ) -> Result<bool> {
                let now = Timestamp::now().0;
                let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let mut tx = self.pool.begin_with($begin).await?;
                // Every transaction that touches an org and its leases locks the org first:
                // one lock order, no deadlock with `lease_credit`.
                sqlx::query(concat!("SELECT id FROM orgs WHERE id = $1", $lock))
                    .bind(org_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                // One multi-row INSERT per chunk, not one per row: a flush must keep up with
                // the traffic, or the rows a crash loses grow past one flush interval's worth.
                // A row written by an earlier attempt (a flush whose commit was lost in
                // transit, say) is not written, nor charged, twice: only inserted rows return
                // their cost.
                let mut charged: i64 = 0;
                for chunk in ledger_chunks(entries) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO ledger (request_id, org_id, workspace_id, model, status, http_status, reserved_micros, \
                         cost_micros, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, created_at, settled_at, estimated, \
                         provider_cost_micros, cache_write_1h_tokens, service_tier, session_id) ",
                    );
                    q.push_values(chunk, |mut b, e| {
                        let s = &e.settlement;
                        b.push_bind(e.request_id.as_str())
                            .push_bind(org_id.as_str())
                            .push_bind(e.workspace_id.as_str())
                            .push_bind(e.model.as_str())
                            .push_bind(if e.rejected { "rejected" } else { "settled" })
                            .push_bind(s.http_status.map(i64::from))
                            .push_bind(e.reserved.get())
                            .push_bind(s.cost.get())
                            .push_bind(to_i64(s.usage.input_tokens))
                            .push_bind(to_i64(s.usage.output_tokens))
                            .push_bind(to_i64(s.usage.cache_write_tokens))
                            .push_bind(to_i64(s.usage.cache_read_tokens))
                            .push_bind(e.created_at.0)
                            .push_bind(now)
                            .push_bind(s.estimated)
                            .push_bind(s.provider_cost.get())
                            .push_bind(to_i64(s.usage.cache_write_split().1))
                            .push_bind(s.usage.service_tier.map(|t| t.as_str()))
                            .push_bind(e.session_id.as_ref().map(crate::AgentSessionId::as_str));
                    });
                    q.push(" ON CONFLICT (request_id) DO NOTHING RETURNING cost_micros");
                    let costs: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
                    charged = costs.iter().fold(charged, |sum, c| sum.saturating_add(*c));
                }
                let lease = sqlx::query(
                    "UPDATE credit_leases SET amount = amount - $1, expires_at = $2 WHERE id = $3",
                )
                .bind(charged)
                .bind(now.saturating_add(ttl_millis(ttl)))
                .bind(lease_id.as_str())
                .execute(&mut *tx)
                .await?;
                let exists = lease.rows_affected() == 1;
                if !exists && charged != 0 {
                    // The lease was reclaimed and its credit returned: charge the balance.
                    sqlx::query("UPDATE orgs SET credit_micros = credit_micros - $1, updated_at = $2 WHERE id = $3")
                        .bind(charged)
                        .bind(now)
                        .bind(org_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(exists)
            }

            async fn release_lease(&self, lease_id: &LeaseId, amount: Option<Micros>, ttl: Duration) -> Result<bool> {
                let now = Timestamp::now().0;
                let mut tx = self.pool.begin_with($begin).await?;
                let org: Option<String> = sqlx::query_scalar("SELECT org_id FROM credit_leases WHERE id = $1")
                    .bind(lease_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(org) = org else {
                    return Ok(false);
                };
                // The org first, as everywhere (see `record_usage`).
                sqlx::query(concat!("SELECT id FROM orgs WHERE id = $1", $lock))
                    .bind(&org)
                    .fetch_optional(&mut *tx)
                    .await?;
                let row = match amount {
                    Some(a) => sqlx::query(
                        "UPDATE credit_leases SET amount = amount - $1, expires_at = $2 WHERE id = $3 RETURNING org_id",
                    )
                    .bind(a.get())
                    .bind(now.saturating_add(ttl_millis(ttl)))
                    .bind(lease_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?,
                    None => sqlx::query("DELETE FROM credit_leases WHERE id = $1 RETURNING org_id, amount")
                        .bind(lease_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?,
                };
                let Some(row) = row else {
                    return Ok(false);
                };
                let org_id: String = row.try_get("org_id")?;
                let returned: i64 = match amount {
                    Some(a) => a.get(),
                    None => row.try_get("amount")?,
                };
                sqlx::query("UPDATE orgs SET credit_micros = credit_micros + $1, updated_at = $2 WHERE id = $3")
                    .bind(returned)
                    .bind(now)
                    .bind(&org_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn reclaim_expired_leases(&self) -> Result<u64> {
                let now = Timestamp::now().0;
                let mut tx = self.pool.begin_with($begin).await?;
                let expired = sqlx::query("SELECT id, org_id FROM credit_leases WHERE expires_at < $1 ORDER BY org_id, id")
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut reclaimed = 0_u64;
                for lease in &expired {
                    let id: String = lease.try_get("id")?;
                    let org_id: String = lease.try_get("org_id")?;
                    // Orgs locked in one order (sorted), each before its lease.
                    sqlx::query(concat!("SELECT id FROM orgs WHERE id = $1", $lock))
                        .bind(&org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    // Still expired: its instance may have renewed it meanwhile.
                    let amount: Option<i64> =
                        sqlx::query_scalar("DELETE FROM credit_leases WHERE id = $1 AND expires_at < $2 RETURNING amount")
                            .bind(&id)
                            .bind(now)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some(amount) = amount else { continue };
                    tracing::warn!(org_id = %org_id, amount, "reclaimed an expired credit lease");
                    sqlx::query("UPDATE orgs SET credit_micros = credit_micros + $1, updated_at = $2 WHERE id = $3")
                        .bind(amount)
                        .bind(now)
                        .bind(&org_id)
                        .execute(&mut *tx)
                        .await?;
                    reclaimed += 1;
                }
                tx.commit().await?;
                Ok(reclaimed)
            }

            async fn reserve_budget(&self, hold: &BudgetHold) -> Result<Result<(), BudgetRefusal>> {
                let need = hold.need.get().max(0);
                let mut tx = self.pool.begin_with($begin).await?;
                // Rows are created and locked in the one order `applicable` gives (org before
                // workspace, day before month), so concurrent reservations never deadlock.
                for b in &hold.budgets {
                    sqlx::query(
                        "INSERT INTO budget_usage (scope, owner_id, period, spent, reserved) VALUES ($1, $2, $3, 0, 0) \
                         ON CONFLICT (scope, owner_id, period) DO NOTHING",
                    )
                    .bind(b.scope.as_str())
                    .bind(&b.owner)
                    .bind(&b.period.key)
                    .execute(&mut *tx)
                    .await?;
                    let row = sqlx::query(concat!(
                        "SELECT spent, reserved FROM budget_usage WHERE scope = $1 AND owner_id = $2 AND period = $3",
                        $lock
                    ))
                    .bind(b.scope.as_str())
                    .bind(&b.owner)
                    .bind(&b.period.key)
                    .fetch_one(&mut *tx)
                    .await?;
                    let (spent, reserved): (i64, i64) = (row.try_get("spent")?, row.try_get("reserved")?);
                    if !tollgate_policy::budget::fits(b.budget, spent, reserved, need) {
                        return Ok(Err(BudgetRefusal { limit: b.clone(), used: spent.saturating_add(reserved) }));
                    }
                }
                for b in &hold.budgets {
                    sqlx::query(
                        "UPDATE budget_usage SET reserved = reserved + $1 WHERE scope = $2 AND owner_id = $3 AND period = $4",
                    )
                    .bind(need)
                    .bind(b.scope.as_str())
                    .bind(&b.owner)
                    .bind(&b.period.key)
                    .execute(&mut *tx)
                    .await?;
                }
                let keys = hold.budgets.iter().map(budget_key).collect::<Vec<_>>().join("\n");
                sqlx::query("INSERT INTO budget_holds (id, budgets, amount, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(hold.id.as_str())
                    .bind(keys)
                    .bind(need)
                    .bind(Timestamp::now().0.saturating_add(ttl_millis(hold.ttl)))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Ok(()))
            }

            async fn settle_budget(&self, id: &RequestId, cost: Micros) -> Result<bool> {
                let mut tx = self.pool.begin_with($begin).await?;
                let found = Self::close_budget_hold(&mut tx, id.as_str(), Some(cost.get().max(0))).await?;
                tx.commit().await?;
                Ok(found)
            }

            async fn lease_budget(
                &self,
                id: &RequestId,
                budget: &Applicable,
                short: Micros,
                ttl: Duration,
            ) -> Result<Result<Micros, BudgetRefusal>> {
                let mut tx = self.pool.begin_with($begin).await?;
                // The lease's hold is locked before the budget's row, in the order settling and
                // adjusting lock them, so that they never deadlock.
                sqlx::query(concat!("SELECT amount FROM budget_holds WHERE id = $1", $lock))
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let (scope, owner, period) = (budget.scope.as_str(), &budget.owner, &budget.period.key);
                sqlx::query(
                    "INSERT INTO budget_usage (scope, owner_id, period, spent, reserved) VALUES ($1, $2, $3, 0, 0) \
                     ON CONFLICT (scope, owner_id, period) DO NOTHING",
                )
                .bind(scope)
                .bind(owner)
                .bind(period)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(concat!(
                    "SELECT spent, reserved FROM budget_usage WHERE scope = $1 AND owner_id = $2 AND period = $3",
                    $lock
                ))
                .bind(scope)
                .bind(owner)
                .bind(period)
                .fetch_one(&mut *tx)
                .await?;
                let (spent, reserved): (i64, i64) = (row.try_get("spent")?, row.try_get("reserved")?);
                let Some(grant) = tollgate_policy::budget::lease_grant(budget.budget, spent, reserved, short.get()) else {
                    return Ok(Err(BudgetRefusal { limit: budget.clone(), used: spent.saturating_add(reserved) }));
                };
                sqlx::query(
                    "UPDATE budget_usage SET reserved = reserved + $1 WHERE scope = $2 AND owner_id = $3 AND period = $4",
                )
                .bind(grant)
                .bind(scope)
                .bind(owner)
                .bind(period)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO budget_holds (id, budgets, amount, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET amount = budget_holds.amount + excluded.amount, \
                     expires_at = excluded.expires_at",
                )
                .bind(id.as_str())
                .bind(budget_key(budget))
                .bind(grant)
                .bind(Timestamp::now().0.saturating_add(ttl_millis(ttl)))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Ok(Micros::new(grant)))
            }

            async fn adjust_budget_lease(
                &self,
                id: &RequestId,
                spent: Micros,
                release: Micros,
                ttl: Duration,
            ) -> Result<bool> {
                let (spent, release) = (spent.get().max(0), release.get().max(0));
                let mut tx = self.pool.begin_with($begin).await?;
                let row = sqlx::query(concat!("SELECT budgets, amount FROM budget_holds WHERE id = $1", $lock))
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let (keys, amount): (String, i64) = (row.try_get("budgets")?, row.try_get("amount")?);
                let want = spent.saturating_add(release);
                // What it still holds; a reclaimed lease holds nothing, but its spend still counts.
                let take = want.min(amount.max(0));
                for line in keys.lines() {
                    let (scope, owner, period) = split_budget_key(line)?;
                    sqlx::query(
                        "UPDATE budget_usage SET spent = spent + $1, reserved = reserved - $2 \
                         WHERE scope = $3 AND owner_id = $4 AND period = $5",
                    )
                    .bind(spent)
                    .bind(take)
                    .bind(scope)
                    .bind(owner)
                    .bind(period)
                    .execute(&mut *tx)
                    .await?;
                }
                let whole = take == want;
                if whole {
                    sqlx::query("UPDATE budget_holds SET amount = amount - $1, expires_at = $2 WHERE id = $3")
                        .bind(take)
                        .bind(Timestamp::now().0.saturating_add(ttl_millis(ttl)))
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(whole)
            }

            async fn reclaim_expired_budget_holds(&self) -> Result<u64> {
                let now = Timestamp::now().0;
                // Markers of holds reclaimed a while ago: their requests are long over.
                sqlx::query("DELETE FROM budget_holds WHERE expires_at < $1 AND amount = 0")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM budget_holds WHERE expires_at < $1 AND amount > 0")
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?;
                let mut closed = 0;
                for id in ids {
                    let mut tx = self.pool.begin_with($begin).await?;
                    if Self::close_budget_hold(&mut tx, &id, None).await? {
                        closed += 1;
                    }
                    tx.commit().await?;
                }
                Ok(closed)
            }

            async fn budget_usage(&self, scope: BudgetScope, owner_id: &str, period_key: &str) -> Result<(Micros, Micros)> {
                let row = sqlx::query("SELECT spent, reserved FROM budget_usage WHERE scope = $1 AND owner_id = $2 AND period = $3")
                    .bind(scope.as_str())
                    .bind(owner_id)
                    .bind(period_key)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok((Micros::new(r.try_get("spent")?), Micros::new(r.try_get("reserved")?))),
                    None => Ok((Micros::ZERO, Micros::ZERO)),
                }
            }

            async fn leased_credit(&self, org_id: &OrgId) -> Result<Micros> {
                let leased: i64 = sqlx::query_scalar(LEASED_SUM).bind(org_id.as_str()).fetch_one(&self.pool).await?;
                Ok(Micros::new(leased))
            }

            async fn publish_invalidation(&self, notice: &Invalidation) -> Result<()> {
                self.publish(notice).await
            }

            async fn invalidations(&self) -> Result<broadcast::Receiver<Invalidation>> {
                self.subscribe().await
            }

            async fn audit_snapshot(&self, org_id: Option<&OrgId>, spend_since: Timestamp) -> Result<AuditSnapshot> {
                if let Some(org) = org_id {
                    self.owner_exists(Scope::Org, org.as_str()).await?;
                }
                let org = org_id.map(OrgId::as_str);
                let mut snap = AuditSnapshot::default();
                // One read transaction: the tables are read as of one moment (SQLite), or
                // close to it (Postgres, read committed); an audit is a report, not a lock.
                let mut tx = self.pool.begin().await?;
                let sql = format!("{ORG_SELECT} WHERE (CAST($1 AS TEXT) IS NULL OR o.id = $1) ORDER BY o.name");
                for row in sqlx::query(&sql).bind(org).fetch_all(&mut *tx).await? {
                    snap.orgs.push(self.org_from_row(&row)?);
                }
                let sql = format!(
                    "SELECT {WS_COLUMNS}, {SUSPENSION_COLUMNS} FROM workspaces WHERE (CAST($1 AS TEXT) IS NULL OR org_id = $1) ORDER BY org_id, name, id"
                );
                for row in sqlx::query(&sql).bind(org).fetch_all(&mut *tx).await? {
                    snap.workspaces.push(Self::ws_from_row(&row)?);
                }
                let rows = sqlx::query(
                    "SELECT scope, owner_id, name, key_id, nonce, ciphertext FROM secrets WHERE CAST($1 AS TEXT) IS NULL \
                     OR (scope = 'org' AND owner_id = $1) \
                     OR (scope = 'workspace' AND owner_id IN (SELECT id FROM workspaces WHERE org_id = $1))",
                )
                .bind(org)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    let scope = scope_from_text(&r.try_get::<String, _>("scope")?)?;
                    let owner: String = r.try_get("owner_id")?;
                    let name_text: String = r.try_get("name")?;
                    let name = SecretName::parse(&name_text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let nonce: Vec<u8> = r.try_get("nonce")?;
                    let ct: Vec<u8> = r.try_get("ciphertext")?;
                    let key_id: Option<String> = r.try_get("key_id")?;
                    let state = self.key.open(scope, &owner, &name_text, key_id.as_deref(), &nonce, &ct);
                    match scope {
                        Scope::Org => snap.org_secrets.entry(parse_org_id(owner)?).or_default().push((name, state)),
                        Scope::Workspace => {
                            snap.workspace_secrets.entry(parse_workspace_id(owner)?).or_default().push((name, state));
                        }
                    }
                }
                let rows = sqlx::query(
                    "SELECT p.workspace_id, p.fingerprint FROM provisions p JOIN \
                     (SELECT workspace_id, MAX(seq) AS seq FROM provisions \
                      WHERE CAST($1 AS TEXT) IS NULL OR workspace_id IN (SELECT id FROM workspaces WHERE org_id = $1) \
                      GROUP BY workspace_id) l ON p.seq = l.seq",
                )
                .bind(org)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    let fingerprint: Option<String> = r.try_get("fingerprint")?;
                    let last = match fingerprint.as_deref().and_then(PlanFingerprint::decode) {
                        Some(f) => LastProvision::Recorded(f),
                        None => LastProvision::Unknown,
                    };
                    snap.last_provisions.insert(parse_workspace_id(r.try_get("workspace_id")?)?, last);
                }
                let rows = sqlx::query(
                    "SELECT org_id, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent FROM ledger \
                     WHERE created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR org_id = $2) GROUP BY org_id",
                )
                .bind(spend_since.0)
                .bind(org)
                .fetch_all(&mut *tx)
                .await?;
                for r in &rows {
                    // Ledger rows name orgs that may since have been deleted: skip what does not parse.
                    if let Ok(id) = OrgId::try_from(r.try_get::<String, _>("org_id")?) {
                        snap.spend.insert(id, Micros::new(r.try_get("spent")?));
                    }
                }
                tx.commit().await?;
                Ok(snap)
            }

            async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
                let key = match query.group_by {
                    UsageGroup::Day => $day,
                    UsageGroup::Model => "model",
                    UsageGroup::Workspace => "workspace_id",
                    UsageGroup::Session => "COALESCE(session_id, '')",
                };
                let sql = format!(
                    "SELECT {key} AS key, CAST(COUNT(*) AS BIGINT) AS requests, \
                     CAST(COALESCE(SUM(CASE WHEN http_status IS NULL OR http_status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
                     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
                     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
                     CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
                     CAST(COALESCE(SUM(cache_write_1h_tokens), 0) AS BIGINT) AS cache_write_1h_tokens, \
                     CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
                     CAST(COALESCE(SUM(provider_cost_micros), 0) AS BIGINT) AS provider_cost_micros, \
                     CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros, \
                     CAST(COALESCE(SUM(CASE WHEN estimated THEN 1 ELSE 0 END), 0) AS BIGINT) AS estimated_requests \
                     FROM ledger \
                     WHERE (CAST($1 AS TEXT) IS NULL OR org_id = $1) AND (CAST($2 AS TEXT) IS NULL OR workspace_id = $2) \
                     AND (CAST($3 AS BIGINT) IS NULL OR created_at >= $3) AND (CAST($4 AS BIGINT) IS NULL OR created_at < $4) \
                     GROUP BY {key} ORDER BY {key}"
                );
                Ok(sqlx::query_as::<_, UsageRow>(&sql)
                    .bind(query.org_id.as_ref().map(OrgId::as_str))
                    .bind(query.workspace_id.as_ref().map(WorkspaceId::as_str))
                    .bind(query.since.map(|t| t.0))
                    .bind(query.until.map(|t| t.0))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn record_event(&self, event: &NewEvent) -> Result<Event> {
                let mut tx = self.pool.begin_with($begin).await?;
                let stored = Self::insert_event(&mut tx, event).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
                let limit = query.limit.clamp(1, MAX_EVENTS_PAGE);
                // One more than asked: whether there is a next page.
                let rows = sqlx::query(
                    "SELECT id, at, kind, actor, org_id, workspace_id, detail FROM events \
                     WHERE (CAST($1 AS TEXT) IS NULL OR org_id = $1) AND (CAST($2 AS TEXT) IS NULL OR workspace_id = $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR kind = $3) AND (CAST($4 AS BIGINT) IS NULL OR at >= $4) \
                     AND (CAST($5 AS BIGINT) IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
                )
                .bind(query.org_id.as_ref().map(OrgId::as_str))
                .bind(query.workspace_id.as_ref().map(WorkspaceId::as_str))
                .bind(query.kind.map(EventKind::as_str))
                .bind(query.since.map(|t| t.0))
                .bind(query.cursor.map(EventCursor::id))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await?;
                let mut events = Vec::with_capacity(rows.len());
                for r in &rows {
                    let kind: String = r.try_get("kind")?;
                    let actor: String = r.try_get("actor")?;
                    let detail: String = r.try_get("detail")?;
                    events.push(event_from_parts(
                        r.try_get("id")?,
                        r.try_get("at")?,
                        &kind,
                        &actor,
                        r.try_get("org_id")?,
                        r.try_get("workspace_id")?,
                        &detail,
                    )?);
                }
                let more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
                events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                let next = if more { events.last().map(|e| EventCursor::after(e.id)) } else { None };
                Ok(EventPage { events, next })
            }

            async fn recent_ledger(&self, org_id: &OrgId, workspace_id: &WorkspaceId, limit: u32) -> Result<Vec<LedgerRow>> {
                // By org first: the (org_id, created_at) index serves the newest-first walk.
                Ok(sqlx::query_as::<_, LedgerRow>(
                    "SELECT request_id, model, status, CAST(http_status AS BIGINT) AS http_status, \
                     CAST(input_tokens AS BIGINT) AS input_tokens, CAST(output_tokens AS BIGINT) AS output_tokens, \
                     CAST(cost_micros AS BIGINT) AS cost_micros, estimated, CAST(created_at AS BIGINT) AS created_at \
                     FROM ledger WHERE org_id = $1 AND workspace_id = $2 ORDER BY created_at DESC, request_id LIMIT $3",
                )
                .bind(org_id.as_str())
                .bind(workspace_id.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn admin_token_hash(&self) -> Result<Option<TokenHash>> {
                let bytes: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT token_hash FROM admin_token WHERE id = 1").fetch_optional(&self.pool).await?;
                bytes
                    .map(|b| TokenHash::from_bytes(&b).ok_or_else(|| StoreError::Corrupt("admin token hash".to_owned())))
                    .transpose()
            }

            async fn reencrypt_secrets(&self, after: Option<&SecretCursor>, limit: u32) -> Result<ReencryptBatch> {
                let current = self.key.current().as_str();
                // The walk's first batch also moves the orgs' sealed webhook URLs (few: one
                // pass), counted with the secrets.
                let mut batch = if after.is_none() { self.reencrypt_webhooks().await? } else { ReencryptBatch::default() };
                let (s0, o0, n0) = cursor_parts(after);
                // Row values compare in primary-key order on both backends: a cursor walk visits
                // each row once, even those that stay unreadable.
                let rows = sqlx::query(
                    "SELECT scope, owner_id, name, key_id, nonce, ciphertext FROM secrets \
                     WHERE (key_id IS NULL OR key_id <> $1) AND (scope, owner_id, name) > ($2, $3, $4) \
                     ORDER BY scope, owner_id, name LIMIT $5",
                )
                .bind(current)
                .bind(s0)
                .bind(o0)
                .bind(n0)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    let scope_text: String = r.try_get("scope")?;
                    let scope = scope_from_text(&scope_text)?;
                    let owner: String = r.try_get("owner_id")?;
                    let name: String = r.try_get("name")?;
                    let key_id: Option<String> = r.try_get("key_id")?;
                    let nonce: Vec<u8> = r.try_get("nonce")?;
                    let ct: Vec<u8> = r.try_get("ciphertext")?;
                    batch.next = Some(SecretCursor { scope, owner_id: owner.clone(), name: name.clone() });
                    let opened = self.key.open(scope, &owner, &name, key_id.as_deref(), &nonce, &ct);
                    let SecretState::Value(value) = opened else {
                        let key_id = key_id.as_deref().unwrap_or("none");
                        tracing::warn!(scope = scope.as_str(), owner = %owner, name = %name, key_id, "secret does not decrypt: left as it is");
                        batch.unreadable += 1;
                        continue;
                    };
                    let sealed = self.key.seal(scope, &owner, &name, &value);
                    let (new_id, new_nonce, new_ct) = sealed.ok_or(StoreError::Crypto)?;
                    // Only if the row still holds what was read: a value set meanwhile is
                    // already under the newest key and must not be overwritten with the old one.
                    let done = sqlx::query(
                        "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3 \
                         WHERE scope = $4 AND owner_id = $5 AND name = $6 AND nonce = $7",
                    )
                    .bind(new_id.as_str())
                    .bind(new_nonce)
                    .bind(new_ct)
                    .bind(scope.as_str())
                    .bind(&owner)
                    .bind(&name)
                    .bind(&nonce)
                    .execute(&self.pool)
                    .await?;
                    batch.tally(done.rows_affected());
                }
                let (s1, o1, n1) = if batch.next.is_some() { cursor_parts(batch.next.as_ref()) } else { (s0, o0, n0) };
                let pending: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM secrets \
                     WHERE (key_id IS NULL OR key_id <> $1) AND (scope, owner_id, name) > ($2, $3, $4)",
                )
                .bind(current)
                .bind(s1)
                .bind(o1)
                .bind(n1)
                .fetch_one(&self.pool)
                .await?;
                batch.pending = u64::try_from(pending).unwrap_or(0);
                if rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
                    batch.next = None;
                }
                batch.key_id = Some(self.key.current().clone());
                Ok(batch)
            }

            async fn set_admin_token_hash(&self, hash: &TokenHash) -> Result<()> {
                sqlx::query(
                    "INSERT INTO admin_token (id, token_hash, created_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
                )
                .bind(hash.as_bytes().to_vec())
                .bind(Timestamp::now().0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

// SQLite write transactions take the write lock up front: a deferred transaction that reads
// and then writes fails with SQLITE_BUSY_SNAPSHOT under WAL when another writer got in between.
impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "sqlite",
    "BEGIN IMMEDIATE",
    "",
    "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')"
);
impl_store!(
    PgStore,
    sqlx::Postgres,
    "postgres",
    "BEGIN",
    " FOR UPDATE",
    "to_char(to_timestamp(created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
);

#[cfg(test)]
mod tests {
    use super::{LEDGER_INSERT_SIZES, ledger_chunks};

    #[test]
    fn ledger_chunks_cover_the_rows_in_order_with_the_fixed_sizes_only() {
        for n in 0..600_usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = ledger_chunks(&rows);
            assert!(chunks.iter().all(|c| LEDGER_INSERT_SIZES.contains(&c.len())), "{n}");
            assert_eq!(chunks.concat(), rows, "{n}: every row once, in order");
            // Greedy: below the largest size, at most three runs of each smaller one.
            for size in &LEDGER_INSERT_SIZES[1..] {
                assert!(chunks.iter().filter(|c| c.len() == *size).count() <= 3, "{n}");
            }
        }
    }
}
