//! Several replicas on one PostgreSQL database: one leads and acts, the
//! others serve; a crashed leader is replaced within its lease's term; a
//! replaced leader's writes are refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serin_store::StoreError;

use crate::app::{TestApp, postgres_schema};

async fn replica(url: &str, name: &str) -> TestApp {
    let name = name.to_string();
    TestApp::start_on(url, tempfile::tempdir().unwrap(), move |c| {
        c.replica_name = name;
    })
    .await
}

/// Waits until exactly one of `apps` leads; its index.
async fn one_leader(apps: &[&TestApp], within: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        let leading: Vec<usize> = (0..apps.len())
            .filter(|&i| apps[i].state.leadership.epoch().is_some())
            .collect();
        if leading.len() == 1 {
            return leading[0];
        }
        assert!(leading.len() <= 1, "two replicas lead at once: {leading:?}");
        assert!(t0.elapsed() < within, "no replica leads after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_a_crashed_leader_is_replaced_and_its_writes_are_fenced() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let a = replica(&url, "a").await;
    let b = replica(&url, "b").await;
    let first = one_leader(&[&a, &b], Duration::from_secs(10)).await;
    let (leader, follower) = if first == 0 { (a, b) } else { (b, a) };
    let epoch = leader.state.leadership.epoch().unwrap();

    // Both list the cluster the same way.
    let cluster = follower
        .until("/api/v1/cluster", Duration::from_secs(5), |c| {
            c["replicas"].as_array().map_or(0, Vec::len) == 2
        })
        .await;
    assert_eq!(cluster["database"], "postgres", "{cluster}");
    assert_eq!(cluster["leader"]["epoch"], epoch, "{cluster}");
    assert_eq!(
        cluster["leader"]["replica"],
        Value::String(leader.state.leadership.me().id.clone()),
        "{cluster}"
    );
    let flagged: Vec<&Value> = cluster["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["leader"] == true)
        .collect();
    assert_eq!(flagged.len(), 1, "{cluster}");
    let (_, metrics) = follower.get_text("/api/v1/metrics").await;
    assert!(metrics.contains("serin_leader 0"), "{metrics}");
    let (_, metrics) = leader.get_text("/api/v1/metrics").await;
    assert!(metrics.contains("serin_leader 1"), "{metrics}");
    // The PostgreSQL pool: at least the connection that read the metrics.
    assert!(
        metrics.contains("serin_db_pool_max_connections{backend=\"postgres\"}")
            && metrics.contains("serin_db_pool_connections{backend=\"postgres\",state=\"idle\"}"),
        "{metrics}"
    );

    // A rollout started through the follower is carried out by the leader.
    let (st, d) = follower
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "orders", "stable_version": "1", "canary_version": "2",
                   "min_duration": "0s", "auto_promotion": true,
                   "rollout": {"steps": [{"set_weight": 20}, {"pause": {"duration": "300ms"}}, {"set_weight": 100}]}}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let done = follower
        .until(
            &format!("/api/v1/canary/deployments/{id}"),
            Duration::from_secs(20),
            |d| d["status"] == "completed",
        )
        .await;
    assert_eq!(done["current_percent"], 100, "{done}");

    // The leader crashes: the lease isn't handed over, it lapses. The
    // follower takes over within the term and a renewal or two.
    let stale = leader.state.store.fenced(epoch);
    let crashed = Instant::now();
    leader.crash().await;
    let t0 = Instant::now();
    while follower.state.leadership.epoch().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nobody took over after the leader crashed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = crashed.elapsed();
    eprintln!("takeover after a crash: {takeover:?}");
    let terms = follower.state.config.lease;
    assert!(
        takeover <= terms.term + terms.renew_every * 3,
        "takeover took {takeover:?} (term {:?})",
        terms.term
    );
    let new_epoch = follower.state.leadership.epoch().unwrap();
    assert!(new_epoch > epoch, "epoch {epoch} → {new_epoch}");

    // The old leader's acting store, woken up late, writes nothing.
    let (st, d) = follower
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "fenced", "stable_version": "1", "canary_version": "2", "percentage": 0}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let target = d["id"].as_str().unwrap().to_string();
    let before = follower
        .get(&format!("/api/v1/canary/deployments/{target}"))
        .await
        .1;
    let write = stale
        .update_deployment(
            &target,
            None,
            Box::new(|d| d.set_percentage(50, chrono::Utc::now())),
            "controller",
            chrono::Utc::now(),
        )
        .await;
    assert!(
        matches!(write, Err(StoreError::Fenced { epoch: e }) if e == epoch),
        "{write:?}"
    );
    let after = follower
        .get(&format!("/api/v1/canary/deployments/{target}"))
        .await
        .1;
    assert_eq!(before["revision"], after["revision"], "{after}");
    assert_eq!(after["current_percent"], 0, "{after}");
    // The new leader's own store still writes.
    let fresh = follower.state.store.fenced(new_epoch);
    fresh
        .update_deployment(
            &target,
            None,
            Box::new(|d| d.set_percentage(10, chrono::Utc::now())),
            "controller",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    // The election is in the audit log.
    let (_, audit) = follower
        .get("/api/v1/audit-logs?action=leader_elected")
        .await;
    let elected = audit["audit_logs"].as_array().map_or(0, Vec::len);
    assert!(elected >= 2, "{audit}");
    follower.stop().await;
}

/// A replica that stops cleanly hands the lease over at once: the other
/// takes it within a renewal or two, not a whole term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_the_lease_over_at_once() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let a = replica(&url, "a").await;
    let b = replica(&url, "b").await;
    let first = one_leader(&[&a, &b], Duration::from_secs(10)).await;
    let (leader, follower) = if first == 0 { (a, b) } else { (b, a) };
    let stopped = Instant::now();
    leader.stop().await;
    while follower.state.leadership.epoch().is_none() {
        assert!(stopped.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = stopped.elapsed();
    eprintln!("takeover after a clean stop: {took:?}");
    let terms = follower.state.config.lease;
    assert!(
        took < terms.term,
        "took {took:?}: the lease was not handed over"
    );
    follower.stop().await;
}

/// An event committed through one replica reaches the live hub of the other
/// (through the database's feed) within a fraction of a second, and each hub
/// carries it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_on_one_replica_reach_the_others_hub_once() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let a = replica(&url, "a").await;
    let b = replica(&url, "b").await;
    // Let both feeds find their starting place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut on_a = a.state.hub.subscribe();
    let mut on_b = b.state.hub.subscribe();
    let sent = Instant::now();
    let (st, d) = a
        .post(
            "/api/v1/canary/deployments",
            json!({"queue_name": "web", "stable_version": "1", "canary_version": "2", "percentage": 0}),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let created = |e: &serin_core::event::Event| {
        e.deployment_id.as_deref() == Some(id.as_str())
            && e.kind == serin_core::event::EventType::DeploymentCreated
    };
    let seen_on_b = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
            .await
            .expect("replica b never saw the event")
            .unwrap();
        if created(&e) {
            break sent.elapsed();
        }
    };
    eprintln!("replica a → replica b's hub: {seen_on_b:?}");
    assert!(seen_on_b < Duration::from_secs(2), "{seen_on_b:?}");
    // Woken by the commit, not by the feed's once-a-second read: five more
    // events at uneven moments each arrive well within that second.
    for k in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(130 + 70 * k)).await;
        let sent = Instant::now();
        let (st, p) = a
            .post("/api/v1/products", json!({"name": format!("feed-{k}")}))
            .await;
        assert_eq!(st, 201, "{p}");
        let took = loop {
            let e = tokio::time::timeout(Duration::from_secs(5), on_b.recv())
                .await
                .expect("replica b never saw the product")
                .unwrap();
            if e.resource_id == format!("feed-{k}") {
                break sent.elapsed();
            }
        };
        eprintln!("product {k}: replica a → replica b's hub: {took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
    }
    // Each hub had it once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count =
        |rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<serin_core::event::Event>>| {
            let mut n = 0;
            while let Ok(e) = rx.try_recv() {
                n += usize::from(created(&e));
            }
            n
        };
    assert_eq!(
        count(&mut on_a),
        1,
        "replica a published it twice (or never)"
    );
    assert_eq!(count(&mut on_b), 0, "replica b published it twice");
    a.stop().await;
    b.stop().await;
}

/// A key's rate limit holds across two replicas: each enforces half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_shared_by_the_replicas() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let limited = |name: &'static str| {
        let url = url.clone();
        async move {
            TestApp::start_on(&url, tempfile::tempdir().unwrap(), move |c| {
                c.replica_name = name.into();
                c.rate_limit = serin_server::rate::RateLimit {
                    per_minute: 6,
                    burst: 10,
                };
            })
            .await
        }
    };
    let a = limited("a").await;
    let b = limited("b").await;
    let t0 = Instant::now();
    while a
        .state
        .leadership
        .live_replicas()
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "a never counted b");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut allowed = 0;
    for _ in 0..10 {
        let (st, _) = a.get("/api/v1/products").await;
        if st == 200 {
            allowed += 1;
        } else {
            assert_eq!(st, 429);
        }
    }
    assert_eq!(allowed, 5, "half the burst of 10 on each of two replicas");
    a.stop().await;
    b.stop().await;
}

/// A replica keeps the database's time, not its host's: one whose clock is
/// 90 s ahead reads PostgreSQL's clock at its beat and moves its "now" by the
/// difference, so what it claims for 15 s lapses 15 s later on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_keeps_the_databases_time_whatever_its_hosts_clock_says() {
    let Some(url) = postgres_schema().await else {
        return;
    };
    let a = replica(&url, "a").await;
    let close = |x: chrono::TimeDelta, ms: i64| x.abs() < chrono::TimeDelta::milliseconds(ms);
    let db = a.state.store.database_time().await.unwrap();
    assert!(close(a.state.now() - db, 500), "{:?}", a.state.now() - db);
    let (_, metrics) = a.get_text("/api/v1/metrics").await;
    assert!(
        metrics.contains("\nserin_clock_offset_seconds "),
        "{metrics}"
    );

    let ahead = a
        .state
        .app
        .clone()
        .with_clock(std::sync::Arc::new(|| {
            serin_core::to_micros(chrono::Utc::now() + chrono::TimeDelta::seconds(90))
        }))
        .with_database_clock();
    // Before its first reading it is its host's time.
    let db = a.state.store.database_time().await.unwrap();
    assert!(close(
        ahead.now() - db - chrono::TimeDelta::seconds(90),
        500
    ));
    let offset = serin_app::leadership::measure_clock(&ahead)
        .await
        .expect("a reading of the database's clock");
    assert!(
        close(offset + chrono::TimeDelta::seconds(90), 500),
        "{offset:?}"
    );
    let db = a.state.store.database_time().await.unwrap();
    assert!(close(ahead.now() - db, 100), "{:?}", ahead.now() - db);

    // A claim it writes for 15 s is not due for the others 90 s early.
    let claim = ahead.now() + chrono::TimeDelta::seconds(15);
    assert!(claim > a.state.now() + chrono::TimeDelta::seconds(14));

    // A clock a test set by hand is left alone.
    let fixed = a.state.app.clone().with_clock(std::sync::Arc::new(|| {
        serin_core::to_micros(chrono::Utc::now())
    }));
    assert!(serin_app::leadership::measure_clock(&fixed).await.is_none());
    a.stop().await;
}
