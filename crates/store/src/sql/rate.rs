//! [`RateStore`] for both backends: the shared counts behind section 14's rate limits.

use std::time::Duration;

use async_trait::async_trait;
use tollgate_policy::rate::{self, Grant};

use super::{PgStore, SqliteStore, ttl_millis};
use crate::{RateKey, RateStore, Result, Timestamp};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

macro_rules! impl_rate_store {
    ($store:ty, $begin:literal, $lock:literal) => {
        impl $store {
            /// Creates and locks `key`'s lock row (slot -1) for the rest of `tx`.
            async fn lock_limiter(tx: &mut sqlx::Transaction<'_, <$store as RateDb>::Db>, key: &RateKey) -> Result<()> {
                sqlx::query("INSERT INTO rate_counts (limiter, slot, units) VALUES ($1, -1, 0) ON CONFLICT DO NOTHING")
                    .bind(key.as_str())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(concat!("SELECT units FROM rate_counts WHERE limiter = $1 AND slot = -1", $lock))
                    .bind(key.as_str())
                    .fetch_one(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl RateStore for $store {
            async fn lease_rate(
                &self,
                key: &RateKey,
                limit: u64,
                need: u64,
                want: u64,
                returning: u64,
                now_millis: i64,
            ) -> Result<Grant> {
                let slot = rate::slot_of(now_millis);
                let first = rate::window_start(slot);
                let mut tx = self.pool.begin_with($begin).await?;
                Self::lock_limiter(&mut tx, key).await?;
                if returning > 0 {
                    sqlx::query(
                        "UPDATE rate_counts SET units = CASE WHEN units > $1 THEN units - $1 ELSE 0 END \
                         WHERE limiter = $2 AND slot = $3",
                    )
                    .bind(to_i64(returning))
                    .bind(key.as_str())
                    .bind(slot)
                    .execute(&mut *tx)
                    .await?;
                }
                let rows: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT slot, units FROM rate_counts WHERE limiter = $1 AND slot >= $2 AND slot <= $3",
                )
                .bind(key.as_str())
                .bind(first)
                .bind(slot)
                .fetch_all(&mut *tx)
                .await?;
                let counted: Vec<(i64, u64)> = rows.into_iter().map(|(s, u)| (s, to_u64(u))).collect();
                let decided = rate::grant(limit, need, want, slot, &counted, now_millis);
                if let Grant::Granted(units) = decided {
                    sqlx::query(
                        "INSERT INTO rate_counts (limiter, slot, units) VALUES ($1, $2, $3) \
                         ON CONFLICT (limiter, slot) DO UPDATE SET units = rate_counts.units + excluded.units",
                    )
                    .bind(key.as_str())
                    .bind(slot)
                    .bind(to_i64(units))
                    .execute(&mut *tx)
                    .await?;
                    // Slots that no admission counts any more.
                    sqlx::query("DELETE FROM rate_counts WHERE limiter = $1 AND slot >= 0 AND slot < $2")
                        .bind(key.as_str())
                        .bind(first)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(decided)
            }

            async fn return_rate(&self, returns: &[(RateKey, i64, u64)]) -> Result<()> {
                if returns.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin_with($begin).await?;
                for (key, slot, units) in returns {
                    // No lock row needed: taking units back only makes room.
                    sqlx::query(
                        "UPDATE rate_counts SET units = CASE WHEN units > $1 THEN units - $1 ELSE 0 END \
                         WHERE limiter = $2 AND slot = $3",
                    )
                    .bind(to_i64(*units))
                    .bind(key.as_str())
                    .bind(*slot)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn lease_concurrency(
                &self,
                key: &RateKey,
                instance: &str,
                limit: u64,
                ttl: Duration,
            ) -> Result<bool> {
                let now = Timestamp::now().0;
                let mut tx = self.pool.begin_with($begin).await?;
                Self::lock_limiter(&mut tx, key).await?;
                let held: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM rate_concurrency \
                     WHERE limiter = $1 AND expires_at > $2",
                )
                .bind(key.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let granted = to_u64(held) < limit;
                if granted {
                    // A row of this instance past its expiry counted nothing above: start it over.
                    sqlx::query(
                        "INSERT INTO rate_concurrency (limiter, instance, held, expires_at) VALUES ($1, $2, 1, $3) \
                         ON CONFLICT (limiter, instance) DO UPDATE SET held = \
                         CASE WHEN rate_concurrency.expires_at > $4 THEN rate_concurrency.held + 1 ELSE 1 END, \
                         expires_at = excluded.expires_at",
                    )
                    .bind(key.as_str())
                    .bind(instance)
                    .bind(now.saturating_add(ttl_millis(ttl)))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(granted)
            }

            async fn release_concurrency(
                &self,
                key: &RateKey,
                instance: &str,
                units: u64,
                ttl: Duration,
            ) -> Result<()> {
                let now = Timestamp::now().0;
                sqlx::query(
                    "UPDATE rate_concurrency SET held = CASE WHEN held > $1 THEN held - $1 ELSE 0 END, expires_at = $2 \
                     WHERE limiter = $3 AND instance = $4",
                )
                .bind(to_i64(units))
                .bind(now.saturating_add(ttl_millis(ttl)))
                .bind(key.as_str())
                .bind(instance)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

/// The sqlx database of each store, for the lock helper's transaction type.
trait RateDb {
    type Db: sqlx::Database;
}

impl RateDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl RateDb for PgStore {
    type Db = sqlx::Postgres;
}

impl_rate_store!(SqliteStore, "BEGIN IMMEDIATE", "");
impl_rate_store!(PgStore, "BEGIN", " FOR UPDATE");
