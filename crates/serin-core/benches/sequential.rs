//! What the sequential judge costs per look.
//!
//! `cargo bench -p serin-core --bench sequential`. Goal: ≤ 2 µs per evaluation
//! per metric, so that looking at 1,000 deployments every second costs under
//! 5 ms. An *evaluation* is reading a metric's e-value from its running test;
//! feeding a second of traffic (100 requests, both lanes) and the whole verdict
//! with its JSON evidence are measured beside it.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serin_core::canary::metrics::LaneWindow;
use serin_core::judge::sequential;
use serin_core::rollout::Judges;
use serin_core::simulate::Rng;
use serin_core::stats::sequential::Evidence;

/// One second at 100 req/s, 10% canary, 1% errors, lognormal latencies.
fn second(rng: &mut Rng) -> [LaneWindow; 2] {
    let mut lanes: [LaneWindow; 2] = Default::default();
    for _ in 0..100 {
        let lane = &mut lanes[usize::from(rng.uniform() < 0.1)];
        if rng.uniform() < 0.01 {
            lane.errors += 1;
        } else {
            lane.success += 1;
        }
        lane.latency
            .record((20_000.0 * (0.5 * rng.normal()).exp()) as u64);
    }
    lanes
}

fn judge_costs(c: &mut Criterion) {
    let mut rng = Rng::for_run(1, 0);
    let seconds: Vec<[LaneWindow; 2]> = (0..600).map(|_| second(&mut rng)).collect();
    // A test ten minutes into a step.
    let mut ev = Evidence::new(
        1.2,
        1.1,
        serin_core::stats::sequential::Margins::default(),
        0.0025,
    );
    for [s, c] in &seconds {
        ev.observe(s, c);
    }
    c.bench_function("error rate: e-value of the running test", |b| {
        b.iter(|| black_box(&ev).errors.evidence())
    });
    c.bench_function("latency: e-value of the running test (5 quantiles)", |b| {
        b.iter(|| black_box(&ev).latency.evidence())
    });
    let mut i = 0usize;
    c.bench_function("feed one second of both lanes (100 requests)", |b| {
        b.iter_batched_ref(
            || ev.clone(),
            |e| {
                i = (i + 1) % seconds.len();
                let [s, c] = &seconds[i];
                e.observe(s, c);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let judges = Judges::default();
    c.bench_function("whole verdict with its JSON evidence", |b| {
        b.iter(|| sequential::judge(Some(black_box(&ev)), &judges, 0.0025, 3, 20))
    });
}

criterion_group!(benches, judge_costs);
criterion_main!(benches);
