//! Which lane do events fall in: the exact sequential test under both the
//! error-rate and the latency judge.
//!
//! Take the errors alone. If the canary is no worse than stable, an error lands
//! in the canary lane with probability at most ρ, the canary's share of requests
//! at that moment (equal error rates give exactly ρ). If the canary's error rate
//! is θ times stable's, that probability is
//!
//! ```text
//!   p(θ, ρ) = θρ / (θρ + 1 − ρ)
//! ```
//!
//! so the question "is the canary worse?" becomes a one-sided question about a
//! single number, θ > 1, whatever the traffic level and whatever the stable
//! error rate — which is why conditioning on errors is the right reduction: the
//! baseline error rate, which nobody knows in advance, cancels. Nothing here is
//! specific to errors: "a request slower than stable's p95" is an event just as
//! well, which is how the latency judge uses this test.
//!
//! For each alternative θ₁ the likelihood ratio of the observed lanes against a
//! boundary θ₀,
//!
//! ```text
//!   L = Π  (p(θ₁,ρ_i)/p(θ₀,ρ_i))^{x_i} · ((1 − p(θ₁,ρ_i))/(1 − p(θ₀,ρ_i)))^{1 − x_i}
//! ```
//!
//! (x_i = 1 when event i is the canary's), has expectation at most 1 at every
//! step under any true θ on the far side of θ₀ from θ₁: each factor's expectation
//! is linear in the true probability and equals 1 at p(θ₀). So L is a nonnegative
//! supermartingale under the whole one-sided null, and so is any fixed mixture of
//! such ratios. By Ville's inequality the chance that the mixture *ever* reaches
//! 1/α under the null is at most α — however often it is looked at.
//!
//! Two directions are used:
//! - [`ShareTest::worse_than`]: null θ ≤ m ("canary no worse than m times
//!   stable", m ≥ 1 a margin of practical significance; m = 1 is
//!   [`ShareTest::worse`]), alternatives on a log-spaced grid m·1.1 … m·20.
//!   Crossing 1/α is the evidence to roll back.
//! - [`ShareTest::within`]: null θ ≥ τ ("canary at least τ times worse"),
//!   alternatives below τ. Crossing 1/α rejects "τ times worse": the canary's
//!   ratio is below τ, the evidence to promote before the step's time is up.
//!
//! Events are counted per interval (a second, or the part of a window the
//! controller reads at once), with ρ the canary's share of the interval's
//! requests. That is exact, not an approximation: with requests routed to lanes
//! at random, the canary's requests of an interval are a random subset of them
//! given their number, so under equal lanes the canary's count of events is
//! hypergeometric — and Hoeffding (1963) showed sampling without replacement is
//! dominated in convex order by sampling with replacement, so each factor,
//! convex in the canary count, still has expectation at most 1. (That argument
//! covers the rollback test, whose boundary is equal rates. For the promotion
//! test's boundary θ₀ = τ the canary's count given the total is Fisher's
//! noncentral hypergeometric rather than a binomial; there the exactness rests
//! on the events being rare next to the requests — errors are — and the
//! expectation was checked numerically, not proven.) ρ may change
//! from one interval to the next (weights move between steps). No normal
//! approximation is involved, which with a handful of errors would fire after
//! four or five of them and break α.
//!
//! The state is one running sum per grid point: cheap to update and to read.

use serde::Serialize;

/// Alternatives above 1 (the canary's rate as a multiple of stable's) and their
/// prior weights (sum 1), favouring the effects worth catching soonest.
const WORSE: [(f64, f64); 8] = [
    (1.1, 0.05),
    (1.25, 0.10),
    (1.5, 0.15),
    (2.0, 0.20),
    (3.0, 0.20),
    (5.0, 0.15),
    (10.0, 0.10),
    (20.0, 0.05),
];
/// Alternatives below a tolerance τ, as multiples of τ, and their weights.
const WITHIN: [(f64, f64); 8] = [
    (0.9, 0.10),
    (0.8, 0.15),
    (0.7, 0.15),
    (0.6, 0.15),
    (0.5, 0.15),
    (0.4, 0.10),
    (0.25, 0.10),
    (0.1, 0.10),
];

/// The running test of one null boundary against a mixture of alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareTest {
    /// The null's boundary θ₀.
    pub null: f64,
    /// Alternatives θ₁ with their weights.
    #[serde(skip)]
    grid: [(f64, f64); 8],
    /// log L for each alternative.
    #[serde(skip)]
    log_lr: [f64; 8],
    /// Events seen in the canary lane.
    pub canary_events: u64,
    /// Events seen in the stable lane.
    pub stable_events: u64,
}

/// p(θ, ρ): the chance an event is the canary's when its rate is θ times stable's.
pub fn canary_share_of_events(theta: f64, rho: f64) -> f64 {
    theta * rho / (theta * rho + 1.0 - rho)
}

impl ShareTest {
    /// "Is the canary worse?": null θ ≤ 1.
    pub fn worse() -> ShareTest {
        ShareTest::new(1.0, WORSE)
    }

    /// "Is the canary worse by more than `margin` times?": null θ ≤ margin
    /// (≥ 1), alternatives the same multiples of it as [`ShareTest::worse`]'s of 1.
    pub fn worse_than(margin: f64) -> ShareTest {
        let margin = if margin.is_finite() && margin >= 1.0 {
            margin
        } else {
            1.0
        };
        ShareTest::new(margin, WORSE.map(|(m, w)| (m * margin, w)))
    }

    /// "Is the canary's rate less than `tolerance` times stable's?": null θ ≥ τ.
    pub fn within(tolerance: f64) -> ShareTest {
        let tolerance = if tolerance.is_finite() && tolerance > 0.0 {
            tolerance
        } else {
            1.0
        };
        ShareTest::new(tolerance, WITHIN.map(|(m, w)| (m * tolerance, w)))
    }

    fn new(null: f64, grid: [(f64, f64); 8]) -> ShareTest {
        ShareTest {
            null,
            grid,
            log_lr: [0.0; 8],
            canary_events: 0,
            stable_events: 0,
        }
    }

    /// Adds events observed while the canary had share `rho` of the requests
    /// (0 < ρ < 1; at 0 % or 100 % the lanes can't be compared and nothing is added).
    pub fn observe(&mut self, rho: f64, canary_events: u64, stable_events: u64) {
        if !(rho > 0.0 && rho < 1.0) || canary_events + stable_events == 0 {
            return;
        }
        let (c, s) = (canary_events as f64, stable_events as f64);
        let p0 = canary_share_of_events(self.null, rho);
        for (l, (theta, _)) in self.log_lr.iter_mut().zip(self.grid) {
            let p = canary_share_of_events(theta, rho);
            *l += c * (p / p0).ln() + s * ((1.0 - p) / (1.0 - p0)).ln();
        }
        self.canary_events += canary_events;
        self.stable_events += stable_events;
    }

    /// The mixture likelihood ratio: the evidence against the null (an e-value).
    pub fn evidence(&self) -> f64 {
        self.log_lr
            .iter()
            .zip(self.grid)
            .map(|(l, (_, w))| w * l.exp())
            .sum()
    }

    /// Whether the evidence has crossed `1/alpha`.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.evidence() >= 1.0 / alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::simulate::Rng;

    /// Runs one canary: `errors` errors, each the canary's with the probability
    /// its rate multiple `theta` gives at share `rho`; returns the error count at
    /// which the test first rejected, if it did.
    fn run(rng: &mut Rng, theta: f64, rho: f64, errors: u64, alpha: f64) -> Option<u64> {
        let mut t = ShareTest::worse();
        let p = canary_share_of_events(theta, rho);
        for i in 1..=errors {
            let canary = rng.uniform() < p;
            t.observe(rho, u64::from(canary), u64::from(!canary));
            if t.rejects(alpha) {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn equal_error_rates_are_rarely_rejected_even_looking_after_every_error() {
        // A/A: 2,000 canaries, 500 errors each, tested after every error.
        let mut rng = Rng::for_run(0x9E37_79B9_7F4A_7C15, 0);
        let alpha = 0.05;
        let false_rollbacks = (0..2000)
            .filter(|_| run(&mut rng, 1.0, 0.2, 500, alpha).is_some())
            .count();
        // Ville bounds the rate by α; the mixture is conservative, so well below.
        assert!(
            false_rollbacks as f64 / 2000.0 <= alpha,
            "{false_rollbacks} of 2000"
        );
    }

    #[test]
    fn a_canary_better_than_stable_is_blamed_far_less_than_alpha() {
        // Ville bounds the boundary θ = 1 by α; a canary half as bad is further
        // inside the null, and its rejections are a small fraction of that.
        let mut rng = Rng::for_run(7, 0);
        let hits = (0..500)
            .filter(|_| run(&mut rng, 0.5, 0.2, 500, 0.05).is_some())
            .count();
        assert!(hits <= 5, "{hits} of 500");
    }

    #[test]
    fn a_worse_canary_is_caught_after_few_errors() {
        // 5x the error rate at a 10% share: most runs reject within 30 errors.
        let mut rng = Rng::for_run(42, 0);
        let mut at: Vec<u64> = (0..200)
            .filter_map(|_| run(&mut rng, 5.0, 0.1, 200, 0.01))
            .collect();
        assert!(at.len() >= 195, "caught {} of 200", at.len());
        at.sort_unstable();
        assert!(
            at[at.len() / 2] <= 30,
            "median errors to reject: {}",
            at[at.len() / 2]
        );
    }

    #[test]
    fn shares_can_change_between_observations() {
        // Weight steps 5% → 25% → 50%, canary 4x worse: still caught; A/A across
        // the same steps still within α.
        let mut rng = Rng::for_run(99, 0);
        let alpha = 0.05;
        let mut caught = 0;
        let mut false_alarms = 0;
        for _ in 0..500 {
            for (theta, counter) in [(4.0, &mut caught), (1.0, &mut false_alarms)] {
                let mut t = ShareTest::worse();
                'steps: for rho in [0.05, 0.25, 0.5] {
                    let p = canary_share_of_events(theta, rho);
                    for _ in 0..60 {
                        let c = rng.uniform() < p;
                        t.observe(rho, u64::from(c), u64::from(!c));
                        if t.rejects(alpha) {
                            *counter += 1;
                            break 'steps;
                        }
                    }
                }
            }
        }
        assert!(caught >= 490, "caught {caught} of 500");
        assert!(
            false_alarms as f64 / 500.0 <= alpha,
            "{false_alarms} false alarms of 500"
        );
    }

    #[test]
    fn within_tolerance_is_proven_for_equal_rates_and_rarely_for_worse_ones() {
        // "Error rate below 1.2× stable's": 10,000 errors at a 50% share prove it
        // for equal lanes; a canary 1.5× worse is (almost) never let through.
        let mut rng = Rng::for_run(5, 0);
        let alpha = 0.05;
        let mut proven = |theta: f64| {
            let mut t = ShareTest::within(1.2);
            let p = canary_share_of_events(theta, 0.5);
            for _ in 0..10_000 {
                let c = rng.uniform() < p;
                t.observe(0.5, u64::from(c), u64::from(!c));
                if t.rejects(alpha) {
                    return true;
                }
            }
            false
        };
        assert!((0..50).filter(|_| proven(1.0)).count() >= 48);
        let through = (0..500).filter(|_| proven(1.5)).count();
        assert!(through as f64 / 500.0 <= alpha, "{through} of 500");
        // Exactly at the tolerance Ville's bound is α itself, and a mixture this
        // close to its null nearly reaches it: allow three standard errors of
        // 500 runs' sampling noise above α (a broken test would sit far above).
        let at = (0..500).filter(|_| proven(1.2)).count();
        let noise = 3.0 * (alpha * (1.0 - alpha) / 500.0_f64).sqrt();
        assert!(
            at as f64 / 500.0 <= alpha + noise,
            "{at} of 500 at the boundary"
        );
    }

    #[test]
    fn a_margin_tolerates_a_slightly_worse_canary_and_still_catches_a_bad_one() {
        // 1.2x the errors with a 1.25 margin: inside the null, rarely blamed;
        // 5x: caught as quickly as without a margin, give or take a few errors.
        let mut rng = Rng::for_run(17, 0);
        let alpha = 0.05;
        let run = |rng: &mut Rng, theta: f64| {
            let mut t = ShareTest::worse_than(1.25);
            let p = canary_share_of_events(theta, 0.2);
            (1..=500u64).find(|_| {
                let c = rng.uniform() < p;
                t.observe(0.2, u64::from(c), u64::from(!c));
                t.rejects(alpha)
            })
        };
        let blamed = (0..500).filter(|_| run(&mut rng, 1.2).is_some()).count();
        assert!(blamed as f64 / 500.0 <= alpha, "{blamed} of 500");
        let mut at: Vec<u64> = (0..200).filter_map(|_| run(&mut rng, 5.0)).collect();
        assert!(at.len() >= 198, "caught {} of 200", at.len());
        at.sort_unstable();
        assert!(at[at.len() / 2] <= 40, "median errors {}", at[at.len() / 2]);
        assert_eq!(ShareTest::worse_than(0.5).null, 1.0);
    }

    #[test]
    fn per_second_counts_equal_one_by_one() {
        let mut a = ShareTest::worse();
        let mut b = ShareTest::worse();
        a.observe(0.3, 4, 6);
        for _ in 0..4 {
            b.observe(0.3, 1, 0);
        }
        for _ in 0..6 {
            b.observe(0.3, 0, 1);
        }
        assert!((a.evidence() - b.evidence()).abs() < 1e-9);
        // Nothing is learned at 0% or 100%, or from no errors.
        let before = a.clone();
        a.observe(0.0, 3, 3);
        a.observe(1.0, 3, 3);
        a.observe(0.5, 0, 0);
        assert_eq!(a, before);
        for grid in [WORSE, WITHIN] {
            assert!((grid.iter().map(|g| g.1).sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}
