//! Lane choice in-process: the sticky-hash path (goal ≤ 50 ns per decision).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serin_core::traffic::{Headers, TrafficRules};

fn lane_choice(c: &mut Criterion) {
    let rules: TrafficRules =
        serde_json::from_str(r#"{"sticky_key": {"header": "X-User-Id"}, "affinity": null}"#)
            .unwrap();
    let chooser = rules
        .chooser("canary_0b7e4f9a-3c1d-4e2a-9f6b-1a2b3c4d5e6f")
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-user-id", "user-8a3f29c4".parse().unwrap());
    headers.insert("accept", "*/*".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    let names = serin_proxy::table::ParsedNames::of(&chooser);
    c.bench_function(
        "lane choice, sticky header (HeaderMap, names parsed once)",
        |b| {
            b.iter(|| {
                chooser.choose(
                    &serin_proxy::HeaderView::with_names(black_box(&headers), &names),
                    black_box(10),
                    0,
                )
            })
        },
    );
    c.bench_function("lane choice, sticky header (HeaderMap)", |b| {
        b.iter(|| {
            chooser.choose(
                &serin_proxy::HeaderView::new(black_box(&headers)),
                black_box(10),
                0,
            )
        })
    });
    let pairs = Headers(vec![("X-User-Id".into(), "user-8a3f29c4".into())]);
    c.bench_function("lane choice, sticky header (pairs)", |b| {
        b.iter(|| chooser.choose(black_box(&pairs), black_box(10), 0))
    });
    let default = TrafficRules::default().chooser("canary_x").unwrap();
    c.bench_function("lane choice, default rules, random", |b| {
        b.iter(|| {
            default.choose(
                &serin_proxy::HeaderView::new(black_box(&headers)),
                black_box(10),
                fastrand::u32(..10_000),
            )
        })
    });
}

criterion_group!(benches, lane_choice);
criterion_main!(benches);
