//! Master key rotation at the store: a re-encryption walk racing writes of the same rows never
//! puts an old value back (each row is moved only if it still holds what was read), and
//! afterwards only the newest key is needed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tollgate_policy::resolve::WorkspaceKind;
use tollgate_policy::secret::{SecretState, SecretValue};
use tollgate_policy::{Micros, SecretName};
use tollgate_store::{MasterKey, MasterKeys, NewOrg, NewWorkspace, Owner, Store};

use crate::{Backend, Harness};

/// Secrets on the one workspace: two batches of the walk.
const SECRETS: usize = 120;
const BATCH: u32 = 60;

fn secret_name(i: usize) -> String {
    format!("S{i:03}")
}

async fn values(store: &dyn Store, ws: &tollgate_store::Workspace) -> BTreeMap<String, Option<String>> {
    let merged = store.merged_secrets(ws).await.unwrap();
    (0..SECRETS)
        .map(|i| {
            let n = secret_name(i);
            let v = match merged.get(&n).map(|m| &m.state) {
                Some(SecretState::Value(v)) => Some(v.expose().to_owned()),
                _ => None,
            };
            (n, v)
        })
        .collect()
}

async fn a_walk_racing_writes_keeps_the_newest_values(h: Harness) {
    let org = h
        .store
        .create_org(&NewOrg {
            name: "acme".to_owned(),
            default_billing_mode: None,
            credit_micros: Micros::new(0),
            limits: Default::default(),
            alert_webhook_url: None,
            alarms: None,
        })
        .await
        .unwrap();
    let ws = h
        .store
        .create_workspace(&NewWorkspace {
            org_id: org.id.clone(),
            name: "dev".to_owned(),
            runtime: "claude-code".to_owned(),
            model: Some("MiniMax-M2.7".to_owned()),
            billing_mode: None,
            kind: WorkspaceKind::Agent,
            limits: Default::default(),
            alarms: None,
        })
        .await
        .unwrap();
    let owner = Owner::Workspace(ws.id.clone());
    for i in 0..SECRETS {
        let v = SecretValue::parse(format!("before-{i}")).unwrap();
        h.store.put_secret(&owner, &SecretName::parse(&secret_name(i)).unwrap(), &v).await.unwrap();
    }

    let old = || MasterKey::from_base64(&h.key_b64).unwrap();
    let new_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    };
    let new = || MasterKey::from_base64(&new_b64).unwrap();
    let rotated: Arc<dyn Store> =
        tollgate_store::connect(&h.url, MasterKeys::new(vec![old(), new()]).unwrap()).await.unwrap();

    // The walk, and a writer setting every secret once, in the opposite order, meanwhile.
    let walker = {
        let store = rotated.clone();
        tokio::spawn(async move {
            let (mut after, mut moved, mut changed) = (None, 0, 0);
            loop {
                let batch = store.reencrypt_secrets(after.as_ref(), BATCH).await.unwrap();
                assert_eq!(batch.unreadable, 0);
                moved += batch.moved;
                changed += batch.changed;
                match batch.next {
                    Some(next) => after = Some(next),
                    None => return (moved, changed),
                }
            }
        })
    };
    let written = Arc::new(Mutex::new(BTreeMap::new()));
    let writer = {
        let (store, owner, written) = (rotated.clone(), owner.clone(), written.clone());
        tokio::spawn(async move {
            for i in (0..SECRETS).rev() {
                let v = format!("during-{i}");
                let value = SecretValue::parse(v.clone()).unwrap();
                store.put_secret(&owner, &SecretName::parse(&secret_name(i)).unwrap(), &value).await.unwrap();
                written.lock().unwrap().insert(secret_name(i), v);
            }
        })
    };
    let (moved, changed) = walker.await.unwrap();
    writer.await.unwrap();
    // Rows the writer reached before the walk did were not under the old key any more.
    assert!(moved + changed <= u64::try_from(SECRETS).unwrap() && moved > 0, "moved {moved}, changed {changed}");

    // Every secret holds what was written last, and only the new key is needed for it.
    let expected: BTreeMap<String, Option<String>> =
        written.lock().unwrap().iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    assert_eq!(values(&*rotated, &ws).await, expected, "moved {moved}, changed {changed}");
    let new_only = tollgate_store::connect(&h.url, new()).await.unwrap();
    assert_eq!(values(&*new_only, &ws).await, expected);
    let again = new_only.reencrypt_secrets(None, BATCH).await.unwrap();
    assert_eq!((again.moved, again.changed, again.unreadable, again.pending), (0, 0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_racing_writes_keeps_the_newest_values_sqlite() {
    a_walk_racing_writes_keeps_the_newest_values(Harness::new(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_racing_writes_keeps_the_newest_values_postgres() {
    a_walk_racing_writes_keeps_the_newest_values(Harness::new(Backend::Postgres).await).await;
}

/// An org's webhook URL (a Slack URL's path is its key) is sealed at rest like a secret: a
/// store opened with another key reads the org but not the URL; the rotation walk moves it to
/// the newest key, after which only that key is needed.
async fn an_orgs_webhook_url_is_sealed_and_moves_with_the_keys(h: Harness) {
    let hook = tollgate_policy::WebhookUrl::parse("https://hooks.example.com/services/T0/B0/pathsecret").unwrap();
    let new_org = |name: &str, url: Option<tollgate_policy::WebhookUrl>| NewOrg {
        name: name.to_owned(),
        default_billing_mode: None,
        credit_micros: Micros::new(0),
        limits: Default::default(),
        alert_webhook_url: url,
        alarms: None,
    };
    let org = h.store.create_org(&new_org("hooked", Some(hook.clone()))).await.unwrap();
    let plain = h.store.create_org(&new_org("plain", None)).await.unwrap();
    let new_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let old = || MasterKey::from_base64(&h.key_b64).unwrap();
    let new = || MasterKey::from_base64(&new_b64).unwrap();

    let stranger = tollgate_store::connect(&h.url, new()).await.unwrap();
    let seen = stranger.get_org(&org.id).await.unwrap();
    assert_eq!(seen.name, "hooked", "the org reads");
    assert_eq!(seen.alert_webhook_url, None, "the URL is not stored in the clear");
    assert_eq!(stranger.get_org(&plain.id).await.unwrap().alert_webhook_url, None);

    let rotated = tollgate_store::connect(&h.url, MasterKeys::new(vec![old(), new()]).unwrap()).await.unwrap();
    assert_eq!(rotated.get_org(&org.id).await.unwrap().alert_webhook_url.as_ref(), Some(&hook), "the old key opens it");
    let batch = rotated.reencrypt_secrets(None, BATCH).await.unwrap();
    assert_eq!((batch.moved, batch.unreadable), (1, 0), "the one webhook moved");
    let new_only = tollgate_store::connect(&h.url, new()).await.unwrap();
    assert_eq!(new_only.get_org(&org.id).await.unwrap().alert_webhook_url.as_ref(), Some(&hook));
    let again = new_only.reencrypt_secrets(None, BATCH).await.unwrap();
    assert_eq!((again.moved, again.changed, again.unreadable), (0, 0, 0), "nothing left to move");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_webhook_url_is_sealed_and_moves_with_the_keys_sqlite() {
    an_orgs_webhook_url_is_sealed_and_moves_with_the_keys(Harness::new(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_webhook_url_is_sealed_and_moves_with_the_keys_postgres() {
    an_orgs_webhook_url_is_sealed_and_moves_with_the_keys(Harness::new(Backend::Postgres).await).await;
}
