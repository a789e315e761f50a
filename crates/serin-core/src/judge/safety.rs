//! Safety checks (seed 002): one metric of the canary lane against a limit, at an
//! alert level — `warning` is WATCH, `critical` is RED.
//!
//! A metric is one of the lane's own figures (`error_rate` and `success_rate` in
//! percent, `p50_latency_ms`, `p95_latency_ms`, `p99_latency_ms`,
//! `avg_latency_ms`, `max_latency_ms`, `requests_per_second`) or any gauge the
//! canary's workers or SDKs report by name (seed 002's
//! `memory_query_latency_ms`). Crossing means above the limit, except for
//! `success_rate` and `requests_per_second`, where it means below. A critical
//! check without data is inconclusive (it holds the rollout); a warning check
//! without data is a pass that says so.

use serde_json::json;

use super::{Inputs, Outcome, Verdict};
use crate::metrics::MetricsSnapshot;
use crate::rollout::{AlertLevel, SafetyCheck};

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

/// SAFE, WATCH or RED, as seed 002's dashboard shows it.
pub fn light(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "SAFE",
        Outcome::Warn => "WATCH",
        Outcome::Fail => "RED",
        Outcome::Inconclusive => "UNKNOWN",
    }
}

/// Judges one safety check.
pub fn judge(check: &SafetyCheck, inputs: &Inputs<'_>) -> Verdict {
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
    let outcome = match (crossed, check.alert_level) {
        (false, _) => Outcome::Pass,
        (true, AlertLevel::Warning) => Outcome::Warn,
        (true, AlertLevel::Critical) => Outcome::Fail,
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
            "canary {} {value} is {relation} the limit {}",
            check.metric, check.threshold
        ),
        json!({"metric": check.metric, "value": value, "threshold": check.threshold, "alert_level": check.alert_level, "status": light(outcome)}),
    )
}
