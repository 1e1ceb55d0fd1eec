//! `serve --demo`'s data (`tollgate_server::demo`): the week of usage is charged through the
//! ledger path (credit = start − ledger sum, no lease left open), ends in a drain, and is
//! written once.

use tollgate_policy::Registry;
use tollgate_server::demo::{DEMO_CREDIT, DRAIN_WORKSPACE, seed};
use tollgate_store::{Timestamp, UsageGroup, UsageQuery};
use tollgate_testkit::both_backends;
use tollgate_testkit::server_app::{Backend, spawn_app};

both_backends!(the_demo_week_is_charged_through_the_ledger_and_ends_in_a_drain);

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

async fn the_demo_week_is_charged_through_the_ledger_and_ends_in_a_drain(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = Registry::embedded().unwrap();
    let now = Timestamp::now();
    let seeded = seed(app.store.as_ref(), &registry, now).await.unwrap();
    let history = seeded.history.expect("a new demo org gets its history");
    let org = seeded.org.id.clone();
    let usage = |ws: Option<tollgate_policy::WorkspaceId>, since: i64, until: i64, group_by| {
        let q = UsageQuery {
            org_id: Some(org.clone()),
            workspace_id: ws,
            since: Some(Timestamp(since)),
            until: Some(Timestamp(until)),
            group_by,
        };
        let store = app.store.clone();
        async move { store.usage(&q).await.unwrap() }
    };
    let by_day = usage(None, 0, now.0 + 1, UsageGroup::Day).await;
    let spent: i64 = by_day.iter().map(|r| r.cost_micros).sum();
    let requests: i64 = by_day.iter().map(|r| r.requests).sum();
    assert_eq!(spent, history.cost.get());
    assert_eq!(usize::try_from(requests).unwrap(), history.requests);
    assert_eq!(seeded.org.credit_micros.get(), DEMO_CREDIT.get() - spent, "credit = start − ledger sum");
    assert_eq!(app.store.leased_credit(&org).await.unwrap().get(), 0, "the history's lease is closed");
    assert!(by_day.len() >= 7, "spend on every day of the week: {by_day:?}");
    assert!(spent > 10_000_000 && spent < DEMO_CREDIT.get() / 2, "a realistic week, most credit left: {spent}");
    let models = usage(None, 0, now.0 + 1, UsageGroup::Model).await;
    assert!(models.len() >= 4, "varied models: {models:?}");

    // The drain: the last 15 minutes of its workspace cost over 10 times its average 15
    // minutes of the week before.
    let drain = seeded.workspaces.iter().find(|w| w.name == DRAIN_WORKSPACE).unwrap().id.clone();
    let window = 15 * MINUTE;
    let last: i64 = usage(Some(drain.clone()), now.0 - window, now.0 + 1, UsageGroup::Day)
        .await
        .iter()
        .map(|r| r.cost_micros)
        .sum();
    let before: i64 = usage(Some(drain), now.0 - window - 7 * DAY, now.0 - window, UsageGroup::Day)
        .await
        .iter()
        .map(|r| r.cost_micros)
        .sum();
    let windows_in_week = 7 * DAY / window;
    assert!(last > 10 * before / windows_in_week, "a drain: {last} in 15 min vs {before} in the week before");
    assert!(last > 5_000_000, "a drain worth an alarm: {last}");

    // Seeding again (a restart with --demo) writes nothing twice.
    let again = seed(app.store.as_ref(), &registry, Timestamp::now()).await.unwrap();
    assert!(again.history.is_none());
    assert_eq!(again.org.credit_micros, seeded.org.credit_micros);
    assert_eq!(again.workspaces.len(), seeded.workspaces.len());
    let after: i64 = usage(None, 0, Timestamp::now().0 + 1, UsageGroup::Day).await.iter().map(|r| r.requests).sum();
    assert_eq!(after, requests);
    app.stop().await;
}
