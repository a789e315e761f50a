//! Error rates: a sequential test on where the errors fall.
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
//! baseline error rate, which nobody knows in advance, cancels.
//!
//! For each alternative θ ≥ 1 the likelihood ratio of the observed lanes against
//! the boundary θ = 1,
//!
//! ```text
//!   L_θ = Π  (p(θ,ρ_i)/ρ_i)^{x_i} · ((1 − p(θ,ρ_i))/(1 − ρ_i))^{1 − x_i}
//! ```
//!
//! (x_i = 1 when error i is the canary's), has expectation at most 1 at every
//! step under any θ₀ ≤ 1: each factor's expectation is linear in the true
//! probability, equals 1 at ρ and grows with it, because p(θ,ρ) ≥ ρ. So L_θ is a
//! nonnegative supermartingale under the whole null, and so is any fixed
//! mixture of them. The test uses a mixture over a log-spaced grid of θ (1.1 …
//! 20, weights favouring moderate effects) and rolls back when it reaches 1/α;
//! by Ville's inequality the probability that a canary no worse than stable is
//! *ever* rolled back is at most α. ρ may change at every error (weights move
//! between steps); each factor uses the share in force, so the guarantee holds
//! across steps. The statistic is exact: no normal approximation, which with a
//! handful of errors would fire after four or five of them and break α.
//!
//! The state is a few sums per grid point, so the test is cheap to update from
//! per-second counts: errors in one second share one ρ.

use serde::Serialize;

/// The alternatives mixed over: the canary's error rate as a multiple of stable's.
pub const GRID: [f64; 8] = [1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0];
/// Their prior weights (sum 1), favouring the effects worth catching soonest.
pub const WEIGHTS: [f64; 8] = [0.10, 0.15, 0.20, 0.20, 0.15, 0.10, 0.06, 0.04];

/// The running test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorTest {
    /// log L_θ for each grid point.
    log_lr: [f64; 8],
    /// Errors seen in the canary lane.
    pub canary_errors: u64,
    /// Errors seen in the stable lane.
    pub stable_errors: u64,
}

impl Default for ErrorTest {
    fn default() -> Self {
        ErrorTest {
            log_lr: [0.0; 8],
            canary_errors: 0,
            stable_errors: 0,
        }
    }
}

/// p(θ, ρ): the chance an error is the canary's when its rate is θ times stable's.
pub fn canary_share_of_errors(theta: f64, rho: f64) -> f64 {
    theta * rho / (theta * rho + 1.0 - rho)
}

impl ErrorTest {
    /// Adds errors observed while the canary had share `rho` of the requests
    /// (0 < ρ < 1; at 0 % or 100 % the lanes can't be compared and nothing is added).
    pub fn observe(&mut self, rho: f64, canary_errors: u64, stable_errors: u64) {
        if !(rho > 0.0 && rho < 1.0) || canary_errors + stable_errors == 0 {
            return;
        }
        let (c, s) = (canary_errors as f64, stable_errors as f64);
        for (l, theta) in self.log_lr.iter_mut().zip(GRID) {
            let p = canary_share_of_errors(theta, rho);
            *l += c * (p / rho).ln() + s * ((1.0 - p) / (1.0 - rho)).ln();
        }
        self.canary_errors += canary_errors;
        self.stable_errors += stable_errors;
    }

    /// The mixture likelihood ratio (the Bayes factor for "canary worse").
    pub fn bayes_factor(&self) -> f64 {
        self.log_lr
            .iter()
            .zip(WEIGHTS)
            .map(|(l, w)| w * l.exp())
            .sum()
    }

    /// Whether the evidence that the canary is worse has crossed `1/alpha`.
    pub fn rejects(&self, alpha: f64) -> bool {
        self.bayes_factor() >= 1.0 / alpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), so the tests are repeatable.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Runs one canary: `errors` errors, each the canary's with the probability
    /// its rate multiple `theta` gives at share `rho`; returns the error count at
    /// which the test first rejected, if it did.
    fn run(rng: &mut Rng, theta: f64, rho: f64, errors: u64, alpha: f64) -> Option<u64> {
        let mut t = ErrorTest::default();
        let p = canary_share_of_errors(theta, rho);
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
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
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
    fn a_canary_better_than_stable_is_never_blamed() {
        let mut rng = Rng(7);
        let hits = (0..500)
            .filter(|_| run(&mut rng, 0.5, 0.2, 500, 0.05).is_some())
            .count();
        assert_eq!(hits, 0);
    }

    #[test]
    fn a_worse_canary_is_caught_after_few_errors() {
        // 5x the error rate at a 10% share: most runs reject within 30 errors.
        let mut rng = Rng(42);
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
        let mut rng = Rng(99);
        let alpha = 0.05;
        let mut caught = 0;
        let mut false_alarms = 0;
        for _ in 0..500 {
            for (theta, counter) in [(4.0, &mut caught), (1.0, &mut false_alarms)] {
                let mut t = ErrorTest::default();
                'steps: for rho in [0.05, 0.25, 0.5] {
                    let p = canary_share_of_errors(theta, rho);
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
    fn per_second_counts_equal_one_by_one() {
        let mut a = ErrorTest::default();
        let mut b = ErrorTest::default();
        a.observe(0.3, 4, 6);
        for _ in 0..4 {
            b.observe(0.3, 1, 0);
        }
        for _ in 0..6 {
            b.observe(0.3, 0, 1);
        }
        assert!((a.bayes_factor() - b.bayes_factor()).abs() < 1e-9);
        // Nothing is learned at 0% or 100%, or from no errors.
        let before = a.clone();
        a.observe(0.0, 3, 3);
        a.observe(1.0, 3, 3);
        a.observe(0.5, 0, 0);
        assert_eq!(a, before);
        assert!((WEIGHTS.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
