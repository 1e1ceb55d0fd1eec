//! The shared store test suite: every test runs against SQLite and against a throwaway
//! Postgres server (started by tollgate-testkit; it fails, never skips, without Postgres).
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a test failure")]

mod alarms;
mod events;
#[cfg(unix)]
mod files;
mod rate;
mod rotation;
mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use tollgate_store::{MasterKey, Store};

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A file in a fresh temporary directory.
    Sqlite,
    /// A fresh database on the throwaway server of tollgate-testkit.
    Postgres,
}

/// A fresh, empty database of one backend, and how to reach it again.
#[derive(Debug)]
pub struct Harness {
    /// The backend.
    pub backend: Backend,
    /// The database URL, to open it again.
    pub url: String,
    /// The master key the store was opened with, base64.
    pub key_b64: String,
    /// The open store.
    pub store: Arc<dyn Store>,
    _dir: Option<PathBuf>,
}

fn key_b64() -> String {
    use base64::Engine;
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap().wrapping_mul(37).wrapping_add(11);
    }
    base64::engine::general_purpose::STANDARD.encode(key)
}

impl Harness {
    /// A fresh, empty, migrated database of `backend`.
    pub async fn new(backend: Backend) -> Self {
        let key = key_b64();
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("tollgate-store-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).unwrap();
                (format!("sqlite://{}", dir.join("tollgate.db").display()), Some(dir))
            }
            Backend::Postgres => (tollgate_testkit::postgres().fresh_database().await.unwrap(), None),
        };
        let store = tollgate_store::connect(&url, MasterKey::from_base64(&key).unwrap()).await.unwrap();
        assert_eq!(store.backend(), if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
        Self { backend, url, key_b64: key, store, _dir: dir }
    }

    /// Another connection to the same database (as after a restart), with `key`.
    pub async fn reopen(&self, key: MasterKey) -> Arc<dyn Store> {
        tollgate_store::connect(&self.url, key).await.unwrap()
    }

    /// Runs raw SQL against the database, bypassing the store (to simulate corruption).
    pub async fn raw(&self, sql: &str) {
        use sqlx::Connection;
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }
}

/// Generates one `#[tokio::test]` per backend for each suite function.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::Harness::new(crate::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::Harness::new(crate::Backend::Postgres).await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    orgs_crud_and_unique_names,
    alert_webhook_url_is_stored_kept_and_removed,
    credit_adjustments_are_atomic_and_recorded,
    workspaces_crud_and_unique_names_per_org,
    secrets_are_encrypted_listed_and_merged,
    ciphertext_moved_to_another_row_is_unreadable,
    another_master_key_makes_every_secret_unreadable,
    provision_swaps_tokens_atomically,
    delete_workspace_removes_its_secrets_and_tokens,
    admin_token_hash_round_trip,
    data_survives_a_reopen,
    reads_are_never_stale,
    usage_groups_the_ledger,
    usage_groups_by_agent_session,
    credit_is_leased_recorded_and_returned,
    debits_cut_leases_and_are_bounded,
    concurrent_leases_never_overspend,
    invalidations_reach_every_instance,
    concurrent_patches_of_different_fields_all_land,
    suspensions_are_stored_read_back_and_lifted,
    limits_round_trip_on_orgs_and_workspaces,
    budgets_reserve_settle_and_never_overspend,
    budget_leases_grant_adjust_close_and_never_overspend,
    audit_snapshot_reads_everything_an_audit_needs,
    every_admin_mutation_writes_one_event,
    a_failed_mutation_writes_no_event,
    system_events_and_pages_are_stable,
    alarm_rules_owners_and_window_sums,
    a_rule_fires_once_per_crossing,
    budget_notices_are_recorded_once_per_period,
);

/// The invalidation channel's text form: what one instance encodes, every other decodes to
/// the same notice; text it does not recognise drops everything.
mod invalidation {
    use proptest::prelude::*;
    use tollgate_policy::{OrgId, WorkspaceId};
    use tollgate_store::Invalidation;

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,64}"
    }

    fn notice() -> impl Strategy<Value = Invalidation> {
        prop_oneof![
            id().prop_map(|s| Invalidation::Workspace(WorkspaceId::parse(&s).unwrap())),
            id().prop_map(|s| Invalidation::Org(OrgId::parse(&s).unwrap())),
            (id(), any::<String>())
                .prop_map(|(o, from)| Invalidation::CreditRecall { org: OrgId::parse(&o).unwrap(), from }),
            id().prop_map(|s| Invalidation::CreditCut(OrgId::parse(&s).unwrap())),
            id().prop_map(|s| Invalidation::CreditCutDone(tollgate_store::LeaseId::parse(&s).unwrap())),
            Just(Invalidation::All),
        ]
    }

    proptest! {
        #[test]
        fn decode_reads_back_what_encode_wrote(n in notice()) {
            prop_assert_eq!(Invalidation::decode(&n.encode()), n);
        }

        #[test]
        fn unrecognised_text_drops_everything(text in any::<String>()) {
            let known = ["ws:", "org:", "credit:"].iter().any(|p| text.starts_with(p));
            prop_assume!(!known);
            prop_assert_eq!(Invalidation::decode(&text), Invalidation::All);
        }
    }

    #[test]
    fn malformed_ids_drop_everything() {
        for text in ["ws:", "org:a/b", "credit:acme", "credit::x", "ws:a:b", "*"] {
            assert_eq!(Invalidation::decode(text), Invalidation::All, "{text:?}");
        }
    }
}

/// A URL no backend reads is a configuration error (not a conflict, not an outage), and the
/// error does not echo the URL, which may hold a password.
#[tokio::test]
async fn a_malformed_database_url_is_a_configuration_error() {
    for url in ["mysql://u:hunter2@x/db", "", "postgres://u:hunter2@x:notaport/db"] {
        let err = tollgate_store::connect(url, MasterKey::from_base64(&key_b64()).unwrap()).await.unwrap_err();
        assert!(matches!(err, tollgate_store::StoreError::Config(_)), "{url:?}: {err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
