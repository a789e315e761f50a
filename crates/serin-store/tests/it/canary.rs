//! Canary storage on both backends: deployments, races, events, workers, keys.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use serin_core::auth::Role;
use serin_core::canary::worker::{Heartbeat, JobResult, NewWorker, WorkerStatus};
use serin_core::canary::{Deployment, DeploymentStatus, NewDeployment};
use serin_core::{DomainError, Lane, NewProduct, SignalKind, Timestamp};
use serin_store::canary::{
    ApiKeyRecord, DeploymentChange, DeploymentFilter, EventFilter, Observation,
};
use serin_store::{Entity, Store, StoreError};

use crate::both;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_757_851_200 + secs, 0).unwrap()
}

fn new(queue: &str, tenant: Option<&str>) -> NewDeployment {
    NewDeployment {
        queue_name: queue.into(),
        tenant_id: tenant.map(str::to_string),
        stable_version: "v1.2.0".into(),
        canary_version: "v1.3.0".into(),
        ..Default::default()
    }
}

async fn create(
    s: &Store,
    queue: &str,
    tenant: Option<&str>,
    limit: Option<u32>,
) -> Result<Deployment, StoreError> {
    let (d, ev) = new(queue, tenant)
        .resolve(format!("canary_{queue}_{}", uuid_ish()), "ops", t(0))
        .unwrap();
    s.create_deployment(d, ev, "ops", limit)
        .await
        .map(|(d, _)| d)
}

fn uuid_ish() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn change(
    f: impl FnOnce(&mut Deployment) -> Result<Vec<serin_core::event::NewEvent>, DomainError>
    + Send
    + 'static,
) -> DeploymentChange {
    Box::new(f)
}

both!(deployments_round_trip, deployments_round_trip_body);
async fn deployments_round_trip_body(s: &Store) {
    let d = create(s, "payments", Some("acme"), None).await.unwrap();
    assert_eq!(s.get_deployment(&d.id).await.unwrap(), d);
    let dup = create(s, "payments", Some("acme"), None).await.unwrap_err();
    assert!(
        matches!(
            dup,
            StoreError::Conflict {
                entity: Entity::Deployment,
                ..
            }
        ),
        "{dup:?}"
    );
    create(s, "payments", Some("other"), None)
        .await
        .expect("another tenant may canary the same queue");
    create(s, "orders", Some("acme"), Some(2)).await.unwrap();
    let limit = create(s, "billing", Some("acme"), Some(2))
        .await
        .unwrap_err();
    assert!(
        matches!(limit, StoreError::ConcurrencyLimit { limit: 2, .. }),
        "{limit:?}"
    );

    let (d2, events) = s
        .update_deployment(
            &d.id,
            None,
            change(|d| d.set_percentage(25, t(5))),
            "eng",
            t(5),
        )
        .await
        .unwrap();
    assert_eq!((d2.current_percent, d2.revision, events.len()), (25, 2, 1));
    let stale = s
        .update_deployment(
            &d.id,
            Some(1),
            change(|d| d.set_percentage(30, t(6))),
            "eng",
            t(6),
        )
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::RevisionMismatch {
            expected: 1,
            actual: Some(2)
        })
    ));
    let live = s
        .live_deployment("payments", Some("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.id, d.id);

    assert!(matches!(
        s.delete_deployment(&d.id, "eng", t(7)).await,
        Err(StoreError::Domain(DomainError::StillActive { .. }))
    ));
    s.update_deployment(
        &d.id,
        None,
        change(|d| d.rollback("bad", t(8))),
        "eng",
        t(8),
    )
    .await
    .unwrap();
    assert!(
        s.live_deployment("payments", Some("acme"))
            .await
            .unwrap()
            .is_none()
    );
    create(s, "payments", Some("acme"), None)
        .await
        .expect("a failed deployment frees the target");
    s.delete_deployment(&d.id, "eng", t(9)).await.unwrap();
    assert!(matches!(
        s.get_deployment(&d.id).await,
        Err(StoreError::NotFound {
            entity: Entity::Deployment,
            ..
        })
    ));

    let page = s
        .list_deployments(&DeploymentFilter::default(), 0, 2)
        .await
        .unwrap();
    assert_eq!(
        (page.items.len(), page.total),
        (2, 3),
        "4 created, 1 deleted"
    );
    let acme = DeploymentFilter {
        tenant_id: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(s.list_deployments(&acme, 0, 10).await.unwrap().total, 2);
    let active = DeploymentFilter {
        status: Some(DeploymentStatus::Active),
        ..Default::default()
    };
    assert_eq!(s.list_deployments(&active, 0, 10).await.unwrap().total, 3);

    // The deployment's history survives its deletion (the audit log is append-only).
    let hist = s
        .list_events(
            &EventFilter {
                deployment_id: Some(d.id.clone()),
                ..Default::default()
            },
            0,
            50,
        )
        .await
        .unwrap();
    let kinds: Vec<_> = hist.items.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "deployment_deleted",
            "deployment_rolled_back",
            "percentage_updated",
            "deployment_created"
        ]
    );
    assert_eq!(hist.items[1].actor, "eng");
}

both!(
    promote_and_rollback_race_to_one_outcome,
    promote_and_rollback_race_body
);
/// Fired concurrently, many times: exactly one of promote/rollback wins, the
/// other is refused as not active, and the stored state matches the winner.
async fn promote_and_rollback_race_body(s: &Store) {
    for round in 0..15 {
        let d = create(s, &format!("race{round}"), None, None)
            .await
            .unwrap();
        let (a, b) = (s.clone(), s.clone());
        let (ida, idb) = (d.id.clone(), d.id.clone());
        let (p, r) = tokio::join!(
            tokio::spawn(async move {
                a.update_deployment(&ida, None, change(|d| d.promote(t(3))), "a", t(3))
                    .await
            }),
            tokio::spawn(async move {
                b.update_deployment(&idb, None, change(|d| d.rollback("race", t(3))), "b", t(3))
                    .await
            }),
        );
        let (p, r) = (p.unwrap(), r.unwrap());
        assert!(p.is_ok() != r.is_ok(), "exactly one wins: {p:?} / {r:?}");
        let promoted = p.is_ok();
        let loser = if promoted {
            r.unwrap_err()
        } else {
            p.unwrap_err()
        };
        assert!(
            matches!(loser, StoreError::Domain(DomainError::NotActive { .. })),
            "{loser:?}"
        );
        let end = s.get_deployment(&d.id).await.unwrap();
        let expect = if promoted {
            DeploymentStatus::Completed
        } else {
            DeploymentStatus::Failed
        };
        assert_eq!((end.status, end.revision), (expect, 2));
        let hist = s
            .list_events(
                &EventFilter {
                    deployment_id: Some(d.id.clone()),
                    ..Default::default()
                },
                0,
                10,
            )
            .await
            .unwrap();
        assert_eq!(hist.total, 2, "one creation, one winning change");
    }
}

both!(
    concurrent_percentages_all_apply_in_order,
    concurrent_percentages_body
);
async fn concurrent_percentages_body(s: &Store) {
    let d = create(s, "pct", None, None).await.unwrap();
    let tasks: Vec<_> = (1..=20u8)
        .map(|p| {
            let (s, id) = (s.clone(), d.id.clone());
            tokio::spawn(async move {
                s.update_deployment(
                    &id,
                    None,
                    change(move |d| d.set_percentage(p * 5, t(1))),
                    "e",
                    t(1),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let end = s.get_deployment(&d.id).await.unwrap();
    assert_eq!(end.revision, 21, "every change counted once");
    let hist = s
        .list_events(
            &EventFilter {
                deployment_id: Some(d.id.clone()),
                action: Some("percentage_updated".into()),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(hist.total, 20);
    // The stored percentage is the one the last event reports.
    assert_eq!(
        hist.items[0].data["new_percentage"],
        json!(end.current_percent)
    );
}

both!(workers_heartbeats_and_observations, workers_body);
async fn workers_body(s: &Store) {
    let d = create(s, "jobs", None, None).await.unwrap();
    let w = NewWorker {
        id: "w-1".into(),
        version: "v1.3.0".into(),
        lane: Some(Lane::Canary),
        queues: vec!["jobs".into()],
        metadata: Default::default(),
    }
    .into_worker(t(0))
    .unwrap();
    let (w, created, _) = s.upsert_worker(w, "w-1", t(0)).await.unwrap();
    assert!(created);
    let hb = Heartbeat {
        metrics: Some(serin_core::canary::worker::WorkerMetrics {
            jobs_processed: 3,
            memory_usage_mb: 128.0,
            ..Default::default()
        }),
        status: None,
        job_results: vec![
            JobResult {
                queue: "jobs".into(),
                success: true,
                duration_ms: Some(20.0),
                timestamp: None,
            },
            JobResult {
                queue: "jobs".into(),
                success: false,
                duration_ms: Some(40.0),
                timestamp: None,
            },
        ],
    };
    // A result for a queue the worker doesn't serve refuses the whole beat.
    let mut foreign = hb.clone();
    foreign.job_results.push(JobResult {
        queue: "elsewhere".into(),
        success: true,
        duration_ms: None,
        timestamp: None,
    });
    let refused = s.heartbeat(&w.id, foreign, t(9)).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Domain(DomainError::Invalid { field, .. }) if field == "job_results[2].queue"),
        "{refused:?}"
    );
    assert_eq!(
        s.get_worker("w-1").await.unwrap().last_seen,
        t(0),
        "a refused beat changes nothing"
    );
    let (w2, _) = s.heartbeat(&w.id, hb, t(10)).await.unwrap();
    assert_eq!((w2.last_seen, w2.metrics.jobs_processed), (t(10), 3));
    let (_, again, _) = s.upsert_worker(w2.clone(), "w-1", t(11)).await.unwrap();
    assert!(!again, "re-registration");
    assert_eq!(
        s.get_worker("w-1").await.unwrap().metrics.jobs_processed,
        3,
        "metrics kept on re-registration"
    );

    s.record_observations(
        &d.id,
        vec![
            Observation {
                lane: Lane::Stable,
                name: "job".into(),
                kind: SignalKind::Outcome,
                value: 1.0,
                ts: t(12),
            },
            Observation {
                lane: Lane::Stable,
                name: "queue_depth".into(),
                kind: SignalKind::Gauge,
                value: 45.0,
                ts: t(12),
            },
        ],
    )
    .await
    .unwrap();
    let [stable, canary] = s.lane_windows(&d.id, t(0), t(20)).await.unwrap();
    assert_eq!(
        (canary.success, canary.errors, canary.latencies_ms.clone()),
        (1, 1, vec![20.0, 40.0])
    );
    assert_eq!((stable.success, stable.queue_depth), (1, Some(45.0)));
    let [_, none] = s.lane_windows(&d.id, t(13), t(20)).await.unwrap();
    assert_eq!(none.success + none.errors, 0, "window bounds respected");
    assert!(matches!(
        s.record_observations("canary_nope", vec![]).await,
        Err(StoreError::NotFound { .. })
    ));

    let events = s
        .mark_unreachable(t(11) + Duration::seconds(61), Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        s.get_worker("w-1").await.unwrap().status,
        WorkerStatus::Unreachable
    );
    assert!(
        s.mark_unreachable(t(200), Duration::seconds(60))
            .await
            .unwrap()
            .is_empty(),
        "only once"
    );
    let (back, _) = s
        .heartbeat("w-1", Heartbeat::default(), t(300))
        .await
        .unwrap();
    assert_eq!(
        back.status,
        WorkerStatus::Healthy,
        "a beat revives an unreachable worker"
    );
    let (deg, ev) = s
        .set_worker_status("w-1", WorkerStatus::Degraded, "ops", t(301))
        .await
        .unwrap();
    assert_eq!((deg.status, ev.len()), (WorkerStatus::Degraded, 1));
    let stable_workers = s.list_workers(Some(Lane::Stable), 0, 10).await.unwrap();
    assert_eq!(stable_workers.total, 0);
    assert_eq!(
        s.list_workers(Some(Lane::Canary), 0, 10)
            .await
            .unwrap()
            .total,
        1
    );
}

both!(api_keys_and_audit, api_keys_body);
async fn api_keys_body(s: &Store) {
    assert_eq!(s.count_api_keys().await.unwrap(), 0);
    let key = ApiKeyRecord {
        id: "key_1".into(),
        name: "ci".into(),
        role: Role::Engineer,
        key_hash: "ab".repeat(32),
        prefix: "srn_abcd".into(),
        created_at: t(0),
        created_by: "admin".into(),
        revoked_at: None,
    };
    s.create_api_key(key.clone(), "admin").await.unwrap();
    assert_eq!(
        s.api_key_by_hash(&key.key_hash).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(s.count_api_keys().await.unwrap(), 1);
    let revoked = s.revoke_api_key("key_1", "admin", t(5)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(t(5)));
    assert!(matches!(
        s.revoke_api_key("key_2", "admin", t(5)).await,
        Err(StoreError::NotFound {
            entity: Entity::ApiKey,
            ..
        })
    ));
    s.create_product(
        &NewProduct {
            name: "web".into(),
            description: None,
        },
        "alice",
        t(6),
    )
    .await
    .unwrap();
    let audit = s.list_events(&EventFilter::default(), 0, 10).await.unwrap();
    let kinds: Vec<_> = audit
        .items
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("product_created", "alice"),
            ("api_key_revoked", "admin"),
            ("api_key_created", "admin")
        ]
    );
    let by_actor = s
        .list_events(
            &EventFilter {
                actor: Some("alice".into()),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_actor.total, 1);
    let by_type = s
        .list_events(
            &EventFilter {
                resource_type: Some("api_key".into()),
                since: Some(t(1)),
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_type.total, 1);
}
