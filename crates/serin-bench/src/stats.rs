//! The little statistics the verdicts benchmark reports: an exact binomial upper
//! bound, quantiles, and the grouping of rollback reasons.

use std::collections::BTreeMap;

/// ln(i!) for i = 0..=n.
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        out.push(acc);
    }
    out
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space (log-sum-exp), so that
/// tiny terms at large `n` neither underflow one by one nor lose the sum.
fn binomial_cdf(k: u64, n: u64, p: f64, lf: &[f64]) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let terms: Vec<f64> = (0..=k.min(n))
        .map(|i| {
            let (i_, n_) = (i as usize, n as usize);
            lf[n_] - lf[i_] - lf[n_ - i_] + i as f64 * lp + (n - i) as f64 * lq
        })
        .collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).exp().min(1.0)
}

/// The exact (Clopper–Pearson) one-sided upper confidence bound of a binomial
/// proportion at level `1 - a`: the `p` at which seeing `k` or fewer successes
/// of `n` has probability `a` — the Beta(k+1, n−k) quantile at `1 - a`, found by
/// bisection on the binomial CDF (which falls as `p` rises).
pub fn clopper_pearson_upper(k: u64, n: u64, a: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let lf = ln_factorials(n);
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if binomial_cdf(k, n, mid, &lf) > a {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Nearest-rank quantile of sorted values (`NaN` when empty).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Rollback reasons grouped: numbers become `#` (so "Bayes factor 210 after 412
/// requests" and "Bayes factor 388 after 97 requests" count as one reason), then
/// the first 80 characters. Most frequent first.
pub fn reasons<'a>(all: impl IntoIterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in all {
        *counts.entry(reason_key(r)).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn reason_key(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        // Digits right after a letter name something ("P95", "p75"): kept.
        if c.is_ascii_digit() && !prev.is_ascii_alphabetic() && !prev.is_ascii_digit() {
            // A number: digits with at most inner dots ("12.5"), kept as one `#`.
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
            {
                chars.next();
            }
            out.push('#');
            prev = '#';
        } else {
            out.push(c);
            prev = c;
        }
    }
    // A trailing dot eaten as part of "…412." is the sentence's, not the number's;
    // it doesn't matter for grouping.
    out.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_known_values() {
        // k = 0: 1 - a^(1/n).
        let u = clopper_pearson_upper(0, 40, 0.05);
        assert!((u - (1.0 - 0.05f64.powf(1.0 / 40.0))).abs() < 1e-9, "{u}");
        // 1 of 10: 0.3942 (tables of the one-sided exact bound).
        assert!((clopper_pearson_upper(1, 10, 0.05) - 0.3942).abs() < 1e-3);
        // 5 of 100: 0.1024.
        assert!((clopper_pearson_upper(5, 100, 0.05) - 0.1024).abs() < 1e-3);
        assert_eq!(clopper_pearson_upper(3, 3, 0.05), 1.0);
        assert_eq!(clopper_pearson_upper(0, 0, 0.05), 1.0);
        // Large n stays finite and above the point estimate.
        let big = clopper_pearson_upper(30, 5000, 0.05);
        assert!(big > 0.006 && big < 0.01, "{big}");
    }

    #[test]
    fn reasons_group_over_numbers() {
        let r = reasons([
            "sequential: canary error rate 4.8% vs 1.0%, Bayes factor 210 > 200 after 412 canary requests",
            "sequential: canary error rate 5.1% vs 0.9%, Bayes factor 388 > 200 after 97 canary requests",
            "threshold: Error rate: 7.00%",
            "threshold: P95 latency increase: 75.6% (threshold: 50.0%)",
        ]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1, 2);
        assert!(r[0].0.starts_with("sequential: canary error rate #% vs #%"));
        assert!(r[0].0.chars().count() <= 80);
        assert!(
            r.iter()
                .any(|(k, _)| k == "threshold: P95 latency increase: #% (threshold: #%)")
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
