//! Time-uniform bounds on a rate: where a lane's error rate, or its share of
//! requests above a latency, can be, however often it has been looked at.
//!
//! The share test compares two lanes by ratio. Some questions are about one
//! lane against a number instead: "is the canary's success rate below 95%?",
//! "are more than 5% of its requests slower than 1 s?" (its p95 above 1 s),
//! "is its error rate more than 0.25 points above stable's?". Read off point
//! estimates, such a question is answered wrongly now and then by noise alone,
//! and a controller that asks it every second collects those wrong answers —
//! at 20 requests a lane with 3% errors shows 15% one time in fifty.
//!
//! The bounds here come from a *confidence sequence*: for each candidate rate
//! p, the conjugate mixture
//!
//! ```text
//!   M_n(p) = B(a + k, b + n − k) / B(a, b) / ( p^k (1 − p)^(n−k) )
//! ```
//!
//! (the Bernoulli likelihood of k events in n trials under a Beta(a, b) prior
//! on the rate, divided by its likelihood at p) is a nonnegative martingale
//! with mean 1 when p is the true rate, so by Ville's inequality the chance
//! that it *ever* reaches 1/α is at most α. The set of p where it stays below
//! 1/α therefore holds the true rate at every n at once, with probability
//! 1 − α: its ends are the bounds, and looking after every request costs
//! nothing. (Robbins' mixture method; Howard, Ramdas, McAuliffe & Sekhon,
//! *Time-uniform, nonparametric, nonasymptotic confidence sequences*, 2021.)
//! The prior is Jeffreys' Beta(½, ½), which keeps the bounds tight for the
//! rare events (errors, slow requests) these are used on.
//!
//! A bound of a quantile follows from bounds of rates: the canary's p95 is
//! above x exactly when more than 5% of its requests are above x, so the
//! largest x whose share above it is provably more than 5% is a lower bound
//! of the p95 ([`quantile_rank_bounds`]).

/// Jeffreys' prior.
const A: f64 = 0.5;
const B: f64 = 0.5;

/// ln Γ(x) (Lanczos, g = 7), accurate to about 15 digits for x > 0.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln M_n(p) for k events in n trials.
fn ln_mixture(k: u64, n: u64, p: f64) -> f64 {
    let (k, m) = (k as f64, (n - k.min(n)) as f64);
    let mix = ln_beta(A + k, B + m) - ln_beta(A, B);
    let at =
        if k > 0.0 { k * p.ln() } else { 0.0 } + if m > 0.0 { m * (1.0 - p).ln() } else { 0.0 };
    mix - at
}

/// The lowest rate still plausible after `k` events in `n` trials: with
/// probability at least 1 − `alpha` the true rate is at or above it at every n.
pub fn lower(k: u64, n: u64, alpha: f64) -> f64 {
    let k = k.min(n);
    if n == 0 || k == 0 {
        return 0.0;
    }
    let bar = (1.0 / alpha).ln();
    // ln M falls from +∞ at p = 0 to its minimum at p = k/n: bisect for the crossing.
    let (mut lo, mut hi) = (0.0, k as f64 / n as f64);
    if ln_mixture(k, n, hi) >= bar {
        return hi;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if ln_mixture(k, n, mid) >= bar {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The highest rate still plausible after `k` events in `n` trials.
pub fn upper(k: u64, n: u64, alpha: f64) -> f64 {
    let k = k.min(n);
    if n == 0 {
        return 1.0;
    }
    1.0 - lower(n - k, n, alpha)
}

/// Ranks that bound a quantile: of `n` samples, with probability 1 − `alpha`
/// (at every n), the `level` quantile is above the value with `above_lo`
/// samples above it and at most the value with `above_hi` samples above it.
/// `above_lo` is the fewest samples above a point that prove the quantile lies
/// past it (`None`: no count proves it yet); `above_hi` the most that still
/// prove it lies below (`None`: none does).
pub fn quantile_rank_bounds(n: u64, level: f64, alpha: f64) -> (Option<u64>, Option<u64>) {
    let tail = 1.0 - level;
    // lower(k, n) grows with k: the smallest k whose lower bound exceeds the tail.
    let above_lo = (lower(n, n, alpha) > tail).then(|| {
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if lower(mid, n, alpha) > tail {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    });
    // upper(k, n) grows with k: the largest k whose upper bound stays below the tail.
    let above_hi = (upper(0, n, alpha) < tail).then(|| {
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if upper(mid, n, alpha) < tail {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    });
    (above_lo, above_hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Rng;

    #[test]
    fn bounds_bracket_the_estimate_and_narrow_with_data() {
        let (l, u) = (lower(10, 100, 0.01), upper(10, 100, 0.01));
        assert!(l < 0.1 && u > 0.1, "{l} {u}");
        let (l2, u2) = (lower(100, 1000, 0.01), upper(100, 1000, 0.01));
        assert!(l2 > l && u2 < u, "{l2} {u2}");
        assert_eq!(lower(0, 50, 0.01), 0.0);
        assert_eq!(upper(50, 50, 0.01), 1.0);
        assert_eq!((lower(3, 0, 0.01), upper(0, 0, 0.01)), (0.0, 1.0));
        // A mixture bound is wider than a one-look interval but of its order.
        assert!(l2 > 0.06 && u2 < 0.15, "{l2} {u2}");
    }

    #[test]
    fn the_true_rate_stays_inside_at_every_look() {
        // 400 lanes at 3% errors, looked at after every request up to 2,000:
        // the share that ever leave the bounds stays within α.
        let mut rng = Rng::for_run(21, 0);
        let alpha = 0.05;
        let p = 0.03;
        let mut left = 0;
        for _ in 0..400 {
            let mut k = 0;
            for n in 1..=2000u64 {
                k += u64::from(rng.uniform() < p);
                if lower(k, n, alpha / 2.0) > p || upper(k, n, alpha / 2.0) < p {
                    left += 1;
                    break;
                }
            }
        }
        assert!(
            left as f64 / 400.0 <= alpha,
            "{left} of 400 left the bounds"
        );
    }

    #[test]
    fn quantile_ranks_need_enough_samples() {
        // 20 samples can't bound a p95 from below at α = 1%; 2,000 can, closely.
        let few = quantile_rank_bounds(20, 0.95, 0.01).0.unwrap();
        assert!(few >= 3, "{few} of 20 above a point prove the p95 past it");
        let (lo, hi) = quantile_rank_bounds(2000, 0.95, 0.01);
        let (lo, hi) = (lo.unwrap(), hi.unwrap());
        assert!(lo > 100 && lo < 160, "{lo}");
        assert!(hi < 100 && hi > 50, "{hi}");
        assert_eq!(quantile_rank_bounds(10, 0.95, 0.01).1, None);
    }
}
