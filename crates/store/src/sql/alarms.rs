//! [`AlarmStore`] for both backends: window sums of the ledger, each rule's firing state and
//! the budget notices, each firing or notice recorded with its event in one transaction.

use async_trait::async_trait;
use sqlx::Row;
use tollgate_policy::{Actor, EventKind, Micros};

use super::{
    LIMIT_COLUMNS, PgStore, SqliteStore, alarms_from_text, limits_from_values, models_from_text, parse_org_id,
    parse_workspace_id, system_event,
};
use crate::{
    AlarmFire, AlarmOwner, AlarmStateKey, AlarmStore, BudgetNoticeRecord, Event, FiringAlarm, NewEvent, Owner, Result,
    StoreError, Timestamp, WorkspaceSpend,
};

/// The stored scope text of an owner.
fn scope_text(owner: &Owner) -> &'static str {
    match owner {
        Owner::Org(_) => "org",
        Owner::Workspace(_) => "workspace",
    }
}

/// An owner from its stored scope text and id.
fn owner_from(scope: &str, id: String) -> Result<Owner> {
    match scope {
        "org" => Ok(Owner::Org(parse_org_id(id)?)),
        "workspace" => Ok(Owner::Workspace(parse_workspace_id(id)?)),
        other => Err(StoreError::Corrupt(format!("alarm state scope `{other}`"))),
    }
}

/// The owners' query: one table's rows with rules or a hard budget.
fn owners_sql(table: &str, org_id: &str) -> String {
    format!(
        "SELECT id, {org_id} AS owner_org, alarms, allowed_models, {} FROM {table} \
         WHERE alarms IS NOT NULL OR budget_micros_per_day IS NOT NULL OR budget_micros_per_month IS NOT NULL",
        LIMIT_COLUMNS.join(", ")
    )
}

macro_rules! impl_alarm_store {
    ($store:ty, $db:ty, $begin:literal) => {
        impl $store {
            fn alarm_owner_from_row(row: &<$db as sqlx::Database>::Row, workspace: bool) -> Result<AlarmOwner> {
                let id: String = row.try_get("id")?;
                let org_id = parse_org_id(row.try_get("owner_org")?)?;
                let owner = if workspace { Owner::Workspace(parse_workspace_id(id)?) } else { Owner::Org(org_id.clone()) };
                let mut values = [None; 6];
                for (v, c) in values.iter_mut().zip(LIMIT_COLUMNS) {
                    *v = row.try_get::<Option<i64>, _>(c)?;
                }
                Ok(AlarmOwner {
                    owner,
                    org_id,
                    alarms: alarms_from_text(row.try_get("alarms")?)?,
                    limits: limits_from_values(values, models_from_text(row.try_get("allowed_models")?))?,
                })
            }

            /// Records a system event about `owner` in `tx` (its org read there: `NotFound`
            /// when it was deleted meanwhile).
            async fn owner_system_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                owner: &Owner,
                kind: EventKind,
                detail: serde_json::Value,
            ) -> Result<Event> {
                let (org_id, _) = Self::owner_event_ids(tx, owner).await?;
                Self::insert_event(tx, &system_event(kind, owner, &org_id, detail)).await
            }
        }

        #[async_trait]
        impl AlarmStore for $store {
            async fn alarm_owners(&self) -> Result<Vec<AlarmOwner>> {
                let orgs = sqlx::query(&owners_sql("orgs", "id")).fetch_all(&self.pool).await?;
                let wss = sqlx::query(&owners_sql("workspaces", "org_id")).fetch_all(&self.pool).await?;
                let orgs = orgs.iter().map(|r| Self::alarm_owner_from_row(r, false));
                orgs.chain(wss.iter().map(|r| Self::alarm_owner_from_row(r, true))).collect()
            }

            async fn spend_by_workspace(&self, since: Timestamp, until: Timestamp) -> Result<Vec<WorkspaceSpend>> {
                let rows = sqlx::query(
                    "SELECT org_id, workspace_id, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost FROM ledger \
                     WHERE created_at >= $1 AND created_at < $2 GROUP BY org_id, workspace_id",
                )
                .bind(since.0)
                .bind(until.0)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(WorkspaceSpend {
                            org_id: parse_org_id(r.try_get("org_id")?)?,
                            workspace_id: parse_workspace_id(r.try_get("workspace_id")?)?,
                            cost: Micros::new(r.try_get("cost")?),
                        })
                    })
                    .collect()
            }

            async fn owner_spend(&self, owner: &Owner, since: Timestamp, until: Timestamp) -> Result<Micros> {
                let column = match owner {
                    Owner::Org(_) => "org_id",
                    Owner::Workspace(_) => "workspace_id",
                };
                let sql = format!(
                    "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM ledger \
                     WHERE {column} = $1 AND created_at >= $2 AND created_at < $3"
                );
                let cost: i64 =
                    sqlx::query_scalar(&sql).bind(owner.id()).bind(since.0).bind(until.0).fetch_one(&self.pool).await?;
                Ok(Micros::new(cost))
            }

            async fn firing_alarms(&self) -> Result<Vec<FiringAlarm>> {
                let rows = sqlx::query("SELECT scope, owner_id, rule_key, changed_at FROM alarm_states WHERE firing = 1")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let scope: String = r.try_get("scope")?;
                        let key = AlarmStateKey { owner: owner_from(&scope, r.try_get("owner_id")?)?, rule_key: r.try_get("rule_key")? };
                        Ok(FiringAlarm { key, changed_at: Timestamp(r.try_get("changed_at")?) })
                    })
                    .collect()
            }

            async fn fire_alarm(&self, fire: &AlarmFire) -> Result<Vec<Event>> {
                let owner = &fire.key.owner;
                let mut tx = self.pool.begin_with($begin).await?;
                // The one statement that decides which evaluation fires: it turns the row to
                // firing only if it is not (and no later evaluation changed it). A concurrent
                // instance's upsert waits on this row and then finds it firing.
                let won: Option<String> = sqlx::query_scalar(
                    "INSERT INTO alarm_states (scope, owner_id, rule_key, firing, changed_at) VALUES ($1, $2, $3, 1, $4) \
                     ON CONFLICT (scope, owner_id, rule_key) DO UPDATE SET firing = 1, changed_at = excluded.changed_at \
                     WHERE alarm_states.firing = 0 AND alarm_states.changed_at < excluded.changed_at RETURNING rule_key",
                )
                .bind(scope_text(owner))
                .bind(owner.id())
                .bind(&fire.key.rule_key)
                .bind(fire.at.0)
                .fetch_optional(&mut *tx)
                .await?;
                if won.is_none() {
                    return Ok(Vec::new());
                }
                let mut events =
                    vec![Self::owner_system_event(&mut tx, owner, EventKind::AlarmFired, fire.detail.clone()).await?];
                if let Some((reason, by)) = &fire.suspend {
                    let (table, what) = super::suspendable(owner);
                    let now = Timestamp::now().0;
                    // An owner suspended already (by an admin, say) keeps its suspension.
                    let sql = format!(
                        "UPDATE {table} SET suspended_reason = $1, suspended_by = $2, suspended_at = $3, updated_at = $3 \
                         WHERE id = $4 AND suspended_reason IS NULL"
                    );
                    let done =
                        sqlx::query(&sql).bind(reason.as_str()).bind(by.as_str()).bind(now).bind(owner.id()).execute(&mut *tx).await?;
                    if done.rows_affected() == 1 {
                        let detail = serde_json::json!({ "scope": what, "reason": reason.as_str(), "by": by.as_str() });
                        let (org_id, workspace_id) = Self::owner_event_ids(&mut tx, owner).await?;
                        let event = NewEvent { kind: EventKind::Suspended, actor: Actor::System, org_id: Some(org_id), workspace_id, detail };
                        events.push(Self::insert_event(&mut tx, &event).await?);
                    }
                }
                tx.commit().await?;
                Ok(events)
            }

            async fn rearm_alarm(&self, seen: &FiringAlarm, at: Timestamp) -> Result<bool> {
                let key = &seen.key;
                let done = sqlx::query(
                    "UPDATE alarm_states SET firing = 0, changed_at = $4 \
                     WHERE scope = $1 AND owner_id = $2 AND rule_key = $3 AND firing = 1 AND changed_at = $5 AND changed_at < $4",
                )
                .bind(scope_text(&key.owner))
                .bind(key.owner.id())
                .bind(&key.rule_key)
                .bind(at.0)
                .bind(seen.changed_at.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_budget_notice(&self, notice: &BudgetNoticeRecord) -> Result<Option<Event>> {
                let mut tx = self.pool.begin_with($begin).await?;
                let added: Option<String> = sqlx::query_scalar(
                    "INSERT INTO budget_notices (scope, owner_id, period, notice, recorded_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING RETURNING notice",
                )
                .bind(scope_text(&notice.owner))
                .bind(notice.owner.id())
                .bind(&notice.period_key)
                .bind(notice.notice.as_str())
                .bind(Timestamp::now().0)
                .fetch_optional(&mut *tx)
                .await?;
                if added.is_none() {
                    return Ok(None);
                }
                let event =
                    Self::owner_system_event(&mut tx, &notice.owner, notice.notice.event(), notice.detail.clone()).await?;
                tx.commit().await?;
                Ok(Some(event))
            }
        }
    };
}

impl_alarm_store!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE");
impl_alarm_store!(PgStore, sqlx::Postgres, "BEGIN");
