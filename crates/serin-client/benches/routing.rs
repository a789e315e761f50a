//! How long a producer's local routing decision takes: `route_locally` over a
//! deployment the producer holds (refreshed now and then from the server).
//!
//! `cargo bench -p serin-client --bench routing`. Goal: ≤ 100 ns per decision.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serin_core::canary::{Deployment, NewDeployment};
use serin_core::traffic::routing::{bucket, choose_lane};

fn deployment(strategy: &str) -> Deployment {
    let new: NewDeployment = serde_json::from_value(serde_json::json!({
        "queue_name": "orders", "stable_version": "v1", "canary_version": "v2",
        "percentage": 30, "routing_strategy": strategy, "sticky_routing": true
    }))
    .unwrap();
    new.resolve(
        "canary_0b6f7c2e-8d4a-4c55-9a1e-3f2b7d9c1a00".into(),
        "bench",
        chrono::Utc::now(),
    )
    .unwrap()
    .0
}

fn benches(c: &mut Criterion) {
    let d = deployment("split_queue");
    let keys: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let mut i = 0usize;
    c.bench_function("bucket (hash of a user key)", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            bucket(black_box(&d.id), black_box(&keys[i]))
        })
    });
    c.bench_function("choose_lane (sticky, keyed)", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            choose_lane(black_box(&d), black_box(Some(keys[i].as_str())), 0)
        })
    });
    let router = serin_client::LocalRouter::new(d.clone());
    c.bench_function(
        "LocalRouter::lane (sticky, keyed, salt state cached)",
        |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                router.lane(black_box(Some(keys[i].as_str())), 0)
            })
        },
    );
    c.bench_function("route_locally (lane and physical queue)", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            serin_client::route_locally(
                black_box("orders"),
                black_box(Some(&d)),
                black_box(Some(keys[i].as_str())),
                0,
            )
        })
    });
}

criterion_group!(routing, benches);
criterion_main!(routing);
