//! The threshold judge: the rollback thresholds, read as a verdict.
//!
//! The thresholds keep their meaning — the canary's error rate at most
//! `max_error_rate_increase` points above stable's, its success rate at least
//! `min_success_rate`, its P95 at most `max_latency_increase` percent above
//! stable's — but a judge that compared the point figures every second would
//! fail equal canaries: the P95 of 20 requests is nearly their maximum, and a
//! lane with 3% errors shows 5% now and then by chance alone (live, 2–3 of
//! every 5 equal canaries with heavy tails were rolled back that way). So this
//! judge **decides once per analysis window**, at its end (or when the step is
//! about to end early on the sequential judge's promotion evidence), and then
//! only on what the window *proves*: each check compares time-uniform bounds
//! ([`crate::stats::sequential::bound`]) at its share of the rollout's α
//! ([`super::Budget`]):
//!
//! - error rate: the canary's lower bound minus stable's upper bound above
//!   `max_error_rate_increase` points;
//! - success rate: the canary's upper bound below `min_success_rate`;
//! - P95: the canary's lower bound above stable's upper bound raised by
//!   `max_latency_increase` percent (bounds of a quantile are bounds of the
//!   share of requests above a point).
//!
//! Before the window ends it watches: a `warn` when the point figures cross a
//! threshold (shown, never a reason to stop), a `pass` otherwise. Throughput
//! per share of traffic only warns, as before. Below `required_sample_size`
//! (or with no stable traffic) the verdict is inconclusive.

use serde_json::json;

use super::{Inputs, Outcome, Verdict};
use crate::canary::metrics::{CheckStatus, evaluate};
use crate::stats::histogram::{Histogram, bounds_of};
use crate::stats::sequential::{bound, latencies};

/// What the window proves about the canary's P95: its lower bound and stable's
/// upper bound, ms (`None`: too few requests to bound it).
fn p95_bounds(stable: &Histogram, canary: &Histogram, alpha: f64) -> (Option<f64>, Option<f64>) {
    let lower = bound::quantile_rank_bounds(canary.count, 0.95, alpha / 2.0)
        .0
        .and_then(|k| canary.quantile_index((canary.count - k) as f64 / canary.count as f64))
        .map(|i| bounds_of(i).0 as f64 / 1000.0);
    let upper = bound::quantile_rank_bounds(stable.count, 0.95, alpha / 2.0)
        .1
        .and_then(|k| stable.quantile_index((stable.count - k) as f64 / stable.count as f64))
        .map(|i| {
            let (lo, w) = bounds_of(i);
            (lo + w) as f64 / 1000.0
        });
    (lower, upper)
}

/// Judges the window against the deployment's `rollback_thresholds`; `decisive`
/// at the window's end, with `alpha` for each of its three checks.
pub fn judge(inputs: &Inputs<'_>, decisive: bool, alpha: f64) -> Verdict {
    let d = inputs.deployment;
    let t = &d.config.rollback_thresholds;
    let report = evaluate(d, inputs.stable, inputs.canary, inputs.now);
    // The bounds are what the decision reads: computed only when deciding
    // (every look before the window's end is a watch on the point figures).
    let bounds = decisive.then(|| {
        let [ls, lc] = inputs.lanes;
        let (ns, nc) = (ls.success + ls.errors, lc.success + lc.errors);
        let (hs, hc) = (latencies(ls), latencies(lc));
        let err_gap = (bound::lower(lc.errors, nc, alpha / 2.0)
            - bound::upper(ls.errors, ns, alpha / 2.0))
            * 100.0;
        let success_upper = (1.0 - bound::lower(lc.errors, nc, alpha)) * 100.0;
        let (p95_lower, p95_upper) = p95_bounds(&hs, &hc, alpha);
        (err_gap, success_upper, p95_lower, p95_upper)
    });
    let (err_gap, success_upper, p95_lower, p95_upper) = match bounds {
        Some((g, s, l, u)) => (Some(g), Some(s), l, u),
        None => (None, None, None, None),
    };
    let p95_limit = p95_upper.map(|u| u * (1.0 + t.max_latency_increase / 100.0));
    let evidence = json!({
        "thresholds": t,
        "decides": if decisive { "now" } else { "at the window's end" },
        "alpha_per_check": alpha,
        "stable": {"requests": inputs.stable.job_count, "error_rate": inputs.stable.error_rate, "p95_latency": inputs.stable.p95_latency, "p95_upper_bound": p95_upper},
        "canary": {"requests": inputs.canary.job_count, "error_rate": inputs.canary.error_rate, "success_rate": inputs.canary.success_rate, "p95_latency": inputs.canary.p95_latency,
                   "p95_lower_bound": p95_lower, "success_rate_upper_bound": success_upper},
        "error_rate_increase_lower_bound": err_gap,
        "checks": [&report.error_rate_check, &report.latency_check, &report.throughput_check, &report.sample_size_check, &report.duration_check],
    });
    if report.sample_size_check.status != CheckStatus::Pass {
        return Verdict::new(
            "threshold",
            Outcome::Inconclusive,
            format!("not enough data: {}", report.sample_size_check.message),
            evidence,
        );
    }
    if report.error_rate_check.status == CheckStatus::Unknown {
        return Verdict::new(
            "threshold",
            Outcome::Inconclusive,
            report.error_rate_check.message.clone(),
            evidence,
        );
    }
    let mut proven = Vec::new();
    if let Some(err_gap) = err_gap
        && err_gap > t.max_error_rate_increase
    {
        proven.push(format!(
            "canary error rate at least {err_gap:.1} points above stable's (threshold: {:.1})",
            t.max_error_rate_increase
        ));
    }
    if let Some(success_upper) = success_upper
        && success_upper < t.min_success_rate
    {
        proven.push(format!(
            "canary success rate at most {success_upper:.2}% (minimum: {:.1}%)",
            t.min_success_rate
        ));
    }
    if let (Some(lo), Some(limit), Some(up)) = (p95_lower, p95_limit, p95_upper)
        && lo > limit
    {
        proven.push(format!(
            "canary P95 at least {lo:.1} ms, above stable's (at most {up:.1} ms) + {:.1}%",
            t.max_latency_increase
        ));
    }
    let crossing: Vec<&str> = [&report.error_rate_check, &report.latency_check]
        .into_iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.message.as_str())
        .collect();
    let (outcome, summary) = if decisive && !proven.is_empty() {
        (
            Outcome::Fail,
            format!("{} over the window", proven.join("; ")),
        )
    } else if !crossing.is_empty() {
        let when = if decisive {
            "not proven over the window (chance can't be ruled out)"
        } else {
            "watching; decides at the window's end"
        };
        (Outcome::Warn, format!("{}: {when}", crossing.join("; ")))
    } else if report.throughput_check.status == CheckStatus::Fail {
        (Outcome::Warn, report.throughput_check.message.clone())
    } else {
        (
            Outcome::Pass,
            format!(
                "{}; {}",
                report.error_rate_check.message, report.latency_check.message
            ),
        )
    };
    Verdict::new("threshold", outcome, summary, evidence)
}
