//! Latency: a sequential test on where the slow requests fall.
//!
//! Latency has no single "rate" to compare, and averages hide what users feel: a
//! canary can keep its median and ruin its tail. So the test asks, at several
//! points of stable's distribution at once (its p50, p75, p90, p95 and p99),
//! "is the canary more often above this point than stable is?". Above a fixed
//! point c, a request is an *event*; if the canary's latencies are no larger
//! than stable's (its distribution is stochastically no greater — at every
//! quantile it is no slower), an event is the canary's with probability at most
//! its share of requests, and the exact test of [`super::share`] applies
//! unchanged. The judge is one-sided: a canary that is faster is never blamed.
//!
//! **Margins.** Two processes of the same build never have quite the same
//! latencies: a different core, a warmer cache, a neighbour. A test of "exactly
//! no slower" is bound to find such differences given traffic enough, and they
//! matter to nobody. So the canary's side of each point c is moved out to
//! `max(c × (1 + r), c + f)` — a relative margin r and an absolute floor f
//! ([`super::Margins`]) — and the null becomes "the canary exceeds that cut no
//! more often than stable exceeds c". Every canary whose latency is at most
//! `max((1 + r)·X, X + f)` for a stable latency X (stochastically) is inside
//! it, so 3% or 0.3 ms slower is not a regression at the default margins
//! (10%, 1 ms). The cut is taken at a bucket edge at or above the exact value,
//! which only counts fewer canary events: conservative for rollback.
//!
//! The points come from stable's own latencies *before* the interval being
//! tested (its histogram so far in this step), so each interval's events are
//! defined before its data is seen: the points are predictable, and the
//! supermartingale argument holds although they move as stable's picture
//! sharpens. Until stable has answered [`MIN_STABLE`] requests there are no points
//! and nothing is tested. The five per-point tests are mixed with fixed weights
//! into one e-value — a mixture of supermartingales is one — so testing five
//! quantiles costs nothing beyond the weight, not a five-way split of α.
//!
//! This reads the per-lane latency histograms the proxy keeps per second (and the
//! exact latencies workers report), never pre-averaged series: an event is a
//! request in a bucket above the point's bucket, so both lanes are cut at
//! exactly the same value and the bucket width (1/64 of a doubling) only moves
//! the point, not the comparison.
//!
//! Promotion evidence asks the opposite question near the p95. With c₉₅ the
//! upper edge of the bucket holding stable's p95 so far, count a canary request
//! above τ·c₉₅ and a stable request above c₉₅ as the events; the null is "a
//! canary request exceeds τ·c₉₅ at least as often as a stable one exceeds c₉₅"
//! (the canary's share of these events at least ρ), and rejecting it (the
//! `within` direction, boundary θ = 1) is the evidence. That tail statement is
//! what is tested exactly; it stands for "canary p95 below τ × stable's", which
//! it implies only approximately — c₉₅ is an estimate, a little above stable's
//! true p95 at times, and a canary with a thin tail just above τ·c₉₅ can pass.
//! The canary's cut is taken at or below τ·c₉₅ (the bucket edge under it), which
//! only counts more canary events: conservative for promotion.

use serde::Serialize;

use super::Margins;
use super::share::ShareTest;
use crate::stats::histogram::{Histogram, bounds_of, index_of};

/// The points of stable's distribution tested.
pub const LEVELS: [f64; 5] = [0.50, 0.75, 0.90, 0.95, 0.99];
/// Where the p95 is in [`LEVELS`].
const P95: usize = 3;
/// Their weights in the mixture (sum 1).
const LEVEL_WEIGHTS: [f64; 5] = [0.15, 0.25, 0.25, 0.20, 0.15];
/// Stable requests seen before the points are set.
pub const MIN_STABLE: u64 = 100;

/// The running latency test of one analysis step.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTest {
    /// Stable's latencies so far: where the points come from.
    stable: Histogram,
    /// Canary's latencies so far (shown, not tested).
    canary: Histogram,
    /// One "slower above this point" test per level.
    slower: [ShareTest; 5],
    /// "Canary p95 below τ × stable's".
    within: ShareTest,
    /// τ for the p95.
    tolerance: f64,
    /// How much slower is not a regression: relative (a fraction) and µs.
    margin: (f64, u64),
    /// Requests of each lane tested (seen after the points were set).
    tested: [u64; 2],
}

/// What the latency test shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// The mixture e-value for "canary slower".
    pub evidence: f64,
    /// The e-value for "canary p95 below τ × stable's".
    pub within_evidence: f64,
    /// τ.
    pub tolerance: f64,
    /// The margins: a canary this many percent slower…
    pub margin_percent: f64,
    /// …or this many ms slower is not a regression.
    pub margin_ms: f64,
    /// The level whose test weighs most now (e.g. 0.95), with its point in ms,
    /// the share of tested canary and stable requests above it.
    pub strongest: Option<LevelSummary>,
    /// Stable's and canary's p50/p95/p99 so far, ms.
    pub stable_ms: [Option<f64>; 3],
    /// The canary's.
    pub canary_ms: [Option<f64>; 3],
    /// Requests tested: stable, canary.
    pub tested: [u64; 2],
}

/// One level of [`LatencySummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelSummary {
    /// The quantile level of stable's distribution.
    pub level: f64,
    /// Its current point, ms.
    pub point_ms: f64,
    /// The canary's cut at that point (the point moved out by the margins), ms.
    pub canary_cut_ms: f64,
    /// Share of tested canary requests above the point (0–1).
    pub canary_above: f64,
    /// Share of tested stable requests above it.
    pub stable_above: f64,
    /// This level's e-value.
    pub evidence: f64,
}

impl LatencyTest {
    /// A test with promotion tolerance `tolerance` on the p95 ratio and the
    /// regression margins of `margins`.
    pub fn new(tolerance: f64, margins: &Margins) -> LatencyTest {
        let relative = (margins.latency_percent / 100.0).max(0.0);
        let floor_us = (margins.latency_ms.max(0.0) * 1000.0).round() as u64;
        LatencyTest {
            stable: Histogram::default(),
            canary: Histogram::default(),
            slower: std::array::from_fn(|_| ShareTest::worse()),
            within: ShareTest::within(1.0),
            tolerance,
            margin: (relative, floor_us),
            tested: [0, 0],
        }
    }

    /// Starts the promotion evidence afresh (a new step); the regression
    /// tests carry on.
    pub fn new_step(&mut self) {
        self.within = ShareTest::within(1.0);
    }

    /// The canary's cut for stable's point in bucket `i`: the bucket whose
    /// samples above it are all at least `max(c × (1 + r), c + f)` for the
    /// point's value c (the bucket's upper edge).
    fn canary_cut(&self, i: usize) -> usize {
        let (lo, width) = bounds_of(i);
        let c = lo + width;
        let (r, f) = self.margin;
        let cut = ((c as f64 * (1.0 + r)).ceil() as u64).max(c + f);
        index_of(cut.saturating_sub(1))
    }

    /// Adds one interval's latencies of both lanes, the canary having share `rho`
    /// of the requests.
    pub fn observe(&mut self, rho: f64, stable: &Histogram, canary: &Histogram) {
        let points = (self.stable.count >= MIN_STABLE && rho > 0.0 && rho < 1.0)
            .then(|| self.stable.quantile_indices(LEVELS))
            .flatten();
        if let Some(points) = points {
            for (k, i) in points.into_iter().enumerate() {
                let j = self.canary_cut(i);
                self.slower[k].observe(rho, canary.count_above(j), stable.count_above(i));
            }
            {
                let i = points[P95];
                let (lo, width) = bounds_of(i);
                let cut = ((lo + width) as f64 * self.tolerance) as u64;
                let j = index_of(cut).saturating_sub(1);
                self.within
                    .observe(rho, canary.count_above(j), stable.count_above(i));
            }
            self.tested[0] += stable.count;
            self.tested[1] += canary.count;
        }
        self.stable.merge(stable);
        self.canary.merge(canary);
    }

    /// The mixture e-value for "canary slower".
    pub fn evidence(&self) -> f64 {
        self.slower
            .iter()
            .zip(LEVEL_WEIGHTS)
            .map(|(t, w)| w * t.evidence())
            .sum()
    }

    /// The e-value for "canary p95 below τ × stable's".
    pub fn within_evidence(&self) -> f64 {
        self.within.evidence()
    }

    /// The figures behind the test.
    pub fn summary(&self) -> LatencySummary {
        let strongest = self
            .slower
            .iter()
            .zip(LEVELS)
            .zip(LEVEL_WEIGHTS)
            .filter(|((t, _), _)| t.canary_events + t.stable_events > 0)
            .max_by(|a, b| (a.0.0.evidence() * a.1).total_cmp(&(b.0.0.evidence() * b.1)))
            .and_then(|((t, level), _)| {
                let i = self.stable.quantile_index(level)?;
                let (lo, width) = bounds_of(i);
                let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
                let (clo, cwidth) = bounds_of(self.canary_cut(i));
                Some(LevelSummary {
                    level,
                    point_ms: (lo + width) as f64 / 1000.0,
                    canary_cut_ms: (clo + cwidth) as f64 / 1000.0,
                    canary_above: share(t.canary_events, self.tested[1]),
                    stable_above: share(t.stable_events, self.tested[0]),
                    evidence: t.evidence(),
                })
            });
        let q = |h: &Histogram| [0.5, 0.95, 0.99].map(|p| h.quantile_ms(p));
        LatencySummary {
            evidence: self.evidence(),
            within_evidence: self.within_evidence(),
            tolerance: self.tolerance,
            margin_percent: self.margin.0 * 100.0,
            margin_ms: self.margin.1 as f64 / 1000.0,
            strongest,
            stable_ms: q(&self.stable),
            canary_ms: q(&self.canary),
            tested: self.tested,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulate::Rng;

    /// Lognormal latency, median 20 ms, σ = 0.5, in µs.
    fn latency_us(rng: &mut Rng, scale: f64) -> u64 {
        (20_000.0 * scale * (0.5 * rng.normal()).exp()) as u64
    }

    /// Seconds until the test rejects at `alpha`, 100 req/s with share `rho`;
    /// `slow(rng)` gives a canary request's slowdown factor.
    fn run(
        rng: &mut Rng,
        rho: f64,
        seconds: u32,
        alpha: f64,
        slow: impl Fn(&mut Rng) -> f64,
    ) -> Option<u32> {
        let mut t = LatencyTest::new(1.1, &Margins::NONE);
        for s in 1..=seconds {
            let (mut a, mut b) = (Histogram::default(), Histogram::default());
            for _ in 0..100 {
                if rng.uniform() < rho {
                    let f = slow(rng);
                    b.record(latency_us(rng, f));
                } else {
                    a.record(latency_us(rng, 1.0));
                }
            }
            let share = b.count as f64 / (a.count + b.count) as f64;
            t.observe(share, &a, &b);
            if t.evidence() >= 1.0 / alpha {
                return Some(s);
            }
        }
        None
    }

    #[test]
    fn equal_latencies_are_rarely_blamed() {
        let mut rng = Rng::for_run(11, 0);
        let alpha = 0.05;
        let hits = (0..300)
            .filter(|_| run(&mut rng, 0.2, 120, alpha, |_| 1.0).is_some())
            .count();
        assert!(hits as f64 / 300.0 <= alpha, "{hits} of 300");
    }

    #[test]
    fn a_slower_canary_is_caught_and_a_faster_one_never() {
        let mut rng = Rng::for_run(12, 0);
        let mut at: Vec<u32> = (0..100)
            .filter_map(|_| run(&mut rng, 0.1, 120, 0.005, |_| 1.5))
            .collect();
        assert!(at.len() >= 99, "caught {} of 100", at.len());
        at.sort_unstable();
        assert!(at[50] <= 15, "median {} s", at[50]);
        let faster = (0..100)
            .filter(|_| run(&mut rng, 0.1, 120, 0.05, |_| 0.7).is_some())
            .count();
        assert_eq!(faster, 0);
        // A slow tail alone (10% of canary requests 3x slower) is caught too.
        let tail = (0..50)
            .filter(|_| {
                run(&mut rng, 0.1, 240, 0.005, |r| {
                    if r.uniform() < 0.1 { 3.0 } else { 1.0 }
                })
                .is_some()
            })
            .count();
        assert!(tail >= 45, "tail caught {tail} of 50");
    }

    #[test]
    fn within_the_margins_is_not_slower() {
        // Canary 3% slower plus 0.3 ms, at the default margins (10%, 1 ms):
        // inside the null; 1.5x slower still caught.
        let margins = Margins::default();
        let run = |rng: &mut Rng, f: f64, plus_us: f64| {
            let mut t = LatencyTest::new(1.1, &margins);
            for s in 1..=300u32 {
                let (mut a, mut b) = (Histogram::default(), Histogram::default());
                for _ in 0..100 {
                    if rng.uniform() < 0.2 {
                        b.record((latency_us(rng, f) as f64 + plus_us) as u64);
                    } else {
                        a.record(latency_us(rng, 1.0));
                    }
                }
                let share = b.count as f64 / (a.count + b.count) as f64;
                t.observe(share, &a, &b);
                if t.evidence() >= 100.0 {
                    return Some(s);
                }
            }
            None
        };
        let mut rng = Rng::for_run(14, 0);
        let blamed = (0..200)
            .filter(|_| run(&mut rng, 1.03, 300.0).is_some())
            .count();
        assert!(blamed <= 2, "{blamed} of 200 blamed for 3% + 0.3 ms");
        let caught = (0..50)
            .filter(|_| run(&mut rng, 1.5, 0.0).is_some())
            .count();
        assert!(caught >= 49, "caught {caught} of 50");
    }

    #[test]
    fn promotion_evidence_needs_a_p95_within_tolerance() {
        let mut rng = Rng::for_run(13, 0);
        let proven = |rng: &mut Rng, scale: f64| {
            let mut t = LatencyTest::new(1.1, &Margins::NONE);
            for _ in 0..300 {
                let (mut a, mut b) = (Histogram::default(), Histogram::default());
                for _ in 0..50 {
                    a.record(latency_us(rng, 1.0));
                    b.record(latency_us(rng, scale));
                }
                t.observe(0.5, &a, &b);
            }
            t.within_evidence() >= 100.0
        };
        assert!((0..20).filter(|_| proven(&mut rng, 1.0)).count() >= 18);
        assert_eq!((0..20).filter(|_| proven(&mut rng, 1.2)).count(), 0);
    }
}
