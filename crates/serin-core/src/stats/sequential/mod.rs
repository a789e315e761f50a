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
//! - [`bound`]: time-uniform bounds of one lane's rate (errors, requests above
//!   a latency), for absolute limits and the error floor.
//! - [`Evidence`]: a rollout's running tests of both metrics, fed one
//!   interval of both lanes at a time.
//!
//! **What "worse" means.** Every rollback test asks whether the canary is worse
//! than stable *by more than a margin that matters* ([`Margins`]), never whether
//! the two merely differ: two processes of one build always differ by
//! something irrelevant, and a test of exact equality finds it given traffic
//! enough. Latency: more than `latency_percent` slower *and* more than
//! `latency_ms` (see [`latency`]). Errors: an error rate more than
//! `error_ratio` times stable's *and* above `error_points` percent. The defaults (10%, 1 ms, ×1.25, 0.1%) sit above the
//! differences seen between identical processes on one busy machine (a few
//! percent, a fraction of a millisecond) and well below the regressions a
//! canary exists to catch (×1.5 latency, ×5 errors), in the spirit of
//! Kayenta's allowed increase on each metric and of the effect sizes Netflix's
//! sequential canary tests are tuned to. Each verdict names them.
//!
//! The error null is the *union* "ratio at most m, or the canary's error rate
//! at most f percent": a canary is rolled back only when both parts are
//! rejected. The ratio part is the exact share test with boundary m
//! ([`share::ShareTest::worse_than`]); the floor part is the canary's
//! time-uniform lower bound ([`bound::lower`]) above f. Each part alone has
//! false-rejection probability at most α wherever the truth is in its null, so
//! the intersection does too (an intersection-union test needs no split of
//! α). The floor is on the canary's own rate, not on its gap to stable's: a
//! test of the gap has to bound stable's rate too, and with a few dozen stable
//! errors that bound is too wide to be useful for a minute or more, while the
//! ratio part already judges the gap wherever stable's rate is known. What it
//! says: an error rate of at most 0.1% is not worth a rollback, whatever
//! stable's.
//!
//! **The α budget.** A rollout gets one α (default 0.01), the probability that
//! a canary no worse than stable (by the margins) is ever rolled back. The
//! judges share it ([`crate::judge::Budget`]); the sequential judge's share is
//! split evenly over its two metrics, and its rollback tests run **on one
//! path from the first canary request to the end of the rollout**: the share
//! test is exact under changing weights (ρ is per interval), and the latency
//! points are predictable whatever the weight, so nothing is restarted or
//! split per step, and evidence gathered at a 10% step still counts at 25%.
//! Promotion evidence (both `within` tests past their bar) is per step, with
//! the same α split over the analysis steps as its own budget: the chance that
//! a canary outside the tolerance is promoted early at a step.
//!
//! Where the budget is not kept exactly, and why: a controller restart
//! rebuilds the tests from the proxies' per-second history (one interval per
//! second), which is the same path up to seconds a proxy reported late — but
//! observations reported apart from proxies (job results and latencies from
//! workers) before the restart are not replayed, so for worker-fed lanes a
//! restart starts the tests afresh: one more look at their α. Resuming an
//! inconclusive analysis runs its window again: one more look for the judges
//! that decide once per window. The live
//! controller feeds only *sealed* seconds (older than its seal lag) so that
//! every value it acts on lies on one supermartingale path.

pub mod bound;
pub mod latency;
pub mod share;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::canary::metrics::LaneWindow;
use crate::stats::histogram::Histogram;
use latency::LatencyTest;
use share::ShareTest;

/// How much worse a canary may be before it counts as a regression (see the
/// module docs). Each profile has its own; a plan's `judges.margins` overrides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Margins {
    /// Latency: a canary at most this many percent slower is not a regression…
    #[serde(default = "Margins::default_latency_percent")]
    pub latency_percent: f64,
    /// …nor one at most this many milliseconds slower.
    #[serde(default = "Margins::default_latency_ms")]
    pub latency_ms: f64,
    /// Errors: an error rate at most this multiple of stable's is not a regression…
    #[serde(default = "Margins::default_error_ratio")]
    pub error_ratio: f64,
    /// …nor one whose error rate is at most this many percent (an absolute floor).
    #[serde(default = "Margins::default_error_points")]
    pub error_points: f64,
}

impl Default for Margins {
    fn default() -> Self {
        Margins {
            latency_percent: Margins::default_latency_percent(),
            latency_ms: Margins::default_latency_ms(),
            error_ratio: Margins::default_error_ratio(),
            error_points: Margins::default_error_points(),
        }
    }
}

impl Margins {
    /// No margin at all: "any difference" (for comparisons and tests).
    pub const NONE: Margins = Margins {
        latency_percent: 0.0,
        latency_ms: 0.0,
        error_ratio: 1.0,
        error_points: 0.0,
    };

    fn default_latency_percent() -> f64 {
        10.0
    }
    fn default_latency_ms() -> f64 {
        1.0
    }
    fn default_error_ratio() -> f64 {
        1.25
    }
    fn default_error_points() -> f64 {
        0.1
    }

    /// Checks the figures; errors name the field under `margins`.
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let check = |field: &str, v: f64, ok: bool, what: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(crate::DomainError::invalid(
                    format!("margins.{field}"),
                    what,
                ))
            }
        };
        check(
            "latency_percent",
            self.latency_percent,
            (0.0..=1000.0).contains(&self.latency_percent),
            "a percentage from 0 to 1000",
        )?;
        check(
            "latency_ms",
            self.latency_ms,
            (0.0..=60_000.0).contains(&self.latency_ms),
            "milliseconds from 0 to 60000",
        )?;
        check(
            "error_ratio",
            self.error_ratio,
            (1.0..=100.0).contains(&self.error_ratio),
            "a ratio from 1 (any increase) to 100",
        )?;
        check(
            "error_points",
            self.error_points,
            (0.0..=100.0).contains(&self.error_points),
            "a percentage from 0 to 100",
        )
    }

    /// The margins in words, for verdicts.
    pub fn describe_errors(&self) -> String {
        format!(
            "margin ×{} and a {}% floor",
            trim(self.error_ratio),
            trim(self.error_points)
        )
    }

    /// The latency margins in words.
    pub fn describe_latency(&self) -> String {
        format!(
            "margin +{}% and +{} ms",
            trim(self.latency_percent),
            trim(self.latency_ms)
        )
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A rollout's running tests: the rollback tests on one path from its first
/// canary request, the promotion tests of the current step.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// "Canary error rate above `error_ratio` × stable's."
    pub errors: ShareTest,
    /// "Canary error rate below `error_tolerance` × stable's" (this step).
    pub errors_within: ShareTest,
    /// Latency, both directions.
    pub latency: LatencyTest,
    /// The margins of the rollback tests.
    pub margins: Margins,
    /// Requests seen: stable, canary.
    pub requests: [u64; 2],
    /// Errors seen: stable, canary.
    pub errors_seen: [u64; 2],
    /// Requests seen in the current step: stable, canary.
    pub step_requests: [u64; 2],
    /// The α of each metric's test.
    pub alpha: f64,
}

/// The figures of [`Evidence`], for verdicts and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSummary {
    /// Mixture e-value (Bayes factor) for "canary error rate above the margin ratio".
    pub bayes_factor: f64,
    /// E-value for "canary error rate below τ × stable's" (this step).
    pub within_evidence: f64,
    /// τ.
    pub tolerance: f64,
    /// The ratio margin.
    pub margin_ratio: f64,
    /// The floor: the canary's error rate percent at or under which is no regression.
    pub margin_points: f64,
    /// Errors: stable, canary.
    pub errors: [u64; 2],
    /// Requests: stable, canary.
    pub requests: [u64; 2],
}

impl Evidence {
    /// Fresh tests with the promotion tolerances (error-rate ratio, p95 ratio),
    /// the regression margins, and each metric's α (see
    /// [`crate::judge::Budget`]).
    pub fn new(
        error_tolerance: f64,
        latency_tolerance: f64,
        margins: Margins,
        alpha: f64,
    ) -> Evidence {
        Evidence {
            alpha,
            errors: ShareTest::worse_than(margins.error_ratio),
            errors_within: ShareTest::within(error_tolerance),
            latency: LatencyTest::new(latency_tolerance, &margins),
            margins,
            requests: [0, 0],
            errors_seen: [0, 0],
            step_requests: [0, 0],
        }
    }

    /// A new step: the promotion tests start afresh, the rollback tests go on.
    pub fn new_step(&mut self) {
        self.errors_within = ShareTest::within(self.errors_within.null);
        self.latency.new_step();
        self.step_requests = [0, 0];
    }

    /// Adds one interval of both lanes (a second, or several read at once
    /// while the weight stayed the same).
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
        for (i, k) in n.into_iter().enumerate() {
            self.requests[i] += k;
            self.step_requests[i] += k;
        }
        self.errors_seen[0] += stable.errors;
        self.errors_seen[1] += canary.errors;
    }

    /// The floor part of the error test: the canary's error rate proven above
    /// `error_points`, at this evidence's α. Returns the canary's lower bound,
    /// percent, too.
    pub fn error_floor_passed(&self) -> (bool, f64) {
        let low = bound::lower(self.errors_seen[1], self.requests[1], self.alpha) * 100.0;
        (low > self.margins.error_points, low)
    }

    /// The error test's figures.
    pub fn error_summary(&self) -> ErrorSummary {
        ErrorSummary {
            bayes_factor: self.errors.evidence(),
            within_evidence: self.errors_within.evidence(),
            tolerance: self.errors_within.null,
            margin_ratio: self.margins.error_ratio,
            margin_points: self.margins.error_points,
            errors: self.errors_seen,
            requests: self.requests,
        }
    }
}

/// A lane's latencies as one histogram: the proxy's buckets with the exact
/// values workers reported added in.
pub(crate) fn latencies(lane: &LaneWindow) -> Cow<'_, Histogram> {
    if lane.latencies_ms.is_empty() {
        return Cow::Borrowed(&lane.latency);
    }
    let mut h = lane.latency.clone();
    for v in &lane.latencies_ms {
        h.record_ms(*v);
    }
    Cow::Owned(h)
}
