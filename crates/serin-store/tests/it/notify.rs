//! The notifier's storage on both backends: the cursor over the event log moves
//! with the deliveries it records (one transaction), a delivery is recorded once
//! per event and URL, and attempts are kept; plus the controller's queries for
//! live deployments, groups and ended deployments with hooks to run.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use serin_core::Timestamp;
use serin_core::canary::NewDeployment;
use serin_core::rollout::notify::{Delivery, DeliveryStatus, Format};
use serin_core::rollout::{RolloutSpec, Step};
use serin_store::{FeedCursor, Store};

use crate::both;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_757_851_200 + secs, 0).unwrap()
}

fn delivery(id: &str, event: &str, url: &str, at: i64) -> Delivery {
    Delivery {
        id: id.into(),
        event_id: event.into(),
        deployment_id: "canary_x".into(),
        url: url.into(),
        format: Format::Slack,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        next_attempt_at: t(at),
        delivered_at: None,
        payload: json!({"text": id}),
    }
}

both!(cursor_and_deliveries, deliveries_body);
async fn deliveries_body(s: &Store) {
    let mut spec = RolloutSpec::of_steps(vec![Step::SetWeight(10)]);
    spec.hooks = serde_json::from_value(
        json!([{"name": "r", "kind": "post_rollout", "webhook": "http://x/r"}]),
    )
    .unwrap();
    let new = |q: &str| NewDeployment {
        queue_name: q.into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        rollout: Some(spec.clone()),
        ..Default::default()
    };
    let (mut a, ev) = new("a").resolve("canary_a".into(), "ops", t(0)).unwrap();
    a.rollout.as_mut().unwrap().group = Some("group_1".into());
    s.create_deployment(a, ev, "ops", None).await.unwrap();
    let (b, ev) = new("b").resolve("canary_b".into(), "ops", t(0)).unwrap();
    s.create_deployment(b, ev, "ops", None).await.unwrap();

    // The controller's views.
    assert_eq!(s.live_deployments().await.unwrap().len(), 2);
    let group: Vec<String> = s
        .group_deployments("group_1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(group, ["canary_a"]);
    assert!(s.deployments_with_pending_hooks().await.unwrap().is_empty());
    s.update_deployment("canary_b", None, Box::new(|d| d.promote(t(5))), "ops", t(5))
        .await
        .unwrap();
    let pending: Vec<String> = s
        .deployments_with_pending_hooks()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(pending, ["canary_b"]);
    assert_eq!(s.live_deployments().await.unwrap().len(), 1);

    // The cursor starts at the start and the events read after it come in order.
    assert_eq!(s.notifier_cursor().await.unwrap(), FeedCursor::default());
    // (On PostgreSQL another test's open transaction can hold the feed back
    // for a moment: wait for it.)
    let t0 = std::time::Instant::now();
    let events = loop {
        let events = s.events_after(FeedCursor::default(), 100).await.unwrap();
        if events.len() >= 3 || t0.elapsed() > std::time::Duration::from_secs(10) {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(events.len(), 3);
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(events[2].1.kind.as_str(), "deployment_promoted");
    let (first_seq, last_seq) = (events[0].0, events[2].0);
    assert_eq!(
        s.events_after(first_seq, 1).await.unwrap()[0].0,
        events[1].0
    );

    // Recording moves the cursor; the same event and URL is recorded once.
    s.enqueue_deliveries(
        first_seq,
        vec![
            delivery("d1", "e1", "http://x/1", 0),
            delivery("d2", "e1", "http://x/2", 10),
        ],
    )
    .await
    .unwrap();
    s.enqueue_deliveries(last_seq, vec![delivery("d3", "e1", "http://x/1", 0)])
        .await
        .unwrap();
    assert_eq!(s.notifier_cursor().await.unwrap(), last_seq);
    // It never moves back.
    s.enqueue_deliveries(first_seq, vec![]).await.unwrap();
    assert_eq!(s.notifier_cursor().await.unwrap(), last_seq);

    let due: Vec<String> = s
        .due_deliveries(t(5), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due, ["d1"]);
    let mut d1 = s.due_deliveries(t(5), 10).await.unwrap().remove(0);
    assert_eq!(
        (d1.format, d1.payload.clone()),
        (Format::Slack, json!({"text": "d1"}))
    );
    d1.attempts = 1;
    d1.last_error = Some("HTTP 500".into());
    d1.next_attempt_at = t(20);
    s.update_delivery(&d1).await.unwrap();
    let due: Vec<String> = s
        .due_deliveries(t(15), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due, ["d2"]);
    d1.status = DeliveryStatus::Delivered;
    d1.attempts = 2;
    d1.delivered_at = Some(t(21));
    s.update_delivery(&d1).await.unwrap();
    let all = s.deliveries_for("canary_x").await.unwrap();
    assert_eq!(all.len(), 2);
    let d1 = all.iter().find(|d| d.id == "d1").unwrap();
    assert_eq!(
        (d1.status, d1.attempts, d1.delivered_at),
        (DeliveryStatus::Delivered, 2, Some(t(21)))
    );
    assert_eq!(d1.last_error.as_deref(), Some("HTTP 500"));
    assert!(
        s.due_deliveries(t(0) + Duration::days(1), 10)
            .await
            .unwrap()
            .iter()
            .all(|d| d.id == "d2")
    );
}

/// On PostgreSQL an event's `seq` is taken before its transaction commits.
/// The feed doesn't pass a transaction still running: an event committed
/// after it waits, and the slow one comes first once it commits.
#[tokio::test]
async fn the_feed_never_passes_a_transaction_still_running() {
    let Some(f) = crate::harness::postgres().await else {
        return;
    };
    let s = &f.store;
    let (slow, conn) = tokio_postgres::connect(&f.scoped_url().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    slow.batch_execute(
        "BEGIN; INSERT INTO events (id, deployment_id, kind, resource_type, resource_id, actor, message, data, ts)
         VALUES ('event_slow', NULL, 'product_created', 'product', 'p', 'ops', 'slow', '{}', now())",
    )
    .await
    .unwrap();
    let fast = s
        .append_events(
            vec![serin_core::event::NewEvent {
                kind: serin_core::event::EventType::ProductCreated,
                resource_type: "product",
                resource_id: "q".into(),
                deployment_id: None,
                message: "fast".into(),
                data: json!({}),
            }],
            "ops",
            t(0),
        )
        .await
        .unwrap();
    let ids = |v: Vec<(FeedCursor, serin_core::event::Event)>| -> Vec<String> {
        v.into_iter().map(|(_, e)| e.id).collect()
    };
    let offered = ids(s.events_after(FeedCursor::default(), 100).await.unwrap());
    assert!(
        !offered.contains(&fast[0].id),
        "the fast event waits behind the running transaction: {offered:?}"
    );
    slow.batch_execute("COMMIT").await.unwrap();
    // (Other tests' transactions may hold the horizon a moment longer.)
    let t0 = std::time::Instant::now();
    let offered = loop {
        let offered = ids(s.events_after(FeedCursor::default(), 100).await.unwrap());
        if offered.len() >= 2 || t0.elapsed() > std::time::Duration::from_secs(10) {
            break offered;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(offered, ["event_slow".to_string(), fast[0].id.clone()]);
    f.drop_schema().await;
}

/// The live set on PostgreSQL sends a body only when its revision moved since
/// the reading store last saw it. Written through one replica's store and read
/// through another's, every change shows: a new deployment, a changed one
/// (including a change that did not move the revision itself), an ended one.
#[tokio::test]
async fn the_live_set_follows_writes_made_elsewhere() {
    let Some(f) = crate::harness::postgres().await else {
        return;
    };
    let writer = &f.store;
    let reader = Store::connect(
        &f.scoped_url().unwrap(),
        &serin_store::StoreOptions { max_connections: 2 },
    )
    .await
    .unwrap();
    let new = |q: &str| NewDeployment {
        queue_name: q.into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        ..Default::default()
    };
    for q in ["a", "b", "c"] {
        let (d, ev) = new(q).resolve(format!("canary_{q}"), "ops", t(0)).unwrap();
        writer.create_deployment(d, ev, "ops", None).await.unwrap();
    }
    let ids = |v: &[serin_core::canary::Deployment]| -> Vec<(String, u64)> {
        v.iter().map(|d| (d.id.clone(), d.revision)).collect()
    };
    let first = reader.live_deployments().await.unwrap();
    assert_eq!(first.len(), 3);
    // Read again with nothing changed: the same bodies, from the held set.
    assert_eq!(ids(&reader.live_deployments().await.unwrap()), ids(&first));

    writer
        .update_deployment("canary_a", None, Box::new(|d| d.promote(t(5))), "ops", t(5))
        .await
        .unwrap();
    // A change that emits an event but leaves the revision where it was: the
    // store moves it, so the new body is still seen.
    let (b, _) = writer
        .update_deployment(
            "canary_b",
            None,
            Box::new(|d| {
                d.canary_version = "v3".into();
                Ok(vec![serin_core::event::NewEvent {
                    kind: serin_core::event::EventType::RoutingUpdated,
                    resource_type: "deployment",
                    resource_id: d.id.clone(),
                    deployment_id: Some(d.id.clone()),
                    message: "renamed".into(),
                    data: json!({}),
                }])
            }),
            "ops",
            t(6),
        )
        .await
        .unwrap();
    assert_eq!(b.revision, first[1].revision + 1);
    let (d, ev) = new("d").resolve("canary_d".into(), "ops", t(7)).unwrap();
    writer.create_deployment(d, ev, "ops", None).await.unwrap();

    let after = reader.live_deployments().await.unwrap();
    let names: Vec<(&str, &str)> = after
        .iter()
        .map(|d| (d.id.as_str(), d.canary_version.as_str()))
        .collect();
    assert_eq!(
        names,
        [("canary_b", "v3"), ("canary_c", "v2"), ("canary_d", "v2")]
    );
    f.drop_schema().await;
}

both!(outside_calls_are_claimed_counted_and_recorded, calls_body);
async fn calls_body(s: &Store) {
    use serin_store::calls::{Claim, Reuse};
    let (d, ev) = NewDeployment {
        queue_name: "calls".into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        ..Default::default()
    }
    .resolve("canary_calls".into(), "ops", t(0))
    .unwrap();
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    let key = "hook:canary_calls:pre_rollout:migrate:0";
    let claim = |until, now, reuse| s.claim_call(key, "canary_calls", t(until), t(now), reuse);
    assert_eq!(
        claim(30, 0, Reuse::Always).await.unwrap(),
        Claim::Mine { attempts: 0 }
    );
    assert_eq!(s.count_call_attempt(key, t(30)).await.unwrap(), 1);
    // Another claimant waits while the claim stands, and takes over after,
    // with the attempt already sent on record.
    assert_eq!(
        claim(60, 10, Reuse::Always).await.unwrap(),
        Claim::Held { until: t(30) }
    );
    assert_eq!(
        claim(60, 31, Reuse::Always).await.unwrap(),
        Claim::Mine { attempts: 1 }
    );
    assert_eq!(s.count_call_attempt(key, t(60)).await.unwrap(), 2);
    s.finish_call(key, true, "200 OK", t(32)).await.unwrap();
    // Answered: nobody calls again; an answer isn't recorded twice.
    let answered = Claim::Answered {
        ok: true,
        output: "200 OK".into(),
        attempts: 2,
        at: t(32),
    };
    assert_eq!(claim(99, 90, Reuse::Always).await.unwrap(), answered);
    assert!(s.finish_call(key, false, "late", t(33)).await.is_err());
    assert!(s.count_call_attempt(key, t(99)).await.is_err());

    // A question's "no" stands for a while, then it is asked again afresh.
    let gate = "gate:canary_calls:1:http://gate";
    let ask = |now| {
        s.claim_call(
            gate,
            "canary_calls",
            t(now + 10),
            t(now),
            Reuse::NoFor(std::time::Duration::from_secs(5)),
        )
    };
    assert_eq!(ask(0).await.unwrap(), Claim::Mine { attempts: 0 });
    s.count_call_attempt(gate, t(10)).await.unwrap();
    s.finish_call(gate, false, "503", t(1)).await.unwrap();
    assert!(matches!(
        ask(4).await.unwrap(),
        Claim::Answered { ok: false, .. }
    ));
    assert_eq!(ask(6).await.unwrap(), Claim::Mine { attempts: 0 });

    // Deleting the deployment deletes its calls.
    s.update_deployment(
        "canary_calls",
        None,
        Box::new(|d| d.promote(t(40))),
        "ops",
        t(40),
    )
    .await
    .unwrap();
    s.delete_deployment("canary_calls", "ops", t(41))
        .await
        .unwrap();
    assert_eq!(
        claim(99, 95, Reuse::Always).await.unwrap(),
        Claim::Mine { attempts: 0 }
    );
}

/// A replaced leader's store can't claim, count or record a call.
#[tokio::test]
async fn a_replaced_leader_cannot_claim_a_call() {
    use serin_store::calls::Reuse;
    let Some(f) = crate::harness::postgres().await else {
        return;
    };
    let s = &f.store;
    let lease = std::time::Duration::from_secs(60);
    let old = s.acquire_lease("a", lease).await.unwrap().unwrap();
    let stale = s.fenced(old);
    let key = "hook:d:pre_rollout:h:0";
    stale
        .claim_call(key, "d", t(30), t(0), Reuse::Always)
        .await
        .unwrap();
    s.release_lease("a", old).await.unwrap();
    let new = s.acquire_lease("b", lease).await.unwrap().unwrap();
    assert!(new > old);
    for e in [
        stale
            .claim_call("hook:d:pre_rollout:h2:0", "d", t(30), t(0), Reuse::Always)
            .await
            .err(),
        stale.count_call_attempt(key, t(30)).await.err(),
        stale.finish_call(key, true, "ok", t(1)).await.err(),
    ] {
        assert!(
            matches!(e, Some(serin_store::StoreError::Fenced { .. })),
            "{e:?}"
        );
    }
    f.drop_schema().await;
}
