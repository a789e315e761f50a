//! Sequential tests: statistics that stay valid however often they are looked at.
//!
//! A fixed-horizon test (a t-test, Mann-Whitney) promises its error rate only if
//! it is computed once, at a sample size chosen in advance. A canary controller
//! looks every second; re-applying such a test as data arrives rejects a true
//! null far more often than its nominal level. The tests here are built from
//! nonnegative supermartingales under the null — products of per-interval
//! likelihood ratios, mixed over the alternatives — so Ville's inequality bounds
//! the chance that they *ever* cross `1/α`: looking after every request costs
//! nothing.
//!
//! - [`share`]: which lane do events fall in? The exact mixture test that both
//!   judges are built on, in both directions ("worse" and "within tolerance").
//! - [`latency`]: is the canary more often above stable's p50 … p99?
//! - [`Evidence`]: one analysis step's running tests of both metrics, fed one
//!   interval of both lanes at a time.
//!
//! **The α budget.** A rollout gets one α (default 0.01), the probability that
//! a canary no worse than stable is ever rolled back by this judge. It is split
//! evenly over the two metrics and over the rollout's analysis steps (each step
//! starts fresh tests at weight α / (2 × steps)), so by the union bound the
//! whole rollout's false-rollback probability is at most α. Promotion evidence
//! (both `within` tests past `steps/α`) has the same α as its own budget: the
//! chance that a canary outside the tolerance is promoted early.
//!
//! Where the budget is not kept exactly, and why: resuming a paused rollout
//! restarts its analysis step with fresh tests (a person chose to look again),
//! and a controller restart rebuilds a step's tests from its window read as one
//! interval, losing the earlier path; each such restart is one more look at the
//! step's α. The live controller feeds only *sealed* seconds (older than its
//! seal lag) so that every value it acts on lies on one supermartingale path.

pub mod latency;
pub mod share;

use std::borrow::Cow;

use serde::Serialize;

use crate::histogram::Histogram;
use crate::metrics::LaneWindow;
use latency::LatencyTest;
use share::ShareTest;

/// One analysis step's running tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// "Canary error rate higher than stable's."
    pub errors: ShareTest,
    /// "Canary error rate below `error_tolerance` × stable's."
    pub errors_within: ShareTest,
    /// Latency, both directions.
    pub latency: LatencyTest,
    /// Requests seen: stable, canary.
    pub requests: [u64; 2],
    /// Errors seen: stable, canary.
    pub errors_seen: [u64; 2],
}

/// The figures of [`Evidence`], for verdicts and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSummary {
    /// Mixture e-value (Bayes factor) for "canary error rate higher".
    pub bayes_factor: f64,
    /// E-value for "canary error rate below τ × stable's".
    pub within_evidence: f64,
    /// τ.
    pub tolerance: f64,
    /// Errors: stable, canary.
    pub errors: [u64; 2],
    /// Requests: stable, canary.
    pub requests: [u64; 2],
}

impl Evidence {
    /// Fresh tests with the promotion tolerances (error-rate ratio, p95 ratio).
    pub fn new(error_tolerance: f64, latency_tolerance: f64) -> Evidence {
        Evidence {
            errors: ShareTest::worse(),
            errors_within: ShareTest::within(error_tolerance),
            latency: LatencyTest::new(latency_tolerance),
            requests: [0, 0],
            errors_seen: [0, 0],
        }
    }

    /// Adds one interval of both lanes (a second, or several read at once).
    pub fn observe(&mut self, stable: &LaneWindow, canary: &LaneWindow) {
        let n = [
            stable.success + stable.errors,
            canary.success + canary.errors,
        ];
        let total = n[0] + n[1];
        if total == 0 {
            return;
        }
        let rho = n[1] as f64 / total as f64;
        self.errors.observe(rho, canary.errors, stable.errors);
        self.errors_within
            .observe(rho, canary.errors, stable.errors);
        // Latencies may be counted apart from outcomes (workers report both), so
        // their test uses the canary's share of latency samples.
        let (s, c) = (latencies(stable), latencies(canary));
        let samples = s.count + c.count;
        if samples > 0 {
            self.latency
                .observe(c.count as f64 / samples as f64, &s, &c);
        }
        self.requests[0] += n[0];
        self.requests[1] += n[1];
        self.errors_seen[0] += stable.errors;
        self.errors_seen[1] += canary.errors;
    }

    /// The error test's figures.
    pub fn error_summary(&self) -> ErrorSummary {
        ErrorSummary {
            bayes_factor: self.errors.evidence(),
            within_evidence: self.errors_within.evidence(),
            tolerance: self.errors_within.null,
            errors: self.errors_seen,
            requests: self.requests,
        }
    }
}

/// A lane's latencies as one histogram: the proxy's buckets with the exact
/// values workers reported added in.
fn latencies(lane: &LaneWindow) -> Cow<'_, Histogram> {
    if lane.latencies_ms.is_empty() {
        return Cow::Borrowed(&lane.latency);
    }
    let mut h = lane.latency.clone();
    for v in &lane.latencies_ms {
        h.record_ms(*v);
    }
    Cow::Owned(h)
}
