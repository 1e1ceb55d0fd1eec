//! The shared counts of rate limits, on both backends: concurrent grants from two
//! connections (two instances) never sum past the limit, returns make room, and request slots
//! of dead instances stop counting.

use std::time::Duration;

use tollgate_policy::rate::{Grant, RateKind, SLOT_MILLIS, WINDOW_SLOTS};
use tollgate_policy::{OrgId, WorkspaceId};
use tollgate_store::{MasterKey, RateKey};

use crate::Harness;

/// A fixed instant (the middle of a slot), so that the test never straddles two slots.
const NOW: i64 = 1_800_000_000_000 + SLOT_MILLIS / 2;

async fn grants_never_sum_past_the_limit(h: Harness) {
    let other = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
    let key = RateKey::workspace(&WorkspaceId::parse("w1").unwrap(), RateKind::RequestsPerMinute);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { h.store.clone() } else { other.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move { store.lease_rate(&key, 50, 1, 3, 0, NOW).await }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Grant::Granted(n) => {
                assert!((1..=3).contains(&n), "a grant lies between need and want: {n}");
                granted += n;
            }
            Grant::Refused { .. } => {}
        }
    }
    assert_eq!(granted, 50, "40 asks of up to 3 fill a limit of 50 exactly");
    let Grant::Refused { retry_after_millis: Some(ms) } = h.store.lease_rate(&key, 50, 1, 1, 0, NOW).await.unwrap()
    else {
        panic!("a full window refuses");
    };
    assert_eq!(ms, WINDOW_SLOTS * SLOT_MILLIS - SLOT_MILLIS / 2, "room appears when this slot leaves the window");
    // Another limiter is not affected.
    let org_key = RateKey::org(&OrgId::parse("o1").unwrap(), RateKind::RequestsPerMinute);
    assert_eq!(h.store.lease_rate(&org_key, 50, 1, 1, 0, NOW).await.unwrap(), Grant::Granted(1));
    // Returned units make room; a full window later, all of it is free again.
    let slot = tollgate_policy::rate::slot_of(NOW);
    other.return_rate(&[(key.clone(), slot, 7)]).await.unwrap();
    assert_eq!(h.store.lease_rate(&key, 50, 1, 100, 0, NOW).await.unwrap(), Grant::Granted(7));
    // A block's unspent rest comes back with the next ask.
    assert_eq!(h.store.lease_rate(&key, 50, 3, 3, 3, NOW).await.unwrap(), Grant::Granted(3));
    let later = NOW + WINDOW_SLOTS * SLOT_MILLIS;
    assert_eq!(h.store.lease_rate(&key, 50, 50, 50, 0, later).await.unwrap(), Grant::Granted(50));
    assert_eq!(
        h.store.lease_rate(&key, 50, 51, 51, 0, later).await.unwrap(),
        Grant::Refused { retry_after_millis: None }
    );
}

async fn concurrency_slots_are_shared_and_expire(h: Harness) {
    let other = h.reopen(MasterKey::from_base64(&h.key_b64).unwrap()).await;
    let key = RateKey::workspace(&WorkspaceId::parse("w1").unwrap(), RateKind::MaxConcurrentRequests);
    let ttl = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (store, instance) = if i % 2 == 0 { (h.store.clone(), "a") } else { (other.clone(), "b") };
        let key = key.clone();
        tasks.push(tokio::spawn(async move { store.lease_concurrency(&key, instance, 3, ttl).await }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += u32::from(t.await.unwrap().unwrap());
    }
    assert_eq!(granted, 3);
    assert!(!h.store.lease_concurrency(&key, "c", 3, ttl).await.unwrap());
    // Whichever instance holds slots gives one back.
    h.store.release_concurrency(&key, "a", 1, ttl).await.unwrap();
    other.release_concurrency(&key, "b", 1, ttl).await.unwrap();
    assert!(h.store.lease_concurrency(&key, "c", 3, ttl).await.unwrap());
    // An instance whose row expired (it died) holds nothing any more.
    h.store.release_concurrency(&key, "a", 0, Duration::ZERO).await.unwrap();
    h.store.release_concurrency(&key, "b", 0, Duration::ZERO).await.unwrap();
    assert!(h.store.lease_concurrency(&key, "d", 3, ttl).await.unwrap());
    assert!(h.store.lease_concurrency(&key, "d", 3, ttl).await.unwrap());
    assert!(!h.store.lease_concurrency(&key, "d", 3, ttl).await.unwrap(), "c and d hold all three");
}

macro_rules! rate_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::Harness::new(crate::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::Harness::new(crate::Backend::Postgres).await).await;
                }
            )*
        }
    };
}

rate_tests!(grants_never_sum_past_the_limit, concurrency_slots_are_shared_and_expire);
