//! The test bodies shared by both backends.

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use serin_core::{
    DomainError, Lane, NewProduct, NewRelease, NewSignal, ReleasePatch, ReleaseStatus, SignalKind,
    Timestamp,
};
use serin_store::{Entity, SignalQuery, Store, StoreError};

use crate::both;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_456_000)
        .unwrap()
}

async fn product(s: &Store, name: &str) {
    s.create_product(
        &NewProduct {
            name: name.into(),
            description: Some("d".into()),
        },
        "test",
        t(0),
    )
    .await
    .unwrap();
}

async fn release(s: &Store, p: &str, v: &str, at: i64) -> i64 {
    s.create_release(
        &NewRelease {
            product_name: p.into(),
            version: v.into(),
            description: None,
        },
        "test",
        t(at),
    )
    .await
    .unwrap()
    .id
}

async fn set(
    s: &Store,
    id: i64,
    st: ReleaseStatus,
    at: i64,
) -> Result<serin_core::Release, StoreError> {
    s.update_release(
        id,
        &ReleasePatch {
            status: Some(st),
            description: None,
            override_reason: None,
        },
        "test",
        t(at),
    )
    .await
}

async fn ship(s: &Store, id: i64, at: i64) {
    set(s, id, ReleaseStatus::Approved, at).await.unwrap();
    set(s, id, ReleaseStatus::Released, at).await.unwrap();
}

fn signal(p: &str, v: &str, lane: Lane, value: f64) -> NewSignal {
    NewSignal {
        release_id: None,
        product_name: Some(p.into()),
        version: Some(v.into()),
        lane,
        name: "http.request".into(),
        value,
        kind: SignalKind::Outcome,
        tags: BTreeMap::new(),
        timestamp: None,
    }
}

both!(products_round_trip, products_round_trip_body);
async fn products_round_trip_body(s: &Store) {
    product(s, "web").await;
    product(s, "api").await;
    let got = s.get_product("web").await.unwrap();
    assert_eq!(got.name, "web");
    assert_eq!(got.description.as_deref(), Some("d"));
    assert_eq!(
        got.created_at,
        t(0),
        "microsecond instants survive the round trip"
    );
    // Nanoseconds are cut to microseconds (what both databases keep), and the
    // answer of the write equals what a read returns.
    let fine = t(0) + Duration::nanoseconds(789);
    let made = s
        .create_product(
            &NewProduct {
                name: "fine".into(),
                description: None,
            },
            "test",
            fine,
        )
        .await
        .unwrap();
    let read = s.get_product("fine").await.unwrap();
    assert_eq!(made.created_at, read.created_at);
    assert_eq!(read.created_at, t(0));
    let names: Vec<_> = s
        .list_products(0, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["api", "fine", "web"]);
    let dup = s
        .create_product(
            &NewProduct {
                name: "web".into(),
                description: None,
            },
            "test",
            t(1),
        )
        .await;
    assert_eq!(
        dup.unwrap_err(),
        StoreError::Conflict {
            entity: Entity::Product,
            key: "web".into()
        }
    );
    assert!(matches!(
        s.get_product("nope").await,
        Err(StoreError::NotFound {
            entity: Entity::Product,
            ..
        })
    ));
}

both!(releases_and_transitions, releases_and_transitions_body);
async fn releases_and_transitions_body(s: &Store) {
    product(s, "web").await;
    let id = release(s, "web", "1.0.0", 1).await;
    let r = s.get_release(id).await.unwrap();
    assert_eq!(
        (r.status, r.product_name.as_str(), r.released_at),
        (ReleaseStatus::Draft, "web", None)
    );
    let dup = s
        .create_release(
            &NewRelease {
                product_name: "web".into(),
                version: "1.0.0".into(),
                description: None,
            },
            "test",
            t(2),
        )
        .await;
    assert!(matches!(
        dup,
        Err(StoreError::Conflict {
            entity: Entity::Release,
            ..
        })
    ));
    let missing = s
        .create_release(
            &NewRelease {
                product_name: "nope".into(),
                version: "1".into(),
                description: None,
            },
            "test",
            t(2),
        )
        .await;
    assert!(matches!(
        missing,
        Err(StoreError::NotFound {
            entity: Entity::Product,
            ..
        })
    ));

    // Illegal jump is refused and changes nothing.
    let err = set(s, id, ReleaseStatus::Released, 3).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::Domain(DomainError::IllegalTransition { .. })
    ));
    assert_eq!(
        s.get_release(id).await.unwrap().status,
        ReleaseStatus::Draft
    );

    ship(s, id, 5).await;
    let r = s.get_release(id).await.unwrap();
    assert_eq!(r.status, ReleaseStatus::Released);
    assert_eq!(r.released_at, Some(t(5)));
    // Same status again is a no-op, not an error, and keeps released_at.
    assert_eq!(
        set(s, id, ReleaseStatus::Released, 9)
            .await
            .unwrap()
            .released_at,
        Some(t(5))
    );
    let patched = s
        .update_release(
            id,
            &ReleasePatch {
                status: None,
                description: Some("notes".into()),
                override_reason: None,
            },
            "test",
            t(10),
        )
        .await
        .unwrap();
    assert_eq!(
        (patched.description.as_deref(), patched.updated_at),
        (Some("notes"), t(10))
    );
    assert!(matches!(
        s.get_release(999_999).await,
        Err(StoreError::NotFound {
            entity: Entity::Release,
            ..
        })
    ));
    let by_version = s.release_by_version("web", "1.0.0").await.unwrap().unwrap();
    assert_eq!(by_version.id, id);
    assert!(
        s.release_by_version("web", "9.9.9")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.release_by_version("nope", "1.0.0")
            .await
            .unwrap()
            .is_none()
    );
    let list = s.list_releases("web", 0, 100).await.unwrap().items;
    assert_eq!(list.len(), 1);
}

both!(latest_stable_rules, latest_stable_rules_body);
async fn latest_stable_rules_body(s: &Store) {
    product(s, "web").await;
    assert!(matches!(
        s.latest_stable("nope").await,
        Err(StoreError::NotFound {
            entity: Entity::Product,
            ..
        })
    ));
    assert!(matches!(
        s.latest_stable("web").await,
        Err(StoreError::NoStableRelease { .. })
    ));
    let a = release(s, "web", "1.10.0", 1).await;
    let b = release(s, "web", "1.9.0", 2).await;
    let c = release(s, "web", "2.0.0", 3).await;
    ship(s, a, 10).await;
    ship(s, b, 20).await; // released later, but lower precedence
    set(s, c, ReleaseStatus::Approved, 21).await.unwrap(); // approved is not stable
    assert_eq!(s.latest_stable("web").await.unwrap().version, "1.10.0");
    set(s, a, ReleaseStatus::RolledBack, 30).await.unwrap();
    assert_eq!(
        s.latest_stable("web").await.unwrap().version,
        "1.9.0",
        "rolled back is never stable"
    );
}

both!(signals_single_and_batch, signals_single_and_batch_body);
async fn signals_single_and_batch_body(s: &Store) {
    product(s, "web").await;
    let id = release(s, "web", "1.0.0", 1).await;
    let mut one = signal("web", "1.0.0", Lane::Canary, 1.0);
    one.tags.insert("region".into(), "eu".into());
    one.timestamp = Some(t(40));
    let stored = s.record_signal(one, t(50)).await.unwrap();
    assert_eq!(
        (stored.release_id, stored.lane, stored.timestamp),
        (id, Lane::Canary, t(40))
    );
    assert_eq!(stored.tags.get("region").map(String::as_str), Some("eu"));

    let batch: Vec<_> = (0..1000)
        .map(|i| {
            let mut x = signal(
                "web",
                "1.0.0",
                if i % 2 == 0 {
                    Lane::Stable
                } else {
                    Lane::Canary
                },
                0.0,
            );
            x.timestamp = Some(t(100) + Duration::milliseconds(i));
            x
        })
        .chain(std::iter::once(NewSignal {
            release_id: Some(id),
            product_name: None,
            version: None,
            ..signal("x", "y", Lane::Stable, 1.0)
        }))
        .collect();
    assert_eq!(s.record_signals(batch, t(200)).await.unwrap(), 1001);
    let all = s
        .list_signals(
            id,
            &SignalQuery {
                limit: 5000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1002);
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].timestamp >= w[1].timestamp),
        "newest first"
    );
    let canary = s
        .list_signals(
            id,
            &SignalQuery {
                lane: Some(Lane::Canary),
                limit: 5000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(canary.items.len(), 501);
    let recent = s
        .list_signals(
            id,
            &SignalQuery {
                since: Some(t(100) + Duration::milliseconds(990)),
                limit: 5000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        recent.items.len(),
        11,
        "the last 10 of the batch and the one stamped `now`"
    );
    let capped = s
        .list_signals(
            id,
            &SignalQuery {
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(capped.items.len(), 3);
}

both!(bad_batch_stores_nothing, bad_batch_stores_nothing_body);
async fn bad_batch_stores_nothing_body(s: &Store) {
    product(s, "web").await;
    let id = release(s, "web", "1.0.0", 1).await;
    let mut batch: Vec<_> = (0..10)
        .map(|_| signal("web", "1.0.0", Lane::Stable, 1.0))
        .collect();
    batch.push(signal("web", "9.9.9", Lane::Stable, 1.0));
    let err = s.record_signals(batch, t(5)).await.unwrap_err();
    match err {
        StoreError::NotFound {
            entity: Entity::Release,
            key,
            field,
        } => {
            assert_eq!(key, "web@9.9.9");
            assert_eq!(field.as_deref(), Some("signals[10].version"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.list_signals(
            id,
            &SignalQuery {
                limit: 100,
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .items
        .is_empty()
    );
}

both!(migrations_are_idempotent, migrations_are_idempotent_body);
async fn migrations_are_idempotent_body(s: &Store) {
    let again = s.migrate().await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied.len() as i64, again.latest);
    s.ping().await.unwrap();
}

both!(concurrent_writes_all_land, concurrent_writes_all_land_body);
async fn concurrent_writes_all_land_body(s: &Store) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_product(
                    &NewProduct {
                        name: format!("p{i}"),
                        description: None,
                    },
                    "test",
                    t(0),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(s.list_products(0, 100).await.unwrap().items.len(), 50);
}

both!(
    racing_status_changes_stay_on_the_graph,
    racing_status_changes_stay_on_the_graph_body
);
/// Many approve-vs-cancel races at once. On PostgreSQL they run on separate
/// connections (the row lock decides); on SQLite the writer serialises them. Either
/// way each release ends `cancelled` (reachable from both draft and approved), every
/// refusal is a domain error, and no call reports success for a move the graph forbids.
async fn racing_status_changes_stay_on_the_graph_body(s: &Store) {
    product(s, "web").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(release(s, "web", &format!("1.0.{i}"), 1).await);
    }
    let races: Vec<_> = ids
        .iter()
        .map(|&id| {
            let (a, b) = (s.clone(), s.clone());
            tokio::spawn(async move {
                tokio::join!(
                    set(&a, id, ReleaseStatus::Approved, 2),
                    set(&b, id, ReleaseStatus::Cancelled, 2)
                )
            })
        })
        .collect();
    for (race, id) in races.into_iter().zip(&ids) {
        let (approve, cancel) = race.await.unwrap();
        assert!(
            cancel.is_ok(),
            "cancel is legal from draft and from approved"
        );
        match approve {
            Ok(r) => assert_eq!(r.status, ReleaseStatus::Approved),
            Err(e) => assert!(
                matches!(e, StoreError::Domain(DomainError::IllegalTransition { .. })),
                "{e:?}"
            ),
        }
        assert_eq!(
            s.get_release(*id).await.unwrap().status,
            ReleaseStatus::Cancelled
        );
    }
}
