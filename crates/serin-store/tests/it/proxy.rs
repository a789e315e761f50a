//! Proxy storage on both backends: lane buckets (idempotent per source, merged
//! across sources, feeding lane windows), proxies, route-set inputs.

use chrono::{TimeZone, Utc};
use serin_core::canary::{NewDeployment, Upstreams};
use serin_core::stats::histogram::Histogram;
use serin_core::traffic::proxy::{BucketLane, LaneBucket, ProxyInfo, RouteSet};
use serin_core::{Lane, SignalKind, Timestamp};
use serin_store::Store;

use crate::both;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_757_851_200 + secs, 0).unwrap()
}

fn bucket(
    id: &str,
    lane: impl Into<BucketLane>,
    second: i64,
    requests: u64,
    e5: u64,
    ms: &[u64],
) -> LaneBucket {
    let mut latency = Histogram::default();
    for m in ms {
        latency.record(m * 1000);
    }
    LaneBucket {
        deployment_id: id.into(),
        lane: lane.into(),
        second: t(second).timestamp(),
        requests,
        errors_5xx: e5,
        errors_connect: 0,
        errors_timeout: 0,
        latency,
    }
}

both!(lane_buckets_and_proxies, buckets_body);
async fn buckets_body(s: &Store) {
    let (d, ev) = NewDeployment {
        queue_name: "web".into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        percentage: Some(serde_json::json!(10)),
        upstreams: Some(Upstreams {
            stable: vec!["http://127.0.0.1:1".into()],
            canary: vec!["http://127.0.0.1:2".into()],
        }),
        ..Default::default()
    }
    .resolve("canary_web".into(), "ops", t(0))
    .unwrap();
    let (d, _) = s.create_deployment(d, ev, "ops", None).await.unwrap();

    let a = vec![
        bucket(&d.id, Lane::Stable, 1, 90, 1, &[10, 20]),
        bucket(&d.id, Lane::Canary, 1, 10, 2, &[30]),
    ];
    assert_eq!(
        s.record_lane_buckets("proxy-a", a.clone()).await.unwrap(),
        2
    );
    // A retried report is ignored; another proxy's same second is added.
    assert_eq!(s.record_lane_buckets("proxy-a", a).await.unwrap(), 0);
    let b = vec![bucket(&d.id, Lane::Canary, 1, 5, 0, &[40])];
    assert_eq!(s.record_lane_buckets("proxy-b", b).await.unwrap(), 1);

    let rows = s.lane_buckets(&d.id, t(0), t(5)).await.unwrap();
    assert_eq!(rows.len(), 2, "one row per lane and second");
    let canary = rows.iter().find(|r| r.lane == BucketLane::Canary).unwrap();
    assert_eq!(
        (canary.requests, canary.errors_5xx, canary.latency.count),
        (15, 2, 2)
    );
    let [stable, canary] = s.lane_windows(&d.id, t(0), t(5)).await.unwrap();
    assert_eq!((stable.success, stable.errors), (89, 1));
    assert_eq!((canary.success, canary.errors), (13, 2));
    assert_eq!(canary.latency.max_ms(), Some(40.0));
    assert!(s.lane_buckets(&d.id, t(2), t(5)).await.unwrap().is_empty());
    // Signals and job results of both lanes, read with the buckets.
    let obs = |lane, name: &str, kind, value, at| serin_store::canary::Observation {
        lane,
        name: name.into(),
        kind,
        value,
        ts: t(at),
    };
    s.record_observations(
        &d.id,
        vec![
            obs(Lane::Canary, "ok", SignalKind::Outcome, 1.0, 1),
            obs(Lane::Canary, "ok", SignalKind::Outcome, 0.0, 3),
            obs(Lane::Stable, "ms", SignalKind::Latency, 12.5, 2),
            obs(Lane::Stable, "queue_depth", SignalKind::Gauge, 4.0, 1),
            obs(Lane::Stable, "queue_depth", SignalKind::Gauge, 7.0, 4),
        ],
    )
    .await
    .unwrap();
    let [stable, canary] = s.lane_windows(&d.id, t(0), t(5)).await.unwrap();
    assert_eq!((canary.success, canary.errors), (14, 3));
    assert_eq!(stable.queue_depth, Some(7.0), "the latest gauge");
    // Read in a batch, each range gives what it gives alone.
    let many = s
        .lane_windows_many(vec![
            (d.id.clone(), t(0), t(5)),
            ("canary_none".into(), t(0), t(5)),
            (d.id.clone(), t(2), t(5)),
        ])
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(many[0], [stable.clone(), canary.clone()]);
    assert_eq!(many[1][1].success + many[1][1].errors, 0);
    assert_eq!(many[2], s.lane_windows(&d.id, t(2), t(5)).await.unwrap());
    assert_ne!(many[0], many[2], "the ranges differ");

    // The canary's answers to mirrored copies are a lane of their own, and
    // the judges' canary: they count in the canary's window, alone and in a
    // batch, and stable's stays as it was.
    let m = vec![bucket(&d.id, BucketLane::Mirror, 4, 6, 3, &[90, 95])];
    assert_eq!(s.record_lane_buckets("proxy-a", m).await.unwrap(), 1);
    let rows = s.lane_buckets(&d.id, t(4), t(4)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].lane, rows[0].requests), (BucketLane::Mirror, 6));
    let [stable2, canary2] = s.lane_windows(&d.id, t(0), t(5)).await.unwrap();
    assert_eq!(stable2, stable);
    assert_eq!((canary2.success, canary2.errors), (17, 6));
    assert_eq!(canary2.latency.max_ms(), Some(95.0));
    let many = s
        .lane_windows_many(vec![(d.id.clone(), t(0), t(5))])
        .await
        .unwrap();
    assert_eq!(many[0], [stable2, canary2]);

    // Route sets are built from each target's routed deployment.
    let gen0 = s.route_generation().await.unwrap();
    assert!(gen0 > 0);
    let set = RouteSet::from_deployments(&s.routed_deployments().await.unwrap());
    assert_eq!(set.routes.len(), 1);
    assert_eq!(set.routes[0].percent, 10);

    let info = |id: &str, at: i64, dropped| ProxyInfo {
        id: id.into(),
        name: format!("edge-{id}"),
        route_version: set.version.clone(),
        last_contact: t(at),
        dropped_buckets: dropped,
        kind: "remote".into(),
    };
    s.touch_proxy(info("p1", 10, 3)).await.unwrap();
    s.touch_proxy(info("p2", 20, 0)).await.unwrap();
    s.touch_proxy(info("p1", 30, 1)).await.unwrap();
    let list = s.list_proxies(t(0)).await.unwrap();
    assert_eq!(
        list.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p1", "p2"]
    );
    assert_eq!(list[0].last_contact, t(30));
    assert_eq!(
        list[0].dropped_buckets, 3,
        "the most a proxy reported is kept"
    );
    assert_eq!(s.list_proxies(t(25)).await.unwrap().len(), 1);
    // A contact that knows neither name nor route version (a metrics report)
    // keeps both; a new entry without a name is named by its id.
    let mut report = info("p1", 40, 0);
    report.name = String::new();
    report.route_version = String::new();
    s.touch_proxy(report.clone()).await.unwrap();
    report.id = "p3".into();
    s.touch_proxy(report).await.unwrap();
    let list = s.list_proxies(t(0)).await.unwrap();
    let p1 = list.iter().find(|p| p.id == "p1").unwrap();
    assert_eq!((p1.name.as_str(), p1.last_contact), ("edge-p1", t(40)));
    assert_eq!(p1.route_version, set.version);
    assert_eq!(list.iter().find(|p| p.id == "p3").unwrap().name, "p3");
}

fn http_deployment(
    queue: &str,
    id: &str,
    at: i64,
) -> (serin_core::canary::Deployment, serin_core::event::NewEvent) {
    NewDeployment {
        queue_name: queue.into(),
        stable_version: "v1".into(),
        canary_version: format!("v-{id}"),
        percentage: Some(serde_json::json!(10)),
        upstreams: Some(Upstreams {
            stable: vec!["http://127.0.0.1:1".into()],
            canary: vec!["http://127.0.0.1:2".into()],
        }),
        ..Default::default()
    }
    .resolve(id.into(), "ops", t(at))
    .unwrap()
}

both!(route_set_reads_each_targets_newest_deployment, routes_body);
async fn routes_body(s: &Store) {
    let ids = |v: Vec<serin_core::canary::Deployment>| {
        let mut ids: Vec<String> = v.into_iter().map(|d| d.id).collect();
        ids.sort();
        ids
    };
    let g0 = s.route_generation().await.unwrap();
    // A job deployment (no upstreams) neither routes nor moves the generation.
    let (jobs, ev) = NewDeployment {
        queue_name: "jobs".into(),
        stable_version: "v1".into(),
        canary_version: "v2".into(),
        ..Default::default()
    }
    .resolve("canary_jobs".into(), "ops", t(0))
    .unwrap();
    s.create_deployment(jobs, ev, "ops", None).await.unwrap();
    assert_eq!(s.route_generation().await.unwrap(), g0);
    assert!(s.routed_deployments().await.unwrap().is_empty());

    // Ten finished deployments of one target and a live one of another: two
    // routes, the newest of each target.
    let mut g = g0;
    for i in 0..10 {
        let (d, ev) = http_deployment("web", &format!("canary_web_{i:02}"), i);
        s.create_deployment(d, ev, "ops", None).await.unwrap();
        let now = t(i);
        s.update_deployment(
            &format!("canary_web_{i:02}"),
            None,
            Box::new(move |d| d.promote(now)),
            "ops",
            now,
        )
        .await
        .unwrap();
        let g2 = s.route_generation().await.unwrap();
        assert!(
            g2 > g,
            "each change of a routed deployment moves the generation"
        );
        g = g2;
    }
    let (d, ev) = http_deployment("api", "canary_api", 3);
    s.create_deployment(d, ev, "ops", None).await.unwrap();
    assert_eq!(
        ids(s.routed_deployments().await.unwrap()),
        ["canary_api", "canary_web_09"]
    );

    // A percentage change moves the generation; the route set sees it.
    let before = s.route_generation().await.unwrap();
    let now = t(20);
    s.update_deployment(
        "canary_api",
        None,
        Box::new(move |d| d.set_percentage(40, now)),
        "ops",
        now,
    )
    .await
    .unwrap();
    assert!(s.route_generation().await.unwrap() > before);
    let set = RouteSet::from_deployments(&s.routed_deployments().await.unwrap());
    assert_eq!(
        set.routes.iter().find(|r| r.name == "api").unwrap().percent,
        40
    );

    // Deleting the newest hands the target back to the one before it.
    s.delete_deployment("canary_web_09", "ops", t(30))
        .await
        .unwrap();
    assert_eq!(
        ids(s.routed_deployments().await.unwrap()),
        ["canary_api", "canary_web_08"]
    );
}

both!(
    concurrent_writes_of_one_target_keep_its_route,
    concurrent_routes_body
);
async fn concurrent_routes_body(s: &Store) {
    // Two finished deployments of one target, written at the same time many
    // times over: every write recomputes the target's route, and none fails.
    for (i, id) in ["canary_a", "canary_b"].iter().enumerate() {
        let (d, ev) = http_deployment("web", id, i as i64);
        s.create_deployment(d, ev, "ops", None).await.unwrap();
        let now = t(i as i64);
        s.update_deployment(id, None, Box::new(move |d| d.promote(now)), "ops", now)
            .await
            .unwrap();
    }
    let note = |id: &str| serin_core::event::NewEvent {
        kind: serin_core::event::EventType::ExternalReport,
        resource_type: "deployment",
        resource_id: id.to_string(),
        deployment_id: Some(id.to_string()),
        message: "a note".into(),
        data: serde_json::json!({}),
    };
    let mut writes = Vec::new();
    for _ in 0..20 {
        for id in ["canary_a", "canary_b"] {
            let (s, e) = (s.clone(), note(id));
            writes.push(tokio::spawn(async move {
                s.update_deployment(id, None, Box::new(move |_| Ok(vec![e])), "ops", t(9))
                    .await
                    .map(|_| ())
            }));
        }
    }
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let routed: Vec<String> = s
        .routed_deployments()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(routed, ["canary_b"]);
}
