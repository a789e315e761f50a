//! The simulator: the real judges and the real controller over synthetic
//! traffic, in virtual time.
//!
//! A claim like "rolls back a 5× worse canary in 20 seconds and almost never
//! rolls back a good one" is only worth what its measurement is worth, and a
//! false-rollback rate of 1% can't be measured on a live system: it takes
//! thousands of A/A rollouts. So this module replays the rollout loop — a
//! [`Deployment`](crate::canary::Deployment) with its plan, [`rollout::need`], the judges of
//! [`judge::judge_all`] (or a Flagger-style fixed judge for comparison),
//! [`rollout::advance`] — once per virtual second, with traffic drawn from a
//! seeded generator: each request is routed to the canary with the current
//! weight, fails with its lane's error rate and takes a lognormal latency
//! (median 20 ms, σ = 0.5), which the canary may scale (`latency_scale`) or
//! slow down on a fraction of its requests (`tail_fraction` × `tail_factor`).
//! Each second's requests are counted in the same per-lane histograms the proxy
//! keeps, and the judge looks after every second. No sockets, no clock: a run
//! is a pure function of the scenario and its seed, so the same seed gives the
//! same report.
//!
//! The live controller feeds its tests only seconds it has sealed (older than
//! its 2 s seal lag, sealed every tick, so that late proxy reports are in);
//! `lag_s` models that (0, the default, feeds every second at once: the
//! judge's own speed). Left out: the proxy's own reporting delay and the
//! controller's tick, about a second more.

use serde::Serialize;
use serde_json::json;

use crate::canary::metrics::{LaneWindow, LaneWorkers, snapshot};
use crate::canary::{DeploymentStatus, NewDeployment};
use crate::duration::GoDuration;
use crate::judge::{self, Inputs, Outcome, Verdict};
use crate::release::signal::Lane;
use crate::rollout;
use crate::rollout::RolloutSpec;
use crate::stats::sequential::Evidence;
use crate::stats::sequential::bound::ln_gamma;
use crate::traffic::proxy::LaneBucket;
use crate::{DomainError, Timestamp};

/// Which judge decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeKind {
    /// Serin's sequential judge.
    Sequential,
    /// Flagger's default analysis: every minute, the canary's success rate over
    /// the last minute must be ≥ a minimum (99% by default); five failed checks
    /// roll back.
    Flagger,
}

/// The traffic and the rollout being simulated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Requests per second, both lanes.
    pub rps: u32,
    /// Canary weights in percent, each analysed in turn for an equal share of
    /// the horizon (100 ends the plan). One weight: a fixed share.
    pub steps: Vec<u8>,
    /// Stable's error rate (0–1).
    pub stable_error_rate: f64,
    /// Canary's error rate (0–1).
    pub canary_error_rate: f64,
    /// Canary latency as a multiple of stable's, at every quantile…
    pub latency_scale: f64,
    /// …plus this many milliseconds (lanes that differ irrelevantly: ×1.03 and
    /// +0.3 ms).
    #[serde(default)]
    pub latency_plus_ms: f64,
    /// Fraction of canary requests slowed further…
    pub tail_fraction: f64,
    /// …by this factor.
    pub tail_factor: f64,
    /// Seconds the rollout may take.
    pub horizon_s: u32,
    /// The rollout's α.
    pub alpha: f64,
    /// Which judge.
    pub judge: JudgeKind,
    /// Whether a step may end early on promotion evidence.
    pub promote_early: bool,
    /// The Flagger-style judge's minimum success rate per minute, percent
    /// (Flagger's usual 99).
    pub flagger_min_success_rate: f64,
    /// Seconds a second waits before the sequential tests see it (the live
    /// controller's seal lag is 2; 0 feeds every second at once).
    pub lag_s: u32,
}

impl Scenario {
    /// Checks the figures; the error names the flag at fault.
    pub fn validate(&self) -> Result<(), DomainError> {
        let rate = |field: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(DomainError::invalid(field, "give a number from 0 to 1"))
            }
        };
        rate("stable_error_rate", self.stable_error_rate)?;
        rate("canary_error_rate", self.canary_error_rate)?;
        rate("tail_fraction", self.tail_fraction)?;
        if !(0.0..=100.0).contains(&self.flagger_min_success_rate) {
            return Err(DomainError::invalid(
                "flagger_min_success_rate",
                "give a percentage from 0 to 100",
            ));
        }
        for (field, v) in [
            ("latency_scale", self.latency_scale),
            ("tail_factor", self.tail_factor),
        ] {
            if !(v > 0.0 && v <= 1000.0) {
                return Err(DomainError::invalid(
                    field,
                    "give a factor above 0 (1 = same as stable)",
                ));
            }
        }
        if !(0.0..=60_000.0).contains(&self.latency_plus_ms) {
            return Err(DomainError::invalid(
                "latency_plus_ms",
                "give 0 to 60000 milliseconds",
            ));
        }
        if self.rps == 0 || self.rps > 1_000_000 {
            return Err(DomainError::invalid(
                "rps",
                "give 1 to 1000000 requests per second",
            ));
        }
        if self.horizon_s == 0 || self.horizon_s > 7 * 86_400 {
            return Err(DomainError::invalid("horizon", "give 1 second to 7 days"));
        }
        if self.steps.is_empty() || self.steps.iter().all(|w| *w == 0 || *w >= 100) {
            return Err(DomainError::invalid(
                "steps",
                "give at least one canary weight between 1 and 99",
            ));
        }
        self.spec().validate()
    }

    /// The plan the controller runs: each weight below 100 analysed for its
    /// share of the horizon.
    pub fn spec(&self) -> RolloutSpec {
        let analysed = self.steps.iter().filter(|w| **w < 100).count().max(1) as u64;
        let wait = GoDuration::from_secs((u64::from(self.horizon_s) / analysed).max(1));
        let mut spec = RolloutSpec::from_traffic_steps(&self.steps, wait);
        spec.judges.threshold = false;
        spec.judges.sequential = self.judge == JudgeKind::Sequential;
        spec.judges.alpha = self.alpha;
        spec.judges.promote_early = self.promote_early;
        spec
    }
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunResult {
    /// Rolled back after `seconds`, when the canary had served `canary_requests`.
    RolledBack {
        /// Virtual seconds since the start.
        seconds: u32,
        /// Canary requests served by then.
        canary_requests: u64,
    },
    /// Promoted after `seconds`.
    Promoted {
        /// Virtual seconds since the start.
        seconds: u32,
    },
    /// Neither by the horizon (held, or paused on an inconclusive analysis).
    Inconclusive,
}

/// A small deterministic generator (xorshift64*), seeded through splitmix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for run `index` of a simulation seeded `seed`.
    pub fn for_run(seed: u64, index: u64) -> Rng {
        let mut z = seed
            .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
    }
}

/// Median latency of the simulated service, µs, and its log-spread.
const MEDIAN_US: f64 = 20_000.0;
const SIGMA: f64 = 0.5;

/// One virtual second of both lanes at canary weight `percent`.
fn second(s: &Scenario, rng: &mut Rng, percent: u8) -> [LaneWindow; 2] {
    let mut lanes: [LaneWindow; 2] = Default::default();
    let share = f64::from(percent) / 100.0;
    for _ in 0..s.rps {
        let canary = rng.uniform() < share;
        let (rate, mut scale) = if canary {
            (s.canary_error_rate, s.latency_scale)
        } else {
            (s.stable_error_rate, 1.0)
        };
        if canary && s.tail_fraction > 0.0 && rng.uniform() < s.tail_fraction {
            scale *= s.tail_factor;
        }
        let lane = &mut lanes[usize::from(canary)];
        if rng.uniform() < rate {
            lane.errors += 1;
        } else {
            lane.success += 1;
        }
        let plus_us = if canary {
            s.latency_plus_ms * 1000.0
        } else {
            0.0
        };
        lane.latency
            .record((MEDIAN_US * scale * (SIGMA * rng.normal()).exp() + plus_us) as u64);
    }
    lanes
}

/// Flagger's fixed judge: checks each minute, counts failed checks.
#[derive(Debug, Default)]
struct Flagger {
    minute: [u64; 2],
    failed: u32,
    min_success: f64,
}

impl Flagger {
    /// Adds one second of the canary; at each minute's end, checks it.
    fn judge(&mut self, canary: &LaneWindow, elapsed_s: u32, now: Timestamp) -> judge::Judgement {
        self.minute[0] += canary.success;
        self.minute[1] += canary.errors;
        if elapsed_s.is_multiple_of(60) {
            let n = self.minute[0] + self.minute[1];
            if n > 0 && (self.minute[0] as f64 / n as f64) * 100.0 < self.min_success {
                self.failed += 1;
            }
            self.minute = [0, 0];
        }
        let outcome = if self.failed >= 5 {
            Outcome::Fail
        } else {
            Outcome::Pass
        };
        let v = Verdict::new(
            "flagger",
            outcome,
            format!(
                "{} failed checks of success rate ≥ {}%",
                self.failed, self.min_success
            ),
            json!({"failed_checks": self.failed}),
        );
        judge::combine(vec![v], now)
    }
}

/// Runs one rollout of the scenario with generator `rng`.
pub fn run_one(s: &Scenario, rng: &mut Rng) -> Result<RunResult, DomainError> {
    drive(s, |percent| Some(second(s, rng, percent)))
}

/// Replays recorded seconds of both lanes (stable, canary) through the judges
/// and the controller, one per virtual second, until the rollout ends or the
/// recording does. The recording's own split stands: the weights the
/// controller sets don't change what was recorded.
pub fn replay(s: &Scenario, seconds: &[[LaneWindow; 2]]) -> Result<RunResult, DomainError> {
    let mut it = seconds.iter();
    drive(s, |_| it.next().cloned())
}

/// Per-second lane buckets (as the proxy reports them and
/// `GET /api/v1/canary/{id}/seconds` returns them) as consecutive seconds of
/// both lanes; seconds without traffic are empty.
pub fn seconds_from_buckets(buckets: &[LaneBucket]) -> Vec<[LaneWindow; 2]> {
    let Some(first) = buckets.iter().map(|b| b.second).min() else {
        return Vec::new();
    };
    let last = buckets.iter().map(|b| b.second).max().unwrap_or(first);
    let len = usize::try_from(last - first + 1)
        .unwrap_or(0)
        .min(7 * 86_400);
    let mut out: Vec<[LaneWindow; 2]> = vec![Default::default(); len];
    for b in buckets {
        if let Some(slot) = usize::try_from(b.second - first)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            slot[usize::from(b.lane.answered_by() == Lane::Canary)].add_bucket(b);
        }
    }
    out
}

/// The rollout loop over any source of seconds (`None`: no more traffic).
fn drive(
    s: &Scenario,
    mut traffic: impl FnMut(u8) -> Option<[LaneWindow; 2]>,
) -> Result<RunResult, DomainError> {
    let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a valid instant");
    let spec = s.spec();
    let (mut d, _) = NewDeployment {
        queue_name: "simulated".into(),
        stable_version: "stable".into(),
        canary_version: "canary".into(),
        auto_promotion: Some(true),
        min_duration: Some(GoDuration::ZERO),
        max_duration: Some(GoDuration::from_secs(u64::from(s.horizon_s) * 2 + 3600)),
        rollout: Some(spec.clone()),
        ..Default::default()
    }
    .resolve("simulated".into(), "simulator", t0)?;
    let empty = snapshot(
        &LaneWindow::default(),
        &LaneWorkers::default(),
        "",
        (t0, t0),
        t0,
    );
    let gauges = Default::default();
    let no_lane = LaneWindow::default();
    let mut evidence: Option<(Timestamp, Evidence)> = None;
    let mut flagger = Flagger {
        min_success: s.flagger_min_success_rate,
        ..Default::default()
    };
    let mut canary_requests = 0u64;
    let mut pending = std::collections::VecDeque::new();
    rollout::advance(&mut d, &rollout::Observed::default(), &[], t0)?;
    for t in 1..=s.horizon_s {
        let now = t0 + chrono::Duration::seconds(i64::from(t));
        let Some([stable, canary]) = traffic(d.current_percent) else {
            break;
        };
        canary_requests += canary.success + canary.errors;
        let r = d.rollout.as_ref().expect("a plan");
        let step_start = r.step_started_at;
        let mut observed = rollout::Observed::default();
        match s.judge {
            JudgeKind::Flagger => {
                let j = flagger.judge(&canary, t, now);
                if matches!(rollout::need(&d, now), rollout::Need::Judgement { .. }) {
                    observed.judgement = Some(j);
                }
            }
            JudgeKind::Sequential => {
                // One path for the rollout's rollback tests; the promotion
                // tests start afresh with each step.
                match &mut evidence {
                    Some((at, ev)) if *at != step_start => {
                        ev.new_step();
                        *at = step_start;
                    }
                    Some(_) => {}
                    None => {
                        let j = spec.judges;
                        evidence = Some((
                            step_start,
                            Evidence::new(
                                j.error_tolerance,
                                j.latency_tolerance,
                                j.margins_or(d.config.margins),
                                judge::Budget::of(&spec).sequential_metric,
                            ),
                        ));
                    }
                }
                let ev = &mut evidence.as_mut().expect("just set").1;
                // The live controller's seal lag: seconds reach the tests only
                // once older than the lag (it seals every tick, and never early,
                // not even at a window's end: the tests run on one path).
                pending.push_back((t, [stable, canary]));
                let window_over = match r.current() {
                    Some(rollout::Step::Analysis { window }) => {
                        now >= step_start + window.unwrap_or(d.config.metrics_window).to_chrono()
                    }
                    _ => false,
                };
                while let Some((at, _)) = pending.front() {
                    let ripe = *at + s.lag_s <= t;
                    if !ripe {
                        break;
                    }
                    let (_, [st, ca]) = pending.pop_front().expect("just seen");
                    ev.observe(&st, &ca);
                }
                if matches!(rollout::need(&d, now), rollout::Need::Judgement { .. }) {
                    let inputs = Inputs {
                        deployment: &d,
                        stable: &empty,
                        canary: &empty,
                        lanes: [&no_lane, &no_lane],
                        window_over,
                        canary_gauges: &gauges,
                        health: &[],
                        step_index: r.step,
                        step_started_at: step_start,
                        sequential: Some(ev),
                        now,
                    };
                    observed.judgement = Some(judge::judge_all(&inputs, &spec));
                }
            }
        }
        rollout::advance(&mut d, &observed, &[], now)?;
        match d.status {
            DeploymentStatus::Failed => {
                return Ok(RunResult::RolledBack {
                    seconds: t,
                    canary_requests,
                });
            }
            DeploymentStatus::Completed => return Ok(RunResult::Promoted { seconds: t }),
            DeploymentStatus::Paused => return Ok(RunResult::Inconclusive),
            _ => {}
        }
    }
    Ok(RunResult::Inconclusive)
}

/// Median, 90th percentile and maximum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Spread {
        median: at(0.5),
        p90: at(0.9),
        max: v[v.len() - 1],
    })
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The judge used.
    pub judge: JudgeKind,
    /// Runs made.
    pub runs: u64,
    /// Runs rolled back.
    pub rollbacks: u64,
    /// Runs promoted.
    pub promotions: u64,
    /// Runs neither rolled back nor promoted within the horizon.
    pub inconclusive: u64,
    /// Rollbacks / runs: the false-rollback rate when canary equals stable (and
    /// the power otherwise).
    pub false_rollback_rate: f64,
    /// One-sided 95% Clopper-Pearson upper bound of that rate.
    pub false_rollback_upper95: f64,
    /// Seconds to rollback, over the runs rolled back.
    pub time_to_rollback_s: Option<Spread>,
    /// Canary requests served before rollback, over the runs rolled back.
    pub canary_requests_to_rollback: Option<Spread>,
    /// Seconds to promotion, over the runs promoted.
    pub time_to_promotion_s: Option<Spread>,
    /// The scenario.
    pub scenario: Scenario,
}

/// Folds runs into a report.
pub fn report(s: &Scenario, results: &[RunResult]) -> Report {
    let mut back = (Vec::new(), Vec::new());
    let mut promoted = Vec::new();
    for r in results {
        match r {
            RunResult::RolledBack {
                seconds,
                canary_requests,
            } => {
                back.0.push(f64::from(*seconds));
                back.1.push(*canary_requests as f64);
            }
            RunResult::Promoted { seconds } => promoted.push(f64::from(*seconds)),
            RunResult::Inconclusive => {}
        }
    }
    let runs = results.len() as u64;
    let rollbacks = back.0.len() as u64;
    Report {
        judge: s.judge,
        runs,
        rollbacks,
        promotions: promoted.len() as u64,
        inconclusive: runs - rollbacks - promoted.len() as u64,
        false_rollback_rate: if runs == 0 {
            0.0
        } else {
            rollbacks as f64 / runs as f64
        },
        false_rollback_upper95: clopper_pearson_upper(rollbacks, runs, 0.05),
        time_to_rollback_s: spread(back.0),
        canary_requests_to_rollback: spread(back.1),
        time_to_promotion_s: spread(promoted),
        scenario: s.clone(),
    }
}

/// ln C(n, k) p^k (1-p)^(n-k).
fn ln_binomial_pmf(k: u64, n: u64, p: f64) -> f64 {
    let lg = |x: u64| ln_gamma(x as f64 + 1.0);
    lg(n) - lg(k) - lg(n - k) + k as f64 * p.ln() + (n - k) as f64 * (1.0 - p).ln()
}

/// P(X ≤ k) for X ~ Binomial(n, p).
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    (0..=k.min(n))
        .map(|i| ln_binomial_pmf(i, n, p).exp())
        .sum::<f64>()
        .min(1.0)
}

/// The exact (Clopper-Pearson) one-sided upper confidence bound of a binomial
/// proportion: the p at which seeing `k` or fewer of `n` has probability `a`.
pub fn clopper_pearson_upper(k: u64, n: u64, a: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let (mut lo, mut hi) = (k as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if binomial_cdf(k, n, mid) > a {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(canary_error_rate: f64, judge: JudgeKind) -> Scenario {
        Scenario {
            rps: 100,
            steps: vec![10],
            stable_error_rate: 0.01,
            canary_error_rate,
            latency_scale: 1.0,
            latency_plus_ms: 0.0,
            tail_fraction: 0.0,
            tail_factor: 1.0,
            horizon_s: 600,
            alpha: 0.01,
            judge,
            promote_early: true,
            flagger_min_success_rate: 99.0,
            lag_s: 0,
        }
    }

    #[test]
    fn clopper_pearson_matches_known_values() {
        // 0 of n: the bound is 1 − a^(1/n) (the "rule of three" for a = 0.05).
        let u = clopper_pearson_upper(0, 2000, 0.05);
        assert!((u - (1.0 - 0.05f64.powf(1.0 / 2000.0))).abs() < 1e-9, "{u}");
        // 10 of 2000: R's binom.test(10, 2000, alternative = "less") gives 0.008452.
        let u = clopper_pearson_upper(10, 2000, 0.05);
        assert!((u - 0.008452).abs() < 2e-5, "{u}");
        assert_eq!(clopper_pearson_upper(5, 5, 0.05), 1.0);
    }

    #[test]
    fn same_seed_same_report_and_a_bad_canary_is_rolled_back() {
        let s = scenario(0.05, JudgeKind::Sequential);
        let runs = |seed| {
            (0..20)
                .map(|i| run_one(&s, &mut Rng::for_run(seed, i)).unwrap())
                .collect::<Vec<_>>()
        };
        let (a, b) = (runs(7), runs(7));
        assert_eq!(a, b);
        let r = report(&s, &a);
        assert_eq!(r.rollbacks, 20, "{r:?}");
        assert!(r.time_to_rollback_s.unwrap().median <= 40.0, "{r:?}");
    }

    #[test]
    fn the_seal_lag_delays_rollbacks_by_about_its_length() {
        let mut s = scenario(0.05, JudgeKind::Sequential);
        let median = |s: &Scenario| {
            let r: Vec<_> = (0..40)
                .map(|i| run_one(s, &mut Rng::for_run(3, i)).unwrap())
                .collect();
            report(s, &r).time_to_rollback_s.unwrap().median
        };
        let direct = median(&s);
        s.lag_s = 5;
        let lagged = median(&s);
        assert!(
            lagged >= direct + 3.0 && lagged <= direct + 12.0,
            "{direct} -> {lagged}"
        );
    }

    #[test]
    fn a_good_canary_is_promoted_and_flagger_blames_noise() {
        let s = scenario(0.01, JudgeKind::Sequential);
        let r: Vec<_> = (0..10)
            .map(|i| run_one(&s, &mut Rng::for_run(1, i)).unwrap())
            .collect();
        let r = report(&s, &r);
        assert_eq!(r.rollbacks, 0, "{r:?}");
        assert!(r.promotions >= 1, "{r:?}");
        // Flagger's 99% success-rate check at a 1% error rate fails about 40% of
        // minutes by chance: in 10 minutes most good canaries hit 5 failures.
        let s = scenario(0.01, JudgeKind::Flagger);
        let r: Vec<_> = (0..10)
            .map(|i| run_one(&s, &mut Rng::for_run(1, i)).unwrap())
            .collect();
        assert!(report(&s, &r).rollbacks >= 3);
    }
}
