//! Safety checks: one metric of the canary lane against a limit, at an
//! alert level — `warning` is WATCH, `critical` is RED.
//!
//! A metric is one of the lane's own figures (`error_rate` and `success_rate` in
//! percent, `p50_latency_ms`, `p95_latency_ms`, `p99_latency_ms`,
//! `avg_latency_ms`, `max_latency_ms`, `requests_per_second`) or any gauge the
//! canary's workers or SDKs report by name (e.g.
//! `memory_query_latency_ms`). Crossing means above the limit, except for
//! `success_rate` and `requests_per_second`, where it means below. A critical
//! check without data is inconclusive (it holds the rollout); a warning check
//! without data is a pass that says so.
//!
//! These are absolute limits on the canary, and a critical one rolls back —
//! so it must not roll back on chance. On the figures that are rates or
//! quantiles (`error_rate`, `success_rate`, `p50/p95/p99_latency_ms`) a critical
//! check fails only when the window *proves* the crossing, by the time-uniform
//! bounds of [`crate::stats::sequential::bound`] at its share of the rollout's α
//! (a P95 above 1000 ms is "more than 5% of requests above 1000 ms"); those
//! stay valid however often they are read, so they are read every tick and a
//! canary far past a limit is rolled back at once. The other figures (a mean, a
//! maximum, a gauge) have no such bound: their critical checks decide at the
//! window's end, like the threshold judge. Before proof or the window's end, a
//! crossing is a warning (WATCH).

use serde_json::json;

use super::{Inputs, Outcome, Verdict};
use crate::canary::metrics::MetricsSnapshot;
use crate::rollout::{AlertLevel, SafetyCheck};
use crate::stats::histogram::index_of;
use crate::stats::sequential::{bound, latencies};

/// The metrics a safety check can name besides gauges.
pub const LANE_METRICS: [&str; 8] = [
    "error_rate",
    "success_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "avg_latency_ms",
    "max_latency_ms",
    "requests_per_second",
];

/// A lane figure by its safety-check name; `None` when it is not a lane figure.
pub fn lane_metric(s: &MetricsSnapshot, name: &str) -> Option<Option<f64>> {
    Some(match name {
        "error_rate" => s.error_rate,
        "success_rate" => s.success_rate,
        "p50_latency_ms" => s.p50_latency,
        "p95_latency_ms" => s.p95_latency,
        "p99_latency_ms" => s.p99_latency,
        "avg_latency_ms" => s.avg_latency,
        "max_latency_ms" => s.max_latency,
        "requests_per_second" => (s.job_count > 0).then_some(s.jobs_per_second),
        _ => return None,
    })
}

/// SAFE, WATCH or RED, as the dashboard shows it.
pub fn light(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "SAFE",
        Outcome::Warn => "WATCH",
        Outcome::Fail => "RED",
        Outcome::Inconclusive => "UNKNOWN",
    }
}

/// Whether the canary's window proves `check`'s metric past its limit, at
/// `alpha`; `None` when the metric has no bound (not a rate or a quantile).
fn proven(check: &SafetyCheck, inputs: &Inputs<'_>, alpha: f64) -> Option<bool> {
    let lane = inputs.lanes[1];
    let n = lane.success + lane.errors;
    let level = match check.metric.as_str() {
        "error_rate" => return Some(bound::lower(lane.errors, n, alpha) * 100.0 > check.threshold),
        "success_rate" => {
            return Some((1.0 - bound::lower(lane.errors, n, alpha)) * 100.0 < check.threshold);
        }
        "p50_latency_ms" => 0.50,
        "p95_latency_ms" => 0.95,
        "p99_latency_ms" => 0.99,
        _ => return None,
    };
    // The quantile is above the limit when more than (1 − level) of the
    // requests are: count those in buckets wholly above the limit.
    let h = latencies(lane);
    let limit_us = (check.threshold.max(0.0) * 1000.0) as u64;
    let above = h.count_above(index_of(limit_us));
    Some(bound::lower(above, h.count, alpha) > 1.0 - level)
}

/// Judges one safety check; `decisive` at the analysis window's end, with
/// `alpha` for a proof of a critical crossing.
pub fn judge(check: &SafetyCheck, inputs: &Inputs<'_>, decisive: bool, alpha: f64) -> Verdict {
    let value = lane_metric(inputs.canary, &check.metric)
        .unwrap_or_else(|| inputs.canary_gauges.get(&check.metric).copied());
    let lower_is_worse = matches!(
        check.metric.as_str(),
        "success_rate" | "requests_per_second"
    );
    let name = format!("safety:{}", check.name);
    let Some(value) = value else {
        let outcome = match check.alert_level {
            AlertLevel::Critical => Outcome::Inconclusive,
            AlertLevel::Warning => Outcome::Pass,
        };
        return Verdict::new(
            name,
            outcome,
            format!("no data for {} on the canary", check.metric),
            json!({"metric": check.metric, "value": null, "threshold": check.threshold, "alert_level": check.alert_level, "status": light(outcome)}),
        );
    };
    let crossed = if lower_is_worse {
        value < check.threshold
    } else {
        value > check.threshold
    };
    let (outcome, note) = match (crossed, check.alert_level) {
        (false, _) => (Outcome::Pass, ""),
        (true, AlertLevel::Warning) => (Outcome::Warn, ""),
        (true, AlertLevel::Critical) => match proven(check, inputs, alpha) {
            Some(true) => (Outcome::Fail, ", proven over the window"),
            Some(false) => (
                Outcome::Warn,
                ", not proven yet (chance can't be ruled out)",
            ),
            None if decisive => (Outcome::Fail, ""),
            None => (Outcome::Warn, "; decides at the window's end"),
        },
    };
    let relation = match (crossed, lower_is_worse) {
        (true, false) => "above",
        (true, true) => "below",
        (false, false) => "within (at most)",
        (false, true) => "within (at least)",
    };
    Verdict::new(
        name,
        outcome,
        format!(
            "canary {} {value} is {relation} the limit {}{note}",
            check.metric, check.threshold
        ),
        json!({"metric": check.metric, "value": value, "threshold": check.threshold, "alert_level": check.alert_level, "status": light(outcome), "alpha": alpha}),
    )
}
