//! The threshold judge: seed 004's rollback thresholds, read as a verdict.
//!
//! It reuses the five checks of [`crate::metrics::evaluate`] (the same figures the
//! health endpoint shows) but reads them as a rollout decision: the thresholds are
//! called *rollback* thresholds, so crossing the error-rate, success-rate or P95
//! latency limit fails. Throughput per share of traffic only warns — at a few
//! dozen canary requests its noise alone crosses a 20% limit, and a slow canary
//! already shows in latency. Below `required_sample_size` (or with no stable
//! traffic to compare with) the verdict is inconclusive. The minimum duration
//! gates promotion, which the controller checks; it is evidence here.
//!
//! This judge compares fixed thresholds each time it looks; looking every second
//! raises its false-alarm rate. The sequential judge is the one that stays valid
//! under repeated looks.

use serde_json::json;

use super::{Inputs, Outcome, Verdict};
use crate::metrics::{CheckStatus, evaluate};

/// Judges the window against the deployment's `rollback_thresholds`.
pub fn judge(inputs: &Inputs<'_>) -> Verdict {
    let d = inputs.deployment;
    let report = evaluate(d, inputs.stable, inputs.canary, inputs.now);
    let evidence = json!({
        "thresholds": d.config.rollback_thresholds,
        "stable": {"requests": inputs.stable.job_count, "error_rate": inputs.stable.error_rate, "p95_latency": inputs.stable.p95_latency},
        "canary": {"requests": inputs.canary.job_count, "error_rate": inputs.canary.error_rate, "success_rate": inputs.canary.success_rate, "p95_latency": inputs.canary.p95_latency},
        "checks": [&report.error_rate_check, &report.latency_check, &report.throughput_check, &report.sample_size_check, &report.duration_check],
    });
    let failing: Vec<&str> = [&report.error_rate_check, &report.latency_check]
        .into_iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.message.as_str())
        .collect();
    let (outcome, summary) = if report.sample_size_check.status != CheckStatus::Pass {
        (
            Outcome::Inconclusive,
            format!("not enough data: {}", report.sample_size_check.message),
        )
    } else if !failing.is_empty() {
        (Outcome::Fail, failing.join("; "))
    } else if report.error_rate_check.status == CheckStatus::Unknown {
        (
            Outcome::Inconclusive,
            report.error_rate_check.message.clone(),
        )
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
