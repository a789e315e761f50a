//! Judges: each looks at what a canary did and says pass, warn, fail, or
//! inconclusive — with its evidence.
//!
//! A rollout asks several questions at once: are the canary's numbers within the
//! profile's thresholds ([`threshold`]), within the operator's safety limits
//! ([`safety`]), acceptable to the team's own rules ([`policy`], CEL), is there
//! anytime-valid statistical evidence that it is worse than stable
//! ([`sequential`]), and do its health checks answer ([`health`])? Each judge answers alone, as a [`Verdict`]
//! with a sentence and the figures behind it, and [`combine`] folds them into one
//! [`Judgement`] for the controller.
//!
//! The combination is deliberately asymmetric. Any `fail` fails the whole: one
//! judge that sees harm is enough to take traffic away. Otherwise any
//! `inconclusive` makes the whole inconclusive: a judge without data (no traffic,
//! a metrics source that errored, a policy reading a metric that is null) must
//! never count as a pass, so it holds the rollout where it is — it neither
//! promotes nor, by itself, rolls back. `warn` is a safety check's WATCH: shown,
//! recorded, but not a reason to stop. (The one judge that passes without data is
//! a *warning-level* safety check: a warning can't stop a rollout, so its missing
//! metric is reported in its sentence instead of holding everything.)
//!
//! **One α for the whole rollout.** Every judge that can roll back compares
//! figures that move by chance, and a controller that looks every second
//! collects every chance crossing. So each such judge either uses evidence that
//! stays valid however often it is read (the sequential judge; the critical
//! safety checks on rates and quantiles, through the time-uniform bounds of
//! [`crate::stats::sequential::bound`]) or decides once per analysis window (the
//! threshold judge, at the window's end, on bounds of that window), and
//! [`Budget`] shares the rollout's α between them, so that the chance that
//! *these* roll back a canary no worse than stable (by the margins, and inside
//! the operator's absolute limits) stays below α in all. Outside the budget:
//! health checks and CEL policies (an operator's rules, taken as written),
//! critical safety checks on a mean, a maximum or a gauge (decided on their
//! value at the window's end), and the rollback thresholds where they are
//! stricter than the margins (a 5-point error limit is a limit, not a
//! comparison).
//!
//! Judges are pure: everything they read, including the clock, is in
//! [`Inputs`].

pub mod health;
pub mod policy;
pub mod safety;
pub mod sequential;
pub mod threshold;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;
use crate::canary::Deployment;
use crate::canary::metrics::{LaneWindow, MetricsSnapshot};
use crate::rollout::{AlertLevel, RolloutSpec};

/// What one judge says. Ordered by severity: `Pass < Warn < Inconclusive < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within every limit.
    Pass,
    /// A warning-level limit crossed (WATCH); progression continues.
    Warn,
    /// Not enough data, or the data couldn't be read: hold.
    Inconclusive,
    /// Harm seen: roll back.
    Fail,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Fail => "fail",
        }
    }
}

/// One judge's answer with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    /// Which judge (`threshold`, `safety:<name>`, `policy:<name>`, `health:<name>`).
    pub judge: String,
    /// What it says.
    pub outcome: Outcome,
    /// One sentence a person can read.
    pub summary: String,
    /// The figures behind it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub evidence: Value,
    /// The judge has the evidence to end the step early (the sequential judge's
    /// promotion evidence).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settled: bool,
}

impl Verdict {
    pub(crate) fn new(
        judge: impl Into<String>,
        outcome: Outcome,
        summary: impl Into<String>,
        evidence: Value,
    ) -> Verdict {
        Verdict {
            judge: judge.into(),
            outcome,
            summary: summary.into(),
            evidence,
            settled: false,
        }
    }
}

/// All judges together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Judgement {
    /// The combined outcome (see the module docs).
    pub outcome: Outcome,
    /// The sentence that explains it: the failing (or holding) judge's.
    pub summary: String,
    /// Every judge's verdict.
    pub verdicts: Vec<Verdict>,
    /// When it was made.
    pub at: chrono::DateTime<chrono::Utc>,
    /// A pass with the evidence to end the step early: nothing worse than a
    /// warning and at least one judge settled (see [`Verdict::settled`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settled: bool,
}

/// Folds verdicts into one judgement: worst outcome wins; its first verdict explains.
pub fn combine(verdicts: Vec<Verdict>, now: Timestamp) -> Judgement {
    let outcome = verdicts
        .iter()
        .map(|v| v.outcome)
        .max()
        .unwrap_or(Outcome::Inconclusive);
    let summary = match verdicts.iter().find(|v| v.outcome == outcome) {
        _ if verdicts.is_empty() => "no judge gave a verdict".to_string(),
        Some(v) if outcome != Outcome::Pass => format!("{}: {}", v.judge, v.summary),
        _ => format!(
            "all {} judge{} pass",
            verdicts.len(),
            if verdicts.len() == 1 { "" } else { "s" }
        ),
    };
    let settled = outcome <= Outcome::Warn && verdicts.iter().any(|v| v.settled);
    Judgement {
        outcome,
        summary,
        verdicts,
        at: now,
        settled,
    }
}

/// What the judges read: one window of both lanes, named gauges, health results,
/// where the rollout is, and the clock.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The deployment (thresholds, traffic, start time).
    pub deployment: &'a Deployment,
    /// Stable's window.
    pub stable: &'a MetricsSnapshot,
    /// Canary's window.
    pub canary: &'a MetricsSnapshot,
    /// The same window's lanes (stable, canary) as counted: for the bounds.
    pub lanes: [&'a LaneWindow; 2],
    /// The analysis window is over: the judges that decide once per window
    /// decide now.
    pub window_over: bool,
    /// Latest value of each named gauge on the canary lane (e.g. `memory_query_latency_ms`).
    pub canary_gauges: &'a std::collections::BTreeMap<String, f64>,
    /// Latest health-check results.
    pub health: &'a [health::CheckResult],
    /// Index of the step being judged.
    pub step_index: usize,
    /// When the step started.
    pub step_started_at: Timestamp,
    /// The sequential judge's running tests of this step, if read.
    pub sequential: Option<&'a crate::stats::sequential::Evidence>,
    /// Now.
    pub now: Timestamp,
}

/// How a rollout's α is shared between the judges that can roll back: two
/// parts for the sequential judge (one per metric), one for the threshold judge,
/// one for the critical safety checks, each part only when that judge runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Budget {
    /// Each sequential metric's α, for the whole rollout.
    pub sequential_metric: f64,
    /// The threshold judge's α for one check at one window's end (three
    /// checks per analysis step).
    pub threshold_check: f64,
    /// One critical safety check's α at one analysis step.
    pub safety_check: f64,
}

impl Budget {
    /// The shares of `spec`'s α.
    pub fn of(spec: &RolloutSpec) -> Budget {
        let critical = spec
            .safety_checks
            .iter()
            .filter(|c| c.alert_level == AlertLevel::Critical)
            .count();
        let parts = 2 * usize::from(spec.judges.sequential)
            + usize::from(spec.judges.threshold)
            + usize::from(critical > 0);
        let share = spec.judges.alpha / parts.max(1) as f64;
        let steps = spec.analysis_steps().max(1) as f64;
        Budget {
            sequential_metric: share,
            threshold_check: share / (3.0 * steps),
            safety_check: share / (critical.max(1) as f64 * steps),
        }
    }
}

/// The verdicts of every judge the rollout is configured with.
pub fn judge_all(inputs: &Inputs<'_>, spec: &RolloutSpec) -> Judgement {
    let budget = Budget::of(spec);
    let mut verdicts = Vec::new();
    let seq = spec.judges.sequential.then(|| {
        sequential::judge(
            inputs.sequential,
            &spec.judges,
            budget.sequential_metric,
            spec.analysis_steps(),
            inputs
                .deployment
                .config
                .rollback_thresholds
                .required_sample_size,
        )
    });
    // The judges that decide once per window decide at its end, or when the
    // step is about to end early on the sequential judge's promotion evidence.
    let decisive = inputs.window_over || seq.as_ref().is_some_and(|v| v.settled);
    if spec.judges.threshold {
        verdicts.push(threshold::judge(inputs, decisive, budget.threshold_check));
    }
    verdicts.extend(seq);
    verdicts.extend(
        spec.safety_checks
            .iter()
            .map(|c| safety::judge(c, inputs, decisive, budget.safety_check)),
    );
    verdicts.extend(spec.policies.iter().map(|p| policy::judge(p, inputs)));
    verdicts.extend(health::judge(
        &spec.health_checks,
        inputs.health,
        inputs.now,
    ));
    combine(verdicts, inputs.now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(o: Outcome, s: &str) -> Verdict {
        Verdict::new("j", o, s, json!({}))
    }

    #[test]
    fn worst_outcome_wins_and_explains() {
        let now = chrono::Utc::now();
        let j = combine(
            vec![
                v(Outcome::Pass, "ok"),
                v(Outcome::Inconclusive, "no data"),
                v(Outcome::Warn, "hmm"),
            ],
            now,
        );
        assert_eq!(j.outcome, Outcome::Inconclusive);
        assert_eq!(j.summary, "j: no data");
        let j = combine(
            vec![v(Outcome::Inconclusive, "x"), v(Outcome::Fail, "bad")],
            now,
        );
        assert_eq!(j.outcome, Outcome::Fail);
        assert_eq!(j.summary, "j: bad");
        let j = combine(vec![v(Outcome::Pass, "a"), v(Outcome::Pass, "b")], now);
        assert_eq!(
            (j.outcome, j.summary.as_str()),
            (Outcome::Pass, "all 2 judges pass")
        );
        assert_eq!(combine(vec![], now).outcome, Outcome::Inconclusive);
    }

    mod lanes {
        use super::super::*;
        use crate::canary::NewDeployment;
        use crate::canary::metrics::{LaneWindow, LaneWorkers, snapshot};
        use crate::rollout::{AlertLevel, SafetyCheck};
        use crate::traffic::Lane;
        use chrono::{Duration, TimeZone, Utc};
        use std::collections::BTreeMap;

        fn lane(ok: u64, errors: u64, ms: f64) -> LaneWindow {
            LaneWindow {
                success: ok,
                errors,
                latencies_ms: vec![ms; (ok + errors) as usize],
                ..Default::default()
            }
        }

        fn snap(l: &LaneWindow) -> MetricsSnapshot {
            let now = Utc.timestamp_opt(100, 0).unwrap();
            snapshot(
                l,
                &LaneWorkers::default(),
                "v",
                (Utc.timestamp_opt(0, 0).unwrap(), now),
                now,
            )
        }

        fn with<T>(
            stable: LaneWindow,
            canary: LaneWindow,
            window_over: bool,
            f: impl FnOnce(&Inputs<'_>) -> T,
        ) -> T {
            let d = NewDeployment {
                queue_name: "q".into(),
                stable_version: "v1".into(),
                canary_version: "v2".into(),
                percentage: Some(serde_json::json!(20)),
                ..Default::default()
            }
            .resolve("c".into(), "ops", Utc.timestamp_opt(0, 0).unwrap())
            .unwrap()
            .0;
            let gauges = BTreeMap::from([("memory_query_latency_ms".to_string(), 70.0)]);
            let now = Utc.timestamp_opt(100, 0).unwrap();
            let (s, c) = (snap(&stable), snap(&canary));
            f(&Inputs {
                deployment: &d,
                stable: &s,
                canary: &c,
                lanes: [&stable, &canary],
                window_over,
                canary_gauges: &gauges,
                health: &[],
                step_index: 0,
                step_started_at: now,
                sequential: None,
                now,
            })
        }

        #[test]
        fn threshold_judge_decides_at_the_window_end_on_what_it_proves() {
            let o = |s, c, over| with(s, c, over, |i| threshold::judge(i, over, 0.001).outcome);
            // 10% errors against none, 2000 canary requests: proven at the end,
            // only watched before it.
            assert_eq!(
                o(lane(8000, 0, 20.0), lane(1800, 200, 20.0), true),
                Outcome::Fail
            );
            assert_eq!(
                o(lane(8000, 0, 20.0), lane(1800, 200, 20.0), false),
                Outcome::Warn
            );
            assert_eq!(
                o(lane(800, 0, 20.0), lane(200, 0, 60.0), true),
                Outcome::Fail
            );
            assert_eq!(
                o(lane(800, 0, 20.0), lane(200, 0, 21.0), true),
                Outcome::Pass
            );
            // 6% errors in 50 requests crosses 95% success, but chance can't be
            // ruled out: a warning, not a rollback.
            assert_eq!(
                o(lane(800, 0, 20.0), lane(47, 3, 20.0), true),
                Outcome::Warn
            );
            // A P95 from 20 requests that lands in a slow tail proves nothing.
            let mut tail = lane(20, 0, 20.0);
            tail.latencies_ms[19] = 400.0;
            tail.latencies_ms[18] = 400.0;
            tail.latencies_ms[17] = 400.0;
            assert_eq!(o(lane(800, 0, 20.0), tail, true), Outcome::Warn);
            assert_eq!(
                o(lane(800, 0, 20.0), lane(10, 0, 20.0), true),
                Outcome::Inconclusive
            );
            assert_eq!(
                o(lane(0, 0, 20.0), lane(100, 0, 20.0), true),
                Outcome::Inconclusive
            );
        }

        #[test]
        fn safety_checks_watch_red_and_unknown() {
            let check = |metric: &str, threshold: f64, level| SafetyCheck {
                name: "c".into(),
                metric: metric.into(),
                threshold,
                alert_level: level,
            };
            let o = |c: SafetyCheck, canary| {
                with(lane(100, 0, 20.0), canary, true, |i| {
                    safety::judge(&c, i, true, 0.001).outcome
                })
            };
            assert_eq!(
                o(
                    check("p95_latency_ms", 1000.0, AlertLevel::Critical),
                    lane(100, 0, 1500.0)
                ),
                Outcome::Fail
            );
            assert_eq!(
                o(
                    check("p95_latency_ms", 1000.0, AlertLevel::Warning),
                    lane(100, 0, 1500.0)
                ),
                Outcome::Warn
            );
            assert_eq!(
                o(
                    check("p95_latency_ms", 1000.0, AlertLevel::Critical),
                    lane(100, 0, 500.0)
                ),
                Outcome::Pass
            );
            assert_eq!(
                o(
                    check("success_rate", 95.0, AlertLevel::Critical),
                    lane(70, 30, 5.0)
                ),
                Outcome::Fail
            );
            // 5 errors in 100 is below 99% by its figure, not yet by proof.
            assert_eq!(
                o(
                    check("success_rate", 99.0, AlertLevel::Critical),
                    lane(95, 5, 5.0)
                ),
                Outcome::Warn
            );
            assert_eq!(
                o(
                    check("memory_query_latency_ms", 50.0, AlertLevel::Warning),
                    lane(1, 0, 5.0)
                ),
                Outcome::Warn
            );
            assert_eq!(
                o(
                    check("p95_latency_ms", 1.0, AlertLevel::Critical),
                    lane(0, 0, 5.0)
                ),
                Outcome::Inconclusive
            );
            assert_eq!(
                o(check("nope", 1.0, AlertLevel::Warning), lane(0, 0, 5.0)),
                Outcome::Pass
            );
        }

        #[test]
        fn health_results_fail_canary_hold_on_stable_and_go_stale() {
            let spec = |name: &str, lane| health::HealthCheckSpec {
                name: name.into(),
                description: None,
                check_type: health::CheckType::Tcp,
                lane,
                endpoint: "127.0.0.1:1".into(),
                expected_status_codes: vec![],
                query: None,
                condition: None,
                interval_seconds: 10,
                timeout_seconds: 5,
                retry_count: 0,
            };
            let now = Utc.timestamp_opt(1000, 0).unwrap();
            let result = |name: &str, lane, ok, age: i64| health::CheckResult {
                name: name.into(),
                lane,
                ok,
                message: "m".into(),
                attempts: 1,
                at: now - Duration::seconds(age),
                refused: false,
            };
            let specs = [
                spec("a", Lane::Canary),
                spec("b", Lane::Stable),
                spec("c", Lane::Canary),
                spec("d", Lane::Canary),
            ];
            let results = [
                result("a", Lane::Canary, false, 1),
                result("b", Lane::Stable, false, 1),
                result("c", Lane::Canary, true, 36),
                result("d", Lane::Canary, true, 2),
                result("d", Lane::Canary, false, 20),
            ];
            let v: Vec<Outcome> = health::judge(&specs, &results, now)
                .iter()
                .map(|v| v.outcome)
                .collect();
            assert_eq!(
                v,
                [
                    Outcome::Fail,
                    Outcome::Inconclusive,
                    Outcome::Inconclusive,
                    Outcome::Pass
                ]
            );
        }
    }
}
